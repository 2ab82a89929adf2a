"""Safety interlocks that act on their own thread, never waiting for asyncio or the backend.

The :class:`SafetySupervisor` is called from hardware threads (RPi.GPIO's event thread runs the
fault-input callbacks) and from its own monitor thread, which polls each connector's pilot,
contactor feedback, temperature and the latest meter sample at a fixed rate. On a fault it
opens the contactor *on the calling thread* (``contactor.interlock(reason)`` opens at once and
makes any later ``close()`` fail until released), records a typed :class:`Fault`, and only then
tells the asyncio side through a thread-safe ``notify`` callable (see :func:`asyncio_notifier`).

Interlocks (OCPP 1.6 error codes: see ``faults.py``):

* RCD/RCM trip, emergency stop — station-wide, from fault-input callbacks (and a poll backstop).
* Over-temperature — stop at ``stop_at_c``, resume at ``resume_at_c``, derate in between
  (reported as a thermal current limit for the connector state machine).
* Pilot E/F or diode fault while the contactor is closed; and, for any pilot other than C/D
  while closed (vehicle stopped or unplugged under load), the contactor opens without a fault.
* Contactor feedback mismatch: welded (latched for a technician) or failed to close.
* Current persistently above the offered limit (rule and numbers in ``metering.py``).
* A sensor that stops answering (pilot ADC, temperature) after ``sensor_failures_to_fault``
  consecutive failed reads; an unexpected error in the monitor itself latches InternalError.

Recovery follows ``faults.may_clear``. ``rcd_trips_to_latch`` RCD trips within
``rcd_trip_window_s`` latch ``RCD_TRIP_REPEATED`` for a technician.

Threading: one lock guards the fault registry; contactor calls are made under it so that a
concurrent :meth:`SafetySupervisor.request_close` cannot slip between a fault and its opening.
``notify`` is called after the lock is released.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from chargerfw.config import TemperatureSection
from chargerfw.drivers.types import CHARGING_PILOT, MeterSample, PilotState
from chargerfw.logs import get_logger
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FAULT_SPECS, ClearRule, Fault, FaultKind, may_clear
from chargerfw.station.metering import OverCurrentDetector, OverCurrentSettings, fresh_current_a
from chargerfw.station.technician import TOLERATED_BY_EVERY_TEST
from chargerfw.station.thermal import ThermalState, thermal_decision

if TYPE_CHECKING:
    import asyncio

log = get_logger(__name__)

RCM_SELF_TEST_HOLD = "rcm_self_test"  # the interlock that holds contactors open during a test

T = TypeVar("T")


class SupervisedContactor(Protocol):
    """What the supervisor needs of a contactor (``chargerfw.drivers.contactor.Contactor``)."""

    @property
    def commanded_closed(self) -> bool: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def interlock(self, reason: str) -> None:
        """Open at once and refuse ``close()`` until released."""

    def release_interlock(self, reason: str) -> None: ...

    def check_feedback(self) -> str:
        """A ``ContactorFeedback`` value: ok, pending, welded, failed_to_close, no_feedback."""
        ...


class FaultInputLike(Protocol):
    """What the supervisor needs of a trip input (``chargerfw.drivers.fault_inputs.FaultInput``)."""

    @property
    def is_tripped(self) -> bool: ...

    def on_trip(self, callback: Callable[[], None]) -> None: ...

    def on_clear(self, callback: Callable[[], None]) -> None: ...

    def refresh(self) -> bool: ...


@dataclass
class SupervisedConnector:
    """One connector's hardware as the monitor sees it. Readers may raise; they run on the
    monitor thread and may block briefly (an ADC burst)."""

    contactor: SupervisedContactor
    read_pilot: Callable[[], PilotState] | None = None
    read_offered_current_a: Callable[[], float | None] | None = None  # what the PWM offers
    read_temperature_c: Callable[[], float] | None = None
    temperature_limits: TemperatureSection | None = None
    max_current_a: float = 16.0


@dataclass(frozen=True, slots=True)
class SafetySettings:
    poll_interval_s: float = 0.1
    over_current: OverCurrentSettings = field(default_factory=OverCurrentSettings)
    rcd_trips_to_latch: int = 3
    rcd_trip_window_s: float = 3600.0
    sensor_failures_to_fault: int = 3

    def __post_init__(self) -> None:
        if self.poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {self.poll_interval_s}")
        if self.rcd_trips_to_latch < 1:
            raise ValueError(f"rcd_trips_to_latch must be >= 1, got {self.rcd_trips_to_latch}")
        if self.sensor_failures_to_fault < 1:
            raise ValueError("sensor_failures_to_fault must be >= 1")


# ---- what the asyncio side is told ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultChanged:
    """A fault was raised (``active``) or cleared. ``fault.connector_id`` 0: every connector."""

    fault: Fault
    active: bool


@dataclass(frozen=True, slots=True)
class PilotObserved:
    connector_id: int
    pilot: PilotState


@dataclass(frozen=True, slots=True)
class ThermalLimitChanged:
    connector_id: int
    limit_a: float | None  # None: no derating


SafetyEvent = FaultChanged | PilotObserved | ThermalLimitChanged
Notify = Callable[[SafetyEvent], None]


def asyncio_notifier(loop: asyncio.AbstractEventLoop, handler: Notify) -> Notify:
    """A ``notify`` that runs ``handler(event)`` on ``loop``'s thread, from any thread."""

    def notify(event: SafetyEvent) -> None:
        try:
            loop.call_soon_threadsafe(handler, event)
        except RuntimeError:  # loop closed during shutdown: the contactor is open anyway
            log.warning("safety.notify_dropped", what=type(event).__name__)

    return notify


