"""The safety core: the board's dangerous parts and the interlocks around them, in one object that
runs on its own threads, in whichever process owns the hardware.

It builds on :class:`~chargerfw.station.safety.SafetySupervisor` (the interlock rules, the
monitor thread, the fault registry) and adds what the owner of the hardware must do besides:

* drive the control pilot and the lock on the station's request;
* the RCM self-test (IEC 62955 RDC-DD practice): at start-up, and before a contactor closes
  while no other contactor is closed (a test trips the RCM, which is shared by every connector).
  A close waits for the test; a test that fails raises ``RCM_SELF_TEST_FAILED`` and refuses;
* the station's heartbeat, when the core runs in the safety process: silence longer than the
  bound raises ``SUPERVISION_LOST``, which opens every contactor until the heartbeat is back;
* a technician's hardware test (:meth:`SafetyCore.run_test`), under the interlocks: the monitor
  keeps watching inputs and pilot while a contactor is closed for a test, and opens it the
  moment anything changes.

Every public method is thread-safe and returns quickly, except :meth:`drive_lock`,
:meth:`rcm_self_test` and :meth:`run_test`, which wait for hardware (call them off an event
loop).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from chargerfw.config import StationConfig
from chargerfw.config.wiring import (
    UNMONITORED_CONTACTOR,
    contactors_without_mirror,
    inputs_not_fail_safe,
)
from chargerfw.drivers.board import Board
from chargerfw.drivers.contactor import Contactor
from chargerfw.drivers.fault_inputs import RcmSelfTestResult, RcmSelfTestUnavailableError
from chargerfw.drivers.lock import LockResult
from chargerfw.drivers.types import ContactorFeedback, MeterSample, PilotMode, PilotState
from chargerfw.logs import get_logger
from chargerfw.safety.results import (
    ContactorTestReply,
    ContactorVerdict,
    HardwareTestReply,
    RcdTestReply,
)
from chargerfw.safety.sequences import (
    Refusal,
    run_contactor_sequence,
    run_lock_test,
    run_pilot_test,
    run_rcd_test,
)
from chargerfw.station.enums import STATION
from chargerfw.station.faults import Fault, FaultKind
from chargerfw.station.safety import (
    FaultChanged,
    Notify,
    PilotObserved,
    SafetyEvent,
    SafetySettings,
    SafetySupervisor,
    SupervisedConnector,
)
from chargerfw.station.technician import HardwareTest

log = get_logger(__name__)

HEARTBEAT_CHECK_S = 0.01  # how often the heartbeat watch looks (well under any bound)
PILOT_SETTLE_S = 2.0  # for the monitor to confirm the pilot behind our state F


@dataclass(frozen=True, slots=True)
class PilotCommand:
    """What the station asks the pilot generator for."""

    mode: PilotMode
    current_a: float | None = None  # PWM only


@dataclass(frozen=True, slots=True)
class ConnectorReading:
    """What the safety core sees on one connector now."""

    connector_id: int
    pilot: PilotState | None  # None until the monitor's first good read
    contactor_closed: bool  # commanded
    offered_current_a: float | None
    temperature_c: float | None


class SafetyCore:
    """The interlocks and the devices they guard, for one station."""

    def __init__(
        self,
        config: StationConfig,
        board: Board,
        notify: Notify,
        settings: SafetySettings | None = None,
        *,
        heartbeat_bound_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.board = board
        self.heartbeat_bound_s = heartbeat_bound_s
        self._clock = clock
        # The monitor thread reads the sensors; readers elsewhere take the last good value.
        self.temperatures: dict[int, float | None] = {}
        self._notify = notify
        self._test: _TestWatch | None = None  # the technician's test running now
        self.supervisor = SafetySupervisor(
            {section.id: self._supervised(section.id) for section in config.connector},
            self._relay,
            settings,
            clock=clock,
        )
        self._lock = threading.Lock()
        self._rcm_passed_at: float | None = None
        self._closing: set[int] = set()  # closes waiting for an RCM self-test
        self._heartbeat_at: float | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- life ---------------------------------------------------------------------------------

    def start(self, self_test: bool = True) -> None:
        """Attach the fault inputs, start the monitor (and the heartbeat watch), then run the
        start-up RCM self-test (unless ``self_test`` is False: a technician's session). A safety
        input wired so that a cut wire reads healthy is allowed, and warned about."""
        for item in inputs_not_fail_safe(self.config):
            log.warning("safety.input_not_fail_safe", input=item.key, why=item.why_not_fail_safe)
        for key in contactors_without_mirror(self.config):
            log.warning("safety.contactor_unmonitored", contactor=key, why=UNMONITORED_CONTACTOR)
        board = self.board
        if board.rcm is not None:
            self.supervisor.attach_fault_input(FaultKind.RCD_TRIP, board.rcm)
        if board.emergency_stop is not None:
            self.supervisor.attach_fault_input(FaultKind.EMERGENCY_STOP, board.emergency_stop)
        self.supervisor.start()
        if self.heartbeat_bound_s is not None:
            self._heartbeat_at = self._clock()
            self._spawn(self._watch_heartbeat, "safety-heartbeat")
        if self_test and self.has_rcm_self_test:
            self.rcm_self_test()

    def stop(self) -> None:
        self._stop.set()
        self.supervisor.open_all()
        self.supervisor.stop()
        for thread in self._threads:
            thread.join(1.0)
        self._threads.clear()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def wait_for_first_poll(self, timeout_s: float = 5.0) -> None:
        """Until the monitor has read every connector once (its pilot is known)."""
        deadline = self._clock() + timeout_s
        while self.supervisor.last_poll is None and self._clock() < deadline:
            time.sleep(0.01)

    @property
    def monitor_current(self) -> bool:
        """The monitor polled within the last few intervals (a stuck poll is not current)."""
        last = self.supervisor.last_poll
        interval = self.supervisor.settings.poll_interval_s
        return last is not None and self._clock() - last <= max(1.0, 10 * interval)

    # -- the contactor ------------------------------------------------------------------------

    def request_close(self, connector_id: int) -> bool:
        """Close the contactor if the interlocks allow it. False: refused now (a fault, the
        pilot not in C/D). True: closed, or closing once an RCM self-test has passed (a test
        that fails raises its fault, which the station hears)."""
        if not self._self_test_before_close():
            return self.supervisor.request_close(connector_id)
        if not self.supervisor.may_close(connector_id):
            return False
        with self._lock:
            if connector_id in self._closing:
                return True
            self._closing.add(connector_id)
        self._spawn(lambda: self._test_then_close(connector_id), f"close-{connector_id}")
        return True

    def _self_test_before_close(self) -> bool:
        """A test trips the RCM, which every connector shares: only while none is closed."""
        if not self.has_rcm_self_test:
            return False
        return not any(d.contactor.commanded_closed for d in self.board.connectors.values())

    def _test_then_close(self, connector_id: int) -> None:
        try:
            if self.rcm_self_test().passed and not self._stop.is_set():
                if not self.supervisor.request_close(connector_id):
                    log.warning("safety.close_refused_after_test", connector=connector_id)
        finally:
            with self._lock:
                self._closing.discard(connector_id)

    def request_open(self, connector_id: int) -> None:
        self.supervisor.request_open(connector_id)

    def open_all(self) -> None:
        self.supervisor.open_all()

    def contactor_closed(self, connector_id: int) -> bool:
        return self.board.connectors[connector_id].contactor.commanded_closed

    # -- the RCM self-test --------------------------------------------------------------------

    @property
    def has_rcm_self_test(self) -> bool:
        rcm = self.board.rcm
        return rcm is not None and rcm.has_self_test

    def rcm_self_test(self) -> RcmSelfTestResult:
        """Pulse the RCM's test output with every contactor held open; the result raises or
        clears ``RCM_SELF_TEST_FAILED``. The test's own trip is not an RCD fault."""
        rcm = self.board.rcm
        if rcm is None or not rcm.has_self_test:
            raise RcmSelfTestUnavailableError("the station has no [rcm] with a test_pin")
        try:
            result = self.supervisor.run_rcm_self_test(rcm.self_test)
        except RcmSelfTestUnavailableError as exc:  # the RCM is tripped already
            log.warning("safety.rcm_self_test_unavailable", error=str(exc))
            return RcmSelfTestResult(tripped=False, cleared=False)
        if result.passed:
            self._rcm_passed_at = self._clock()
        self.supervisor.condition(
            FaultKind.RCM_SELF_TEST_FAILED,
            STATION,
            not result.passed,
            "no trip on the test pulse"
            if not result.tripped
            else "did not release after the test pulse",
        )
        return result

    # -- a technician's hardware test ---------------------------------------------------------

    def run_test(self, test: HardwareTest, connector_id: int = STATION) -> HardwareTestReply:
        """Run a hardware test under the interlocks (the caller refused what the technician
        rules refuse, and paused the connectors). A connector held in state F gets +12 V first
        so the monitor can see whether a vehicle is behind it. Raises :class:`Refusal` when the
        test cannot go on. Blocks for the test's length."""
        ids = list(self.board.connectors) if test is HardwareTest.RCD else [connector_id]
        supervised = STATION if test is HardwareTest.RCD else connector_id
        watch = _TestWatch(connector_id)
        self._test = watch
        self.supervisor.begin_test(supervised)
        try:
            self._settle_pilots(ids)
            # From here on a change of the pilot ends a contactor test (a vehicle arrived).
            watch.pilot_ends_it = test is HardwareTest.CONTACTOR
            result = self._sequence(test, connector_id, watch)
        finally:
            self.supervisor.end_test(supervised)
            self._test = None
        found = sorted(set(watch.faults))
        if isinstance(result, ContactorTestReply):
            # The monitor may act first (it opens a contactor that failed to close): its
            # faults are findings of the test too.
            still = {f.kind for f in self.supervisor.active_faults(connector_id)}
            verdict = result.result
            if FaultKind.CONTACTOR_WELDED in still or FaultKind.CONTACTOR_WELDED in found:
                verdict = ContactorVerdict.WELDED
            elif FaultKind.CONTACTOR_FAILED_TO_CLOSE in found and verdict is ContactorVerdict.OK:
                verdict = ContactorVerdict.FAILED_TO_CLOSE
            return msgspec.structs.replace(
                result,
                result=verdict,
                faults_raised=found,
                interrupted_by=watch.ended_by,
                passed=verdict is ContactorVerdict.OK and not found and watch.ended_by is None,
            )
        if isinstance(result, RcdTestReply):
            # The RCM's own trip is what the test is about; another fault fails it.
            if result.passed:
                self._rcm_passed_at = self._clock()
            self.supervisor.condition(
                FaultKind.RCM_SELF_TEST_FAILED,
                STATION,
                not result.passed,
                "the technician's RCD test failed",
            )
            unexpected = set(found) - {FaultKind.RCD_TRIP}
            return msgspec.structs.replace(
                result, faults_raised=found, passed=result.passed and not unexpected
            )
        return msgspec.structs.replace(result, faults_raised=found)

    def _sequence(
        self, test: HardwareTest, connector_id: int, watch: _TestWatch
    ) -> HardwareTestReply:
        if test is HardwareTest.RCD:
            if not self.has_rcm_self_test:
                raise Refusal("the station has no [rcm] with a test_pin")
            return run_rcd_test(self.board)
        devices = self.board.connectors[connector_id]
        if test is HardwareTest.CONTACTOR:
            return run_contactor_sequence(
                _SupervisedTestContactor(
                    self.supervisor, connector_id, devices.contactor, watch
                ),
                connector_id,
            )
        if test is HardwareTest.PILOT:
            return run_pilot_test(devices, self.config.connector_by_id(connector_id).max_current_a)
        if devices.lock is None:
            raise Refusal(f"connector {connector_id} has no [connector.lock]")
        return run_lock_test(devices)

    def _settle_pilots(self, connector_ids: list[int]) -> None:
        held = [cid for cid in connector_ids if self.supervisor.pilot_of(cid) is PilotState.F]
        for cid in held:
            self.board.connectors[cid].pilot.set_standby()
        deadline = self._clock() + PILOT_SETTLE_S
        while any(self.supervisor.pilot_of(cid) is PilotState.F for cid in held):
            if self._clock() > deadline:
                raise Refusal("the pilot stays in F on +12 V: check the pilot generator")
            time.sleep(0.02)
        for cid in held:
            reading = self.supervisor.pilot_of(cid)
            if reading is not PilotState.A:
                shown = reading.value if reading is not None else "nothing"
                raise Refusal(
                    f"connector {cid}: pilot reads {shown} on +12 V (a vehicle or a "
                    "wiring fault): unplug it first"
                )

    def _relay(self, event: SafetyEvent) -> None:
        """The supervisor's events: a running test hears them first, then the owner."""
        watch = self._test
        if watch is not None:
            watch.hear(event)
        self._notify(event)

    # -- pilot and lock -----------------------------------------------------------------------

    def set_pilot(self, connector_id: int, command: PilotCommand) -> None:
        pilot = self.board.connectors[connector_id].pilot
        if command.mode is PilotMode.PWM:
            if command.current_a is None:
                raise ValueError("a PWM pilot needs current_a")
            pilot.set_current_limit(command.current_a)
        elif command.mode is PilotMode.STATE_F:
            pilot.set_state_f()
        else:
            pilot.set_standby()

    def has_lock(self, connector_id: int) -> bool:
        return self.board.connectors[connector_id].lock is not None

    def drive_lock(self, connector_id: int, locked: bool) -> LockResult:
        """Lock or unlock, waiting for the feedback switch (blocks: call it off a loop)."""
        lock = self.board.connectors[connector_id].lock
        if lock is None:
            raise ValueError(f"connector {connector_id} has no lock")
        return lock.lock() if locked else lock.unlock()

    # -- what the station reports -------------------------------------------------------------

    def update_meter(self, connector_id: int, sample: MeterSample) -> None:
        self.supervisor.update_meter(connector_id, sample)

    def meter_fault(self, connector_id: int, active: bool, detail: str = "") -> None:
        self.supervisor.meter_fault(connector_id, active, detail)

    def heartbeat(self) -> None:
        """The station is alive; a silence longer than the bound opens every contactor."""
        self._heartbeat_at = self._clock()

    def station_gone(self) -> None:
        """The station's connection closed (it exited, crashed or was killed): every contactor
        opens now, without waiting out the bound, until a station's heartbeat is back."""
        self._heartbeat_at = None
        self.supervisor.condition(
            FaultKind.SUPERVISION_LOST, STATION, True, "the station's connection closed"
        )

    def _watch_heartbeat(self) -> None:
        bound = self.heartbeat_bound_s
        assert bound is not None
        silent = False
        while not self._stop.wait(HEARTBEAT_CHECK_S):
            last = self._heartbeat_at
            now_silent = last is None or self._clock() - last > bound
            if now_silent != silent:
                silent = now_silent
                self.supervisor.condition(
                    FaultKind.SUPERVISION_LOST,
                    STATION,
                    silent,
                    f"no heartbeat for more than {bound * 1000:.0f} ms",
                )

    # -- faults -------------------------------------------------------------------------------

    def active_faults(self, connector_id: int | None = None) -> frozenset[Fault]:
        return self.supervisor.active_faults(connector_id)

    def pilot(self, connector_id: int) -> PilotState | None:
        return self.supervisor.pilot_of(connector_id)

    def clear_by_technician(self, kind: FaultKind, connector_id: int = STATION) -> bool:
        return self.supervisor.clear_by_technician(kind, connector_id)

    def restore_latched_fault(
        self, kind: FaultKind, connector_id: int = STATION, detail: str = ""
    ) -> None:
        self.supervisor.restore_latched_fault(kind, connector_id, detail)

    def temperature_c(self, connector_id: int) -> float | None:
        return self.temperatures.get(connector_id)

    def readings(self) -> list[ConnectorReading]:
        return [
            ConnectorReading(
                cid,
                self.supervisor.pilot_of(cid),
                devices.contactor.commanded_closed,
                devices.pilot.offered_current_a,
                self.temperatures.get(cid),
            )
            for cid, devices in sorted(self.board.connectors.items())
        ]

    # -- wiring -------------------------------------------------------------------------------

    def _supervised(self, connector_id: int) -> SupervisedConnector:
        section = next(c for c in self.config.connector if c.id == connector_id)
        devices = self.board.connectors[connector_id]
        pilot = devices.pilot
        sensor = devices.temperature
        read_temperature: Callable[[], float] | None = None
        if sensor is not None:
            read_celsius = sensor.read_celsius

            def read_and_remember() -> float:
                try:
                    celsius = read_celsius()
                except Exception:
                    self.temperatures[connector_id] = None  # no stale value in MeterValues
                    raise
                # A plain dict write: atomic under the GIL.
                self.temperatures[connector_id] = None if celsius != celsius else round(celsius, 1)
                return celsius

            read_temperature = read_and_remember
        return SupervisedConnector(
            contactor=devices.contactor,
            read_pilot=lambda: pilot.read().state,
            read_offered_current_a=lambda: pilot.offered_current_a,
            read_temperature_c=read_temperature,
            temperature_limits=section.temperature,
            max_current_a=section.max_current_a,
        )


class _TestWatch:
    """What happened while a technician's test ran: the faults raised, and what ended a
    contactor test early (a fault, or the pilot changing: a vehicle arrived)."""

    def __init__(self, connector_id: int) -> None:
        self.connector_id = connector_id
        self.faults: list[FaultKind] = []
        self.pilot_ends_it = False
        self.ended_by: str | None = None

    def hear(self, event: SafetyEvent) -> None:
        if isinstance(event, FaultChanged) and event.active:
            self.faults.append(event.fault.kind)
            self.ended_by = self.ended_by or f"fault {event.fault.kind.value}"
        elif (
            isinstance(event, PilotObserved)
            and self.pilot_ends_it
            and event.connector_id == self.connector_id
        ):
            self.ended_by = self.ended_by or f"pilot {event.pilot.value}"


class _SupervisedTestContactor:
    """The contactor as the contactor test drives it: it closes only through
    :meth:`SafetySupervisor.request_test_close` (no fault, no vehicle), never around it."""

    def __init__(
        self,
        supervisor: SafetySupervisor,
        connector_id: int,
        contactor: Contactor,
        watch: _TestWatch,
    ) -> None:
        self._supervisor = supervisor
        self._connector_id = connector_id
        self._contactor = contactor
        self._watch = watch
        self._closing = False

    @property
    def interrupted(self) -> bool:
        return self._watch.ended_by is not None

    @property
    def feedback_timeout_s(self) -> float:
        return self._contactor.feedback_timeout_s

    def close(self) -> None:
        self._closing = True
        if not self._supervisor.request_test_close(self._connector_id):
            raise Refusal(
                "the safety supervisor refused to close the contactor (a fault, or "
                "the pilot left A)"
            )

    def open(self) -> None:
        self._closing = False
        self._supervisor.request_open(self._connector_id)

    def check_feedback(self) -> ContactorFeedback:
        # The monitor may see the failure first and open the coil: its verdict is the step's.
        active = {f.kind for f in self._supervisor.active_faults(self._connector_id)}
        if self._closing and FaultKind.CONTACTOR_FAILED_TO_CLOSE in active:
            return ContactorFeedback.FAILED_TO_CLOSE
        return self._contactor.check_feedback()
