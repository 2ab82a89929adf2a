"""The service path: commands talk to a service on the control socket (the runtime's own
ControlServer with test handlers), refuse from its status, and report its refusals."""

from __future__ import annotations

import pytest
from diag_support import (
    FakeService,
    as_json,
    invoke,
    status_result,
    write_station,
)

from chargerfw.cli import diag
from chargerfw.runtime.control import Refused
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(30)

METER = {"age_s": 0.4, "energy_import_wh": 12345.0, "power_w": 7200.0,
         "voltage_v": [230.1, 229.8, 230.4], "current_a": [10.4, 10.5, 10.4],
         "frequency_hz": 50.01}
TRANSACTION = {"local_id": 3, "transaction_id": 1001, "id_tag": "04A1B2C3",
               "started_at": 1_700_000_000.0, "meter_start_wh": 10000, "energy_wh": 2345.0}


@pytest.fixture
def station(tmp_path, runtime_dir) -> str:
    return str(write_station(tmp_path))


@pytest.fixture
def no_hardware(monkeypatch):
    """With the service running, nothing may build the board in the CLI process."""
    def refuse(_config):
        raise AssertionError("the CLI touched the hardware while the service runs")
    monkeypatch.setattr(diag, "open_board", refuse)


def checks_of(result) -> dict[str, dict]:
    return {c["name"]: c for c in as_json(result)["checks"]}


def service(runtime_dir, **handlers) -> FakeService:
    return FakeService(runtime_dir / "control.sock", handlers)


def test_status_from_the_service(station, runtime_dir):
    status = status_result(pilot="C", transaction=TRANSACTION, meter=METER,
                           faults=[{"kind": "meter_failure", "connector": 1, "clears":
                                    "condition_gone"}])
    with service(runtime_dir, status=lambda: status):
        human = invoke("status", "-c", station)
        report = invoke("status", "-c", station, "--json")
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert lines[0].startswith("station    SIM-CP-1  firmware 0.1.0")
    assert any(line.startswith("backend    connected") and "boot Accepted" in line
               and "ping 2 ms" in line for line in lines)
    assert "outbox     2 waiting, 0 dead" in lines
    assert any(line.startswith("connector 1  Charging  pilot C") and "contactor closed" in line
               for line in lines)
    assert any("transaction 1001  idTag 04A1B2C3" in line and "2.345 kWh" in line
               for line in lines)
    assert any("12.345 kWh  7200 W  230/230/230 V  10.4/10.5/10.4 A  50.01 Hz" in line
               for line in lines)
    assert "faults     meter_failure@1 (self-clearing)" in lines
    assert as_json(report) == {"service": "running", "status": status}


def test_contactor_test_refused_from_the_service_status(station, runtime_dir, no_hardware):
    def test_contactor(connector: int) -> dict:
        raise AssertionError("must not be called")

    with service(runtime_dir, status=lambda: status_result(pilot="B"),
                 **{"test.contactor": test_contactor}) as fake:
        plugged = invoke("test", "contactor", "-c", station, "--yes")
    assert plugged.exit_code == 1 and "vehicle is connected" in plugged.stderr
    assert fake.methods() == ["status"]
    with service(runtime_dir, status=lambda: status_result(pilot="C", transaction=TRANSACTION),
                 **{"test.contactor": test_contactor}):
        charging = invoke("test", "contactor", "-c", station, "--yes", "--json")
    assert charging.exit_code == 1
    assert "transaction runs" in as_json(charging)["refused"]


def test_contactor_test_through_the_service(station, runtime_dir, no_hardware):
    answer = {"passed": False, "result": "welded", "steps": [
        {"step": "close", "commanded": "closed", "feedback": "ok"},
        {"step": "open", "commanded": "open", "feedback": "welded"}]}
    with service(runtime_dir, status=lambda: status_result(pilot="A"),
                 **{"test.contactor": lambda connector: answer}) as fake:
        declined = invoke("test", "contactor", "-c", station, input="n\n")
        result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    assert declined.exit_code == 1 and "not confirmed" in declined.stderr
    assert fake.methods().count("test.contactor") == 1
    assert ("test.contactor", {"connector": 1}) in fake.calls
    assert result.exit_code == 1
    assert as_json(result) == {**answer, "via": "service"}


def test_service_refusal_and_missing_method(station, runtime_dir, no_hardware):
    def busy() -> dict:
        raise Refused("a safety test is already running")

    with service(runtime_dir, status=lambda: status_result(), **{"test.rcd": busy}):
        refused = invoke("test", "rcd", "-c", station)
        missing = invoke("test", "lock", "-c", station)
    assert refused.exit_code == 1 and "already running" in refused.stderr
    assert missing.exit_code == 3 and "does not offer test.lock" in missing.stderr


def test_pilot_and_lock_through_the_service(station, runtime_dir, no_hardware):
    pilot = {"passed": True, "vehicle": False, "steps": [
        {"output": "standby", "current_a": None, "duty_percent": 100.0, "state": "A",
         "high_v": 12.0, "low_v": 12.0, "expected": ["A"], "ok": True}]}
    lock = {"passed": True, "feedback": True, "steps": [{"command": "lock", "result": "locked"},
                                                        {"command": "unlock",
                                                         "result": "unlocked"}]}
    with service(runtime_dir, status=lambda: status_result(),
                 **{"test.pilot": lambda connector: pilot, "test.lock": lambda connector: lock}):
        pilot_out = invoke("test", "pilot", "-c", station)
        lock_out = invoke("test", "lock", "-c", station, "--json")
    assert pilot_out.exit_code == 0 and "read A" in pilot_out.stdout
    assert lock_out.exit_code == 0 and as_json(lock_out)["via"] == "service"


