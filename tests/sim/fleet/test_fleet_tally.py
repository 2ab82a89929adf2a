"""Counting OCPP traffic from a charger's frame log: our CALLs matched to their results and
CALLERRORs by unique id, the backend's CALLs, frames lost to the ring wrapping."""

from __future__ import annotations

import json
from pathlib import Path

from chargerfw.sim.fleet import ChargerReport, FleetReport, FrameTally, MessageCount
from chargerfw.store import Store


def frame(*parts: object) -> str:
    return json.dumps(list(parts))


def test_calls_results_and_errors_matched_by_unique_id(tmp_path: Path) -> None:
    report = ChargerReport("CP-1", "F1EE7000000001")
    tally = FrameTally(report)
    with Store(tmp_path / "s.db") as store:
        store.frame_log_add("out", frame(2, "b1", "BootNotification", {"chargePointVendor": "x"}))
        store.frame_log_add("in", frame(3, "b1", {"status": "Accepted", "interval": 300}))
        store.frame_log_add("out", frame(2, "s1", "StartTransaction", {"connectorId": 1}))
        store.frame_log_add("out", frame(2, "s1", "StartTransaction", {"connectorId": 1}))  # resend
        store.frame_log_add("in", frame(3, "s1", {"transactionId": 7}))
        store.frame_log_add("out", frame(2, "m1", "MeterValues", {"connectorId": 1}))
        store.frame_log_add("in", frame(4, "m1", "FormationViolation", "bad value", {}))
        store.frame_log_add("in", frame(2, "r1", "RemoteStopTransaction", {"transactionId": 7}))
        store.frame_log_add("out", frame(3, "r1", {"status": "Accepted"}))
        store.frame_log_add("in", frame(3, "unknown", {}))  # a result for nothing we sent
        store.frame_log_add("in", "not json")
        tally.read(store)
        tally.read(store)  # nothing new: nothing counted twice
    assert report.boot_accepted and report.registration == "Accepted"
    assert report.messages == {"BootNotification": MessageCount(1, 1, 0),
                               "StartTransaction": MessageCount(2, 1, 0),
                               "MeterValues": MessageCount(1, 0, 1)}
    assert report.call_errors == 1
    assert report.call_error_details == [
        {"action": "MeterValues", "code": "FormationViolation", "description": "bad value"}]
    assert report.backend_calls == {"RemoteStopTransaction": 1}
    assert report.frames_missed == 0


def test_rejected_boot_is_not_accepted(tmp_path: Path) -> None:
    report = ChargerReport("CP-1", "F1EE7000000001")
    with Store(tmp_path / "s.db") as store:
        store.frame_log_add("out", frame(2, "b1", "BootNotification", {}))
        store.frame_log_add("in", frame(3, "b1", {"status": "Rejected", "interval": 60}))
        FrameTally(report).read(store)
    assert not report.boot_accepted and report.registration == "Rejected"
    fleet = FleetReport("ws://x", "random", 1, 0, 0.0, chargers=[report])
    assert fleet.failed and fleet.exit_code() == 1


def test_frames_lost_to_the_ring_are_counted_not_guessed(tmp_path: Path) -> None:
    report = ChargerReport("CP-1", "F1EE7000000001")
    tally = FrameTally(report)
    with Store(tmp_path / "s.db", frame_log_size=40) as store:
        for n in range(3):
            store.frame_log_add("out", frame(2, f"h{n}", "Heartbeat", {}))
        tally.read(store)
        for n in range(3, 53):  # 50 more into a ring of 40: the oldest 10 are gone
            store.frame_log_add("out", frame(2, f"h{n}", "Heartbeat", {}))
        tally.read(store)
    assert report.messages["Heartbeat"].sent == 3 + 40
    assert report.frames_missed == 10


def test_exit_codes() -> None:
    good = ChargerReport("CP-1", "F1", boot_accepted=True)
    fleet = FleetReport("ws://x", "random", 1, 0, 0.0, chargers=[good])
    assert fleet.exit_code() == 0
    fleet.interrupted = True
    assert fleet.exit_code() == 130
    good.fail("run 1 step 2 (tap): no")
    assert fleet.exit_code() == 1 and good.steps_failed == 1
