"""The whole chain, the admin API: every operator command kind, sent over the backend's admin
HTTP API (`chargerfw csms serve --admin-port`, with its file server), reaches the real
firmware (simulated hardware): the outcome is the station's own answer, the station did what
was asked (read back from its control socket, its store or its simulated hardware), and the
status notifications of the processes it starts come back through the events long-poll.
Run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cert_factory import issue
from chain_helpers import CHARGER, CHARGER_PASSWORD, Chain, ocpp_exchanges, running_chain
from csms_doubles import CS_ROOT, add_test_charger, hash_data_of
from fakes import wait_until
from runtime_helpers import wait_status

from chargerfw.csms.operator_commands import KINDS, TRIGGER_MESSAGES
from chargerfw.station.auth import AuthorizationStatus, IdTagInfo

pytestmark = pytest.mark.timeout(60)

OFFLINE = "CP2"  # registered at the backend, never connected


@dataclass
class AdminChain:
    """The chain with an admin token; ``cursor`` is the last of CP1's events read."""

    chain: Chain
    admin: httpx.AsyncClient  # carries the token
    token: str
    files: Path  # the backend's data directory (received files are kept under it)
    cursor: int = 0

    async def command(self, kind: str, body: dict[str, Any], http: int = 200,
                      charge_point: str = CHARGER) -> dict[str, Any]:
        response = await self.admin.post(f"/chargepoints/{charge_point}/commands/{kind}",
                                         json=body)
        assert response.status_code == http, response.text
        answer: dict[str, Any] = response.json()
        assert (answer["charge_point_id"], answer["command"]) == (charge_point, kind)
        return answer

    async def notifications(self, kind: str, last: str, timeout: float = 20.0
                            ) -> list[dict[str, Any]]:
        """The data of CP1's ``kind`` events up to the first that reports ``last``, read with
        the long-poll from the cursor on."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while last not in [data["status"] for data in seen]:
                response = await self.admin.get(f"/chargepoints/{CHARGER}/events",
                                                params={"after": self.cursor, "wait": 10})
                assert response.status_code == 200, response.text
                page = response.json()
                seen += [event["data"] for event in page["events"] if event["kind"] == kind]
                self.cursor = page["next"]
        return seen[:[data["status"] for data in seen].index(last) + 1]

    def sent_by_station(self, action: str) -> int:
        return sum(1 for x in ocpp_exchanges(self.chain.runtime, action) if x.direction == "out")

    def received_by_station(self, action: str) -> int:
        return sum(1 for x in ocpp_exchanges(self.chain.runtime, action) if x.direction == "in")


@contextlib.asynccontextmanager
async def admin_chain(db: str, tmp_path: Path) -> AsyncIterator[AdminChain]:
    """The chain with the backend's admin API and file server, an admin token named "ops",
    and a second charger that never connects."""
    files = tmp_path / "csms-files"
    async with running_chain(db, tmp_path, energy_per_kwh=0.30, time_per_hour=0.0, flat=0.0,
                             vat=0.0, admin_port=0, data_dir=str(files)) as chain:
        csms = chain.csms
        await csms.db(add_test_charger, csms.store, OFFLINE, None, None, "LOC2")
        _, token = await csms.db(csms.store.create_admin_token, "ops")
        assert csms.admin_url is not None
        async with httpx.AsyncClient(base_url=csms.admin_url, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as admin:
            yield AdminChain(chain, admin, token, files)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- one check per command kind: the station's answer and what it did ------------------------

async def check_reset(env: AdminChain) -> None:
    answer = await env.command("reset", {"type": "Soft"})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    await wait_until(lambda: ("station.reset", {"kind": "Soft"}) in env.chain.events,
                     what="the station resetting")
    await wait_until(lambda: CHARGER not in env.chain.csms.ocpp.connected,
                     what="the station gone from the backend for its restart")


async def check_availability(env: AdminChain) -> None:
    sock = env.chain.sock
    answer = await env.command("availability", {"connector": 1, "type": "Inoperative"})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    status = await wait_status(sock, lambda s: s["connectors"][0]["status"] == "Unavailable",
                               what="connector 1 Unavailable")
    assert status["connectors"][0]["availability"] == "Inoperative"
    answer = await env.command("availability", {"connector": 1, "type": "Operative"})
    assert answer["status"] == "Accepted"
    await wait_status(sock, lambda s: s["connectors"][0]["status"] == "Available",
                      what="connector 1 Available again")
    # A connector the station does not have.
    answer = await env.command("availability", {"connector": 7, "type": "Inoperative"})
    assert (answer["status"], answer["ok"]) == ("Rejected", False)


async def check_config_get(env: AdminChain) -> None:
    answer = await env.command("config_get", {"keys": []})
    assert answer["status"] == "Accepted" and answer["unknown"] == []
    keys = env.chain.runtime.client.keys
    entries, _ = keys.get_configuration(None)
    assert answer["configuration"] == [{"key": e.key, "value": e.value, "readonly": e.readonly}
                                       for e in entries]
    assert {"key": "HeartbeatInterval", "value": "300", "readonly": False} in (
        answer["configuration"])
    answer = await env.command("config_get", {"keys": ["MeterValueSampleInterval",
                                                       "NoSuchKey"]})
    assert (answer["status"], answer["ok"], answer["unknown"]) == (
        "UnknownKey", False, ["NoSuchKey"])
    assert answer["configuration"] == [
        {"key": "MeterValueSampleInterval", "value": "1", "readonly": False}]


async def check_config_set(env: AdminChain) -> None:
    store = env.chain.runtime.store
    assert store is not None
    answer = await env.command("config_set", {"key": "HeartbeatInterval", "value": "60"})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    keys = env.chain.runtime.client.keys
    assert keys.get_int("HeartbeatInterval") == 60
    assert store.config_get("HeartbeatInterval") == "60"
    answer = await env.command("config_set", {"key": "HeartbeatInterval", "value": "-5"})
    assert (answer["status"], answer["ok"]) == ("Rejected", False)
    answer = await env.command("config_set", {"key": "NoSuchKey", "value": "1"})
    assert (answer["status"], answer["ok"]) == ("NotSupported", False)
    assert store.config_get("HeartbeatInterval") == "60"
    read_back = await env.command("config_get", {"keys": ["HeartbeatInterval"]})
    assert read_back["configuration"] == [
        {"key": "HeartbeatInterval", "value": "60", "readonly": False}]


# The notifications the backend keeps as events: a triggered one also arrives there.
STORED_AS_EVENTS = ("DiagnosticsStatusNotification", "FirmwareStatusNotification")


async def check_trigger(env: AdminChain) -> None:
    for message in TRIGGER_MESSAGES:
        before = env.sent_by_station(message)
        body: dict[str, Any] = {"message": message}
        if message in ("StatusNotification", "MeterValues"):
            body["connector"] = 1
        answer = await env.command("trigger", body)
        assert (answer["status"], answer["ok"]) == ("Accepted", True), message
        await wait_until(lambda m=message, n=before: env.sent_by_station(m) > n,  # type: ignore[misc]
                         what=f"the station sending {message}")
        if message in STORED_AS_EVENTS:
            assert await env.notifications(message, "Idle") == [{"status": "Idle"}]


async def check_clear_cache(env: AdminChain) -> None:
    store = env.chain.runtime.store
    assert store is not None
    store.cache_put("CACHED-TAG", IdTagInfo(AuthorizationStatus.ACCEPTED))
    assert store.cache_get("CACHED-TAG") is not None
    answer = await env.command("clear_cache", {})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    assert store.cache_get("CACHED-TAG") is None


async def check_unlock(env: AdminChain) -> None:
    board = env.chain.runtime.board
    assert board is not None
    connector = board.connectors[1]
    assert connector.lock is not None and connector.sim is not None
    mechanism = connector.sim.lock  # the simulated lock's actual position
    assert mechanism is not None
    await asyncio.to_thread(connector.lock.lock)
    assert mechanism.is_locked
    answer = await env.command("unlock", {"connector": 1})
    assert (answer["status"], answer["ok"]) == ("Unlocked", True)
    assert not mechanism.is_locked
    answer = await env.command("unlock", {"connector": 7})
    assert (answer["status"], answer["ok"]) == ("NotSupported", False)


async def check_local_list_push(env: AdminChain) -> None:
    csms, store = env.chain.csms, env.chain.runtime.store
    assert store is not None
    await csms.db(csms.store.add_local_token, "SITE-CARD-1")
    await csms.db(csms.store.add_local_token, "SITE-CARD-2")
    answer = await env.command("local_list_push", {"full": True})
    assert (answer["status"], answer["ok"], answer["update_type"]) == ("Accepted", True, "Full")
    assert store.local_list_version() == answer["version"] > 0
    accepted = IdTagInfo(AuthorizationStatus.ACCEPTED)
    assert store.local_list_get("SITE-CARD-1") == store.local_list_get("SITE-CARD-2") == accepted
    again = await env.command("local_list_push", {"full": False})
    assert (again["status"], again["ok"]) == ("UpToDate", True)
    assert store.local_list_version() == answer["version"]


async def check_firmware_update(env: AdminChain) -> None:
    # Nothing listens there: the station tries once and gives up.
    url = f"http://127.0.0.1:{_closed_port()}/chargerfw-9.9.9.tar"
    answer = await env.command("firmware_update", {"url": url, "retries": 1,
                                                   "retry_interval": 0})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    [request] = [x for x in ocpp_exchanges(env.chain.runtime, "UpdateFirmware")
                 if x.direction == "in"]
    assert request.request["location"] == url
    assert await env.notifications("FirmwareStatusNotification", "DownloadFailed") == [
        {"status": "Downloading"}, {"status": "DownloadFailed"}]
    sent = [x.request["status"] for x in ocpp_exchanges(env.chain.runtime,
                                                         "FirmwareStatusNotification")
            if x.direction == "out"]
    assert sent[-2:] == ["Downloading", "DownloadFailed"], sent
    # It gave up: nothing pending, nothing held.
    status = await wait_status(env.chain.sock, lambda s: s["firmware"]["phase"] == "idle",
                               what="the station done with the update")
    assert status["firmware"]["location"] is None
    assert status["connectors"][0]["status"] == "Available"


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


async def _received(env: AdminChain, kind: str) -> dict[str, Any]:
    """The one file of ``kind`` the backend received from CP1, as the admin API shows it."""
    shown = (await env.admin.get(f"/chargepoints/{CHARGER}")).json()
    [received] = [f for f in shown["received_files"] if f["kind"] == kind]
    return dict(received)


async def check_diagnostics(env: AdminChain) -> None:
    answer = await env.command("diagnostics", {})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    assert answer["file_name"]
    assert await env.notifications("DiagnosticsStatusNotification", "Uploaded") == [
        {"status": "Uploading"}, {"status": "Uploaded"}]
    received = await _received(env, "diagnostics")
    assert received["file_name"] == answer["file_name"]
    bundle = _members((env.files / received["path"]).read_bytes())
    [config] = [json.loads(data) for name, data in bundle.items()
                if name.endswith("/config.json")]
    assert config["station"]["id"] == CHARGER, config
    # The station's OCPP password is in its config but not in what it uploaded.
    assert not [name for name, data in bundle.items() if CHARGER_PASSWORD.encode() in data]


async def check_get_log(env: AdminChain) -> None:
    answer = await env.command("get_log", {"log_type": "SecurityLog"})
    assert (answer["status"], answer["ok"], answer["log_type"]) == (
        "Accepted", True, "SecurityLog")
    request_id = answer["request_id"]
    assert await env.notifications("LogStatusNotification", "Uploaded") == [
        {"status": "Uploading", "requestId": request_id},
        {"status": "Uploaded", "requestId": request_id}]
    received = await _received(env, "log")
    assert received["file_name"] == answer["file_name"]
    assert (env.files / received["path"]).stat().st_size == received["size"] > 0


async def check_install_certificate(env: AdminChain) -> None:
    root = issue("Backend root", ca=True)
    answer = await env.command("install_certificate", {"certificate_type": CS_ROOT,
                                                       "certificate": root.pem})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    listed = await env.command("certificate_ids", {"certificate_type": CS_ROOT})
    assert hash_data_of(root.pem) in listed["certificate_hash_data"]


async def check_certificate_ids(env: AdminChain) -> None:
    answer = await env.command("certificate_ids", {"certificate_type": CS_ROOT})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    assert answer["certificate_hash_data"]
    for entry in answer["certificate_hash_data"]:
        assert entry["hash_algorithm"] == "SHA256" and len(entry["issuer_name_hash"]) == 64


async def check_delete_certificate(env: AdminChain) -> None:
    extra = issue("Second backend root", ca=True)
    installed = await env.command("install_certificate", {"certificate_type": CS_ROOT,
                                                          "certificate": extra.pem})
    assert installed["ok"], installed
    answer = await env.command("delete_certificate", hash_data_of(extra.pem))
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    listed = await env.command("certificate_ids", {"certificate_type": CS_ROOT})
    assert hash_data_of(extra.pem) not in listed["certificate_hash_data"]
    unknown = await env.command("delete_certificate", hash_data_of(extra.pem))
    assert (unknown["status"], unknown["ok"]) == ("NotFound", False)


async def check_extended_trigger(env: AdminChain) -> None:
    before = env.sent_by_station("SignCertificate")
    answer = await env.command("extended_trigger", {"message": "SignChargePointCertificate"})
    assert (answer["status"], answer["ok"]) == ("Accepted", True)
    await wait_until(lambda: env.sent_by_station("SignCertificate") > before,
                     what="the station sending its CSR")


# The OCPP request each kind sends to the station.
ACTION_OF = {"reset": "Reset", "availability": "ChangeAvailability",
              "config_get": "GetConfiguration", "config_set": "ChangeConfiguration",
              "trigger": "TriggerMessage", "clear_cache": "ClearCache",
              "unlock": "UnlockConnector", "local_list_push": "SendLocalList",
              "firmware_update": "UpdateFirmware", "diagnostics": "GetDiagnostics",
              "get_log": "GetLog", "install_certificate": "InstallCertificate",
              "certificate_ids": "GetInstalledCertificateIds",
              "delete_certificate": "DeleteCertificate",
              "extended_trigger": "ExtendedTriggerMessage"}


CHECKS: dict[str, Callable[[AdminChain], Awaitable[None]]] = {
    "availability": check_availability, "config_get": check_config_get,
    "config_set": check_config_set, "trigger": check_trigger,
    "clear_cache": check_clear_cache, "unlock": check_unlock,
    "local_list_push": check_local_list_push, "firmware_update": check_firmware_update,
    "diagnostics": check_diagnostics, "get_log": check_get_log,
    "install_certificate": check_install_certificate,
    "certificate_ids": check_certificate_ids, "delete_certificate": check_delete_certificate,
    "extended_trigger": check_extended_trigger,
    "reset": check_reset,  # last: the station goes away to restart
}
# Kinds a station cannot carry out in this test, each with the reason.
NOT_CARRIED_OUT: dict[str, str] = {
    "authorization_key": "the station connects over ws (profile 1) here, and the backend sends "
                         "no key over plain ws; a key over TLS to our station is in "
                         "test_chain_security_migration"}


def test_every_command_kind_has_a_check_or_a_reason() -> None:
    assert set(CHECKS).isdisjoint(NOT_CARRIED_OUT)
    assert set(CHECKS) | set(NOT_CARRIED_OUT) == set(KINDS), "a new kind needs a check here"
    assert len(NOT_CARRIED_OUT) <= 1
    assert list(CHECKS)[-1] == "reset"


async def test_each_admin_command_against_the_running_station(db: str, tmp_path: Path
                                                              ) -> None:
    async with admin_chain(db, tmp_path) as env:
        for kind, check in CHECKS.items():
            await check(env)
            if kind != "reset":  # the reset station's store is closed; it said it reset
                assert env.received_by_station(ACTION_OF[kind]) > 0, kind
        commands = [e for e in (await env.admin.get(f"/chargepoints/{CHARGER}/events",
                                                    params={"after": 0})).json()["events"]
                    if e["kind"] == "command"]
        assert {e["data"]["command"] for e in commands} == set(CHECKS)
        # Idle only as the trigger's answer (OCPP 1.6, 4.5), not after the failed download.
        firmware = await env.chain.csms.db(env.chain.csms.store.file_statuses, CHARGER,
                                           "firmware")
        assert [row["status"] for row in firmware] == ["Idle", "Downloading", "DownloadFailed"]


async def test_a_charger_not_connected_and_bad_tokens_reach_nothing(db: str, tmp_path: Path
                                                                   ) -> None:
    async with admin_chain(db, tmp_path) as env:
        for kind, command_kind in KINDS.items():
            answer = await env.command(kind, dict(command_kind.example), http=409,
                                       charge_point=OFFLINE)
            assert (answer["status"], answer["ok"]) == ("NotConnected", False), kind
        csms = env.chain.csms
        _, revoked = await csms.db(csms.store.create_admin_token, "old")
        await csms.db(csms.store.revoke_admin_token, "old")
        async with httpx.AsyncClient(base_url=env.admin.base_url) as anonymous:
            for token in (f"{env.token}x", revoked):
                response = await anonymous.post(
                    f"/chargepoints/{CHARGER}/commands/reset", json={"type": "Hard"},
                    headers={"Authorization": f"Bearer {token}"})
                assert (response.status_code, set(response.json())) == (401, {"error"})
        assert env.received_by_station("Reset") == 0
        assert env.chain.runtime.store is not None
        assert CHARGER in csms.ocpp.connected
        recorded = (await env.admin.get(f"/chargepoints/{OFFLINE}/events")).json()["events"]
        assert [e["data"]["status"] for e in recorded] == ["NotConnected"] * len(KINDS)
