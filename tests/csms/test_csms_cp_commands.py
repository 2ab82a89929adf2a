"""The operator's OCPP commands (`chargerfw csms cp ...`): queued by the CLI, sent by the
running backend to a simulated charger, and the charger's answer printed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner
from csms_doubles import add_test_charger, csms_running, sim_charger

from chargerfw.cli import main
from chargerfw.csms.operator_commands import InvalidCommand, check_params

pytestmark = pytest.mark.timeout(90)

# What `cp show` (and the API for one charger) adds to its `cp list` row.
ONE_CHARGER_ONLY = ("latest_events", "file_statuses", "firmware_status", "received_files",
                    "certificate")


def _cp(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", "cp", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(("command", "params", "error"), [
    ("reset", {"type": "Warm"}, "type must be one of Soft, Hard"),
    ("availability", {"connector": -1, "type": "Operative"}, "connector must be"),
    ("availability", {"connector": True, "type": "Operative"}, "connector must be"),
    ("config_set", {"key": "", "value": "1"}, "key must be text of 1 to 50"),
    ("config_set", {"key": "K", "value": "x" * 501}, "value must be text of 0 to 500"),
    ("config_set", {"key": "AuthorizationKey", "value": "00" * 20},
     "AuthorizationKey is the charger's password: give it a new one with the "
     "authorization_key command"),
    ("config_set", {"key": "authorizationkey", "value": "x"}, "AuthorizationKey is the"),
    ("config_get", {"keys": "HeartbeatInterval"}, "keys must be a list"),
    ("trigger", {"message": "Authorize"}, "message must be one of"),
    ("unlock", {"connector": 0}, "connector must be a whole number from 1"),
    ("explode", {}, "unknown command 'explode'"),
    ("reset", {"type": "Hard", "delay": 5}, r"reset takes no parameter delay \(it takes: type\)"),
    ("clear_cache", {"all": True}, r"takes no parameter all \(it takes: none\)"),
    ("local_list_push", {"full": "yes"}, "full must be true or false"),
    ("unlock", ["connector", 1], "the parameters must be a JSON object"),
])
def test_bad_arguments_are_refused(command: str, params: Any, error: str) -> None:
    with pytest.raises(InvalidCommand, match=error):
        check_params(command, params)


async def test_every_command_through_the_running_backend(db: str) -> None:
    async with csms_running(db, operator_command_poll_s=0.1) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            charger.config_keys = {"MeterValueSampleInterval": "60"}

            async def cp(*args: str) -> tuple[int, str]:
                return await asyncio.to_thread(_cp, *args, "--db", db)

            code, out = await cp("reset", "CP1", "--hard")
            assert (code, out.strip()) == (0, "CP1: Accepted: the charger will reset")
            code, out = await cp("availability", "CP1", "inoperative", "--connector", "2")
            assert code == 0 and out.startswith("CP1: Accepted")
            code, out = await cp("config", "get", "CP1", "MeterValueSampleInterval", "--json")
            answer = json.loads(out)
            assert code == 0 and answer["status"] == "Accepted"
            assert {"key": "MeterValueSampleInterval", "value": "60",
                    "readonly": True} in answer["configuration"]
            assert ("GetConfiguration", {"key": ["MeterValueSampleInterval"]}) in (
                charger.received)
            code, out = await cp("config", "set", "CP1", "HeartbeatInterval", "60")
            assert code == 0 and out.startswith("CP1: Accepted: the charger changed the key")
            code, out = await cp("trigger", "CP1", "statusnotification", "--connector", "1")
            assert code == 0 and out.startswith("CP1: Accepted")
            code, out = await cp("clear-cache", "CP1")
            assert code == 0 and "cleared its authorization cache" in out
            code, out = await cp("unlock", "CP1", "1")
            assert code == 0 and out.startswith("CP1: Unlocked")
            sent = [(action, payload) for action, payload in charger.received
                    if action not in ("GetConfiguration",)]
            assert sent == [
                ("Reset", {"type": "Hard"}),
                ("ChangeAvailability", {"connector_id": 2, "type": "Inoperative"}),
                ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
                ("TriggerMessage", {"requested_message": "StatusNotification",
                                    "connector_id": 1}),
                ("ClearCache", {}),
                ("UnlockConnector", {"connector_id": 1})]

            # Refusals: exit 1 with the charger's answer.
            charger.answers.update(Reset="Rejected", UnlockConnector="UnlockFailed",
                                   ChangeConfiguration="NotSupported",
                                   TriggerMessage="NotImplemented", ClearCache="Rejected",
                                   ChangeAvailability="Rejected")
            code, out = await cp("reset", "CP1")
            assert (code, out.strip()) == (1, "CP1: Rejected: the charger refused to reset")
            code, out = await cp("unlock", "CP1", "1", "--json")
            assert code == 1 and json.loads(out)["status"] == "UnlockFailed"
            code, out = await cp("config", "set", "CP1", "Nope", "1")
            assert code == 1 and "does not know the key" in out
            code, out = await cp("trigger", "CP1", "Heartbeat")
            assert code == 1 and "cannot send that message" in out
            code, out = await cp("clear-cache", "CP1")
            assert code == 1 and out.startswith("CP1: Rejected")
            code, out = await cp("availability", "CP1", "operative")
            assert code == 1 and out.startswith("CP1: Rejected")
            code, out = await cp("config", "get", "CP1", "MeterValueSampleInterval", "Nope")
            assert code == 1 and "CP1: UnknownKey: the charger does not know Nope" in out
            # The keys it knows are still shown.
            assert ["MeterValueSampleInterval", "60", "read-only"] in [
                line.split() for line in out.splitlines()]

            charger.silent.add("Reset")
            code, out = await cp("reset", "CP1")
            assert code == 1 and "CP1: NoAnswer: the charger did not answer in time" in out

        code, out = await asyncio.to_thread(_cp, "clear-cache", "CP1", "--db", db)
        assert code == 1 and "NotConnected: the charger is not connected" in out
        code, out = await asyncio.to_thread(_cp, "reset", "NOPE", "--db", db)
        assert code == 2 and "unknown charge point 'NOPE'" in out
        code, out = await asyncio.to_thread(_cp, "trigger", "CP1", "Authorize", "--db", db)
        assert code == 2 and "'Authorize' is not one of" in out
        assert [row for row in await csms.db(csms.store.claim_operator_commands)] == []


def test_without_a_running_backend_the_request_is_withdrawn(tmp_path: Any) -> None:
    from chargerfw.csms.db import create_db_engine, upgrade_database
    from chargerfw.csms.store import CpoIdentity, Store

    db = str(tmp_path / "c.db")
    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine, CpoIdentity())
    add_test_charger(store, "CP1", None)
    code, out = _cp("reset", "CP1", "--db", db, "--wait", "1")
    assert code == 1 and "no running backend took the request within 1 s" in out
    assert store.claim_operator_commands() == []


def test_cp_list_and_show_give_the_charge_points_and_latest_events(tmp_path: Any) -> None:
    from chargerfw.csms.db import create_db_engine, upgrade_database
    from chargerfw.csms.store import CpoIdentity, Store

    db = str(tmp_path / "csms.sqlite3")
    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine, CpoIdentity())
    add_test_charger(store, "CP1", connectors=2)
    add_test_charger(store, "CP2", None, location_id="LOC2")
    store.record_charge_point_event("CP1", "FirmwareStatusNotification",
                                    {"status": "Downloading"})
    engine.dispose()

    code, out = _cp("list", "--db", db)
    assert code == 0 and "CP1-1(1:UNKNOWN) CP1-2(2:UNKNOWN)" in out and "CP2" in out
    code, out = _cp("list", "--db", db, "--json")
    listed = json.loads(out)
    assert [p["id"] for p in listed] == ["CP1", "CP2"]
    assert "latest_events" not in listed[0] and listed[0]["password"] is True
    code, out = _cp("show", "CP1", "--db", db, "--json")
    shown = json.loads(out)
    assert code == 0 and {k: v for k, v in shown.items() if k not in ONE_CHARGER_ONLY} == listed[0]
    assert [(e["kind"], e["data"]) for e in shown["latest_events"]] == [
        ("FirmwareStatusNotification", {"status": "Downloading"})]
    code, out = _cp("show", "CP1", "--db", db)
    assert code == 0 and "FirmwareStatusNotification  Downloading" in out
    code, out = _cp("show", "CP9", "--db", db)
    assert code == 2 and "unknown charge point 'CP9'" in out
