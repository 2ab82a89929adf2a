"""Safety supervisor: every interlock, the recovery rules, and that opening never waits for the
asyncio loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fakes import FakeClock, FakeContactor, FakeFaultInput

from chargerfw.config import TemperatureSection
from chargerfw.drivers.types import MeterSample, PilotState
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FAULT_SPECS, ClearRule, FaultKind, may_clear
from chargerfw.station.metering import OverCurrentSettings
from chargerfw.station.safety import (
    FaultChanged,
    PilotObserved,
    SafetySettings,
    SafetySupervisor,
    SupervisedConnector,
    ThermalLimitChanged,
    UnknownConnectorError,
    asyncio_notifier,
)

P = PilotState
K = FaultKind


class Rig:
    """Two connectors with fake hardware, a fake clock, and the events the loop would get."""

    def __init__(self, **settings) -> None:
        self.clock = FakeClock()
        self.wall = FakeClock()
        self.contactors = {1: FakeContactor(), 2: FakeContactor()}
        self.pilots = {1: P.A, 2: P.A}
        self.offered = {1: None, 2: None}
        self.temps: dict[int, float | Exception] = {1: 25.0, 2: 25.0}
        self.events: list = []
        limits = TemperatureSection(
            derate_at_c=60, stop_at_c=65, resume_at_c=55, derate_min_factor=0.5
        )
        connectors = {
            cid: SupervisedConnector(
                contactor=self.contactors[cid],
                read_pilot=lambda cid=cid: self._pilot(cid),
                read_offered_current_a=lambda cid=cid: self.offered[cid],
                read_temperature_c=lambda cid=cid: self._temp(cid),
                temperature_limits=limits,
                max_current_a=16.0,
            )
            for cid in (1, 2)
        }
        self.sup = SafetySupervisor(
            connectors,
            self.events.append,
            SafetySettings(**settings),
            clock=self.clock,
            wall_clock=self.wall,
        )

    def _pilot(self, cid: int) -> PilotState:
        value = self.pilots[cid]
        if isinstance(value, Exception):
            raise value
        return value

    def _temp(self, cid: int) -> float:
        value = self.temps[cid]
        if isinstance(value, Exception):
            raise value
        return value

    def charge(self, cid: int = 1, amps: float = 16.0) -> None:
        self.pilots[cid] = P.C
        self.sup.poll_once()
        self.offered[cid] = amps
        assert self.sup.request_close(cid)
        self.sup.poll_once()
        self.events.clear()

    def sample(self, cid: int, amps: float) -> None:
        self.sup.update_meter(
            cid,
            MeterSample(
                timestamp=self.wall.now, energy_import_wh=0.0, current_l1_a=amps, current_l2_a=1.0
            ),
        )

    def fault_events(self) -> list[tuple[FaultKind, int, bool]]:
        return [
            (e.fault.kind, e.fault.connector_id, e.active)
            for e in self.events
            if isinstance(e, FaultChanged)
        ]


# ---- the asyncio loop is busy: the contactor opens anyway --------------------------------------


@pytest.mark.timeout(10)
async def test_fault_input_opens_contactor_while_loop_is_blocked():
    loop = asyncio.get_running_loop()
    received: list = []
    contactor = FakeContactor()
    sup = SafetySupervisor(
        {1: SupervisedConnector(contactor)}, asyncio_notifier(loop, received.append)
    )
    rcd = FakeFaultInput()
    sup.attach_fault_input(K.RCD_TRIP, rcd)
    assert sup.request_close(1)
    done = threading.Event()
    seen: dict = {}

    def gpio_thread() -> None:
        rcd.set(True)  # the RPi.GPIO event thread runs the callback
        seen["closed_after_trip"] = contactor.commanded_closed
        done.set()

    threading.Thread(target=gpio_thread, name="gpio-events").start()
    time.sleep(0.3)  # the loop is blocked in a coroutine for the whole time
    assert done.is_set()
    assert seen["closed_after_trip"] is False
    assert contactor.opened_on == ["gpio-events"]
    assert received == []  # the loop has not run yet: it learns afterwards
    await asyncio.sleep(0)
    assert [(e.fault.kind, e.active) for e in received] == [(K.RCD_TRIP, True)]


@pytest.mark.timeout(10)
async def test_monitor_thread_opens_on_pilot_error_while_loop_is_blocked():
    loop = asyncio.get_running_loop()
    received: list = []
    contactor = FakeContactor()
    pilot = {"now": P.C}
    sup = SafetySupervisor(
        {1: SupervisedConnector(contactor, read_pilot=lambda: pilot["now"])},
        asyncio_notifier(loop, received.append),
        SafetySettings(poll_interval_s=0.01),
    )
    sup.start()
    try:
        deadline = time.monotonic() + 2
        while not sup.request_close(1):  # wait for the monitor to see C
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pilot["now"] = P.E
        time.sleep(0.3)  # loop blocked
        assert not contactor.commanded_closed
        assert contactor.opened_on == ["safety-monitor"]
        assert K.PILOT_ERROR in {f.kind for f in sup.active_faults(1)}
        assert sup.last_poll is not None
    finally:
        sup.stop()
    await asyncio.sleep(0)
    assert any(isinstance(e, FaultChanged) and e.fault.kind is K.PILOT_ERROR for e in received)


@pytest.mark.timeout(10)
async def test_real_contactor_and_fault_input_drivers_from_a_thread():
    """The same, with the project's GPIO drivers on simulated pins."""
    from chargerfw.config.wiring import ContactWiring
    from chargerfw.drivers.contactor import Contactor
    from chargerfw.drivers.fault_inputs import FaultInput
    from chargerfw.drivers.gpio import SimulatedPinFactory

    factory = SimulatedPinFactory()
    contactor = Contactor(17, factory=factory)
    # A normally-open contact to GND on a pulled-up line: pressed, it pulls the line low.
    estop = FaultInput(5, factory=factory, wiring=ContactWiring("normally_open", "up"),
                       debounce_ms=0, name="estop")
    loop = asyncio.get_running_loop()
    received: list = []
    sup = SafetySupervisor(
        {1: SupervisedConnector(contactor)}, asyncio_notifier(loop, received.append)
    )
    sup.attach_fault_input(K.EMERGENCY_STOP, estop)
    assert sup.request_close(1)
    assert factory.pin(17).state is True
    t = threading.Thread(target=factory.pin(5).drive_low)
    t.start()
    t.join()
    assert factory.pin(17).state is False  # before the loop ran at all
    assert not sup.request_close(1)
    with pytest.raises(Exception, match="interlock"):
        contactor.close()  # a late close from the station cannot undo the trip
    factory.pin(5).drive_high()
    assert sup.request_close(1)
    await asyncio.sleep(0)
    assert [(e.fault.kind, e.active) for e in received] == [
        (K.EMERGENCY_STOP, True),
        (K.EMERGENCY_STOP, False),
    ]