class UnknownConnectorError(KeyError):
    def __init__(self, connector_id: int) -> None:
        super().__init__(connector_id)
        self.connector_id = connector_id

    def __str__(self) -> str:
        return f"no supervised connector {self.connector_id}"


@dataclass
class _ConnectorWatch:
    hw: SupervisedConnector
    over_current: OverCurrentDetector
    pilot: PilotState | None = None
    thermal: ThermalState = ThermalState.NORMAL
    thermal_limit_a: float | None = None
    meter_sample: MeterSample | None = None
    pilot_failures: int = 0
    temperature_failures: int = 0


_Key = tuple[FaultKind, int]  # the connector, or STATION


def _reason(key: _Key) -> str:
    """The contactor interlock name of one fault: one per fault, so clearing one fault never
    releases another's hold."""
    kind, cid = key
    return f"{kind.value}@{'station' if cid == STATION else cid}"


class SafetySupervisor:
    """Owns the interlocks of a station. All public methods are thread-safe."""

    def __init__(
        self,
        connectors: Mapping[int, SupervisedConnector],
        notify: Notify,
        settings: SafetySettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not connectors:
            raise ValueError("a station needs at least one supervised connector")
        self.settings = settings or SafetySettings()
        self._notify = notify
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._watch = {
            cid: _ConnectorWatch(hw, OverCurrentDetector(self.settings.over_current))
            for cid, hw in connectors.items()
        }
        self._faults: dict[_Key, Fault] = {}
        self._present: set[_Key] = set()  # faults whose condition is still there
        self._rcd_trips: deque[float] = deque()
        self._fault_inputs: list[tuple[FaultKind, FaultInputLike]] = []
        self._rcm_self_test = False  # the RCM's trips are its self-test's, not a fault
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_poll: float | None = None  # monotonic time of the last completed poll
        # Connectors (STATION: the RCM) under a technician's hardware test.
        self._testing: set[int] = set()

    # ---- queries ----------------------------------------------------------------------------

    def active_faults(self, connector_id: int | None = None) -> frozenset[Fault]:
        """Faults of one connector plus the station-wide ones (all faults when None)."""
        with self._lock:
            return frozenset(
                f
                for f in self._faults.values()
                if connector_id is None or f.connector_id in (connector_id, STATION)
            )

    def blocks_charging(self, connector_id: int) -> bool:
        return any(f.spec.opens_contactor for f in self.active_faults(self._check_id(connector_id)))

    # ---- wiring -----------------------------------------------------------------------------

    def attach_fault_input(self, kind: FaultKind, fault_input: FaultInputLike) -> None:
        """Route a trip input (RCD_TRIP or EMERGENCY_STOP) here; an input already tripped at
        start is a fault at once. Its callbacks run on the hardware thread."""
        if kind not in (FaultKind.RCD_TRIP, FaultKind.EMERGENCY_STOP):
            raise ValueError(f"{kind} is not a fault-input kind")
        fault_input.on_trip(lambda: self.fault_input_changed(kind, True))
        fault_input.on_clear(lambda: self.fault_input_changed(kind, False))
        with self._lock:
            self._fault_inputs.append((kind, fault_input))
        if fault_input.is_tripped:
            self.fault_input_changed(kind, True)

    # ---- hardware-thread entry points -------------------------------------------------------

    def fault_input_changed(self, kind: FaultKind, tripped: bool) -> None:
        """A station-wide trip input changed. Opens every contactor before returning."""
        events: list[SafetyEvent] = []
        with self._lock:
            if kind is FaultKind.RCD_TRIP and self._rcm_self_test:
                return  # the test's own trip; every contactor is held open meanwhile
            key = (kind, STATION)
            if tripped:
                self._raise(key, "input tripped", events)
                # A technician's RCM test trip is no trip of the installation: not counted.
                if kind is FaultKind.RCD_TRIP and STATION not in self._testing:
                    now = self._clock()
                    self._rcd_trips.append(now)
                    while (
                        self._rcd_trips
                        and now - self._rcd_trips[0] > self.settings.rcd_trip_window_s
                    ):
                        self._rcd_trips.popleft()
                    if len(self._rcd_trips) >= self.settings.rcd_trips_to_latch:
                        self._raise(
                            (FaultKind.RCD_TRIP_REPEATED, STATION),
                            f"{len(self._rcd_trips)} trips within {self.settings.rcd_trip_window_s:g} s",
                            events,
                        )
                        # Its condition is the trip history, not the input: a technician clears it.
                        self._present.discard((FaultKind.RCD_TRIP_REPEATED, STATION))
            else:
                self._condition_gone(key, events)
        self._send(events)

    def update_meter(self, connector_id: int, sample: MeterSample) -> None:
        """The newest meter sample (from the asyncio meter task); judged on the monitor thread."""
        with self._lock:
            self._watch[self._check_id(connector_id)].meter_sample = sample

    def meter_fault(self, connector_id: int, active: bool, detail: str = "") -> None:
        """The meter driver reports a fault (or its recovery)."""
        self.condition(FaultKind.METER_FAILURE, self._check_id(connector_id), active, detail)

    def condition(self, kind: FaultKind, connector_id: int, present: bool,
                  detail: str = "") -> None:
        """A fault's condition appeared (raised at once) or went (cleared by its rule)."""
        events: list[SafetyEvent] = []
        with self._lock:
            key = (kind, connector_id)
            if present:
                self._raise(key, detail, events)
            else:
                self._condition_gone(key, events)
        self._send(events)

    def pilot_of(self, connector_id: int) -> PilotState | None:
        """The pilot state the monitor last confirmed (None before its first good read)."""
        with self._lock:
            return self._watch[self._check_id(connector_id)].pilot

    def may_close(self, connector_id: int) -> bool:
        """Whether :meth:`request_close` would close now: no opening fault, pilot in C/D."""
        with self._lock:
            return self._may_close(connector_id)

    def _may_close(self, connector_id: int) -> bool:
        watch = self._watch[self._check_id(connector_id)]
        if any(f.spec.opens_contactor for f in self._faults_of(connector_id)):
            return False
        return watch.hw.read_pilot is None or watch.pilot in CHARGING_PILOT

    def request_close(self, connector_id: int) -> bool:
        """Close the contactor if nothing forbids it: no opening fault, pilot last seen in C/D.
        The runtime closes contactors only through here."""
        with self._lock:
            watch = self._watch[self._check_id(connector_id)]
            if not self._may_close(connector_id):
                return False
            try:
                watch.hw.contactor.close()
            except Exception as exc:  # an interlock the driver holds, or a GPIO error
                log.warning("safety.close_refused", connector=connector_id, error=str(exc))
                return False
            return True

    # ---- technician's hardware tests ---------------------------------------------------------

    def begin_test(self, connector_id: int) -> None:
        """A technician's test of one connector (STATION: the RCM test) begins. While it
        runs, :meth:`request_test_close` may close that contactor with no vehicle (pilot A) and
        an RCM trip does not count toward ``rcd_trips_to_latch``; every interlock still acts."""
        with self._lock:
            if connector_id != STATION:
                self._check_id(connector_id)
            self._testing.add(connector_id)
            if connector_id != STATION:
                contactor = self._watch[connector_id].hw.contactor
                for key in self._tolerated_holds(connector_id):
                    contactor.release_interlock(_reason(key))

    def end_test(self, connector_id: int) -> None:
        """The test is over: its contactor opens (if it was the one tested)."""
        with self._lock:
            self._testing.discard(connector_id)
            if connector_id != STATION:
                contactor = self._watch[self._check_id(connector_id)].hw.contactor
                contactor.open()
                for key in self._tolerated_holds(connector_id):
                    contactor.interlock(_reason(key))

    def request_test_close(self, connector_id: int) -> bool:
        """Close a contactor under test: only with no opening fault and the pilot last seen in
        A (no vehicle). The monitor opens it again the moment the pilot leaves A."""
        with self._lock:
            watch = self._watch[self._check_id(connector_id)]
            if connector_id not in self._testing:
                return False
            if any(
                f.spec.opens_contactor and f.kind not in TOLERATED_BY_EVERY_TEST
                for f in self._faults_of(connector_id)
            ):
                return False
            if watch.hw.read_pilot is not None and watch.pilot is not PilotState.A:
                return False
            try:
                watch.hw.contactor.close()
            except Exception as exc:
                log.warning("safety.test_close_refused", connector=connector_id, error=str(exc))
                return False
            return True

    def request_open(self, connector_id: int) -> None:
        with self._lock:
            self._watch[self._check_id(connector_id)].hw.contactor.open()

    def open_all(self) -> None:
        """Shutdown path: open every contactor."""
        with self._lock:
            for watch in self._watch.values():
                watch.hw.contactor.open()

    def clear_by_technician(self, kind: FaultKind, connector_id: int = STATION) -> bool:
        """A technician's clear. Refused (False) while the condition is still there."""
        events: list[SafetyEvent] = []
        with self._lock:
            key = (kind, connector_id)
            if key not in self._faults:
                return False
            if not may_clear(
                kind, condition_present=key in self._present, pilot=None, by_technician=True
            ):
                return False
            if kind is FaultKind.RCD_TRIP_REPEATED:
                self._rcd_trips.clear()
            self._clear(key, events)
        self._send(events)
        return True

    def restore_latched_fault(
        self, kind: FaultKind, connector_id: int = STATION, detail: str = ""
    ) -> None:
        """At start-up, re-raise a technician-clear fault the store remembers (a welded
        contactor stays a fault across a restart). Other kinds re-appear by themselves."""
        if FAULT_SPECS[kind].clear_rule is not ClearRule.TECHNICIAN:
            raise ValueError(f"{kind} clears by itself; only technician-clear faults are restored")
        if connector_id != STATION:
            self._check_id(connector_id)
        events: list[SafetyEvent] = []
        with self._lock:
            key = (kind, connector_id)
            self._raise(key, detail or "restored at start-up", events)
            self._present.discard(key)  # the monitor re-raises it if the condition is still there
        self._send(events)

    def run_rcm_self_test(self, self_test: Callable[[], T]) -> T:
        """Run the RCM's self-test with every contactor interlocked open: its trip is the
        test's, not an installation fault. An RCM still tripped afterwards is a fault again."""
        with self._lock:
            for watch in self._watch.values():
                watch.hw.contactor.interlock(RCM_SELF_TEST_HOLD)
            self._rcm_self_test = True
        try:
            return self_test()
        finally:
            with self._lock:
                self._rcm_self_test = False
                for watch in self._watch.values():
                    watch.hw.contactor.release_interlock(RCM_SELF_TEST_HOLD)
                tripped = [kind for kind, fault_input in self._fault_inputs
                           if kind is FaultKind.RCD_TRIP and fault_input.is_tripped]
            for kind in tripped:
                self.fault_input_changed(kind, True)

    # ---- the monitor ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the monitor thread (daemon: it must never keep a dying process alive)."""
        if self._thread is not None:
            raise RuntimeError("safety monitor already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="safety-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.settings.poll_interval_s)

    def poll_once(self) -> None:
        """One pass over every connector (the monitor thread calls this; tests may too)."""
        events: list[SafetyEvent] = []
        try:
            for _kind, fault_input in list(self._fault_inputs):
                fault_input.refresh()  # backstop for an edge lost to debouncing
            for cid in self._watch:
                self._poll_connector(cid, events)
            with self._lock:  # a good pass: a technician may now clear an internal error
                self._condition_gone((FaultKind.INTERNAL_ERROR, STATION), events)
        except Exception as exc:
            # Fail safe: a monitor that cannot judge must not leave power on.
            log.exception("safety.monitor_error")
            with self._lock:
                self._raise((FaultKind.INTERNAL_ERROR, STATION), f"monitor: {exc!r}", events)
        self.last_poll = self._clock()
        self._send(events)

    def _poll_connector(self, cid: int, events: list[SafetyEvent]) -> None:
        watch = self._watch[cid]
        hw = watch.hw
        pilot = self._read_pilot(cid, watch, events) if hw.read_pilot is not None else None
        temperature = self._read_temperature(cid, watch, events)
        offered = hw.read_offered_current_a() if hw.read_offered_current_a is not None else None
        feedback = str(hw.contactor.check_feedback())
        now = self._clock()
        with self._lock:
            if pilot is not None:
                self._judge_pilot(cid, watch, pilot, events)
            self._judge_feedback(cid, feedback, events)
            if temperature is not None and hw.temperature_limits is not None:
                self._judge_temperature(cid, watch, temperature, hw.temperature_limits, events)
            # The vehicle reads the PWM before the contactor closes too: an offer lowered just
            # before or after closing still gives it the time to follow.
            watch.over_current.set_offered(offered, now)
            current = fresh_current_a(
                watch.meter_sample, self._wall_clock(), self.settings.over_current.max_sample_age_s
            )
            key = (FaultKind.OVER_CURRENT, cid)
            if not hw.contactor.commanded_closed:
                watch.over_current.not_powered()  # no power can flow: nothing to judge
                if key in self._faults:
                    self._condition_gone(key, events)  # no power flows: it waits for the unplug
            elif watch.over_current.update(current, now):
                self._raise(
                    key,
                    f"{current:.1f} A over {watch.over_current.allowed_limit_a(now)} A offered",
                    events,
                )

    def _read_pilot(
        self, cid: int, watch: _ConnectorWatch, events: list[SafetyEvent]
    ) -> PilotState | None:
        assert watch.hw.read_pilot is not None
        key = (FaultKind.PILOT_READ_FAILURE, cid)
        try:
            pilot = watch.hw.read_pilot()
        except Exception as exc:
            watch.pilot_failures += 1
            if watch.pilot_failures >= self.settings.sensor_failures_to_fault:
                with self._lock:
                    self._raise(key, repr(exc), events)
            return None
        watch.pilot_failures = 0
        with self._lock:
            self._condition_gone(key, events)
        return pilot

    def _read_temperature(
        self, cid: int, watch: _ConnectorWatch, events: list[SafetyEvent]
    ) -> float | None:
        if watch.hw.read_temperature_c is None:
            return None
        key = (FaultKind.TEMPERATURE_SENSOR_FAILURE, cid)
        try:
            celsius = watch.hw.read_temperature_c()
            if celsius != celsius:
                raise ValueError("temperature is NaN")
        except Exception as exc:
            watch.temperature_failures += 1
            if watch.temperature_failures >= self.settings.sensor_failures_to_fault:
                with self._lock:
                    self._raise(key, repr(exc), events)
            return None
        watch.temperature_failures = 0
        with self._lock:
            self._condition_gone(key, events)
        return celsius

    def _judge_pilot(
        self, cid: int, watch: _ConnectorWatch, pilot: PilotState, events: list[SafetyEvent]
    ) -> None:
        contactor = watch.hw.contactor
        # A contactor test closes with no vehicle (pilot A); anything else opens it.
        test_close = cid in self._testing and pilot is PilotState.A
        if contactor.commanded_closed and pilot not in CHARGING_PILOT and not test_close:
            contactor.open()  # vehicle stopped, left, or the pilot failed: no power without C/D
            log.warning("safety.pilot_open", connector=cid, pilot=pilot.value)
            # While we drive PWM a pilot in E/F or without the diode is a fault, never our own F.
            if pilot in (PilotState.E, PilotState.F):
                self._raise(
                    (FaultKind.PILOT_ERROR, cid), f"pilot {pilot.value} while charging", events
                )
            elif pilot is PilotState.DIODE_FAULT:
                self._raise((FaultKind.DIODE_FAULT, cid), "diode missing while charging", events)
        if pilot is PilotState.A:
            for kind in (FaultKind.PILOT_ERROR, FaultKind.DIODE_FAULT):
                self._condition_gone((kind, cid), events)
        if pilot != watch.pilot:
            watch.pilot = pilot
            events.append(PilotObserved(cid, pilot))
            # Faults that wait for the vehicle to leave.
            if pilot is PilotState.A:
                for key in [k for k in self._faults if k[1] == cid]:
                    self._try_clear(key, events)

    def _judge_feedback(self, cid: int, feedback: str, events: list[SafetyEvent]) -> None:
        welded = (FaultKind.CONTACTOR_WELDED, cid)
        failed = (FaultKind.CONTACTOR_FAILED_TO_CLOSE, cid)
        if feedback == "welded":
            self._raise(welded, "mirror contact closed while commanded open", events)
        elif feedback == "failed_to_close":
            self._raise(failed, "mirror contact open while commanded closed", events)
        elif feedback in ("ok", "no_feedback"):
            self._condition_gone(welded, events)
            self._condition_gone(failed, events)

    def _judge_temperature(
        self,
        cid: int,
        watch: _ConnectorWatch,
        celsius: float,
        limits: TemperatureSection,
        events: list[SafetyEvent],
    ) -> None:
        decision = thermal_decision(celsius, limits, watch.thermal)
        watch.thermal = decision.state
        key = (FaultKind.OVER_TEMPERATURE, cid)
        if decision.state is ThermalState.STOPPED:
            self._raise(key, f"{celsius:.1f} °C >= stop {limits.stop_at_c:g} °C", events)
        limit = None
        if decision.state is ThermalState.DERATING:
            limit = round(watch.hw.max_current_a * decision.current_factor, 1)
        if limit != watch.thermal_limit_a:
            # Sent before the fault clears, so that charging resumes at the derated current.
            watch.thermal_limit_a = limit
            events.append(ThermalLimitChanged(cid, limit))
        if decision.state is not ThermalState.STOPPED:
            self._condition_gone(key, events)

    # ---- the registry (call with the lock held) ---------------------------------------------

    def _check_id(self, connector_id: int) -> int:
        if connector_id not in self._watch:
            raise UnknownConnectorError(connector_id)
        return connector_id

    def _faults_of(self, connector_id: int) -> list[Fault]:
        return [f for f in self._faults.values() if f.connector_id in (connector_id, STATION)]

    def _contactors_for(self, connector_id: int) -> list[SupervisedContactor]:
        if connector_id == STATION:
            return [w.hw.contactor for w in self._watch.values()]
        return [self._watch[connector_id].hw.contactor]

    def _held_open_by(self, key: _Key) -> list[SupervisedContactor]:
        """The contactors a fault holds open: a contactor under a technician's test is spared
        the faults every test tolerates."""
        kind, cid = key
        ids = list(self._watch) if cid == STATION else [cid]
        spared = self._testing if kind in TOLERATED_BY_EVERY_TEST else set()
        return [self._watch[i].hw.contactor for i in ids if i not in spared]

    def _tolerated_holds(self, connector_id: int) -> list[_Key]:
        """The active faults on ``connector_id`` that a technician's test runs despite."""
        return [
            (f.kind, f.connector_id)
            for f in self._faults_of(connector_id)
            if f.spec.opens_contactor and f.kind in TOLERATED_BY_EVERY_TEST
        ]

    def _raise(self, key: _Key, detail: str, events: list[SafetyEvent]) -> None:
        kind, cid = key
        self._present.add(key)
        if FAULT_SPECS[kind].opens_contactor:
            for contactor in self._held_open_by(key):
                contactor.interlock(_reason(key))  # opens now, on this thread
        if key in self._faults:
            return
        fault = Fault(kind, cid, detail, self._wall_clock())
        self._faults[key] = fault
        log.error("safety.fault", kind=kind.value, connector=cid, detail=detail)
        events.append(FaultChanged(fault, True))

    def _condition_gone(self, key: _Key, events: list[SafetyEvent]) -> None:
        self._present.discard(key)
        self._try_clear(key, events)

    def _try_clear(self, key: _Key, events: list[SafetyEvent]) -> None:
        if key not in self._faults:
            return
        kind, cid = key
        pilots = (
            [w.pilot for w in self._watch.values()]
            if cid == STATION
            else [self._watch[cid].pilot]
        )
        # A station-wide fault that waits for unplugging waits for every connector.
        pilot = PilotState.A if all(p is PilotState.A for p in pilots) else pilots[0]
        if may_clear(
            kind, condition_present=key in self._present, pilot=pilot, by_technician=False
        ):
            self._clear(key, events)

    def _clear(self, key: _Key, events: list[SafetyEvent]) -> None:
        kind, cid = key
        fault = self._faults.pop(key)
        self._present.discard(key)
        if FAULT_SPECS[kind].opens_contactor:
            for contactor in self._contactors_for(cid):
                contactor.release_interlock(_reason(key))
        log.info("safety.fault_cleared", kind=kind.value, connector=cid)
        events.append(FaultChanged(fault, False))

    def _send(self, events: list[SafetyEvent]) -> None:
        for event in events:
            try:
                self._notify(event)
            except Exception:
                log.exception("safety.notify_failed", what=type(event).__name__)
