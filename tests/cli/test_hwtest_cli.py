"""`chargerfw test contactor|rcd|pilot|lock`: on the direct-hardware path (service stopped:
the simulated board under the hardware lock) and through the running service (a fake one on
the control socket): the guarded refusals, exit codes, --json."""

from __future__ import annotations

import threading
import time

import pytest
from diag_support import (
    FakeService,
    PreparedBoard,
    as_json,
    invoke,
    status_result,
    write_station,
)

from chargerfw.cli import common
from chargerfw.config import load_config
from chargerfw.control.api import (
    ContactorStep,
    ContactorTestReply,
    ContactorTestRequest,
    ContactorVerdict,
    LockStep,
    LockTestReply,
    Method,
    PilotStep,
    PilotTestReply,
    Refused,
    TransactionStatus,
    encode_reply,
)
from chargerfw.drivers.board import build_board
from chargerfw.drivers.contactor import ContactorFeedback
from chargerfw.drivers.lock import LockResult
from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.hwlock import HardwareLock, is_locked
from chargerfw.safety.process import (
    LatchedFaults,
    SafetyProcess,
    default_socket_path,
    latched_faults_path,
)
from chargerfw.station.enums import STATION
from chargerfw.station.faults import Fault, FaultKind
from chargerfw.station.safety import SafetySettings
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def station(tmp_path, runtime_dir):
    return str(write_station(tmp_path))


def prepare(monkeypatch, action=None) -> PreparedBoard:
    prepared = PreparedBoard(action)
    monkeypatch.setattr(common, "open_board", prepared)
    return prepared


def test_contactor_test_closes_checks_and_opens(station, monkeypatch, runtime_dir):
    prepared = prepare(monkeypatch)
    result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["passed"] is True and report["result"] == "ok" and report["via"] == "direct"
    assert [(s["step"], s["commanded"], s["feedback"]) for s in report["steps"]] == [
        ("before", "open", "ok"), ("close", "closed", "ok"), ("open", "open", "ok")]
    sim = prepared.boards[0].connectors[1].sim
    assert not sim.contactor.is_closed  # left open
    assert is_locked(runtime_dir) is None  # the lock went with the command


def test_contactor_welded_is_reported_and_fails(station, monkeypatch):
    def weld_on_close(board):
        mirror = board.connectors[1].sim.contactor
        original = board.connectors[1].contactor.close

        def close_and_weld():
            original()
            mirror.weld()
        board.connectors[1].contactor.close = close_and_weld

    prepare(monkeypatch, weld_on_close)
    result = invoke("test", "contactor", "-c", station, "--yes")
    assert result.exit_code == 1
    assert "WELDED" in result.stdout and "FAILED" in result.stdout


def test_contactor_already_welded_is_not_closed(station, monkeypatch):
    closes = []

    def welded(board):
        board.connectors[1].sim.contactor.weld()
        board.connectors[1].contactor.close = lambda: closes.append("close")

    prepare(monkeypatch, welded)
    result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    assert result.exit_code == 1
    report = as_json(result)
    assert report["result"] == "welded" and len(report["steps"]) == 1
    assert closes == []  # a welded contactor is not energised for the test


def test_contactor_failed_to_close_is_reported(station, monkeypatch):
    prepare(monkeypatch, lambda board: board.connectors[1].sim.contactor.fail_to_close())
    result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    assert result.exit_code == 1
    report = as_json(result)
    assert report["result"] == "failed_to_close" and report["passed"] is False, result.output
    assert report["steps"][1]["feedback"] == "failed_to_close"


def test_contactor_refused_while_a_vehicle_is_connected(station, monkeypatch):
    prepared = prepare(monkeypatch, lambda board: board.connectors[1].sim.vehicle.plug_in())
    result = invoke("test", "contactor", "-c", station, "--yes")
    assert result.exit_code == 1
    assert "refused" in result.stderr
    assert "vehicle is connected to connector 1 (pilot B)" in result.stderr
    closes = [b.connectors[1].contactor.commanded_closed for b in prepared.boards]
    assert closes == [False]


def test_contactor_refused_while_a_transaction_is_open(station, monkeypatch, tmp_path):
    prepared = prepare(monkeypatch)
    with Store(tmp_path / "state.db") as store:
        store.start_transaction(1, "04A1B2C3", 1000, time.time())
    result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    assert result.exit_code == 1
    assert "transaction 1" in as_json(result)["refused"]
    assert prepared.boards == []  # refused before touching the hardware