def test_faults_clear_through_the_service(station, runtime_dir, tmp_path):
    with Store(tmp_path / "state.db") as store:
        store.fault_raise("rcd_trip_repeated", 0, True)
        store.fault_raise("contactor_welded", 1, True)
    cleared = []

    def clear(kind: str, connector: int | None = None) -> dict:
        if kind == "contactor_welded":
            raise Refused("contactor_welded cannot be cleared: its condition is still present")
        cleared.append((kind, connector))
        return {"cleared": kind, "connector": connector}

    with service(runtime_dir, **{"fault.clear": clear}):
        station_wide = invoke("faults", "-c", station, "clear", "rcd_trip_repeated", "--json")
        welded = invoke("faults", "-c", station, "clear", "contactor_welded")
    assert station_wide.exit_code == 0, station_wide.output
    assert as_json(station_wide)["via"] == "service"
    assert cleared == [("rcd_trip_repeated", None)]  # station-wide: connector None
    assert welded.exit_code == 1 and "condition is still present" in welded.stderr


def test_meter_live_view_through_the_service(station, runtime_dir):
    sample = {"timestamp": 1_700_000_000.0, "energy_import_wh": 5000.0, "power_w": 3680.0,
              "voltage_l1_v": 230.0, "current_l1_a": 16.0, "frequency_hz": 50.0}
    with service(runtime_dir, **{"meter.sample": lambda connector: sample}) as fake:
        once = invoke("meter", "-c", station, "--once", "--json")
        two = invoke("meter", "-c", station, "--count", "2", "--interval", "0.2")
    assert once.exit_code == 0, once.output
    assert as_json(once) == {"connector": 1, "source": "service", "sample": {
        **{k: None for k in ("energy_export_wh", "power_l1_w", "power_l2_w", "power_l3_w",
                             "voltage_l2_v", "voltage_l3_v", "current_l2_a", "current_l3_a")},
        **sample}}
    assert two.stdout.count("energy import  5.000 kWh") == 2
    assert fake.methods() == ["meter.sample"] * 3
    # A service without meter.sample: the values of its status.
    with service(runtime_dir, status=lambda: status_result(meter=METER)):
        fallback = invoke("meter", "-c", station, "--once")
    assert fallback.exit_code == 0
    assert "energy import  12.345 kWh" in fallback.stdout
    assert "voltage        L1 230.1 V  L2 229.8 V  L3 230.4 V" in fallback.stdout


def test_config_set_through_the_service(station, runtime_dir, tmp_path):
    Store(tmp_path / "state.db").close()
    with service(runtime_dir, **{"config.set": lambda key, value: {"status": "Rejected",
                                                                  "reason": "not now"}}):
        refused = invoke("config", "set", "HeartbeatInterval", "60", "-c", station)
    assert refused.exit_code == 1 and "not now" in refused.stderr
    with service(runtime_dir, status=lambda: status_result()):  # no config.set: the store
        stored = invoke("config", "set", "HeartbeatInterval", "60", "-c", station, "--json")
    assert as_json(stored)["via"] == "store"
    with Store(tmp_path / "state.db") as store:
        assert store.config_get("HeartbeatInterval") == "60"


def test_rfid_through_the_service(station, runtime_dir):
    with service(runtime_dir, **{"rfid.next": lambda wait_s: {
            "uid": "04A1B2C3", "id_tag": "04A1B2C3", "reader": "sim"}}):
        result = invoke("rfid", "-c", station, "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["id_tag"] == "04A1B2C3" and report["reader"] == "sim"
    with service(runtime_dir, status=lambda: status_result()):
        missing = invoke("rfid", "-c", station)
    assert missing.exit_code == 3 and "rfid.next" in missing.stderr


def test_selftest_with_the_service_running(station, runtime_dir, tmp_path, no_hardware):
    Store(tmp_path / "state.db").close()
    with service(runtime_dir, status=lambda: status_result(meter=METER)):
        ok = invoke("selftest", "-c", station, "--json")
    assert ok.exit_code == 0, ok.output
    checks = checks_of(ok)
    assert checks["service"]["status"] == "pass"
    assert checks["meter 1"]["status"] == "pass" and "12.345 kWh" in checks["meter 1"]["detail"]
    assert checks["backend reachable"]["status"] == "pass"
    assert checks["clock"]["status"] == "pass" and "against the backend" in checks["clock"]["detail"]
    stale = {**METER, "age_s": 120.0}
    with service(runtime_dir, status=lambda: status_result(meter=stale)):
        old = invoke("selftest", "-c", station, "--json")
    assert old.exit_code == 1
    assert "120 s old" in checks_of(old)["meter 1"]["detail"]
    welded = [{"kind": "contactor_welded", "connector": 1, "clears": "technician"}]
    with service(runtime_dir, status=lambda: status_result(link_state="disconnected",
                                                           faults=welded, meter=METER)):
        bad = invoke("selftest", "-c", station)
    assert bad.exit_code == 1
    assert "FAIL  backend reachable" in bad.stdout
    assert "FAIL  contactor 1 feedback" in bad.stdout and "selftest FAILED" in bad.stdout
