"""The guarded hardware tests (``chargerfw test contactor|rcd|pilot|lock``): their sequences on a
board's devices, and what each reports.

The safety core runs them (:meth:`~chargerfw.safety.core.SafetyCore.run_test`), in whichever
process owns the hardware, under its interlocks: the monitor keeps watching inputs and pilot
while a contactor is closed for a test. They check nothing about vehicles, transactions or faults
themselves: the caller refuses first (:func:`chargerfw.station.technician.hardware_test_refusal`).
"""

from __future__ import annotations

import time
from typing import Protocol

from chargerfw.drivers.board import Board, ConnectorDevices
from chargerfw.drivers.fault_inputs import RcmSelfTestUnavailableError
from chargerfw.drivers.pilot import ControlPilot, PilotReading
from chargerfw.drivers.types import ContactorFeedback, LockResult, PilotMode, PilotState
from chargerfw.safety.results import (
    ContactorStep,
    ContactorTestReply,
    ContactorVerdict,
    LockStep,
    LockTestReply,
    PilotStep,
    PilotTestReply,
    RcdTestReply,
)

VEHICLE_STATES = frozenset({PilotState.B, PilotState.C, PilotState.D})
# What the pilot test offers, in amps (capped at the connector's maximum).
PILOT_TEST_CURRENTS_A = (6.0, 16.0, 32.0)


class Refusal(Exception):
    """A sequence will not go on; the message says why."""


def settled_reading(pilot: ControlPilot) -> PilotReading:
    """Read until the classifier has confirmed the state (it needs confirm_reads agreeing reads)."""
    reading = pilot.read()
    for _ in range(pilot.classifier.confirm_reads + 1):
        reading = pilot.read()
    return reading


class ContactorUnderTest(Protocol):
    """What the contactor test drives: the driver itself (direct path) or the service's
    stand-in that closes through the safety supervisor."""

    @property
    def feedback_timeout_s(self) -> float: ...

    def close(self) -> None: ...

    def open(self) -> None: ...

    def check_feedback(self) -> ContactorFeedback: ...

    @property
    def interrupted(self) -> bool:
        """Something changed while the test ran (the monitor has acted): stop waiting."""
        ...


def settle_feedback(contactor: ContactorUnderTest) -> ContactorFeedback:
    """The mirror's verdict once the contacts had their feedback_timeout_s to move (or at once
    when the test was interrupted)."""
    deadline = time.monotonic() + contactor.feedback_timeout_s + 0.2
    while True:
        feedback = contactor.check_feedback()
        if (
            feedback is not ContactorFeedback.PENDING
            or contactor.interrupted
            or time.monotonic() > deadline
        ):
            return feedback
        time.sleep(0.02)


def run_contactor_sequence(contactor: ContactorUnderTest, connector_id: int) -> ContactorTestReply:
    """Close, check the mirror; open, check again; the contactor is open when this returns. A
    contactor already welded is reported without being closed. A ``close()`` that raises
    (refused by the safety supervisor) ends the test with the contactor open."""
    steps: list[ContactorStep] = []
    before = settle_feedback(contactor)
    steps.append(ContactorStep("before", "open", before))
    if before is ContactorFeedback.WELDED:
        return ContactorTestReply(False, ContactorVerdict.WELDED, steps, connector_id)
    try:
        contactor.close()
        closed = settle_feedback(contactor)
        steps.append(ContactorStep("close", "closed", closed))
    finally:
        contactor.open()
    opened = settle_feedback(contactor)
    steps.append(ContactorStep("open", "open", opened))
    if opened is ContactorFeedback.WELDED:
        verdict = ContactorVerdict.WELDED
    elif closed is ContactorFeedback.FAILED_TO_CLOSE:
        verdict = ContactorVerdict.FAILED_TO_CLOSE
    else:
        verdict = ContactorVerdict.OK
    return ContactorTestReply(verdict is ContactorVerdict.OK, verdict, steps, connector_id)


def run_rcd_test(board: Board) -> RcdTestReply:
    """Pulse the RCM test output (contactors opened first); :class:`Refusal` if the RCM has
    no test output or is already tripped."""
    assert board.rcm is not None
    board.open_all_contactors()  # a test trip is a trip: nothing may be live during it
    try:
        outcome = board.rcm.self_test()
    except RcmSelfTestUnavailableError as exc:
        raise Refusal(str(exc)) from None
    return RcdTestReply(outcome.passed, outcome.tripped, outcome.cleared, outcome.trip_time_s)


def _expected_states(output: PilotMode, vehicle: bool) -> list[PilotState]:
    if output is PilotMode.STATE_F:
        return [PilotState.F]
    if not vehicle:
        return [PilotState.A]
    if output is PilotMode.STANDBY:
        return [PilotState.B]
    return sorted(VEHICLE_STATES)


def run_pilot_test(devices: ConnectorDevices, max_current_a: float) -> PilotTestReply:
    """Offer standby, a few currents and state F; read back each classified state. Leaves the
    pilot in standby (a service restores its own output after)."""
    pilot = devices.pilot
    readings: list[tuple[PilotMode, float | None, PilotReading]] = []
    try:
        pilot.set_standby()
        readings.append((PilotMode.STANDBY, None, settled_reading(pilot)))
        for amps in sorted({min(a, max_current_a) for a in PILOT_TEST_CURRENTS_A}):
            pilot.set_current_limit(amps)
            readings.append((PilotMode.PWM, amps, settled_reading(pilot)))
        pilot.set_state_f()
        readings.append((PilotMode.STATE_F, None, settled_reading(pilot)))
    finally:
        pilot.set_standby()
    vehicle = readings[0][2].state in VEHICLE_STATES
    steps = []
    for output, offered_a, reading in readings:
        expected = _expected_states(output, vehicle)
        steps.append(
            PilotStep(
                output,
                offered_a,
                round(reading.duty_percent, 1),
                reading.state,
                round(reading.high_v, 2),
                round(reading.low_v, 2),
                expected,
                reading.state in expected,
            )
        )
    return PilotTestReply(all(s.ok for s in steps), vehicle, steps, devices.id)


def run_lock_test(devices: ConnectorDevices) -> LockTestReply:
    """Lock, then unlock (always), each confirmed by the feedback switch if there is one."""
    lock = devices.lock
    assert lock is not None
    steps = []
    locked = LockResult.FAILED
    try:
        locked = lock.lock()
        steps.append(LockStep("lock", locked))
    finally:
        unlocked = lock.unlock()
        steps.append(LockStep("unlock", unlocked))
    passed = locked is LockResult.LOCKED and unlocked is LockResult.UNLOCKED
    return LockTestReply(passed, lock.has_feedback, steps, devices.id)