def test_contactor_asks_and_refuses_without_confirmation(station, monkeypatch):
    prepared = prepare(monkeypatch)
    declined = invoke("test", "contactor", "-c", station, input="n\n")
    assert declined.exit_code == 1
    assert "not confirmed" in declined.stderr
    assert not prepared.boards[0].connectors[1].sim.contactor.is_closed
    no_terminal = invoke("test", "contactor", "-c", station)  # no input at all
    assert no_terminal.exit_code == 1 and "not confirmed" in no_terminal.stderr
    accepted = invoke("test", "contactor", "-c", station, input="y\n")
    assert accepted.exit_code == 0 and "PASSED" in accepted.stdout


def test_contactor_without_feedback_pin_is_a_usage_error(tmp_path, runtime_dir):
    def no_feedback(document):
        del document["connector"][0]["contactor"]["feedback_pin"]
    path = write_station(tmp_path, edit=no_feedback)
    result = invoke("test", "contactor", "-c", str(path), "--yes")
    assert result.exit_code == 2 and "feedback_pin" in result.stderr


def test_hardware_held_by_another_process_is_refused_with_its_pid(station, runtime_dir):
    import os

    with HardwareLock("chargerfw run"):
        result = invoke("test", "lock", "-c", station)
    assert result.exit_code == 1
    assert f"chargerfw run (pid {os.getpid()})" in result.stderr


