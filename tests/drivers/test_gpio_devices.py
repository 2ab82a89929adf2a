"""Contactor, fault inputs, RCM self-test and connector lock on simulated pins."""

from __future__ import annotations

import threading

import pytest
from fakes import FakeClock

from chargerfw.config import ContactorSection, FaultInputSection, LockSection, RcmSection
from chargerfw.config.wiring import FAIL_SAFE_WIRING, ContactWiring
from chargerfw.drivers.contactor import Contactor, ContactorFeedback, ContactorInterlockedError
from chargerfw.drivers.fault_inputs import FaultInput, Rcm, RcmSelfTestUnavailableError
from chargerfw.drivers.gpio import Pull, SimulatedPinFactory
from chargerfw.drivers.lock import ConnectorLock, LockResult
from chargerfw.drivers.simulated.gpio_devices import (
    SimulatedContactorMirror,
    SimulatedFaultSwitch,
    SimulatedLockMechanism,
    SimulatedRcm,
)


# -- contactor ----------------------------------------------------------------------------------
@pytest.mark.parametrize("active_high", [True, False])
def test_contactor_drives_coil_per_polarity(active_high):
    factory = SimulatedPinFactory()
    contactor = Contactor(17, factory=factory, active_high=active_high)
    coil = factory.pin(17)
    assert coil.state is (not active_high)  # open from the first instant
    contactor.close()
    assert contactor.commanded_closed and coil.state is active_high
    contactor.open()
    contactor.open()  # idempotent
    assert not contactor.commanded_closed and coil.state is (not active_high)


ALL_WIRINGS = [
    pytest.param(ContactWiring(wiring, pull), id=f"{wiring}-{pull}")
    for wiring in ("normally_closed", "normally_open")
    for pull in ("up", "down")
]


def make_contactor(feedback_wiring: ContactWiring = FAIL_SAFE_WIRING):
    factory = SimulatedPinFactory()
    clock = FakeClock(100.0)
    contactor = Contactor(
        17,
        factory=factory,
        feedback_pin=27,
        feedback_wiring=feedback_wiring,
        feedback_timeout_s=0.5,
        clock=clock,
    )
    mirror = SimulatedContactorMirror(
        factory.pin(17), factory.pin(27), feedback_wiring=feedback_wiring
    )
    return contactor, mirror, clock


@pytest.mark.parametrize("feedback_wiring", ALL_WIRINGS)
def test_feedback_ok_when_mirror_follows(feedback_wiring):
    contactor, mirror, clock = make_contactor(feedback_wiring)
    assert contactor.check_feedback() is ContactorFeedback.OK
    contactor.close()
    assert mirror.is_closed and contactor.feedback_closed is True
    clock.now += 10
    assert contactor.check_feedback() is ContactorFeedback.OK


def test_welded_is_reported_after_the_timeout_only():
    contactor, mirror, clock = make_contactor()
    contactor.close()
    mirror.weld()
    contactor.open()
    assert contactor.check_feedback() is ContactorFeedback.PENDING
    clock.now += 0.49
    assert contactor.check_feedback() is ContactorFeedback.PENDING
    clock.now += 0.02
    assert contactor.check_feedback() is ContactorFeedback.WELDED
    mirror.repair()
    assert contactor.check_feedback() is ContactorFeedback.OK


def test_failed_to_close_is_told_from_welded():
    contactor, mirror, clock = make_contactor()
    mirror.fail_to_close()
    contactor.close()
    clock.now += 0.6
    assert contactor.check_feedback() is ContactorFeedback.FAILED_TO_CLOSE
    assert not mirror.is_closed


def test_no_feedback_configured():
    contactor = Contactor(17, factory=SimulatedPinFactory())
    assert contactor.check_feedback() is ContactorFeedback.NO_FEEDBACK
    assert contactor.feedback_closed is None


def test_interlock_opens_and_blocks_close_until_released():
    factory = SimulatedPinFactory()
    contactor = Contactor(17, factory=factory)
    contactor.close()
    contactor.interlock("rcd")
    contactor.interlock("estop")
    assert factory.pin(17).state is False
    with pytest.raises(ContactorInterlockedError, match="estop, rcd") as err:
        contactor.close()
    assert err.value.reasons == ["estop", "rcd"]
    assert factory.pin(17).state is False
    contactor.release_interlock("rcd")
    with pytest.raises(ContactorInterlockedError):
        contactor.close()
    contactor.release_interlock("estop")
    assert factory.pin(17).state is False  # release does not re-close by itself
    contactor.close()
    assert factory.pin(17).state is True


