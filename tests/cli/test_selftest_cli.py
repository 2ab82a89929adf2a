"""`chargerfw selftest`: with the service stopped (real simulated meter over Modbus TCP, the
test CSMS on loopback for the backend check) and with it running (a fake one on the control
socket); its pure checks; and the hardware lock across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from diag_support import (
    FakeService,
    PreparedBoard,
    active_fault,
    as_json,
    invoke,
    sim_meter_thread,
    status_result,
    write_station,
)

from chargerfw.cli import common
from chargerfw.cli.checks import CheckStatus, check_clock, check_disk, check_meter_sample
from chargerfw.control.api import ConnectorMeter, Method
from chargerfw.drivers.board import build_board
from chargerfw.drivers.types import MeterSample
from chargerfw.hwlock import HardwareBusy, HardwareLock, HardwareLockError, is_locked
from chargerfw.station.faults import FaultKind
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(60)


def checks_of(result) -> dict[str, dict]:
    return {c["name"]: c for c in as_json(result)["checks"]}


def test_selftest_all_pass_against_sim_meter_and_backend(tmp_path, runtime_dir, csms):
    with sim_meter_thread(power_w=3000, voltage_v=230.0) as (_, port):
        path = write_station(tmp_path, meter_port=port, ocpp_url=csms.url)
        Store(tmp_path / "state.db").close()
        result = invoke("selftest", "-c", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["passed"] is True
    checks = checks_of(result)
    assert [c["name"] for c in report["checks"]] == [
        "config", "input wiring", "ocpp keys", "service", "meter 1", "reader", "pins readable",
        "contactor 1 feedback", "backend reachable", "clock", "disk space"]
    assert checks["service"]["status"] == "skip"
    assert checks["input wiring"]["status"] == "skip"  # simulated hardware
    assert checks["meter 1"]["status"] == "pass" and "230/230/230 V" in checks["meter 1"]["detail"]
    assert "pilot 1 A" in checks["pins readable"]["detail"]
    assert "handshake" in checks["backend reachable"]["detail"]
    assert "against the backend" in checks["clock"]["detail"]  # the server's Date header
    assert csms.received == []  # the probe sends no CALL


def test_selftest_reports_each_failure_with_a_hint(tmp_path, runtime_dir, monkeypatch):
    monkeypatch.setattr(common, "open_board", PreparedBoard(
        lambda board: (board.connectors[1].sim.contactor.weld(), board.sim.rcm.trip())))
    path = write_station(tmp_path)  # no meter, no backend listening
    result = invoke("selftest", "-c", str(path))
    assert result.exit_code == 1
    out = result.stdout
    assert "FAIL  meter 1" in out and "Modbus TCP gateway" in out
    assert "FAIL  backend reachable" in out and "ConnectionRefused" in out
    assert "FAIL  fault inputs" in out and "rcm TRIPPED" in out
    assert "FAIL  contactor 1 feedback" in out and "welded" in out
    assert "PASS  disk space" in out and out.rstrip().endswith("selftest FAILED")


def test_selftest_names_a_normally_open_safety_input_on_a_pi(tmp_path, runtime_dir, monkeypatch):
    def pi_with_normally_open_inputs(document) -> None:
        document["hardware"] = "pi"
        document["emergency_stop"]["wiring"] = "normally_open"
        document["connector"][0]["contactor"]["feedback_wiring"] = "normally_open"

    # The Pi's inputs on simulated pins, wired as its config says.
    monkeypatch.setattr(common, "open_board", lambda config: build_board(
        msgspec.structs.replace(config, hardware="sim")))
    path = write_station(tmp_path, edit=pi_with_normally_open_inputs)
    result = invoke("selftest", "-c", str(path), "--json")
    assert result.exit_code == 1
    check = checks_of(result)["input wiring"]
    assert check["status"] == "fail"
    assert check["detail"].startswith("not fail-safe: ")
    assert ('emergency_stop: wiring = "normally_open": a cut wire or a floating pin reads as '
            "not tripped") in check["detail"]
    assert ('connector[1].contactor: feedback_wiring = "normally_open": a cut feedback wire '
            "reads as main contacts open") in check["detail"]
    assert "rcm" not in check["detail"]  # normally closed, the default
    assert "Wiring the inputs" in check["hint"]


def test_selftest_passes_a_fail_safe_pi(tmp_path, runtime_dir, monkeypatch):
    monkeypatch.setattr(common, "open_board", lambda config: build_board(
        msgspec.structs.replace(config, hardware="sim")))
    path = write_station(tmp_path, edit=lambda document: document.__setitem__("hardware", "pi"))
    check = checks_of(invoke("selftest", "-c", str(path), "--json"))["input wiring"]
    assert check["status"] == "pass"
    assert check["detail"] == ("rcm, emergency_stop, connector[1].contactor: normally closed, "
                               "a cut wire reads as a fault")


def test_selftest_names_a_pi_contactor_without_a_mirror_contact(tmp_path, runtime_dir, monkeypatch):
    def pi_without_feedback(document):
        document["hardware"] = "pi"
        del document["connector"][0]["contactor"]["feedback_pin"]

    monkeypatch.setattr(common, "open_board", lambda config: build_board(
        msgspec.structs.replace(config, hardware="sim")))
    path = write_station(tmp_path, edit=pi_without_feedback)
    check = checks_of(invoke("selftest", "-c", str(path), "--json"))["input wiring"]
    assert check["status"] == "pass"  # allowed: not every contactor has a mirror contact
    assert check["detail"] == ("rcm, emergency_stop: normally closed, a cut wire reads as a "
                               "fault; connector[1].contactor: no mirror contact (feedback_pin): "
                               "a welded contactor would go unseen")


def test_selftest_backend_refuses_credentials(tmp_path, runtime_dir, csms):
    path = write_station(tmp_path, ocpp_url=csms.url,
                         edit=lambda doc: doc["ocpp"].__setitem__("password", "wrong-secret"))
    checks = checks_of(invoke("selftest", "-c", str(path), "--json"))
    assert checks["backend reachable"]["status"] == "fail"
    assert "HTTP 401 (credentials refused)" in checks["backend reachable"]["detail"]


def test_selftest_with_an_invalid_config(tmp_path, runtime_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text('hardware = "sim"\n[station]\nid = "X"\n')
    result = invoke("selftest", "-c", str(bad), "--json")
    assert result.exit_code == 1
    checks = checks_of(result)
    assert checks["config"]["status"] == "fail" and "connector" in checks["config"]["detail"]


def test_clock_disk_and_meter_checks():
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert check_clock(now).status is CheckStatus.PASS
    assert check_clock(datetime(1970, 1, 1, tzinfo=UTC)).status is CheckStatus.FAIL
    assert check_clock(now, now - timedelta(seconds=30)).status is CheckStatus.PASS
    off = check_clock(now, now + timedelta(seconds=300))
    assert off.status is CheckStatus.FAIL and "-300 s" in off.detail and "NTP" in off.hint
    assert check_disk(__import__("pathlib").Path("/tmp/x/y.db")).status is CheckStatus.PASS
    assert check_disk(__import__("pathlib").Path("/tmp"), min_free_bytes=1 << 62).status \
        is CheckStatus.FAIL
    good = MeterSample(1.0, 1000.0, voltage_l1_v=231.0, frequency_hz=50.0)
    assert check_meter_sample(good).status is CheckStatus.PASS
    assert check_meter_sample(MeterSample(1.0, 1000.0, voltage_l1_v=290.0)).status \
        is CheckStatus.FAIL
    assert check_meter_sample(MeterSample(1.0, float("nan"))).status is CheckStatus.FAIL
    assert check_meter_sample(MeterSample(1.0, 5.0, frequency_hz=45.0)).status is CheckStatus.FAIL


def test_hardware_lock_across_processes(runtime_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom chargerfw.hwlock import HardwareLock\n"
         "lock = HardwareLock('chargerfw run'); lock.acquire()\n"
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "CHARGERFW_RUNTIME_DIR": str(runtime_dir)})
    try:
        assert holder.stdout.readline().strip() == "held"
        seen = is_locked(runtime_dir)
        assert seen is not None and seen.pid == holder.pid and seen.owner == "chargerfw run"
        with pytest.raises(HardwareBusy) as busy:
            HardwareLock("chargerfw test").acquire()
        assert f"pid {holder.pid}" in str(busy.value)
    finally:
        holder.stdin.close()  # the holder exits: the kernel drops its lock
        holder.wait(timeout=10)
    assert is_locked(runtime_dir) is None
    with HardwareLock("chargerfw test") as lock:
        assert lock.held and is_locked(runtime_dir).owner == "chargerfw test"
    assert is_locked(runtime_dir) is None


def test_hardware_lock_in_an_unusable_directory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CHARGERFW_RUNTIME_DIR", str(blocker / "run"))
    with pytest.raises(HardwareLockError, match="cannot open the hardware lock"):
        HardwareLock("x").acquire()


METER = ConnectorMeter(age_s=0.4, energy_import_wh=12345.0, power_w=7200.0,
                       voltage_v=[230.1, 229.8, 230.4], current_a=[10.4, 10.5, 10.4],
                       frequency_hz=50.01)


def test_selftest_with_the_service_running(tmp_path, runtime_dir, monkeypatch):
    station = str(write_station(tmp_path))
    Store(tmp_path / "state.db").close()

    def refuse(_config):
        raise AssertionError("the CLI touched the hardware while the service runs")
    monkeypatch.setattr(common, "open_board", refuse)
    socket = runtime_dir / "control.sock"
    with FakeService(socket, {Method.STATUS: lambda r: status_result(meter=METER)}):
        ok = invoke("selftest", "-c", station, "--json")
    assert ok.exit_code == 0, ok.output
    checks = checks_of(ok)
    assert checks["service"]["status"] == "pass"
    assert checks["meter 1"]["status"] == "pass" and "12.345 kWh" in checks["meter 1"]["detail"]
    assert checks["backend reachable"]["status"] == "pass"
    assert checks["clock"]["status"] == "pass" and "against the backend" in checks["clock"]["detail"]
    stale = msgspec.structs.replace(METER, age_s=120.0)
    with FakeService(socket, {Method.STATUS: lambda r: status_result(meter=stale)}):
        old = invoke("selftest", "-c", station, "--json")
    assert old.exit_code == 1
    assert "120 s old" in checks_of(old)["meter 1"]["detail"]
    welded = [active_fault(FaultKind.CONTACTOR_WELDED, 1)]
    with FakeService(socket, {Method.STATUS: lambda r: status_result(
            link_state="disconnected", faults=welded, meter=METER)}):
        bad = invoke("selftest", "-c", station)
    assert bad.exit_code == 1
    assert "FAIL  backend reachable" in bad.stdout
    assert "FAIL  contactor 1 feedback" in bad.stdout and "selftest FAILED" in bad.stdout