# ---- each interlock -----------------------------------------------------------------------------


def test_emergency_stop_opens_every_connector_and_clears_on_release():
    rig = Rig()
    rig.charge(1)
    rig.charge(2)
    estop = FakeFaultInput()
    rig.sup.attach_fault_input(K.EMERGENCY_STOP, estop)
    estop.set(True)
    assert not rig.contactors[1].commanded_closed and not rig.contactors[2].commanded_closed
    assert rig.sup.blocks_charging(1) and rig.sup.blocks_charging(2)
    assert not rig.sup.request_close(1)
    estop.set(False)
    assert rig.fault_events() == [(K.EMERGENCY_STOP, STATION, True), (K.EMERGENCY_STOP, STATION, False)]
    assert rig.sup.request_close(1)


def test_input_tripped_at_start_is_a_fault_at_once():
    rig = Rig()
    rcd = FakeFaultInput()
    rcd.is_tripped = True
    rig.sup.attach_fault_input(K.RCD_TRIP, rcd)
    assert rig.fault_events() == [(K.RCD_TRIP, STATION, True)]


def test_attach_rejects_non_input_kind():
    with pytest.raises(ValueError, match="not a fault-input kind"):
        Rig().sup.attach_fault_input(K.OVER_CURRENT, FakeFaultInput())


