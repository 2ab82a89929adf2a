"""The admin HTTP API (`chargerfw csms serve --admin-port`): its tokens, the charge points,
every operator command kind sent to a simulated charger, the events long-poll, and its
separation from the OCPI API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cert_factory import issue
from click.testing import CliRunner
from csms_doubles import (
    CS_ROOT,
    add_test_charger,
    csms_running,
    hash_data_of,
    ocpi_auth,
    sim_charger,
)
from ocpi_conformance import OcpiTraffic
from ocpp.v16 import call

from chargerfw.cli import main
from chargerfw.csms.operator_commands import KINDS
from chargerfw.csms.server import RunningCsms
from chargerfw.csms.store import verify_password
from chargerfw.csms.tables import operator_commands

pytestmark = pytest.mark.timeout(90)

# What `cp show` (and the API for one charger) adds to its `cp list` row.
ONE_CHARGER_ONLY = ("latest_events", "file_statuses", "firmware_status", "received_files",
                    "certificate")


@dataclass
class AdminEnv:
    csms: RunningCsms
    client: httpx.AsyncClient  # carries the token "ops"
    token: str

    def commands_stored(self) -> list[dict[str, Any]]:
        with self.csms.store.engine.connect() as c:
            return [dict(row) for row in c.execute(operator_commands.select()).mappings()]


@contextlib.asynccontextmanager
async def admin_env(db: str, **overrides: Any) -> AsyncIterator[AdminEnv]:
    """A backend with its admin API on a free port, charger CP1 registered (not connected)
    and an admin token named "ops"."""
    async with csms_running(db, admin_port=0, **overrides) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        _, token = await csms.db(csms.store.create_admin_token, "ops")
        assert csms.admin_url is not None
        async with httpx.AsyncClient(base_url=csms.admin_url, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            yield AdminEnv(csms, client, token)


def command(kind: str) -> str:
    return f"/chargepoints/CP1/commands/{kind}"


async def test_every_command_kind_reaches_the_charger_and_answers_its_outcome(
        db: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with admin_env(db) as env, sim_charger(env.csms, "CP1") as charger:
        charger.config_keys = {"MeterValueSampleInterval": "60", "SendLocalListMaxLength": "2",
                               "LocalAuthListMaxLength": "5"}
        old_root, new_root = issue("Old root", ca=True), issue("New root", ca=True)
        charger.security.roots[CS_ROOT] = [old_root.pem]
        bodies = {"reset": {"type": "Hard"},
                  "availability": {"connector": 0, "type": "Inoperative"},
                  "config_get": {"keys": ["MeterValueSampleInterval"]},
                  "config_set": {"key": "HeartbeatInterval", "value": "60"},
                  "trigger": {"message": "StatusNotification", "connector": 1},
                  "clear_cache": {}, "unlock": {"connector": 1},
                  "local_list_push": {"full": True},
                  "firmware_update": {"url": "http://127.0.0.1:9/chargerfw.tar", "retries": 0},
                  "diagnostics": {}, "get_log": {"log_type": "SecurityLog"},
                  "install_certificate": {"certificate_type": CS_ROOT,
                                          "certificate": new_root.pem},
                  "certificate_ids": {"certificate_type": CS_ROOT},
                  "delete_certificate": hash_data_of(old_root.pem),
                  "extended_trigger": {"message": "Heartbeat"}, "authorization_key": {}}
        assert set(bodies) == set(KINDS), "a new command kind needs a case here"
        # As the store sees it, the charger came over TLS (a key is sent over TLS only).
        await env.csms.db(env.csms.store.record_security_profile, "CP1", 2)
        outcomes = {}
        for kind, body in bodies.items():
            response = await env.client.post(command(kind), json=body)
            assert response.status_code == 200, response.text
            outcomes[kind] = response.json()
            assert outcomes[kind]["ok"] is True and outcomes[kind]["command"] == kind
        assert outcomes["reset"]["detail"] == "the charger will reset"
        assert {"key": "MeterValueSampleInterval", "value": "60", "readonly": True} in (
            outcomes["config_get"]["configuration"])
        assert outcomes["local_list_push"]["update_type"] == "Full"
        assert outcomes["certificate_ids"]["certificate_hash_data"] == [
            hash_data_of(old_root.pem), hash_data_of(new_root.pem)]
        assert charger.security.roots[CS_ROOT] == [new_root.pem]
        assert ("ExtendedTriggerMessage", {"requested_message": "Heartbeat",
                                           "connector_id": None}) in charger.received
        [key] = [p["value"] for a, p in charger.received
                 if a == "ChangeConfiguration" and p["key"] == "AuthorizationKey"]
        assert verify_password(key, (await env.csms.db(env.csms.store.get_charge_point, "CP1")
                                     )["password_hash"])
        sent = [(action, payload) for action, payload in charger.received
                if action not in ("GetConfiguration", "SendLocalList", "UpdateFirmware",
                                  "GetDiagnostics", "GetLog", "InstallCertificate",
                                  "GetInstalledCertificateIds", "DeleteCertificate",
                                  "ExtendedTriggerMessage")]
        # The file commands start processes whose status notifications follow as events.
        assert {"UpdateFirmware", "GetDiagnostics", "GetLog"} <= {
            action for action, _ in charger.received}
        assert sent == [
            ("Reset", {"type": "Hard"}),
            ("ChangeAvailability", {"connector_id": 0, "type": "Inoperative"}),
            ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
            ("TriggerMessage", {"requested_message": "StatusNotification", "connector_id": 1}),
            ("ClearCache", {}),
            ("UnlockConnector", {"connector_id": 1}),
            ("ChangeConfiguration", {"key": "AuthorizationKey", "value": key})]
        # Audit: each is recorded with the token's name and its outcome, and as an event.
        stored = env.commands_stored()
        assert [(r["command"], r["requested_by"], r["outcome"]["status"]) for r in stored] == [
            (kind, "ops", outcomes[kind]["status"]) for kind in bodies]
        events = (await env.client.get("/chargepoints/CP1/events")).json()["events"]
        assert [(e["kind"], e["data"]) for e in events if e["kind"] == "command"] == [
            ("command", outcomes[kind]) for kind in bodies]
        logged = capsys.readouterr().out
        assert key not in logged and key not in json.dumps(stored, default=str)
        for kind in bodies:
            assert (f"event='csms.admin_command' operator='ops' charge_point='CP1' "
                    f"command='{kind}'") in logged
        # The CLI sees the push the API made.
        last = await env.csms.db(env.csms.store.last_operator_command, "CP1",
                                 "local_list_push")
        assert last is not None and last["outcome"] == outcomes["local_list_push"]


async def test_refusal_not_connected_no_answer_and_unknown_charger(db: str) -> None:
    async with admin_env(db, ocpp_response_timeout_s=1.0) as env:
        response = await env.client.post(command("reset"), json={"type": "Soft"})
        assert response.status_code == 409
        assert response.json()["status"] == "NotConnected" and not response.json()["ok"]
        response = await env.client.post("/chargepoints/CP9/commands/reset",
                                          json={"type": "Soft"})
        assert (response.status_code, response.json()) == (
            404, {"error": "unknown charge point 'CP9'"})
        async with sim_charger(env.csms, "CP1") as charger:
            charger.answers["UnlockConnector"] = "UnlockFailed"
            response = await env.client.post(command("unlock"), json={"connector": 1})
            assert response.status_code == 200
            assert (response.json()["status"], response.json()["ok"]) == ("UnlockFailed", False)
            assert response.json()["detail"] == "the charger could not unlock the connector"
            def broken(payload: dict[str, Any]) -> str:
                raise RuntimeError("the charger's handler fails")

            charger.answers["TriggerMessage"] = broken  # answered with a CALLERROR
            response = await env.client.post(command("trigger"), json={"message": "Heartbeat"})
            assert response.status_code == 502 and response.json()["status"] == "CallError"
            charger.silent.add("ClearCache")
            response = await env.client.post(command("clear_cache"))
            assert response.status_code == 504 and response.json()["status"] == "NoAnswer"
        assert [r["outcome"]["status"] for r in env.commands_stored()] == [
            "NotConnected", "UnlockFailed", "CallError", "NoAnswer"]


@pytest.mark.parametrize(("kind", "body", "error"), [
    ("reset", b'{"type": "Warm"}', "type must be one of Soft, Hard, not 'Warm'"),
    ("reset", b'{"type": "Hard", "delay": 3}', "reset takes no parameter delay"),
    ("unlock", b'{"connector": 0}', "connector must be a whole number from 1, not 0"),
    ("unlock", b"[1]", "the parameters must be a JSON object"),
    ("config_set", b'{"key": "K"', "request body is not valid JSON"),
    ("local_list_push", b'{"full": "yes"}', "full must be true or false"),
])
async def test_bad_bodies_are_refused_and_nothing_is_sent(db: str, kind: str, body: bytes,
                                                         error: str) -> None:
    async with admin_env(db) as env, sim_charger(env.csms, "CP1") as charger:
        response = await env.client.post(command(kind), content=body,
                                         headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert error in response.json()["error"]
        assert charger.received == [] and env.commands_stored() == []


async def test_each_auth_failure_is_401_and_does_nothing(db: str) -> None:
    async with admin_env(db) as env, sim_charger(env.csms, "CP1") as charger:
        _, revoked = await env.csms.db(env.csms.store.create_admin_token, "old")
        await env.csms.db(env.csms.store.revoke_admin_token, "old")
        _, token_a = await env.csms.db(env.csms.store.add_partner, "eMSP", [])
        refused = {
            "no header": {},
            "wrong token": {"Authorization": f"Bearer {env.token}x"},
            "revoked token": {"Authorization": f"Bearer {revoked}"},
            "OCPI partner token": {"Authorization": f"Bearer {token_a}"},
            "OCPI partner token, OCPI style": ocpi_auth(token_a),
            "admin token, Basic": {"Authorization": f"Basic {env.token}"},
        }
        async with httpx.AsyncClient(base_url=env.csms.admin_url) as anonymous:
            for case, headers in refused.items():
                for method, path in (("POST", command("reset")), ("GET", "/chargepoints"),
                                     ("GET", "/chargepoints/CP1"),
                                     ("GET", "/chargepoints/CP1/events")):
                    response = await anonymous.request(method, path, headers=headers,
                                                       json={"type": "Hard"})
                    assert response.status_code == 401, (case, path, response.text)
                    assert set(response.json()) == {"error"}, case
                    assert response.headers["WWW-Authenticate"] == "Bearer"
                # Checked before the body: a bad one is not even looked at.
                response = await anonymous.post(command("reset"), headers=headers,
                                                 content=b"{")
                assert response.status_code == 401, case
        assert charger.received == [] and env.commands_stored() == []


async def test_charge_points_are_listed_and_shown_as_the_cli_does(db: str,
                                                                 tmp_path: Path) -> None:
    async with admin_env(db) as env:
        await env.csms.db(add_test_charger, env.csms.store, "CP2", None, None, "LOC2")
        async with sim_charger(env.csms, "CP1") as charger:
            await charger.boot()
            await charger.call(call.FirmwareStatusNotification(status="Downloading"))
            listed = (await env.client.get("/chargepoints")).json()
            shown = await env.client.get("/chargepoints/CP1")
        assert [p["id"] for p in listed] == ["CP1", "CP2"]
        assert listed[0]["connected"] is True and listed[0]["firmware_version"] == "test"
        assert shown.status_code == 200
        assert {k: v for k, v in shown.json().items() if k not in ONE_CHARGER_ONLY} == listed[0]
        assert [(e["kind"], e["data"]) for e in shown.json()["latest_events"]] == [
            ("FirmwareStatusNotification", {"status": "Downloading"})]
        assert shown.json()["certificate"] is None and listed[0]["security_profile"] == 0
        missing = await env.client.get("/chargepoints/CP9")
        assert (missing.status_code, missing.json()) == (
            404, {"error": "unknown charge point 'CP9'"})
        if "://" not in db:  # the CLI on the same SQLite file prints the same data
            # once the backend has recorded the disconnect (it moves last_seen).
            for _ in range(500):
                if not (await env.csms.db(env.csms.store.get_charge_point, "CP1"))["connected"]:
                    break
                await asyncio.sleep(0.01)
            shown_after = (await env.client.get("/chargepoints/CP1")).json()
            result = CliRunner().invoke(main, ["csms", "cp", "show", "CP1", "--db", db,
                                               "--json"])
            cli = json.loads(result.output)
            assert {k: v for k, v in cli.items() if k != "connected"} == {
                k: v for k, v in shown_after.items() if k != "connected"}


async def test_events_long_poll_waits_for_a_status_notification(db: str) -> None:
    async with admin_env(db) as env, sim_charger(env.csms, "CP1") as charger:
        first = (await env.client.get("/chargepoints/CP1/events")).json()
        assert first == {"events": [], "next": 0}
        waiting = asyncio.create_task(env.client.get(
            "/chargepoints/CP1/events", params={"after": 0, "wait": 30}))
        await charger.call(call.DiagnosticsStatusNotification(status="Uploading"))
        polled = (await waiting).json()
        assert [(e["kind"], e["data"]) for e in polled["events"]] == [
            ("DiagnosticsStatusNotification", {"status": "Uploading"})]
        assert polled["next"] == polled["events"][0]["id"]
        await charger.call(call.FirmwareStatusNotification(status="Installed"))
        newer = (await env.client.get("/chargepoints/CP1/events",
                                      params={"after": polled["next"], "wait": 5})).json()
        assert [e["data"]["status"] for e in newer["events"]] == ["Installed"]
        empty = (await env.client.get("/chargepoints/CP1/events",
                                      params={"after": newer["next"]})).json()
        assert empty == {"events": [], "next": newer["next"]}
        for query in ({"after": -1}, {"wait": 61}, {"after": "x"}):
            response = await env.client.get("/chargepoints/CP1/events", params=query)
            assert response.status_code == 400 and set(response.json()) == {"error"}, query
        unknown = await env.client.get("/chargepoints/CP9/events")
        assert unknown.status_code == 404


async def test_openapi_is_on_the_admin_port_only(db: str, ocpi_traffic: OcpiTraffic) -> None:
    async with admin_env(db) as env:
        document = (await env.client.get("/openapi.json")).json()
        paths = set(document["paths"])
        assert {f"/chargepoints/{{charge_point_id}}/commands/{kind}" for kind in KINDS} <= paths
        assert {"/chargepoints", "/chargepoints/{charge_point_id}",
                "/chargepoints/{charge_point_id}/events"} <= paths
        assert not any(path.startswith(("/ocpi", "/opendata")) for path in paths)
        assert "HTTPBearer" in document["components"]["securitySchemes"]
        reset = document["paths"]["/chargepoints/{charge_point_id}/commands/reset"]["post"]
        assert reset["requestBody"]["content"]["application/json"]["example"] == (
            KINDS["reset"].example)
        assert (await env.client.get("/docs")).status_code == 200
        # The admin exchanges are not taken for OCPI ones by the conformance check.
        refused = await env.client.post(command("reset"),
                                        json={"type": "Hard", "response_url": "http://x/"})
        assert refused.status_code == 400
        assert ocpi_traffic.checked == {} and ocpi_traffic.response_urls == {}
        async with httpx.AsyncClient(base_url=env.csms.api_url) as ocpi:
            for path in ("/openapi.json", "/docs", "/chargepoints",
                         "/chargepoints/CP1/commands/reset"):
                response = await ocpi.get(path, headers={
                    "Authorization": f"Bearer {env.token}"})
                assert response.status_code in (404, 405), path
            # while the OCPI API's answers are checked as before
            assert (await ocpi.get("/ocpi/versions")).status_code == 401
        assert ocpi_traffic.checked == {"Response": 1} and ocpi_traffic.found == []


async def test_no_admin_port_no_admin_api(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        assert csms.admin_port is None and csms.admin_url is None


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["csms", *args])
    return result.exit_code, result.stdout, result.stderr


def test_token_commands_and_serve_with_the_admin_api(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    code, token, note = _cli("admin", "token", "create", "--name", "ops", "--db", db)
    assert code == 0 and "shown once" in note
    token = token.strip()
    assert _cli("admin", "token", "create", "--name", "ops", "--db", db)[0] == 2
    code, _, _ = _cli("admin", "token", "create", "--name", "old", "--db", db)
    code, out, _ = _cli("admin", "token", "revoke", "old", "--db", db)
    assert (code, out.strip()) == (0, "revoked old")
    code, out, err = _cli("admin", "token", "revoke", "nobody", "--db", db)
    assert code == 2 and "no admin token named 'nobody'" in err
    code, out, _ = _cli("admin", "token", "list", "--db", db)
    lines = out.splitlines()
    assert code == 0 and lines[2].startswith("ops") and lines[3].startswith("old")
    assert token not in out and len(lines[3].split()) > len(lines[2].split())  # revoked

    proc = subprocess.Popen(
        [sys.executable, "-m", "chargerfw", "csms", "serve", "--db", db, "--ocpp-port", "0",
         "--api-port", "0", "--files-port", "0", "--admin-port", "0"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "CHARGERFW_LOG_LEVEL": "WARNING"})
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert lines[4].startswith("admin http://127.0.0.1:"), lines
        admin_url = lines[4].split()[1].removesuffix("/docs")
        listed = httpx.get(f"{admin_url}/chargepoints",
                           headers={"Authorization": f"Bearer {token}"})
        assert (listed.status_code, listed.json()) == (200, [])
        assert httpx.get(f"{admin_url}/chargepoints").status_code == 401
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_waiting_long_poll_is_answered_when_the_backend_stops(tmp_path: Path) -> None:
    import threading

    polling = threading.Event()
    async with httpx.AsyncClient(timeout=30) as client:
        async with admin_env(str(tmp_path / "c.db")) as env:
            read_events = env.csms.store.charge_point_events

            def noting_the_poll(*args: Any) -> Any:
                polling.set()
                return read_events(*args)

            env.csms.store.charge_point_events = noting_the_poll  # type: ignore[method-assign]
            waiting = asyncio.create_task(client.get(
                f"{env.csms.admin_url}/chargepoints/CP1/events", params={"wait": 60},
                headers={"Authorization": f"Bearer {env.token}"}))
            assert await asyncio.to_thread(polling.wait, 20)
        answer = await waiting
    assert (answer.status_code, answer.json()) == (200, {"events": [], "next": 0})