def test_open_from_another_thread_while_closing():
    factory = SimulatedPinFactory()
    contactor = Contactor(17, factory=factory)
    contactor.close()
    worker = threading.Thread(target=contactor.open)
    worker.start()
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert factory.pin(17).state is False and not contactor.commanded_closed


def test_contactor_from_config_uses_every_key():
    factory = SimulatedPinFactory()
    section = ContactorSection(
        pin=20,
        active_high=False,
        feedback_pin=21,
        feedback_wiring="normally_open",
        feedback_pull="up",
        feedback_timeout_s=1.5,
    )
    contactor = Contactor.from_config(section, factory)
    assert factory.pin(20).state is True  # active low: idle high
    assert contactor.feedback_timeout_s == 1.5
    assert factory.pin(21).pull is Pull.UP
    factory.pin(21).drive_low()  # a normally-open contact to GND, closed with the mains
    assert contactor.feedback_closed is True


# -- fault inputs -------------------------------------------------------------------------------
def test_fault_input_callbacks_on_trip_and_clear():
    factory = SimulatedPinFactory()
    # A normally-open contact to GND on a pulled-up line: the trip pulls it low.
    estop = FaultInput(13, factory=factory, wiring=ContactWiring("normally_open", "up"),
                       name="estop")
    events: list[str] = []
    estop.on_trip(lambda: events.append("trip"))
    estop.on_clear(lambda: events.append("clear"))
    assert not estop.is_tripped
    factory.pin(13).drive_low()
    assert estop.is_tripped and events == ["trip"]
    factory.pin(13).drive_high()
    assert not estop.is_tripped and events == ["trip", "clear"]


def test_fault_input_active_high():
    factory = SimulatedPinFactory()
    fault = FaultInput(5, factory=factory, wiring=ContactWiring("normally_open", "down"))
    assert not fault.is_tripped  # pulled down
    factory.pin(5).drive_high()
    assert fault.is_tripped


def test_safety_callback_opens_contactor_on_the_hardware_path():
    factory = SimulatedPinFactory()
    contactor = Contactor(17, factory=factory)
    rcd = FaultInput(5, factory=factory, name="rcd")
    rcd.on_trip(lambda: contactor.interlock("rcd"))
    contactor.close()
    SimulatedFaultSwitch(factory.pin(5)).trip()
    assert factory.pin(17).state is False
    with pytest.raises(ContactorInterlockedError):
        contactor.close()


def test_refresh_catches_an_edge_lost_to_bounce():
    clock = FakeClock(100.0)
    factory = SimulatedPinFactory(clock=clock)
    fault = FaultInput(5, factory=factory, wiring=ContactWiring("normally_open", "up"),
                       debounce_ms=20)
    trips: list[bool] = []
    fault.on_trip(lambda: trips.append(True))
    pin = factory.pin(5)
    pin.drive_low()  # accepted
    clock.now += 0.005
    pin.drive_high()  # bounce: dropped
    clock.now += 0.005
    pin.drive_low()  # dropped
    clock.now += 0.005
    pin.drive_high()  # the real final release, dropped too
    assert fault.is_tripped  # stale
    assert fault.refresh() is False  # the backstop re-reads the line
    assert trips == [True]


def test_tripped_at_start_is_seen():
    factory = SimulatedPinFactory()
    factory.pin(13).drive_high()  # the default wiring: normally closed to GND, pull-up
    estop = FaultInput.from_config(FaultInputSection(pin=13), factory, name="estop")
    assert estop.is_tripped


# -- wiring: healthy, tripped, cut wire --------------------------------------------------------
# wiring, pull, the line's level while healthy and on a trip, and what a cut wire or a floating
# pin reads as: tripped with a normally-closed contact (fail-safe), healthy with a normally-open
# one (the danger: the broken wire hides every later trip).
FAULT_INPUT_TABLE = [
    ("normally_closed", "up", False, True, True),
    ("normally_closed", "down", True, False, True),
    ("normally_open", "up", True, False, False),
    ("normally_open", "down", False, True, False),
]