def test_repeated_rcd_trips_latch_for_a_technician():
    rig = Rig(rcd_trips_to_latch=3, rcd_trip_window_s=600)
    rcd = FakeFaultInput()
    rig.sup.attach_fault_input(K.RCD_TRIP, rcd)
    for _ in range(2):
        rcd.set(True)
        rcd.set(False)
        rig.clock.now += 60
    assert rig.sup.active_faults() == frozenset()
    rcd.set(True)
    assert {f.kind for f in rig.sup.active_faults()} == {K.RCD_TRIP, K.RCD_TRIP_REPEATED}
    rcd.set(False)
    assert {f.kind for f in rig.sup.active_faults()} == {K.RCD_TRIP_REPEATED}
    rig.pilots[1] = P.C
    rig.sup.poll_once()
    assert not rig.sup.request_close(1)
    assert rig.sup.clear_by_technician(K.RCD_TRIP_REPEATED)
    assert rig.sup.request_close(1)


def test_rcd_trips_outside_the_window_do_not_latch():
    rig = Rig(rcd_trips_to_latch=2, rcd_trip_window_s=600)
    rcd = FakeFaultInput()
    rig.sup.attach_fault_input(K.RCD_TRIP, rcd)
    rcd.set(True)
    rcd.set(False)
    rig.clock.now += 601
    rcd.set(True)
    assert {f.kind for f in rig.sup.active_faults()} == {K.RCD_TRIP}


def test_over_temperature_derates_stops_and_resumes_with_hysteresis():
    rig = Rig()
    rig.charge(1)
    rig.temps[1] = 62.5  # halfway between derate 60 and stop 65: factor 0.75
    rig.sup.poll_once()
    assert rig.events == [ThermalLimitChanged(1, 12.0)]
    assert rig.contactors[1].commanded_closed
    rig.temps[1] = 65.0
    rig.sup.poll_once()
    assert not rig.contactors[1].commanded_closed
    assert rig.fault_events() == [(K.OVER_TEMPERATURE, 1, True)]
    assert rig.contactors[2].interlocks == set()  # only the hot connector
    rig.temps[1] = 58.0  # below stop, above resume: still stopped
    rig.sup.poll_once()
    assert rig.sup.blocks_charging(1)
    rig.temps[1] = 55.0
    rig.sup.poll_once()
    assert not rig.sup.blocks_charging(1)
    assert rig.events[-2:] == [
        ThermalLimitChanged(1, None),
        FaultChanged(rig.events[-1].fault, False),
    ]
    assert rig.sup.request_close(1)


def test_temperature_sensor_failure_after_repeated_bad_reads():
    rig = Rig(sensor_failures_to_fault=3)
    rig.temps[1] = OSError("i2c nack")
    rig.sup.poll_once()
    rig.sup.poll_once()
    assert rig.sup.active_faults(1) == frozenset()
    rig.sup.poll_once()
    assert rig.fault_events() == [(K.TEMPERATURE_SENSOR_FAILURE, 1, True)]
    rig.temps[1] = float("nan")
    rig.sup.poll_once()
    rig.temps[1] = 30.0
    rig.sup.poll_once()
    assert rig.fault_events()[-1] == (K.TEMPERATURE_SENSOR_FAILURE, 1, False)


@pytest.mark.parametrize(
    ("pilot", "fault"), [(P.E, K.PILOT_ERROR), (P.F, K.PILOT_ERROR), (P.DIODE_FAULT, K.DIODE_FAULT)]
)
def test_pilot_error_while_charging_opens_and_clears_on_unplug(pilot, fault):
    rig = Rig()
    rig.charge(1)
    rig.pilots[1] = pilot
    rig.sup.poll_once()
    assert not rig.contactors[1].commanded_closed
    assert rig.fault_events() == [(fault, 1, True)]
    rig.pilots[1] = P.B
    rig.sup.poll_once()
    assert rig.sup.blocks_charging(1)  # still plugged: stays
    rig.pilots[1] = P.A
    rig.sup.poll_once()
    assert rig.fault_events() == [(fault, 1, True), (fault, 1, False)]
    assert PilotObserved(1, P.A) in rig.events


@pytest.mark.parametrize("pilot", [P.A, P.B])
def test_pilot_leaving_c_opens_without_a_fault(pilot):
    rig = Rig()
    rig.charge(1)
    rig.pilots[1] = pilot
    rig.sup.poll_once()
    assert not rig.contactors[1].commanded_closed
    assert rig.sup.active_faults() == frozenset()
    assert rig.events == [PilotObserved(1, pilot)]


def test_pilot_f_while_open_is_not_a_supervisor_fault():
    rig = Rig()
    rig.pilots[1] = P.F  # we may be driving F ourselves (Unavailable)
    rig.sup.poll_once()
    assert rig.sup.active_faults() == frozenset()