def test_rcd_test_sees_the_trip(station, monkeypatch):
    prepare(monkeypatch)
    result = invoke("test", "rcd", "-c", station, "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["tripped"] and report["cleared"] and report["passed"]


def test_rcd_test_fails_when_the_trip_is_not_seen(station, monkeypatch):
    prepare(monkeypatch, lambda board: board.sim.rcm.break_self_test())
    result = invoke("test", "rcd", "-c", station)
    assert result.exit_code == 1
    assert "trip NOT seen" in result.stdout and "FAILED" in result.stdout


def test_rcd_test_refused_when_already_tripped(station, monkeypatch):
    prepare(monkeypatch, lambda board: board.sim.rcm.trip())
    result = invoke("test", "rcd", "-c", station)
    assert result.exit_code == 1 and "rcd_trip active" in result.stderr


def test_rcd_without_test_pin_is_a_usage_error(tmp_path, runtime_dir):
    def no_test_pin(document):
        del document["rcm"]["test_pin"]
    result = invoke("test", "rcd", "-c", str(write_station(tmp_path, edit=no_test_pin)))
    assert result.exit_code == 2 and "test_pin" in result.stderr


def test_pilot_test_without_vehicle(station, monkeypatch):
    prepare(monkeypatch)
    result = invoke("test", "pilot", "-c", station, "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["vehicle"] is False
    assert [(s["output"], s["current_a"], s["state"]) for s in report["steps"]] == [
        ("standby", None, "A"), ("pwm", 6.0, "A"), ("pwm", 16.0, "A"), ("pwm", 32.0, "A"),
        ("state_f", None, "F")]
    assert report["steps"][2]["duty_percent"] == pytest.approx(26.7, abs=0.1)
    assert report["steps"][1]["low_v"] == pytest.approx(-12, abs=0.5)


def test_pilot_test_with_a_vehicle_and_a_missing_diode(station, monkeypatch):
    prepare(monkeypatch, lambda board: board.connectors[1].sim.vehicle.plug_in())
    ok = invoke("test", "pilot", "-c", station, "--json")
    assert ok.exit_code == 0, ok.output
    states = [s["state"] for s in as_json(ok)["steps"]]
    assert states[0] == "B" and set(states[1:4]) == {"B"} and states[4] == "F"

    def no_diode(board):
        board.connectors[1].sim.vehicle.plug_in()
        board.connectors[1].sim.vehicle.remove_diode()
    prepare(monkeypatch, no_diode)
    bad = invoke("test", "pilot", "-c", station)
    assert bad.exit_code == 1
    assert "diode_fault" in bad.stdout and "EXPECTED" in bad.stdout


def test_lock_test_and_a_jammed_lock(station, monkeypatch):
    prepare(monkeypatch)
    ok = invoke("test", "lock", "-c", station, "--json")
    assert ok.exit_code == 0
    assert as_json(ok)["steps"] == [{"command": "lock", "result": "locked"},
                                    {"command": "unlock", "result": "unlocked"}]
    prepare(monkeypatch, lambda board: board.connectors[1].sim.lock.jam())
    jammed = invoke("test", "lock", "-c", station)
    assert jammed.exit_code == 1 and "lock -> failed" in jammed.stdout


def test_lock_without_lock_configured(tmp_path, runtime_dir):
    def no_lock(document):
        del document["connector"][0]["lock"]
    result = invoke("test", "lock", "-c", str(write_station(tmp_path, edit=no_lock)))
    assert result.exit_code == 2 and "nothing to test" in result.stderr


def test_bad_connector_and_bad_config(station, tmp_path):
    assert invoke("test", "pilot", "-c", station, "--connector", "2").exit_code == 2
    broken = tmp_path / "broken.toml"
    broken.write_text("[station]\n")
    result = invoke("test", "pilot", "-c", str(broken))
    assert result.exit_code == 2 and "station.id" in result.stderr


# -- through the running service ----------------------------------------------------------------
TRANSACTION = TransactionStatus(local_id=3, transaction_id=1001, id_tag="04A1B2C3",
                                started_at=1_700_000_000.0, meter_start_wh=10000,
                                energy_wh=2345.0)


@pytest.fixture
def no_hardware(monkeypatch):
    """With the service running, nothing may build the board in the CLI process."""
    def refuse(_config):
        raise AssertionError("the CLI touched the hardware while the service runs")
    monkeypatch.setattr(common, "open_board", refuse)


def service(runtime_dir, handlers) -> FakeService:
    return FakeService(runtime_dir / "control.sock", handlers)


def test_contactor_test_refused_from_the_service_status(station, runtime_dir, no_hardware):
    def test_contactor(request: ContactorTestRequest) -> ContactorTestReply:
        raise AssertionError("must not be called")

    with service(runtime_dir, {Method.STATUS: lambda r: status_result(pilot="B"),
                               Method.TEST_CONTACTOR: test_contactor}) as fake:
        plugged = invoke("test", "contactor", "-c", station, "--yes")
    assert plugged.exit_code == 1 and "vehicle is connected" in plugged.stderr
    assert fake.methods() == [Method.STATUS]
    charging = status_result(pilot="C", transaction=TRANSACTION)
    with service(runtime_dir, {Method.STATUS: lambda r: charging,
                               Method.TEST_CONTACTOR: test_contactor}):
        refused = invoke("test", "contactor", "-c", station, "--yes", "--json")
    assert refused.exit_code == 1
    assert "transaction runs" in as_json(refused)["refused"]


def test_contactor_test_through_the_service(station, runtime_dir, no_hardware):
    answer = ContactorTestReply(passed=False, result=ContactorVerdict.WELDED, steps=[
        ContactorStep("close", "closed", ContactorFeedback.OK),
        ContactorStep("open", "open", ContactorFeedback.WELDED)], connector=1)
    with service(runtime_dir, {Method.STATUS: lambda r: status_result(pilot="A"),
                               Method.TEST_CONTACTOR: lambda r: answer}) as fake:
        declined = invoke("test", "contactor", "-c", station, input="n\n")
        result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    assert declined.exit_code == 1 and "not confirmed" in declined.stderr
    assert fake.methods().count(Method.TEST_CONTACTOR) == 1
    assert (Method.TEST_CONTACTOR, ContactorTestRequest(connector=1)) in fake.calls
    assert result.exit_code == 1
    assert as_json(result) == {**encode_reply(ContactorTestRequest, answer), "via": "service"}


def test_service_refusal_and_missing_method(station, runtime_dir, no_hardware):
    def busy(request: object) -> object:
        raise Refused("a safety test is already running")

    with service(runtime_dir, {Method.STATUS: lambda r: status_result(),
                               Method.TEST_RCD: busy}):
        refused = invoke("test", "rcd", "-c", station)
        missing = invoke("test", "lock", "-c", station)
    assert refused.exit_code == 1 and "already running" in refused.stderr
    assert missing.exit_code == 3 and "does not offer test.lock" in missing.stderr


def test_pilot_and_lock_through_the_service(station, runtime_dir, no_hardware):
    pilot = PilotTestReply(passed=True, vehicle=False, connector=1, steps=[
        PilotStep(PilotMode.STANDBY, None, 100.0, PilotState.A, 12.0, 12.0, [PilotState.A],
                  True)])
    lock = LockTestReply(passed=True, feedback=True, connector=1, steps=[
        LockStep("lock", LockResult.LOCKED), LockStep("unlock", LockResult.UNLOCKED)])
    with service(runtime_dir, {Method.STATUS: lambda r: status_result(),
                               Method.TEST_PILOT: lambda r: pilot,
                               Method.TEST_LOCK: lambda r: lock}):
        pilot_out = invoke("test", "pilot", "-c", station)
        lock_out = invoke("test", "lock", "-c", station, "--json")
    assert pilot_out.exit_code == 0 and "read A" in pilot_out.stdout
    assert lock_out.exit_code == 0 and as_json(lock_out)["via"] == "service"


# -- the safety core's rules on the direct path ----------------------------------------------------


def coil_writes(board) -> list[bool]:
    """Every level the coil of connector 1 is written to, in order."""
    mirror = board.connectors[1].sim.contactor
    seen: list[bool] = []
    mirror.coil.on_output_change(lambda _pin: seen.append(mirror.energised))
    return seen


def latch(station: str, kind: FaultKind, connector: int = STATION) -> None:
    """A fault latched by the safety process, kept in its file, as a stopped station leaves it."""
    config = load_config(station)
    LatchedFaults(latched_faults_path(config)).save([Fault(kind, connector, "latched earlier")])


def test_a_latched_fault_refuses_the_contactor_test_with_everything_stopped(station, monkeypatch):
    latch(station, FaultKind.RCD_TRIP_REPEATED)
    seen = []

    def watch(board):
        seen.append(coil_writes(board))

    prepare(monkeypatch, watch)
    result = invoke("test", "contactor", "-c", station, "--yes")
    assert result.exit_code == 1
    assert ("refused: connector 1: fault(s) rcd_trip_repeated active: remove the cause"
            in result.stderr)
    assert True not in seen[0]  # the coil was never energised


def test_a_latched_fault_refuses_the_contactor_test_through_the_safety_process(
        station, monkeypatch, tmp_path):
    """The station process is down; the safety process runs and is the one asked."""
    config = load_config(station)
    latch(station, FaultKind.RCD_TRIP_REPEATED)
    board = build_board(config)
    writes = coil_writes(board)
    process = SafetyProcess(config, board, default_socket_path(), latched_faults_path(config),
                            settings=SafetySettings(poll_interval_s=0.02), heartbeat_bound_s=0.2)
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    prepared = prepare(monkeypatch)
    try:
        deadline = time.monotonic() + 10
        while not default_socket_path().exists():
            assert time.monotonic() < deadline, "the safety process did not listen"
            time.sleep(0.01)
        result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    finally:
        process.stop()
        thread.join(5)
        board.close()
    assert result.exit_code == 1
    assert "fault(s) rcd_trip_repeated active" in as_json(result)["refused"]
    assert prepared.boards == []  # the CLI never opened the hardware itself
    assert True not in writes


def test_a_fault_during_the_contactor_test_ends_it_at_once(station, monkeypatch):
    """An emergency stop pressed while the coil is energised: the monitor opens the coil and
    the test stops waiting for the (slow) mirror contact."""
    timers: list[threading.Timer] = []

    def slow_mirror_then_estop(board):
        mirror = board.connectors[1].sim.contactor
        mirror.fail_to_close()  # the mirror stays open: the test would wait feedback_timeout_s

        def on_coil(_pin):
            if mirror.energised and not timers:
                timers.append(threading.Timer(0.02, board.sim.emergency_stop.press))
                timers[0].start()

        mirror.coil.on_output_change(on_coil)

    prepared = prepare(monkeypatch, slow_mirror_then_estop)
    started = time.monotonic()
    result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    report = as_json(result)
    assert report["interrupted_by"] == "fault emergency_stop"
    assert report["passed"] is False and "emergency_stop" in report["faults_raised"]
    assert not prepared.boards[0].connectors[1].sim.contactor.energised
    feedback_timeout = load_config(station).connector_by_id(1).contactor.feedback_timeout_s
    assert elapsed < feedback_timeout  # it did not wait for the mirror


def test_the_text_report_says_what_ended_the_test(station, monkeypatch):
    def estop_on_close(board):
        mirror = board.connectors[1].sim.contactor
        mirror.fail_to_close()
        mirror.coil.on_output_change(
            lambda _pin: mirror.energised and threading.Timer(
                0.02, board.sim.emergency_stop.press).start())

    prepare(monkeypatch, estop_on_close)
    result = invoke("test", "contactor", "-c", station, "--yes")
    assert result.exit_code == 1
    assert "ENDED EARLY: fault emergency_stop" in result.output


def test_the_contactor_test_runs_in_the_safety_process_while_the_station_is_down(
        station, monkeypatch):
    """No station heartbeats (supervision_lost is active), yet a technician's test runs: the
    safety process closes and opens the coil itself."""
    config = load_config(station)
    board = build_board(config)
    writes = coil_writes(board)
    process = SafetyProcess(config, board, default_socket_path(), latched_faults_path(config),
                            settings=SafetySettings(poll_interval_s=0.02), heartbeat_bound_s=0.2)
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    prepared = prepare(monkeypatch)
    try:
        deadline = time.monotonic() + 10
        while FaultKind.SUPERVISION_LOST not in {f.kind for f in process.core.active_faults()}:
            assert time.monotonic() < deadline, "the safety process never missed the station"
            time.sleep(0.01)
        result = invoke("test", "contactor", "-c", station, "--yes", "--json")
    finally:
        process.stop()
        thread.join(5)
        board.close()
    assert result.exit_code == 0, result.output
    assert as_json(result)["via"] == "direct" and prepared.boards == []
    assert True in writes and writes[-1] is False  # closed for the test, open after
