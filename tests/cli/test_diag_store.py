"""Commands that read the store (status with the service down, faults, ocpp log, queue),
`faults clear`, `config show|get|set|validate` and `rfid` decisions; service not running."""

from __future__ import annotations

import json
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from diag_support import PreparedBoard, as_json, invoke, write_station

from chargerfw.cli import diag
from chargerfw.station.auth import IdTagInfo
from chargerfw.station.enums import AuthorizationStatus
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def station(tmp_path, runtime_dir) -> str:
    return str(write_station(tmp_path))


@pytest.fixture
def store(tmp_path, station):
    with Store(tmp_path / "state.db") as opened:
        yield opened


def test_status_with_the_service_down_says_so_and_shows_the_store(station, store):
    store.start_transaction(1, "04A1B2C3", 5000, time.time())
    store.fault_raise("contactor_welded", 1, True, "mirror closed")
    result = invoke("status", "-c", station)
    assert result.exit_code == 3
    assert "NOT RUNNING" in result.stdout
    assert "open transaction 1 on connector 1 idTag 04A1B2C3" in result.stdout
    assert "1 waiting, 0 dead" in result.stdout  # the StartTransaction
    assert "contactor_welded@1" in result.stdout
    report = as_json(invoke("status", "-c", station, "--json"))
    assert report["service"] == "stopped" and "control.sock" in report["reason"]
    assert report["store"]["outbox_pending"] == 1
    assert [t["id_tag"] for t in report["store"]["open_transactions"]] == ["04A1B2C3"]
    assert report["store"]["active_faults"][0]["code"] == "contactor_welded"


def test_status_names_the_lock_holder_when_the_socket_is_silent(station, runtime_dir):
    from chargerfw.hwlock import HardwareLock

    with HardwareLock("chargerfw run"):
        result = invoke("status", "-c", station)
    assert result.exit_code == 3
    assert "hardware lock is held by chargerfw run (pid" in result.stdout


