"""`chargerfw faults` (the history from the store, with what each fault means and what to do)
and `faults clear`: with the service stopped (the hardware read under the lock, then the store)
and through the service (a fake one on the control socket)."""

from __future__ import annotations

import pytest
from diag_support import FakeService, PreparedBoard, as_json, invoke

from chargerfw.cli import common
from chargerfw.control.api import FaultClearReply, FaultClearRequest, Method, Refused
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FAULT_SPECS, FaultKind

pytestmark = pytest.mark.timeout(30)


def test_faults_history_and_active(station, store):
    store.fault_raise("rcd_trip", 0, False, "", at=1_700_000_000)
    store.fault_clear("rcd_trip", 0, at=1_700_000_060)
    store.fault_raise("contactor_welded", 1, True, "mirror closed", at=1_700_000_100)
    rows = as_json(invoke("faults", "-c", station, "--json"))
    assert [(r["code"], r["connector_id"], r["state"]) for r in rows] == [
        ("contactor_welded", 1, "active"), ("rcd_trip", 0, "cleared")]
    assert rows[1]["raised_at"] == "2023-11-14T22:13:20Z"
    assert rows[1]["cleared_at"] == "2023-11-14T22:14:20Z"
    welded = FAULT_SPECS[FaultKind.CONTACTOR_WELDED]
    assert (rows[0]["description"], rows[0]["hint"]) == (welded.description, welded.hint)
    human = invoke("faults", "-c", station)
    assert human.exit_code == 0
    assert "ACTIVE" in human.stdout and "technician" in human.stdout
    assert welded.description in human.stdout and welded.hint in human.stdout
    assert FAULT_SPECS[FaultKind.RCD_TRIP].hint not in human.stdout  # cleared: no advice
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
    monkeypatch.setattr(common, "open_board",
                        PreparedBoard(lambda board: board.connectors[1].sim.contactor.weld()))
    still = invoke("faults", "-c", station, "clear", "contactor_welded")
    assert still.exit_code == 1 and "still welded" in still.stderr
    assert store.faults(active_only=True)  # not cleared
    monkeypatch.setattr(common, "open_board", PreparedBoard())
    cleared = invoke("faults", "-c", station, "clear", "contactor_welded", "--json")
    assert cleared.exit_code == 0, cleared.output
    assert as_json(cleared) == {"cleared": "contactor_welded", "connector_id": 1, "via": "store"}
    assert store.faults(active_only=True) == []


def test_faults_clear_through_the_service(station, runtime_dir, store):
    store.fault_raise("rcd_trip_repeated", 0, True)
    store.fault_raise("contactor_welded", 1, True)
    cleared = []

    def clear(request: FaultClearRequest) -> FaultClearReply:
        if request.kind is FaultKind.CONTACTOR_WELDED:
            raise Refused("contactor_welded cannot be cleared: its condition is still present")
        cleared.append((request.kind, request.connector))
        return FaultClearReply(request.kind, request.connector)

    with FakeService(runtime_dir / "control.sock", {Method.FAULT_CLEAR: clear}):
        station_wide = invoke("faults", "-c", station, "clear", "rcd_trip_repeated", "--json")
        welded = invoke("faults", "-c", station, "clear", "contactor_welded")
    assert station_wide.exit_code == 0, station_wide.output
    assert as_json(station_wide)["via"] == "service"
    # Station-wide: connector 0
    assert cleared == [(FaultKind.RCD_TRIP_REPEATED, STATION)]
    assert welded.exit_code == 1 and "condition is still present" in welded.stderr