def test_close_refused_unless_pilot_in_c_or_d():
    rig = Rig()
    for pilot, ok in [(P.A, False), (P.B, False), (P.E, False), (P.C, True)]:
        rig.pilots[1] = pilot
        rig.sup.poll_once()
        assert rig.sup.request_close(1) is ok, pilot


def test_pilot_read_failure_opens_and_recovers():
    rig = Rig(sensor_failures_to_fault=2)
    rig.charge(1)
    rig.pilots[1] = OSError("ads1115 gone")
    rig.sup.poll_once()
    assert rig.contactors[1].commanded_closed  # one bad read is tolerated
    rig.sup.poll_once()
    assert not rig.contactors[1].commanded_closed
    assert rig.fault_events() == [(K.PILOT_READ_FAILURE, 1, True)]
    rig.pilots[1] = P.C
    rig.sup.poll_once()
    assert rig.fault_events()[-1] == (K.PILOT_READ_FAILURE, 1, False)


def test_welded_contactor_latches_until_technician_and_condition_gone():
    rig = Rig()
    rig.contactors[1].feedback = "welded"
    rig.sup.poll_once()
    assert rig.fault_events() == [(K.CONTACTOR_WELDED, 1, True)]
    assert not rig.sup.clear_by_technician(K.CONTACTOR_WELDED, 1)  # still welded
    rig.contactors[1].feedback = "ok"  # repaired
    rig.pilots[1] = P.C
    rig.sup.poll_once()
    assert not rig.sup.request_close(1)  # repaired is not cleared
    rig.pilots[1] = P.A
    rig.sup.poll_once()
    assert rig.sup.blocks_charging(1)  # unplugging does not clear it either
    assert rig.sup.clear_by_technician(K.CONTACTOR_WELDED, 1)
    assert not rig.sup.blocks_charging(1)
    assert not rig.sup.clear_by_technician(K.CONTACTOR_WELDED, 1)  # nothing left to clear


def test_contactor_failed_to_close_opens_and_clears_on_unplug():
    rig = Rig()
    rig.charge(1)
    rig.contactors[1].feedback = "failed_to_close"
    rig.sup.poll_once()
    assert not rig.contactors[1].commanded_closed
    assert rig.fault_events() == [(K.CONTACTOR_FAILED_TO_CLOSE, 1, True)]
    rig.contactors[1].feedback = "ok"
    rig.sup.poll_once()
    assert rig.sup.blocks_charging(1)
    rig.pilots[1] = P.A
    rig.sup.poll_once()
    assert not rig.sup.blocks_charging(1)


def test_pending_feedback_is_not_judged():
    rig = Rig()
    rig.contactors[1].feedback = "pending"
    rig.sup.poll_once()
    assert rig.sup.active_faults() == frozenset()


def test_over_current_needs_to_persist():
    rig = Rig(
        over_current=OverCurrentSettings(tolerance_fraction=0.1, tolerance_min_a=1.0, persist_s=5.0)
    )
    rig.charge(1, amps=16.0)
    rig.sample(1, 17.5)  # within 16 + 1.6
    rig.sup.poll_once()
    rig.clock.now += 10
    rig.sup.poll_once()
    assert rig.sup.active_faults() == frozenset()
    rig.sample(1, 18.0)
    rig.sup.poll_once()
    rig.clock.now += 4.9
    rig.sample(1, 18.0)
    rig.sup.poll_once()
    assert rig.contactors[1].commanded_closed
    rig.clock.now += 0.1
    rig.sup.poll_once()
    assert not rig.contactors[1].commanded_closed
    assert rig.fault_events() == [(K.OVER_CURRENT, 1, True)]
    rig.offered[1] = None
    rig.sup.poll_once()
    assert rig.sup.blocks_charging(1)  # waits for the unplug
    rig.pilots[1] = P.A
    rig.sup.poll_once()
    assert rig.fault_events()[-1] == (K.OVER_CURRENT, 1, False)


def test_over_current_resets_when_current_drops():
    rig = Rig()
    rig.charge(1, amps=16.0)
    rig.sample(1, 20.0)
    rig.sup.poll_once()
    rig.clock.now += 4
    rig.sample(1, 15.0)
    rig.sup.poll_once()
    rig.clock.now += 2
    rig.sample(1, 20.0)
    rig.sup.poll_once()
    assert rig.sup.active_faults() == frozenset()