@pytest.mark.parametrize(
    ("wiring", "pull", "healthy_level", "trip_level", "cut_reads_tripped"), FAULT_INPUT_TABLE
)
@pytest.mark.parametrize("condition", ["healthy", "tripped", "cut wire", "floating"])
def test_fault_input_per_wiring_and_condition(
    wiring, pull, healthy_level, trip_level, cut_reads_tripped, condition
):
    factory = SimulatedPinFactory()
    contact = ContactWiring(wiring, pull)
    section = FaultInputSection(pin=13, wiring=wiring, pull=pull, debounce_ms=0)
    fault = FaultInput.from_config(section, factory, name="estop")
    pin = factory.pin(13)
    assert pin.pull is Pull(pull)  # the internal pull is always set as configured
    if condition != "floating":  # floating: nothing on the line at all
        switch = SimulatedFaultSwitch(pin, wiring=contact)
        assert pin.state is healthy_level and not fault.is_tripped
        if condition == "tripped":
            switch.trip()
            assert pin.state is trip_level
        elif condition == "cut wire":
            switch.cut_wire()
            switch.trip()  # the contact acts, but nothing reaches the pin
            switch.clear()
    expected = {"healthy": False, "tripped": True}.get(condition, cut_reads_tripped)
    assert fault.is_tripped is expected
    assert fault.refresh() is expected


@pytest.mark.parametrize("wiring", ALL_WIRINGS)
def test_cut_and_mended_wire_per_wiring(wiring):
    factory = SimulatedPinFactory()
    fault = FaultInput(13, factory=factory, wiring=wiring, debounce_ms=0)
    switch = SimulatedFaultSwitch(factory.pin(13), wiring=wiring)
    events: list[str] = []
    fault.on_trip(lambda: events.append("trip"))
    fault.on_clear(lambda: events.append("clear"))
    switch.cut_wire()
    switch.mend_wire()
    assert events == (["trip", "clear"] if wiring.fail_safe else [])
    switch.press()
    switch.cut_wire()  # during a trip: still seen when fail-safe, gone when normally open
    assert fault.is_tripped is wiring.fail_safe
    switch.mend_wire()
    assert fault.is_tripped
    switch.release()
    assert not fault.is_tripped


@pytest.mark.parametrize("wiring", ALL_WIRINGS)
def test_rcm_with_a_cut_wire(wiring):
    factory = SimulatedPinFactory()
    rcm = Rcm(5, factory=factory, test_pin=6, test_pulse_ms=20, wiring=wiring)
    rcm.clear_timeout_s = 0.02
    sim = SimulatedRcm(factory.pin(5), factory.pin(6), wiring=wiring)
    assert rcm.self_test().passed
    sim.cut_wire()
    assert rcm.refresh() is wiring.fail_safe
    if wiring.fail_safe:
        with pytest.raises(RcmSelfTestUnavailableError, match="already tripped"):
            rcm.self_test()
    else:  # the danger: nothing follows the test pulse, only the self-test catches it
        assert not rcm.self_test().passed
    sim.mend_wire()
    assert not rcm.refresh() and rcm.self_test().passed


# wiring, pull, the line's level with the main contacts closed, and what a cut feedback wire
# reads as with the coil off: welded (normally closed, fail-safe) or ok (normally open: a welded
# contactor behind a cut wire reads ok too).
FEEDBACK_TABLE = [
    ("normally_closed", "up", True, ContactorFeedback.WELDED),
    ("normally_closed", "down", False, ContactorFeedback.WELDED),
    ("normally_open", "up", False, ContactorFeedback.OK),
    ("normally_open", "down", True, ContactorFeedback.OK),
]


