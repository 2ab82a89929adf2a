"""The technician's rules as pure functions: when a guarded hardware test is refused (the same
messages from the service and the CLI's direct path), when a fault may be cleared by hand,
and the fault catalogue's texts for the technician."""

from __future__ import annotations

import pytest

from chargerfw.drivers.types import PilotState
from chargerfw.station.faults import FAULT_SPECS, ClearRule, FaultKind
from chargerfw.station.technician import (
    HOW_IT_CLEARS,
    STILL_PRESENT,
    ConnectorView,
    HardwareTest,
    StoredTransaction,
    clear_refusal,
    condition_refusal,
    hardware_test_refusal,
    stored_kind,
)

CONTACTOR, RCD, PILOT, LOCK = (HardwareTest.CONTACTOR, HardwareTest.RCD, HardwareTest.PILOT,
                               HardwareTest.LOCK)
A = ConnectorView(1, pilot=PilotState.A)

REFUSALS = [
    # (test, views, running test, the refusal or None)
    (CONTACTOR, [A], None, None),
    (PILOT, [ConnectorView(1)], None, None),  # nothing read, nothing against it
    (LOCK, [A], "rcd", "a rcd test is running: wait for it to end"),
    (CONTACTOR, [ConnectorView(1, transaction_running=True, pilot=PilotState.C)], None,
     "a transaction runs on connector 1: stop it first"),
    (RCD, [ConnectorView(1, left_open=StoredTransaction(4, "04A1B2C3"))], None,
     "transaction 4 (idTag 04A1B2C3) is still open on connector 1 in the store: start the "
     "service so it ends it (PowerLoss), or stop the session, then test"),
    (PILOT, [ConnectorView(2, authorized_for="04A1B2C3", pilot=PilotState.A)], None,
     "connector 2 is authorized for 04A1B2C3 and waits for a vehicle: cancel it (tap the "
     "card again) first"),
    (CONTACTOR, [ConnectorView(1, pilot=PilotState.B)], None,
     "a vehicle is connected to connector 1 (pilot B): unplug it first"),
    (LOCK, [ConnectorView(1, pilot=PilotState.D)], None,
     "a vehicle is connected to connector 1 (pilot D): unplug it first"),
    (PILOT, [ConnectorView(1, pilot=PilotState.E)], None,
     "connector 1: the pilot reads E: check the cable and the pilot wiring first"),
    (PILOT, [ConnectorView(1, pilot=PilotState.DIODE_FAULT)], None,
     "connector 1: the pilot reads diode_fault: check the cable and the pilot wiring first"),
    (PILOT, [ConnectorView(1, pilot=PilotState.F)], None,
     "connector 1: the pilot reads F: check the cable and the pilot wiring first"),
    # F we drive ourselves (Unavailable, latched fault): the test looks behind it.
    (PILOT, [ConnectorView(1, pilot=PilotState.F, pilot_f_is_ours=True)], None, None),
    (CONTACTOR, [ConnectorView(1, pilot=PilotState.A, active_faults=frozenset(
        {FaultKind.EMERGENCY_STOP, FaultKind.RCD_TRIP}))], None,
     "connector 1: fault(s) emergency_stop, rcd_trip active: remove the cause (see "
     "`chargerfw faults --active`) first"),
    # The contactor test is about the contactor's own faults: they do not refuse it ...
    (CONTACTOR, [ConnectorView(1, pilot=PilotState.A, active_faults=frozenset(
        {FaultKind.CONTACTOR_WELDED, FaultKind.CONTACTOR_FAILED_TO_CLOSE}))], None, None),
    # ... but they refuse every other test.
    (LOCK, [ConnectorView(1, pilot=PilotState.A, active_faults=frozenset(
        {FaultKind.CONTACTOR_WELDED}))], None,
     "connector 1: fault(s) contactor_welded active: remove the cause (see `chargerfw faults "
     "--active`) first"),
    # The RCD test takes every connector: the first that refuses says why.
    (RCD, [A, ConnectorView(2, transaction_running=True)], None,
     "a transaction runs on connector 2: stop it first"),
    # One reason at a time, the most basic first: a transaction before the vehicle behind it.
    (CONTACTOR, [ConnectorView(1, transaction_running=True, pilot=PilotState.B,
                               active_faults=frozenset({FaultKind.OVER_CURRENT}))], None,
     "a transaction runs on connector 1: stop it first"),
]


@pytest.mark.parametrize(("test", "views", "running", "expected"), REFUSALS)
def test_hardware_test_refusals(test: HardwareTest, views: list[ConnectorView],
                                running: str | None, expected: str | None) -> None:
    assert hardware_test_refusal(test, views, running) == expected


CLEARS = [
    # (kind, where, active, the refusal or None)
    (FaultKind.CONTACTOR_WELDED, "connector 1", True, None),
    (FaultKind.RCD_TRIP_REPEATED, "the station", True, None),
    (FaultKind.INTERNAL_ERROR, "the station", True, None),
    (FaultKind.CONTACTOR_WELDED, "connector 1", False,
     "no active contactor_welded fault on connector 1"),
    (FaultKind.RCD_TRIP, "connector 0", True,
     "rcd_trip on connector 0 is not cleared by hand: it clears by itself once its condition "
     "is gone"),
    (FaultKind.PILOT_ERROR, "connector 1", True,
     "pilot_error on connector 1 is not cleared by hand: it clears by itself once the "
     "condition is gone and the vehicle is unplugged"),
]


@pytest.mark.parametrize(("kind", "where", "active", "expected"), CLEARS)
def test_who_may_clear_a_fault(kind: FaultKind, where: str, active: bool,
                               expected: str | None) -> None:
    assert clear_refusal(kind, where, active=active) == expected


def test_nobody_clears_a_fault_whose_condition_is_still_there() -> None:
    assert condition_refusal(FaultKind.CONTACTOR_WELDED, None) is None
    assert condition_refusal(FaultKind.CONTACTOR_WELDED, "the mirror still reads closed") == \
        "contactor_welded cannot be cleared: the mirror still reads closed"
    assert condition_refusal(FaultKind.RCD_TRIP_REPEATED, STILL_PRESENT) == \
        "rcd_trip_repeated cannot be cleared: its condition is still present"


def test_every_fault_tells_the_technician_what_it_means_and_what_to_do() -> None:
    assert set(HOW_IT_CLEARS) == set(ClearRule)
    for kind, spec in FAULT_SPECS.items():
        assert spec.description.endswith(".") and len(spec.description) > 20, kind
        assert spec.hint.endswith(".") and len(spec.hint) > 20, kind
        if spec.clear_rule is ClearRule.TECHNICIAN:  # the hint says how to clear it
            assert f"chargerfw faults clear {kind.value}" in spec.hint, kind


def test_stored_codes_name_fault_kinds() -> None:
    assert stored_kind("contactor_welded") is FaultKind.CONTACTOR_WELDED
    assert stored_kind("gremlins") is None  # written by another firmware