def test_status_without_store_or_with_bad_config(station, tmp_path):
    result = invoke("status", "-c", station, "--json")
    assert result.exit_code == 3 and as_json(result)["store"] == {"available": False}
    assert not (tmp_path / "state.db").exists()  # reading never creates a store
    missing = invoke("status", "-c", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 2 and "cannot read file" in missing.stderr


def test_faults_history_and_active(station, store):
    store.fault_raise("rcd_trip", 0, False, "", at=1_700_000_000)
    store.fault_clear("rcd_trip", 0, at=1_700_000_060)
    store.fault_raise("contactor_welded", 1, True, "mirror closed", at=1_700_000_100)
    rows = as_json(invoke("faults", "-c", station, "--json"))
    assert [(r["code"], r["connector_id"], r["state"]) for r in rows] == [
        ("contactor_welded", 1, "active"), ("rcd_trip", 0, "cleared")]
    assert rows[1]["raised_at"] == "2023-11-14T22:13:20Z"
    assert rows[1]["cleared_at"] == "2023-11-14T22:14:20Z"
    human = invoke("faults", "-c", station)
    assert human.exit_code == 0
    assert "ACTIVE" in human.stdout and "technician" in human.stdout
    active = as_json(invoke("faults", "-c", station, "--active", "--json"))
    assert [r["code"] for r in active] == ["contactor_welded"]


def test_faults_clear_refuses_self_clearing_and_unknown(station, store):
    store.fault_raise("rcd_trip", 0, False)
    result = invoke("faults", "-c", station, "clear", "rcd_trip")
    assert result.exit_code == 1
    assert "clears by itself once its condition is gone" in result.stderr
    assert store.faults(active_only=True)[0].code == "rcd_trip"  # untouched
    absent = invoke("faults", "-c", station, "clear", "contactor_welded")
    assert absent.exit_code == 1 and "no active fault" in absent.stderr


def test_faults_clear_technician_fault_checks_the_hardware_first(station, store, monkeypatch):
    store.fault_raise("contactor_welded", 1, True, "mirror closed")
    monkeypatch.setattr(diag, "open_board",
                        PreparedBoard(lambda board: board.connectors[1].sim.contactor.weld()))
    still = invoke("faults", "-c", station, "clear", "contactor_welded")
    assert still.exit_code == 1 and "still welded" in still.stderr
    assert store.faults(active_only=True)  # not cleared
    monkeypatch.setattr(diag, "open_board", PreparedBoard())
    cleared = invoke("faults", "-c", station, "clear", "contactor_welded", "--json")
    assert cleared.exit_code == 0, cleared.output
    assert as_json(cleared) == {"cleared": "contactor_welded", "connector_id": 1, "via": "store"}
    assert store.faults(active_only=True) == []


def test_ocpp_log_is_redacted(station, store):
    store.frame_log_add("out", '[2,"1","BootNotification",{"chargePointVendor":"x"}]', at=1.0)
    # A frame stored unredacted (older firmware) is redacted on the way out.
    store.frame_log_add("in", '[2,"7","ChangeConfiguration",{"key":"AuthorizationKey",'
                              '"value":"0123456789abcdef0123"}]', at=2.0)
    rows = as_json(invoke("ocpp", "log", "-c", station, "--json"))
    assert [r["direction"] for r in rows] == ["out", "in"]
    assert "0123456789abcdef" not in json.dumps(rows)
    assert json.loads(rows[1]["frame"])[3] == {"key": "AuthorizationKey", "value": "***"}
    human = invoke("ocpp", "log", "-c", station, "--direction", "in")
    assert human.exit_code == 0
    assert "<- " in human.stdout and "BootNotification" not in human.stdout


def test_queue_shows_pending_and_dead(station, store):
    tx = store.start_transaction(1, "04A1B2C3", 1000, time.time())
    store.stop_transaction(tx.local_id, 2000, time.time(), "Local")
    start = store.outbox_head()
    store.outbox_failed(start.seq, "FormationViolation", max_attempts=1, retry_interval_s=1)
    rows = as_json(invoke("queue", "-c", station, "--json"))
    assert [(r["action"], r["state"]) for r in rows] == [
        ("StartTransaction", "dead"), ("StopTransaction", "dead")]
    human = invoke("queue", "-c", station)
    assert "0 pending, 2 dead" in human.stdout and "FormationViolation" in human.stdout


def test_store_commands_without_a_store(station):
    for args in (["faults"], ["ocpp", "log"], ["queue"]):
        result = invoke(*args, "-c", station)
        assert result.exit_code == 3 and "no store" in result.stderr


def test_config_show_redacts_and_lists_ocpp_keys(station, store):
    store.config_set("HeartbeatInterval", "120")
    store.config_set("AuthorizationKey", "0123456789abcdef")
    human = invoke("config", "show", "-c", station)
    assert human.exit_code == 0
    assert "sim-secret" not in human.stdout and 'password = "***"' in human.stdout
    assert "0123456789abcdef" not in human.stdout
    assert "HeartbeatInterval" in human.stdout and "120  [store]" in human.stdout
    report = as_json(invoke("config", "show", "-c", station, "--json"))
    assert report["station"]["ocpp"]["password"] == "***"
    keys = {row["key"]: row for row in report["ocpp_keys"]}
    assert keys["HeartbeatInterval"] == {"key": "HeartbeatInterval", "value": "120",
                                         "readonly": False, "source": "store"}
    assert keys["AuthorizationKey"]["value"] == "***"
    assert keys["NumberOfConnectors"]["readonly"] is True


def test_config_get(station, store):
    assert invoke("config", "get", "HeartbeatInterval", "-c", station).stdout == "300\n"
    assert invoke("config", "get", "ocpp.password", "-c", station).stdout == "***\n"
    got = as_json(invoke("config", "get", "connector[1].meter.model", "-c", station, "--json"))
    assert got == {"key": "connector[1].meter.model", "value": "eastron-sdm630-v2",
                   "kind": "station"}
    assert invoke("config", "get", "AuthorizationKey", "-c", station).exit_code == 1
    unknown = invoke("config", "get", "nosuch.key", "-c", station)
    assert unknown.exit_code == 2 and "no key" in unknown.stderr


def test_config_set_ocpp_key_validates(station, store):
    ok = invoke("config", "set", "HeartbeatInterval", "60", "-c", station, "--json")
    assert ok.exit_code == 0, ok.output
    assert as_json(ok) == {"key": "HeartbeatInterval", "kind": "ocpp", "status": "Accepted",
                           "via": "store"}
    assert store.config_get("HeartbeatInterval") == "60"
    bad = invoke("config", "set", "HeartbeatInterval", "soon", "-c", station)
    assert bad.exit_code == 1 and "expected an integer" in bad.stderr
    readonly = invoke("config", "set", "NumberOfConnectors", "2", "-c", station)
    assert readonly.exit_code == 1 and "read-only" in readonly.stderr
    assert store.config_get("HeartbeatInterval") == "60"


def test_config_set_station_file_keeps_backup_and_refuses_invalid(station):
    path = Path(station)
    before = path.read_text()
    ok = invoke("config", "set", "connector[1].max_current_a", "16", "-c", station)
    assert ok.exit_code == 0, ok.output
    assert Path(station + ".bak").read_text() == before
    after = path.read_text()
    assert tomllib.loads(after)["connector"][0]["max_current_a"] == 16
    assert "# A whole station on simulated hardware" in after  # comments kept
    bad = invoke("config", "set", "connector[1].max_current_a", "99", "-c", station)
    assert bad.exit_code == 1 and "less than or equal to 80" in bad.stderr
    assert path.read_text() == after  # nothing written
    typo = invoke("config", "set", "ocpp.url", "http://nope", "-c", station)
    assert typo.exit_code == 1 and "ws://" in typo.stderr
    wrong_type = invoke("config", "set", "connector[1].phases", "three", "-c", station)
    assert wrong_type.exit_code == 2 and "integer" in wrong_type.stderr
    assert path.read_text() == after


def test_config_validate(station, store, tmp_path):
    assert invoke("config", "validate", "-c", station).exit_code == 0
    store.config_set("HeartbeatInterval", "-5")  # written behind the validation's back
    bad_key = invoke("config", "validate", "-c", station, "--json")
    assert bad_key.exit_code == 1 and not as_json(bad_key)["valid"]
    broken = tmp_path / "broken.toml"
    broken.write_text('[station]\nid = "x"\nhardware = "mars"\n')
    result = invoke("config", "validate", "-c", str(broken), "--json")
    assert result.exit_code == 2
    assert any("connector" in p for p in as_json(result)["problems"])


def test_rfid_decision_from_local_list_and_cache(station, store):
    future = datetime.now(UTC) + timedelta(days=30)
    store.local_list_apply(1, {"AABBCCDD": IdTagInfo(AuthorizationStatus.ACCEPTED, future,
                                                     "FLEET")}, full=True)
    store.cache_put("BLOCKED1", IdTagInfo(AuthorizationStatus.BLOCKED))
    listed = as_json(invoke("rfid", "-c", station, "--id-tag", "AABBCCDD", "--json"))
    assert listed["offline_decision"] == {"accepted": True, "status": "Accepted",
                                          "source": "local_list"}
    assert listed["local_list"]["parentIdTag"] == "FLEET"
    blocked = as_json(invoke("rfid", "-c", station, "--id-tag", "BLOCKED1", "--json"))
    assert blocked["offline_decision"]["accepted"] is False
    assert blocked["offline_decision"]["source"] == "cache"
    unknown = as_json(invoke("rfid", "-c", station, "--id-tag", "12345678", "--json"))
    assert unknown["offline_decision"]["source"] == "none"
    store.config_set("AllowOfflineTxForUnknownId", "true")
    allowed = invoke("rfid", "-c", station, "--id-tag", "12345678")
    assert allowed.exit_code == 0
    assert "ACCEPTED (Accepted, decided by offline_unknown)" in allowed.stdout


def test_rfid_waits_for_a_tap_on_the_reader(station, monkeypatch):
    from chargerfw.cli import rfid
    from chargerfw.drivers.readers.simulated import SimulatedReader

    class TappedReader(SimulatedReader):
        async def start(self, *, require_reader: bool = False) -> None:
            await super().start(require_reader=require_reader)
            import asyncio

            asyncio.get_running_loop().call_later(0.05, self.present, "04A1B2C3D4E5F6")

    plain = rfid.open_reader
    monkeypatch.setattr(rfid, "open_reader", lambda section, simulated=False: TappedReader())
    result = invoke("rfid", "-c", station, "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert "UID        04:A1:B2:C3:D4:E5:F6  (7 bytes" in result.stdout
    assert "idTag      04A1B2C3D4E5F6" in result.stdout
    assert "offline    REFUSED" in result.stdout
    monkeypatch.setattr(rfid, "open_reader", plain)
    timeout = invoke("rfid", "-c", station, "--timeout", "0.2")  # plain sim reader: no tap
    assert timeout.exit_code == 1
