"""The technician's rules, pure: when a guarded hardware test is refused, and when a technician
may clear a fault.

The running service and the CLI's direct path (service stopped, hardware under the lock) each
build the view from what they can see and ask these functions, so each rule and its message
lives here once. A fact a caller could not read stays empty in the view (the direct path reads
the pilot and the fault inputs only for the contactor test, as that test energises the outlet).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from chargerfw.drivers.types import PLUGGED, PilotState
from chargerfw.station.faults import FAULT_SPECS, ClearRule, FaultKind, may_clear


class HardwareTest(enum.StrEnum):
    CONTACTOR = "contactor"
    RCD = "rcd"
    PILOT = "pilot"
    LOCK = "lock"


# Faults a test is about: they do not refuse it (the contactor test reports a welded contactor
# from its mirror without energising it). Every other active fault refuses a test.
# What each test may run despite: the faults it is there to check, and a silent station (the
# safety process runs the test itself, so no station needs to watch it).
TOLERATED_BY_EVERY_TEST = frozenset({FaultKind.SUPERVISION_LOST})
TOLERATED_FAULTS: dict[HardwareTest, frozenset[FaultKind]] = {
    HardwareTest.CONTACTOR: TOLERATED_BY_EVERY_TEST | {FaultKind.CONTACTOR_WELDED,
                                                 FaultKind.CONTACTOR_FAILED_TO_CLOSE},
    HardwareTest.RCD: TOLERATED_BY_EVERY_TEST | {FaultKind.RCM_SELF_TEST_FAILED},
    HardwareTest.PILOT: TOLERATED_BY_EVERY_TEST,
    HardwareTest.LOCK: TOLERATED_BY_EVERY_TEST,
}


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """A transaction the store holds open while the service is stopped (a crash or power cut
    left it; the service ends it as PowerLoss when it starts)."""

    local_id: int
    id_tag: str


@dataclass(frozen=True, slots=True)
class ConnectorView:
    """What the test refusals look at on one connector."""

    connector_id: int
    transaction_running: bool = False  # a session runs (or its start waits for the meter)
    left_open: StoredTransaction | None = None
    authorized_for: str | None = None  # a card was accepted and waits for a vehicle
    pilot: PilotState | None = None  # None: not read
    pilot_f_is_ours: bool = False  # F because we drive it (Unavailable, latched fault)
    active_faults: frozenset[FaultKind] = frozenset()  # this connector's and station-wide


def hardware_test_refusal(test: HardwareTest, connectors: Iterable[ConnectorView],
                 running: str | None = None) -> str | None:
    """Why ``test`` may not run now on these connectors (None: it may). ``running`` is the
    test already under way, if any: one at a time."""
    if running is not None:
        return f"a {running} test is running: wait for it to end"
    tolerated = TOLERATED_FAULTS[test]
    for view in connectors:
        cid = view.connector_id
        if view.left_open is not None:
            tx = view.left_open
            return (f"transaction {tx.local_id} (idTag {tx.id_tag}) is still open on connector "
                    f"{cid} in the store: start the service so it ends it (PowerLoss), or stop "
                    "the session, then test")
        if view.transaction_running:
            return f"a transaction runs on connector {cid}: stop it first"
        if view.authorized_for is not None:
            return (f"connector {cid} is authorized for {view.authorized_for} and waits for a "
                    "vehicle: cancel it (tap the card again) first")
        pilot = view.pilot
        if pilot in PLUGGED:
            assert pilot is not None
            return (f"a vehicle is connected to connector {cid} (pilot {pilot.value}): unplug "
                    "it first")
        # F is what we drive while Unavailable or latched Faulted: the test looks behind it.
        # E, a missing diode, or an F we do not drive: the pilot line is wrong.
        own_f = pilot is PilotState.F and view.pilot_f_is_ours
        if pilot is not None and pilot is not PilotState.A and not own_f:
            return (f"connector {cid}: the pilot reads {pilot.value}: check the cable and the "
                    "pilot wiring first")
        active = sorted(kind.value for kind in view.active_faults - tolerated)
        if active:
            return (f"connector {cid}: fault(s) {', '.join(active)} active: remove the cause "
                    "(see `chargerfw faults --active`) first")
    return None


def stored_kind(code: str) -> FaultKind | None:
    """The fault kind a stored fault code names (None: one this firmware does not know)."""
    try:
        return FaultKind(code)
    except ValueError:
        return None


HOW_IT_CLEARS: dict[ClearRule, str] = {
    ClearRule.CONDITION_GONE: "it clears by itself once its condition is gone",
    ClearRule.VEHICLE_UNPLUGGED: "it clears by itself once the condition is gone and the "
                                 "vehicle is unplugged",
    ClearRule.TECHNICIAN: "a technician clears it once its condition is gone",
}
STILL_PRESENT = "its condition is still present"


def clear_refusal(kind: FaultKind, where: str, *, active: bool) -> str | None:
    """Why a technician may not clear ``kind`` on ``where`` ("the station", "connector 1"):
    it is not active, or it clears by itself (None: they may, once its condition is gone)."""
    if not active:
        return f"no active {kind.value} fault on {where}"
    rule = FAULT_SPECS[kind].clear_rule
    if rule is not ClearRule.TECHNICIAN:
        return f"{kind.value} on {where} is not cleared by hand: {HOW_IT_CLEARS[rule]}"
    return None


def condition_refusal(kind: FaultKind, condition: str | None) -> str | None:
    """Why the fault cannot be cleared now: ``condition`` says what still shows it (None: it
    is gone). Nobody clears a fault whose condition is still there."""
    if may_clear(kind, condition_present=condition is not None, pilot=None, by_technician=True):
        return None
    return f"{kind.value} cannot be cleared: {condition}"