def test_over_current_gives_the_ev_time_to_follow_a_lower_limit():
    rig = Rig(over_current=OverCurrentSettings(persist_s=2.0, follow_time_s=5.0))
    rig.charge(1, amps=16.0)
    rig.sample(1, 15.5)
    rig.sup.poll_once()
    rig.offered[1] = 8.0  # lowered: the EV draws 15.5 A for a while
    rig.sup.poll_once()
    for _ in range(4):
        rig.clock.now += 1.2
        rig.wall.now += 1.2
        rig.sample(1, 15.5)
        rig.sup.poll_once()
    assert rig.sup.active_faults() == frozenset()  # 4.8 s: still allowed to follow
    for _ in range(3):
        rig.clock.now += 1.0
        rig.wall.now += 1.0
        rig.sample(1, 15.5)
        rig.sup.poll_once()
    assert {f.kind for f in rig.sup.active_faults()} == {K.OVER_CURRENT}


def test_stale_meter_sample_is_not_an_over_current():
    rig = Rig()
    rig.charge(1, amps=16.0)
    rig.sample(1, 40.0)
    rig.wall.now += 60  # the sample is a minute old: a frozen meter, not a vehicle
    for _ in range(10):
        rig.clock.now += 1
        rig.sup.poll_once()
    assert rig.sup.active_faults() == frozenset()


def test_meter_fault_is_reported_without_opening():
    rig = Rig()
    rig.charge(1)
    rig.sup.meter_fault(1, True, "timeout")
    assert rig.contactors[1].commanded_closed
    assert rig.fault_events() == [(K.METER_FAILURE, 1, True)]
    rig.sup.meter_fault(1, False)
    assert rig.fault_events()[-1] == (K.METER_FAILURE, 1, False)


def test_monitor_error_latches_internal_error_and_opens_everything():
    rig = Rig()
    rig.charge(1)

    def broken() -> float:
        raise ZeroDivisionError("bug")

    rig.sup._watch[1].hw.read_offered_current_a = broken
    rig.sup.poll_once()
    assert not rig.contactors[1].commanded_closed
    assert rig.fault_events() == [(K.INTERNAL_ERROR, STATION, True)]
    rig.sup._watch[1].hw.read_offered_current_a = lambda: None
    rig.sup.poll_once()
    assert rig.sup.blocks_charging(2)
    assert rig.sup.clear_by_technician(K.INTERNAL_ERROR)


def test_clearing_one_fault_keeps_the_other_interlock():
    rig = Rig()
    rig.charge(1)
    estop, rcd = FakeFaultInput(), FakeFaultInput()
    rig.sup.attach_fault_input(K.EMERGENCY_STOP, estop)
    rig.sup.attach_fault_input(K.RCD_TRIP, rcd)
    estop.set(True)
    rcd.set(True)
    estop.set(False)
    assert not rig.sup.request_close(1)
    assert rig.contactors[1].interlocks == {"rcd_trip@station"}


def test_notify_failure_does_not_stop_the_interlock():
    contactor = FakeContactor()

    def bad_notify(_event) -> None:
        raise RuntimeError("loop gone")

    sup = SafetySupervisor({1: SupervisedConnector(contactor)}, bad_notify)
    rcd = FakeFaultInput()
    sup.attach_fault_input(K.RCD_TRIP, rcd)
    sup.request_close(1)
    rcd.set(True)
    assert not contactor.commanded_closed


async def test_asyncio_notifier_after_loop_closed_does_not_raise():
    loop = asyncio.new_event_loop()
    notify = asyncio_notifier(loop, lambda e: None)
    loop.close()
    notify(PilotObserved(1, P.A))


def test_bad_arguments_are_typed_errors():
    rig = Rig()
    with pytest.raises(UnknownConnectorError, match="no supervised connector 9"):
        rig.sup.request_close(9)
    with pytest.raises(UnknownConnectorError):
        rig.sup.update_meter(9, MeterSample(timestamp=0, energy_import_wh=0))
    with pytest.raises(ValueError, match="poll_interval_s"):
        SafetySettings(poll_interval_s=0)
    with pytest.raises(ValueError, match="tolerance_fraction"):
        OverCurrentSettings(tolerance_fraction=-1)
    with pytest.raises(ValueError, match="at least one"):
        SafetySupervisor({}, lambda e: None)