@pytest.mark.parametrize(("wiring", "pull", "closed_level", "cut_reads"), FEEDBACK_TABLE)
def test_feedback_per_wiring_with_a_cut_wire(wiring, pull, closed_level, cut_reads):
    contactor, mirror, clock = make_contactor(ContactWiring(wiring, pull))
    assert mirror.feedback is not None and mirror.feedback.pull is Pull(pull)
    assert mirror.feedback.state is (not closed_level)  # coil off, main contacts open
    contactor.close()
    clock.now += 1
    assert mirror.feedback.state is closed_level
    assert contactor.check_feedback() is ContactorFeedback.OK
    mirror.cut_wire()  # while closed: a fail-safe wire reads closed, as the contacts are
    assert contactor.feedback_closed is (cut_reads is ContactorFeedback.WELDED)
    contactor.open()
    clock.now += 1
    assert contactor.check_feedback() is cut_reads
    mirror.weld()
    assert contactor.check_feedback() is cut_reads  # OK here is the danger
    mirror.mend_wire()
    assert contactor.check_feedback() is ContactorFeedback.WELDED
    mirror.repair()
    assert contactor.check_feedback() is ContactorFeedback.OK


def test_cut_feedback_wire_at_start_reads_welded_once_the_timeout_passed():
    factory = SimulatedPinFactory()
    clock = FakeClock(100.0)
    mirror = SimulatedContactorMirror(factory.pin(17), factory.pin(27))
    mirror.cut_wire()
    contactor = Contactor(17, factory=factory, feedback_pin=27, feedback_timeout_s=0.5,
                          clock=clock)
    assert contactor.check_feedback() is ContactorFeedback.PENDING
    clock.now += 0.6
    assert contactor.check_feedback() is ContactorFeedback.WELDED
    with pytest.raises(RuntimeError, match="no feedback pin"):
        SimulatedContactorMirror(factory.pin(20)).cut_wire()


# -- RCM self-test ------------------------------------------------------------------------------
def make_rcm(**kwargs):
    factory = SimulatedPinFactory()
    rcm = Rcm.from_config(RcmSection(pin=5, test_pin=6, test_pulse_ms=50), factory)
    rcm.clear_timeout_s = 0.05
    sim = SimulatedRcm(factory.pin(5), factory.pin(6))
    return rcm, sim, factory


def test_rcm_self_test_passes_when_trip_follows_the_pulse():
    rcm, sim, factory = make_rcm()
    seen_during_test: list[bool] = []
    rcm.on_trip(lambda: seen_during_test.append(rcm.self_test_running))
    result = rcm.self_test()
    assert result.passed and result.tripped and result.cleared
    assert seen_during_test == [True]  # safety code can tell a test trip from a real one
    assert factory.pin(6).state is False  # test output released
    assert not rcm.is_tripped and not rcm.self_test_running


def test_rcm_self_test_fails_when_the_rcm_does_not_trip():
    rcm, sim, factory = make_rcm()
    sim.break_self_test()
    result = rcm.self_test()
    assert not result.passed and not result.tripped
    assert factory.pin(6).state is False


def test_rcm_self_test_refused_while_tripped_or_without_test_pin():
    rcm, sim, _ = make_rcm()
    sim.trip()
    assert rcm.is_tripped
    with pytest.raises(RcmSelfTestUnavailableError, match="already tripped"):
        rcm.self_test()
    bare = Rcm(7, factory=SimulatedPinFactory())
    with pytest.raises(RcmSelfTestUnavailableError, match="no test_pin"):
        bare.self_test()


# -- connector lock -----------------------------------------------------------------------------
def make_lock():
    factory = SimulatedPinFactory()
    section = LockSection(pin=22, feedback_pin=23, feedback_timeout_s=0.05)
    lock = ConnectorLock.from_config(section, factory)
    mechanism = SimulatedLockMechanism(factory.pin(22), factory.pin(23))
    return lock, mechanism, factory


def test_lock_and_unlock_confirmed_by_feedback():
    lock, mechanism, factory = make_lock()
    assert lock.lock() is LockResult.LOCKED
    assert mechanism.is_locked and factory.pin(22).state is True
    assert lock.unlock() is LockResult.UNLOCKED
    assert not mechanism.is_locked


def test_jammed_lock_fails():
    lock, mechanism, _ = make_lock()
    mechanism.jam()
    assert lock.lock() is LockResult.FAILED
    assert lock.commanded_locked and lock.feedback_locked is False


def test_lock_without_feedback_reports_the_command():
    factory = SimulatedPinFactory()
    lock = ConnectorLock(22, factory=factory, active_high=False)
    assert lock.lock() is LockResult.LOCKED
    assert factory.pin(22).state is False
    assert lock.unlock() is LockResult.UNLOCKED
    assert factory.pin(22).state is True