def test_start_twice_is_an_error():
    rig = Rig(poll_interval_s=0.01)
    rig.sup.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            rig.sup.start()
    finally:
        rig.sup.stop()


# ---- the recovery rules, as a table ---------------------------------------------------------------

# kind -> (clears when gone while plugged, clears when gone and unplugged, technician needed)
RECOVERY_TABLE = {
    K.RCD_TRIP: (True, True, False),
    K.RCD_TRIP_REPEATED: (False, False, True),
    K.EMERGENCY_STOP: (True, True, False),
    K.OVER_TEMPERATURE: (True, True, False),
    K.PILOT_ERROR: (False, True, False),
    K.DIODE_FAULT: (False, True, False),
    K.CONTACTOR_WELDED: (False, False, True),
    K.CONTACTOR_FAILED_TO_CLOSE: (False, True, False),
    K.OVER_CURRENT: (False, True, False),
    K.OVER_VOLTAGE: (True, True, False),
    K.UNDER_VOLTAGE: (True, True, False),
    K.LOCK_FAILURE: (False, True, False),
    K.METER_FAILURE: (True, True, False),
    K.READER_FAILURE: (True, True, False),
    K.PILOT_READ_FAILURE: (True, True, False),
    K.TEMPERATURE_SENSOR_FAILURE: (True, True, False),
    K.INTERNAL_ERROR: (False, False, True),
    K.RCM_SELF_TEST_FAILED: (True, True, False),
    K.SUPERVISION_LOST: (True, True, False),
}


@pytest.mark.parametrize("kind", list(FaultKind))
def test_recovery_rules(kind):
    plugged, unplugged, technician = RECOVERY_TABLE[kind]
    assert may_clear(kind, condition_present=False, pilot=P.C, by_technician=False) is plugged
    assert may_clear(kind, condition_present=False, pilot=P.A, by_technician=False) is unplugged
    assert (FAULT_SPECS[kind].clear_rule is ClearRule.TECHNICIAN) is technician
    # Nobody clears a fault whose condition is still there; a technician clears any other.
    assert may_clear(kind, condition_present=True, pilot=P.A, by_technician=True) is False
    assert may_clear(kind, condition_present=False, pilot=P.C, by_technician=True) is True


def test_latched_fault_restored_at_start_blocks_until_technician():
    rig = Rig()
    rig.sup.restore_latched_fault(K.CONTACTOR_WELDED, 1)
    rig.pilots[1] = P.C
    rig.sup.poll_once()
    assert not rig.sup.request_close(1)
    assert rig.fault_events() == [(K.CONTACTOR_WELDED, 1, True)]
    assert rig.sup.clear_by_technician(K.CONTACTOR_WELDED, 1)
    assert rig.sup.request_close(1)
    with pytest.raises(ValueError, match="clears by itself"):
        rig.sup.restore_latched_fault(K.RCD_TRIP)
    with pytest.raises(UnknownConnectorError):
        rig.sup.restore_latched_fault(K.CONTACTOR_WELDED, 7)


# ---- a technician's test and a silent station -------------------------------------------------


def test_a_silent_station_holds_charging_open_but_not_a_technicians_test():
    rig = Rig()
    rig.sup.poll_once()  # no vehicle: pilot A seen
    rig.sup.condition(K.SUPERVISION_LOST, STATION, True, "no heartbeat")
    assert not rig.sup.request_close(1)
    rig.sup.begin_test(1)
    assert rig.sup.request_test_close(1)  # the safety core runs the test itself
    assert rig.contactors[2].interlocks == {"supervision_lost@station"}  # not under test
    rig.sup.condition(K.SUPERVISION_LOST, STATION, True, "still no heartbeat")
    assert rig.contactors[1].commanded_closed  # judged again: the test is still spared
    rig.sup.end_test(1)
    assert not rig.contactors[1].commanded_closed
    assert rig.contactors[1].interlocks == {"supervision_lost@station"}  # held again after
    rig.sup.begin_test(1)
    rig.sup.condition(K.RCD_TRIP, STATION, True, "tripped")
    assert not rig.contactors[1].commanded_closed and not rig.sup.request_test_close(1)
