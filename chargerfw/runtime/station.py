"""The station runtime: ``chargerfw run`` as one asyncio process.

Start-up order (each step needs the one before):

0. the hardware lock (``hardware = "pi"``) and the control socket's lock, both held for the
   runtime's life; either held elsewhere refuses the start (``HardwareBusy`` /
   ``ControlSocketInUse``, ``chargerfw run`` exits :data:`BUSY_EXIT_CODE`) before the store is
   touched;
1. open the store and end every transaction a crash or power cut left open (``PowerLoss``,
   exactly once, before anything else can start a session);
2. build the board (every contactor open), the safety supervisor on its own monitor thread
   (fault inputs, contactor feedback, pilot, temperature, meter current), with the technician
   faults the store remembers restored, and the availability ChangeAvailability persisted;
3. the OCPP client, the authorizer (keys from the store), one controller per connector;
4. on ``hardware = "sim"`` the simulated meters (served over Modbus TCP for the real driver);
   the meter tasks, the reader, the control socket;
5. READY to systemd, then the watchdog is fed from the loop.

Shutdown (SIGTERM/SIGINT, :meth:`StationRuntime.request_stop`): contactors open at once (in
the signal handler), every running transaction ends with ``Reboot`` (its StopTransaction is on
disk before anything else happens), the outbox gets ``shutdown_flush_s`` to drain, then the
client, reader, meters, supervisor and board are closed.

Technician's hardware tests (``test.*`` on the control socket): refused while a vehicle, a
transaction or a fault is there; the connector shows Unavailable and takes no session while
the test runs in a thread under the supervisor's test rules; pilot and status are restored.

Reset from the backend: ``Soft`` stops transactions with ``SoftReset`` and :meth:`run` returns
:attr:`RunOutcome.SOFT_RESET` (``chargerfw run`` then builds a fresh runtime in the same
process); ``Hard`` stops them with ``HardReset`` and returns :attr:`RunOutcome.HARD_RESET`
(``chargerfw run`` exits with :data:`HARD_RESET_EXIT_CODE` so systemd restarts the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chargerfw import __version__
from chargerfw.config import StationConfig
from chargerfw.diagnostics import (
    Refusal,
    run_contactor_sequence,
    run_lock_test,
    run_pilot_test,
    run_rcd_test,
)
from chargerfw.drivers.board import Board, build_board
from chargerfw.drivers.contactor import Contactor, ContactorFeedback
from chargerfw.drivers.meter.driver import EnergyMeter, quiet_pymodbus
from chargerfw.drivers.readers import TokenReader, open_reader
from chargerfw.drivers.types import MeterFault, MeterSample, PilotState, TagEvent, TagEventKind
from chargerfw.hwlock import HardwareLock
from chargerfw.logs import get_logger
from chargerfw.ocpp.station_port import (
    AvailabilityAnswer,
    ReservationAnswer,
    ResetKind,
    UnlockAnswer,
)
from chargerfw.ocpp.v16.client import OcppClient, client_from_config
from chargerfw.runtime.connector import ConnectorController
from chargerfw.runtime.control import ControlServer, ControlSocketLock, InvalidParams, Refused
from chargerfw.runtime.simhw import SimulatedStation, SimulationError, last_recorded_energy_wh
from chargerfw.sdnotify import SystemdNotifier
from chargerfw.station.auth import (
    AuthConfig,
    Authorizer,
    IdTagInfo,
    InvalidIdTagError,
    InvalidIdTagInfoError,
    backend_from_wire,
    check_id_tag,
    same_tag,
)
from chargerfw.station.connector import (
    PLUGGED,
    CancelReservation,
    ChangeAvailability,
    ConnectorSettings,
    CurrentLimitChanged,
    EnergyMeasured,
    FaultCleared,
    FaultRaised,
    LimitSource,
    PilotChanged,
    PilotMode,
    Reservation,
    Reserve,
    StartConfirmed,
    StopRequested,
    TxPhase,
)
from chargerfw.station.connector import (
    AvailabilityAnswer as AvailabilityAction,
)
from chargerfw.station.connector import (
    ReservationAnswer as ReservationAction,
)
from chargerfw.station.enums import (
    AuthorizationStatus,
    Availability,
    ChargePointStatus,
    StopReason,
)
from chargerfw.station.faults import FAULT_SPECS, ClearRule, FaultKind
from chargerfw.station.safety import (
    STATION_WIDE,
    FaultChanged,
    PilotObserved,
    SafetyEvent,
    SafetySettings,
    SafetySupervisor,
    SupervisedConnector,
    ThermalLimitChanged,
    asyncio_notifier,
)
from chargerfw.store import Store

log = get_logger(__name__)

SAFETY_SWITCH_INTERVAL_S = 0.001  # see StationRuntime: safety threads get the GIL sooner

HARD_RESET_EXIT_CODE = 3
# `chargerfw run` could not start: another process holds the hardware lock (hardware = "pi")
# or serves the same control socket. HardwareBusy / ControlSocketInUse name the holder.
BUSY_EXIT_CODE = 4
HARDWARE_LOCK_OWNER = "chargerfw run"
PILOT_SETTLE_S = 2.0  # for the monitor to confirm the pilot behind our state F
SHUTDOWN_FLUSH_S = 3.0
STATION_CONNECTOR_ID = 0  # OCPP connectorId 0 (and the store's id for station-wide faults)


class RunOutcome(enum.StrEnum):
    STOPPED = "stopped"  # SIGTERM/SIGINT or request_stop(): exit 0
    SOFT_RESET = "soft_reset"  # restart in-process
    HARD_RESET = "hard_reset"  # exit non-zero; systemd restarts


class StationRuntime:
    """One station: drivers, safety, state machines, OCPP, control socket. Implements the
    OCPP client's :class:`~chargerfw.ocpp.station_port.StationPort`."""

    def __init__(self, config: StationConfig, *, control_socket: Path | str | None = None,
                 safety_settings: SafetySettings | None = None,
                 notifier: SystemdNotifier | None = None,
                 shutdown_flush_s: float = SHUTDOWN_FLUSH_S) -> None:
        if config.ocpp is None:
            raise ValueError("chargerfw run needs an [ocpp] section in the station config")
        self.config = config
        self.control_socket = Path(control_socket) if control_socket else None
        self.safety_settings = safety_settings or SafetySettings()
        self.notifier = notifier or SystemdNotifier()
        self.shutdown_flush_s = shutdown_flush_s
        self.started_at: float | None = None
        self.ready = asyncio.Event()
        self.store: Store | None = None
        self.board: Board | None = None
        self.supervisor: SafetySupervisor | None = None
        self.client: OcppClient | None = None
        self.authorizer: Authorizer | None = None
        self.reader: TokenReader | None = None
        self.sim: SimulatedStation | None = None
        self.controllers: dict[int, ConnectorController] = {}
        self.control: ControlServer | None = None
        self._stop = asyncio.Event()
        self._outcome = RunOutcome.STOPPED
        self._tap_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._station_available = True
        self._tap_timer: asyncio.TimerHandle | None = None
        self._reservation_timers: dict[int, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[Any]] = set()  # short jobs: keep a reference
        self._tap_waiters: list[asyncio.Future[TagEvent]] = []  # rfid.next callers
        self._test_running: str | None = None  # the technician's hardware test (one at a time)
        self._test_faults: list[FaultChanged] | None = None  # raised while a test runs
        self.event_listeners: list[Callable[[str, dict[str, Any]], None]] = []

    # -- life cycle -----------------------------------------------------------------------

    def request_stop(self, outcome: RunOutcome = RunOutcome.STOPPED) -> None:
        """Ask :meth:`run` to shut down (any loop callback; signal handlers use this). The
        contactors open here, before the loop gets to anything else."""
        if self._stop.is_set():
            return  # already stopping (or stopped: the pins are released)
        try:
            if self.supervisor is not None:
                self.supervisor.open_all()
            elif self.board is not None:
                self.board.open_all_contactors()
        except Exception:
            log.exception("station.open_all_failed")
        if not self._stop.is_set():
            self._outcome = outcome
        self._stop.set()

    async def run(self) -> RunOutcome:
        """Run until stopped or reset; always leaves the contactors open."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                await self._start(stack)
                await self._stop.wait()
            finally:
                await self._shutdown()
        return self._outcome

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self.started_at = time.time()
        # Both locks come before the store is touched: a second station must not recover (end
        # with PowerLoss) the transactions of the one that runs.
        if config.hardware == "pi":
            # One process at a time drives the pins, I2C and the meter bus; CLI commands that go
            # to the hardware directly take the same lock. The kernel drops it if we die.
            hardware_lock = HardwareLock(HARDWARE_LOCK_OWNER)
            hardware_lock.acquire()  # HardwareBusy names the holder
            stack.callback(hardware_lock.release)
        # hardware = "sim": no hardware lock; simulated pins are private to this process, and
        # a fleet runs many simulated stations side by side.
        if self.control_socket is not None:
            socket_lock = ControlSocketLock(self.control_socket,
                                            f"{HARDWARE_LOCK_OWNER} {config.station.id}")
            socket_lock.acquire()  # ControlSocketInUse names the holder
            stack.callback(socket_lock.release)
        quiet_pymodbus()
        config.storage.path.parent.mkdir(parents=True, exist_ok=True)
        store = self.store = Store(config.storage.path)
        stack.callback(store.close)
        # Before anything else can start a session: end what a crash left open, exactly once.
        for record in store.recover_interrupted():
            self._emit("transaction.recovered", local_id=record.local_id,
                       meter_stop_wh=record.meter_stop_wh)

        board = self.board = build_board(config)
        board.open_all_contactors()
        client = self.client = client_from_config(config, store, station=self)
        keys = client.keys
        self.authorizer = Authorizer(
            store, backend_from_wire(client.authorize),
            AuthConfig.from_keys({k: keys.raw(k) for k in AuthConfig.KEYS}),
            is_online=lambda: client.online)
        supervised: dict[int, SupervisedConnector] = {}
        for section in config.connector:
            devices = board.connectors[section.id]
            sensor = devices.temperature
            supervised[section.id] = SupervisedConnector(
                contactor=devices.contactor,
                read_pilot=lambda p=devices.pilot: p.read().state,
                read_offered_current_a=lambda p=devices.pilot: p.offered_current_a,
                read_temperature_c=(self._temperature_reader(section.id, sensor.read_celsius)
                                    if sensor is not None else None),
                temperature_limits=section.temperature,
                max_current_a=section.max_current_a,
            )
        supervisor = self.supervisor = SafetySupervisor(
            supervised, asyncio_notifier(loop, self._on_safety_event), self.safety_settings)
        for section in config.connector:
            settings = ConnectorSettings(max_current_a=section.max_current_a).with_keys(
                {k: keys.raw(k) for k in ConnectorSettings.KEYS})
            controller = ConnectorController(section, board.connectors[section.id], supervisor,
                                             client, settings)
            controller.on_event = self._relay_event
            self.controllers[section.id] = controller
        keys.add_listener(self._on_key_changed)
        self._restore_availability(store)
        self._restore_faults(store, supervisor)
        if board.rcm is not None:
            supervisor.attach_fault_input(FaultKind.RCD_TRIP, board.rcm)
        if board.emergency_stop is not None:
            supervisor.attach_fault_input(FaultKind.EMERGENCY_STOP, board.emergency_stop)
        # Fault callbacks and the safety monitor run on their own threads but still need the
        # GIL: a coroutine that computes holds it for up to the switch interval (5 ms by
        # default). 1 ms cut fault-to-coil-off under a busy loop from ~9 to ~3 ms (median,
        # bench/station_latency.py) at no measurable cost.
        sys.setswitchinterval(SAFETY_SWITCH_INTERVAL_S)
        supervisor.start()
        stack.callback(supervisor.stop)

        recorded = last_recorded_energy_wh(store)
        for cid, controller in self.controllers.items():
            if cid in recorded:
                controller.remember_recorded_energy(recorded[cid])

        if config.reader is not None:
            self.reader = open_reader(config.reader, simulated=config.hardware == "sim")
        if config.hardware == "sim":
            self.sim = SimulatedStation.create(config, board, self.reader, store)
            await stack.enter_async_context(self.sim.running())
        if self.reader is not None:
            self.reader.add_listener(self._on_tag_event)
            await self.reader.start()

        # What the connectors show before any event: pilot and status.
        client.set_status(STATION_CONNECTOR_ID, ChargePointStatus.AVAILABLE.value
                          if self._station_available else ChargePointStatus.UNAVAILABLE.value)
        for controller in self.controllers.values():
            out = controller.machine.outputs
            controller.apply_pilot(out.pilot)  # standby, or F when Inoperative
            client.set_status(controller.id, out.status.value, out.error_code.value,
                              vendor_error_code=out.vendor_error_code)
            meter = self._make_meter(controller)
            self._spawn(self._meter_loop(controller, meter), f"meter-{controller.id}")
        self._spawn(client.run(), "ocpp-client")
        if self.control_socket is not None:
            self.control = ControlServer(self.control_socket, self.control_handlers())
            await self.control.start()
        self.notifier.ready(f"station {config.station.id} running")
        self._spawn(self.notifier.feed_watchdog_forever(), "watchdog", may_end=True)
        log.info("station.ready", station=config.station.id, hardware=config.hardware,
                 connectors=len(self.controllers), version=__version__)
        self.ready.set()

    def _spawn(self, coro: Any, name: str, *, may_end: bool = False) -> None:
        """A task for the life of the runtime; one that ends (unless ``may_end``) or fails
        stops the runtime."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._task_done(t, may_end))

    def _run_background(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("station.job_failed", job=task.get_name(), error=repr(task.exception()))

    def _task_done(self, task: asyncio.Task[Any], may_end: bool) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        exc = task.exception()
        if exc is None and may_end:
            return
        # A part of the runtime died: stop cleanly (contactors open) and let systemd restart.
        log.error("station.task_died", task=task.get_name(), error=repr(exc))
        self.request_stop(RunOutcome.HARD_RESET)

    async def _shutdown(self) -> None:
        self._stop.set()
        self.notifier.stopping()
        if self.supervisor is not None:
            self.supervisor.open_all()
        elif self.board is not None:
            self.board.open_all_contactors()
        reason = {RunOutcome.SOFT_RESET: StopReason.SOFT_RESET,
                  RunOutcome.HARD_RESET: StopReason.HARD_RESET}.get(self._outcome,
                                                                    StopReason.REBOOT)
        for controller in self.controllers.values():
            if controller.phase is TxPhase.RUNNING:
                controller.handle(StopRequested(reason))
        if self.control is not None:
            await self.control.close()
        if self.client is not None:
            with contextlib.suppress(Exception):
                delivered = await self.client.flush(self.shutdown_flush_s)
                log.info("station.outbox_flushed", delivered=delivered)
        if self.client is not None:
            # Closing the link first lets the session end by itself (close frame sent).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 3.0)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=3.0)
            if pending:  # never let one stuck task hold the exit (systemd would kill us)
                log.warning("station.tasks_not_stopped", tasks=[t.get_name() for t in pending])
        self._tasks.clear()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader.stop()
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.board is not None:
            self.board.close()
        log.info("station.stopped", outcome=self._outcome.value)

    def _temperature_reader(self, connector_id: int,
                            read: Callable[[], float]) -> Callable[[], float]:
        """The supervisor's temperature read, remembering the last good value for MeterValues
        (one reader of the I2C sensor: the monitor thread)."""
        def read_and_remember() -> float:
            controller = self.controllers.get(connector_id)
            try:
                celsius = read()
            except Exception:
                if controller is not None:
                    controller.temperature_c = None  # no stale value in MeterValues
                raise
            # A plain attribute write: atomic under the GIL, read on the loop's thread.
            if controller is not None:
                controller.temperature_c = None if celsius != celsius else round(celsius, 1)
            return celsius
        return read_and_remember

    def _restore_availability(self, store: Store) -> None:
        """ChangeAvailability survives a restart (OCPP 1.6 5.2): applied before any status is
        sent, so the backend never sees an Inoperative connector flash Available."""
        stored = store.availability_all()
        self._station_available = stored.get(STATION_CONNECTOR_ID, True)
        for cid, controller in self.controllers.items():
            if not stored.get(cid, True):
                controller.handle(ChangeAvailability(Availability.INOPERATIVE))
                log.info("station.availability_restored", connector=cid, operative=False)

    def _restore_faults(self, store: Store, supervisor: SafetySupervisor) -> None:
        """Technician faults survive a restart; the others re-appear if still there."""
        for record in store.faults(active_only=True):
            try:
                kind = FaultKind(record.code)
            except ValueError:
                store.fault_clear(record.code, record.connector_id)
                continue
            cid = None if record.connector_id == STATION_CONNECTOR_ID else record.connector_id
            if (FAULT_SPECS[kind].clear_rule is ClearRule.TECHNICIAN
                    and (cid is None or cid in self.controllers)):
                supervisor.restore_latched_fault(kind, cid, record.detail)
            else:
                store.fault_clear(record.code, record.connector_id)

    def _emit(self, event: str, **fields: Any) -> None:
        """A station event for listeners (the demo prints them) and the log."""
        log.info(event, **fields)
        for listener in list(self.event_listeners):
            with contextlib.suppress(Exception):
                listener(event, fields)

    def _relay_event(self, event: str, fields: dict[str, Any]) -> None:
        for listener in list(self.event_listeners):
            with contextlib.suppress(Exception):
                listener(event, fields)

    # -- meters ---------------------------------------------------------------------------

    def _make_meter(self, controller: ConnectorController) -> EnergyMeter:
        if self.sim is not None:
            return self.sim.make_meter(controller.section, controller.id)
        return EnergyMeter.from_config(controller.section.meter)

    async def _meter_loop(self, controller: ConnectorController, meter: EnergyMeter) -> None:
        assert self.supervisor is not None and self.client is not None
        cid = controller.id
        while True:
            try:
                async for item in meter.events():
                    if isinstance(item, MeterFault):
                        self.supervisor.meter_fault(cid, item.active,
                                                    f"{item.kind.value}: {item.detail}")
                    else:
                        self._on_sample(controller, item)
            except Exception as exc:  # the driver types its errors; anything else: retry
                log.error("meter.loop_failed", connector=cid, error=repr(exc))
                self.supervisor.meter_fault(cid, True, repr(exc))
            finally:
                with contextlib.suppress(Exception):
                    await meter.close()
            await asyncio.sleep(2.0)

    def _on_sample(self, controller: ConnectorController, sample: MeterSample) -> None:
        assert self.supervisor is not None and self.client is not None
        controller.note_sample(sample)
        self.supervisor.update_meter(controller.id, sample)
        self.client.update_meter(controller.id, sample, temperature_c=controller.temperature_c)
        tx = controller.transaction
        if tx is not None and controller.phase is TxPhase.RUNNING:
            controller.handle(EnergyMeasured(max(0.0, sample.energy_import_wh - tx.meter_start_wh)))

    # -- safety ---------------------------------------------------------------------------

    def _on_safety_event(self, event: SafetyEvent) -> None:
        """From the supervisor (already acted on the hardware); on the loop's thread."""
        match event:
            case FaultChanged(fault=fault, active=active):
                if active and self._test_faults is not None:
                    self._test_faults.append(event)
                targets = (list(self.controllers.values()) if fault.connector_id is STATION_WIDE
                           else [self.controllers[fault.connector_id]])
                store_cid = (STATION_CONNECTOR_ID if fault.connector_id is STATION_WIDE
                             else fault.connector_id)
                if self.store is not None:
                    try:
                        if active:
                            self.store.fault_raise(
                                fault.kind.value, store_cid,
                                fault.spec.clear_rule is ClearRule.TECHNICIAN, fault.detail)
                        else:
                            self.store.fault_clear(fault.kind.value, store_cid)
                    except Exception:
                        log.exception("station.fault_not_recorded")
                self._emit("fault.raised" if active else "fault.cleared",
                           kind=fault.kind.value, connector=fault.connector_id)
                for controller in targets:
                    controller.handle(FaultRaised(fault.kind) if active
                                      else FaultCleared(fault.kind))
            case PilotObserved(connector_id=cid, pilot=pilot):
                controller = self.controllers[cid]
                before = controller.machine.state.pilot
                controller.handle(PilotChanged(pilot))
                if before != pilot:
                    self._emit("pilot.changed", connector=cid, pilot=pilot.value)
            case ThermalLimitChanged(connector_id=cid, limit_a=limit):
                self.controllers[cid].handle(CurrentLimitChanged(LimitSource.THERMAL, limit))

    # -- the token reader -----------------------------------------------------------------

    def _on_tag_event(self, event: TagEvent) -> None:
        if event.kind is TagEventKind.PRESENTED and event.id_tag:
            for waiter in self._tap_waiters:
                if not waiter.done():
                    waiter.set_result(event)
            self._run_background(self.handle_tap(event.id_tag), "tap")
        elif event.kind in (TagEventKind.READER_LOST, TagEventKind.READER_BACK):
            lost = event.kind is TagEventKind.READER_LOST
            self._record_reader_fault(event.reader, lost)
            for controller in self.controllers.values():
                controller.handle(FaultRaised(FaultKind.READER_FAILURE) if lost
                                  else FaultCleared(FaultKind.READER_FAILURE))

    def _record_reader_fault(self, reader: str, lost: bool) -> None:
        """The fault history (``chargerfw faults``) keeps a lost reader, station-wide."""
        if self.store is None:
            return
        code = FaultKind.READER_FAILURE.value
        try:
            if lost:
                self.store.fault_raise(code, STATION_CONNECTOR_ID, False,
                                       f"reader {reader} lost")
            else:
                self.store.fault_clear(code, STATION_CONNECTOR_ID)
        except Exception:
            log.exception("station.fault_not_recorded", code=code)
        self._emit("fault.raised" if lost else "fault.cleared", kind=code, connector=None)

    async def handle_tap(self, id_tag: str) -> str:
        """A card was presented: stop the session it (or a tag with its parent) started,
        cancel its pending authorization, or authorize it and start. Returns what happened."""
        assert self.authorizer is not None
        async with self._tap_lock:
            self._emit("tag.presented", id_tag=id_tag)
            for controller in self.controllers.values():
                state = controller.machine.state
                if state.phase is TxPhase.RUNNING and state.id_tag is not None:
                    if await self.authorizer.may_stop(state.id_tag, state.parent_id_tag, id_tag):
                        controller.stop_id_tag = id_tag
                        controller.handle(StopRequested(StopReason.LOCAL))
                        self._emit("tag.stopped_session", connector=controller.id)
                        return "stopped"
                if state.phase is TxPhase.AUTHORIZED and same_tag(state.id_tag, id_tag):
                    controller.handle(StopRequested(StopReason.LOCAL))
                    self._emit("tag.cancelled", connector=controller.id)
                    return "cancelled"
            decision = await self.authorizer.authorize(id_tag)
            if decision.local_list_conflict:
                log.warning("auth.local_list_conflict", id_tag=id_tag)
            if not decision.accepted:
                self._emit("tag.rejected", id_tag=id_tag, status=decision.status.value,
                           source=decision.source.value)
                return "rejected"
            controller = self._pick_connector(id_tag)
            if controller is None:
                self._emit("tag.no_connector", id_tag=id_tag)
                return "no_connector"
            assert self.client is not None
            ok = controller.authorize(id_tag, decision.parent_id_tag,
                                      self.client.keys.get_int("ConnectionTimeOut"))
            self._emit("tag.authorized" if ok else "tag.refused", id_tag=id_tag,
                       connector=controller.id, source=decision.source.value)
            return "authorized" if ok else "refused"

    def _pick_connector(self, id_tag: str) -> ConnectorController | None:
        """A connector this tag may start on: reserved for it, else plugged in, else free."""
        candidates = []
        for controller in self.controllers.values():
            state = controller.machine.state
            out = controller.machine.outputs
            if out.status in (ChargePointStatus.FAULTED, ChargePointStatus.UNAVAILABLE):
                continue
            if controller.under_test is not None:
                continue
            if state.phase not in (TxPhase.IDLE, TxPhase.FINISHED):
                continue
            reserved = state.reservation is not None
            if reserved and not same_tag(state.reservation.id_tag, id_tag):  # type: ignore[union-attr]
                continue
            rank = 0 if reserved else 1 if state.pilot in PLUGGED else 2
            candidates.append((rank, controller.id, controller))
        return min(candidates)[2] if candidates else None

    # -- configuration keys ---------------------------------------------------------------

    def _on_key_changed(self, key: str, value: str) -> None:
        if key in AuthConfig.KEYS and self.authorizer is not None and self.client is not None:
            keys = self.client.keys
            self.authorizer.config = AuthConfig.from_keys(
                {k: keys.raw(k) for k in AuthConfig.KEYS})
        if key in ConnectorSettings.KEYS:
            for controller in self.controllers.values():
                controller.update_settings({key: value})

    # -- StationPort (backend commands) ---------------------------------------------------

    def remote_start(self, id_tag: str, connector_id: int | None, authorize: bool) -> bool:
        try:
            check_id_tag(id_tag)
        except InvalidIdTagError:
            return False
        if connector_id is None:
            controller = self._pick_connector(id_tag)
        else:
            controller = self.controllers.get(connector_id)
        if controller is None:
            return False
        state, out = controller.machine.state, controller.machine.outputs
        if (out.status in (ChargePointStatus.FAULTED, ChargePointStatus.UNAVAILABLE)
                or state.phase is TxPhase.RUNNING or controller.under_test is not None):
            return False
        assert self.client is not None
        timeout = self.client.keys.get_int("ConnectionTimeOut")
        self._emit("remote.start", id_tag=id_tag, connector=controller.id)
        if not authorize:
            return controller.authorize(id_tag, None, timeout)

        async def authorize_then_start() -> None:
            assert self.authorizer is not None
            decision = await self.authorizer.authorize(id_tag)
            if decision.accepted:
                controller.authorize(id_tag, decision.parent_id_tag, timeout)
            else:
                self._emit("remote.start_rejected", id_tag=id_tag, status=decision.status.value)

        self._run_background(authorize_then_start(), "remote-start")
        return True

    def remote_stop(self, connector_id: int) -> bool:
        controller = self.controllers.get(connector_id)
        if controller is None or controller.phase is not TxPhase.RUNNING:
            return False
        self._emit("remote.stop", connector=connector_id)
        controller.handle(StopRequested(StopReason.REMOTE))
        return True

    def change_availability(self, connector_id: int, operative: bool) -> AvailabilityAnswer:
        availability = Availability.OPERATIVE if operative else Availability.INOPERATIVE
        if connector_id == STATION_CONNECTOR_ID:
            targets = list(self.controllers.values())
        elif connector_id in self.controllers:
            targets = [self.controllers[connector_id]]
        else:
            return "Rejected"
        answers = []
        for controller in targets:
            for action in controller.handle(ChangeAvailability(availability)):
                if isinstance(action, AvailabilityAction):
                    answers.append(action.status.value)
        if connector_id == STATION_CONNECTOR_ID and self.client is not None:
            self._station_available = operative
            self.client.set_status(STATION_CONNECTOR_ID, ChargePointStatus.AVAILABLE.value
                                   if operative else ChargePointStatus.UNAVAILABLE.value)
        self._emit("availability.changed", connector=connector_id, operative=operative,
                   answers=answers)
        if "Rejected" in answers:
            return "Rejected"
        # Accepted or Scheduled: what was asked is what holds after a restart (a Scheduled
        # change waits for the transaction, which a restart ends).
        changes = {c.id: operative for c in targets}
        if connector_id == STATION_CONNECTOR_ID:
            changes[STATION_CONNECTOR_ID] = operative
        if self.store is not None:
            try:
                self.store.availability_set(changes)
            except Exception:
                log.exception("station.availability_not_persisted")
        return "Scheduled" if "Scheduled" in answers else "Accepted"

    async def unlock(self, connector_id: int) -> UnlockAnswer:
        controller = self.controllers.get(connector_id)
        if controller is None:
            return "NotSupported"
        if controller.phase is TxPhase.RUNNING:
            controller.handle(StopRequested(StopReason.UNLOCK_COMMAND))
        lock = controller.devices.lock
        if lock is None:
            return "NotSupported"
        result = await asyncio.to_thread(lock.unlock)
        return "Unlocked" if str(result) == "unlocked" else "UnlockFailed"

    async def reset(self, kind: ResetKind) -> None:
        outcome = RunOutcome.HARD_RESET if kind == "Hard" else RunOutcome.SOFT_RESET
        reason = StopReason.HARD_RESET if kind == "Hard" else StopReason.SOFT_RESET
        self._emit("station.reset", kind=kind)
        for controller in self.controllers.values():
            if controller.phase is TxPhase.RUNNING:
                controller.handle(StopRequested(reason))
        self.request_stop(outcome)

    def reserve_now(self, connector_id: int, expires_at: float, id_tag: str,
                    reservation_id: int, parent_id_tag: str | None) -> ReservationAnswer:
        controller = self.controllers.get(connector_id)
        if controller is None:
            return "Rejected"
        try:
            check_id_tag(id_tag)
        except InvalidIdTagError:
            return "Rejected"
        for other in self.controllers.values():
            held = other.machine.state.reservation
            if other is not controller and held and held.reservation_id == reservation_id:
                return "Rejected"  # the id is in use on another connector
        answers = [a.status for a in controller.handle(
            Reserve(Reservation(reservation_id, id_tag, parent_id_tag)))
            if isinstance(a, ReservationAction)]
        status = answers[0] if answers else "Rejected"
        if status == "Accepted":
            old = self._reservation_timers.pop(reservation_id, None)
            if old is not None:
                old.cancel()
            loop = asyncio.get_running_loop()
            self._reservation_timers[reservation_id] = loop.call_later(
                max(0.0, expires_at - time.time()), self._reservation_expired, connector_id,
                reservation_id)
        self._emit("reservation.requested", connector=connector_id, id_tag=id_tag,
                   reservation_id=reservation_id, status=status)
        return status  # type: ignore[return-value]

    def _reservation_expired(self, connector_id: int, reservation_id: int) -> None:
        self._reservation_timers.pop(reservation_id, None)
        controller = self.controllers[connector_id]
        held = controller.machine.state.reservation
        if held is not None and held.reservation_id == reservation_id:
            controller.handle(CancelReservation(reservation_id))
            self._emit("reservation.expired", connector=connector_id,
                       reservation_id=reservation_id)

    def cancel_reservation(self, reservation_id: int) -> bool:
        for controller in self.controllers.values():
            held = controller.machine.state.reservation
            if held is not None and held.reservation_id == reservation_id:
                controller.handle(CancelReservation(reservation_id))
                timer = self._reservation_timers.pop(reservation_id, None)
                if timer is not None:
                    timer.cancel()
                self._emit("reservation.cancelled", connector=controller.id,
                           reservation_id=reservation_id)
                return True
        return False

    def transaction_confirmed(self, connector_id: int, local_id: int, transaction_id: int,
                              id_tag: str, id_tag_info: dict[str, str]) -> None:
        controller = self.controllers.get(connector_id)
        if controller is None:
            return
        tx = controller.transaction
        if tx is None or tx.local_id != local_id:
            return  # confirmed after it ended (delivered late from the outbox)
        tx.backend_tx_id = transaction_id
        self._emit("transaction.confirmed", connector=connector_id, local_id=local_id,
                   transaction_id=transaction_id, status=id_tag_info.get("status"))
        try:
            status = AuthorizationStatus(id_tag_info.get("status", ""))
        except ValueError:
            log.warning("station.bad_start_status", status=id_tag_info.get("status"))
            return
        controller.handle(StartConfirmed(status))

    def id_tag_info_received(self, id_tag: str, id_tag_info: dict[str, str]) -> None:
        if self.authorizer is None:
            return
        try:
            self.authorizer.remember(id_tag, IdTagInfo.from_wire(id_tag_info))
        except (InvalidIdTagInfoError, InvalidIdTagError) as exc:
            log.warning("auth.bad_id_tag_info", error=str(exc))

    # -- the control channel --------------------------------------------------------------

    def control_handlers(self) -> dict[str, Callable[..., Any]]:
        handlers: dict[str, Callable[..., Any]] = {
            "status": self.status,
            "faults": self.faults,
            "fault.clear": self.clear_fault,
            "meter.sample": self.meter_sample,
            "rfid.next": self.next_tap,
            "config.set": self.set_ocpp_key,
            "test.contactor": self.test_contactor,
            "test.rcd": self.test_rcd,
            "test.pilot": self.test_pilot,
            "test.lock": self.test_lock,
        }
        if self.config.hardware == "sim":
            handlers.update(self._sim_handlers())
        return handlers

    def status(self) -> dict[str, Any]:
        assert self.client is not None and self.supervisor is not None
        snapshot = self.client.status_snapshot()
        return {
            "station": self.config.station.id,
            "firmware_version": __version__,
            "hardware": self.config.hardware,
            "started_at": self.started_at,
            "available": self._station_available,
            "connectors": [c.snapshot() for c in self.controllers.values()],
            "backend": {
                "url": self.config.ocpp.url if self.config.ocpp else None,
                "online": snapshot["online"],
                "registration": snapshot["registration"],
                "link": snapshot["link"],
                "clock_offset_s": snapshot["clock_offset_s"],
            },
            "outbox": {"pending": snapshot["outbox_pending"], "dead": snapshot["outbox_dead"]},
            "faults": self._active_faults(),
            "reader": None if self.reader is None else {
                "name": self.reader.name, "available": self.reader.available},
        }

    def _active_faults(self) -> list[dict[str, Any]]:
        assert self.supervisor is not None
        return [
            {"kind": f.kind.value, "connector": f.connector_id, "detail": f.detail,
             "since": f.timestamp, "error_code": f.spec.error_code.value,
             "clears": f.spec.clear_rule.value}
            for f in sorted(self.supervisor.active_faults(),
                            key=lambda f: (f.timestamp, f.kind.value))
        ]

    def faults(self, history: bool = False, limit: int = 100) -> dict[str, Any]:
        assert self.store is not None
        result: dict[str, Any] = {"active": self._active_faults()}
        if history:
            result["history"] = [
                {"code": r.code, "connector": r.connector_id, "detail": r.detail,
                 "raised_at": r.raised_at, "cleared_at": r.cleared_at,
                 "needs_technician": r.needs_technician}
                for r in self.store.faults(limit=int(limit))
            ]
        return result

    def clear_fault(self, kind: str, connector: int | None = None) -> dict[str, Any]:
        assert self.supervisor is not None
        try:
            fault_kind = FaultKind(kind)
        except ValueError:
            raise InvalidParams(f"unknown fault kind {kind!r}; known: "
                                + ", ".join(k.value for k in FaultKind)) from None
        if connector is not None and connector not in self.controllers:
            raise InvalidParams(f"no connector {connector}")
        active = {(f.kind, f.connector_id) for f in self.supervisor.active_faults()}
        if (fault_kind, connector) not in active:
            raise Refused(f"no active {kind} fault on "
                          + ("the station" if connector is None else f"connector {connector}"))
        if not self.supervisor.clear_by_technician(fault_kind, connector):
            raise Refused(f"{kind} cannot be cleared: its condition is still present")
        return {"cleared": kind, "connector": connector}

    def meter_sample(self, connector: int = 1) -> dict[str, Any] | None:
        """The connector's latest meter sample (MeterSample fields and its age), or None."""
        controller = self.controllers.get(connector) if isinstance(connector, int) else None
        if controller is None:
            raise InvalidParams(f"no connector {connector!r}")
        sample = controller.latest_sample
        if sample is None:
            return None
        return {**dataclasses.asdict(sample), "age_s": round(time.time() - sample.timestamp, 1)}

    async def next_tap(self, wait_s: float = 60.0) -> dict[str, Any]:
        """Wait for the next card presented to the station's reader (the station handles it as
        usual too). ``{"id_tag": None}`` if none came within ``wait_s``."""
        if self.reader is None:
            raise Refused("the station has no [reader]")
        wait = float(wait_s)
        if not 0 < wait <= 3600:
            raise InvalidParams("wait_s must be > 0 and <= 3600")
        future: asyncio.Future[TagEvent] = asyncio.get_running_loop().create_future()
        self._tap_waiters.append(future)
        try:
            event = await asyncio.wait_for(future, wait)
        except TimeoutError:
            return {"id_tag": None, "reader": self.reader.name}
        finally:
            with contextlib.suppress(ValueError):
                self._tap_waiters.remove(future)
        return {"id_tag": event.id_tag, "uid": event.uid.hex().upper(), "reader": event.reader,
                "at": event.timestamp}

    def set_ocpp_key(self, key: str, value: str) -> dict[str, Any]:
        """ChangeConfiguration from the technician: validated and persisted like the
        backend's, applied at once (the same listeners run)."""
        assert self.client is not None
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidParams("key and value must be strings")
        status, reason = self.client.keys.change(key, value)
        if status.value in ("Accepted", "RebootRequired"):
            self.client.after_configuration_change()
        return {"key": key, "status": status.value, "reason": reason}

    # -- the technician's guarded hardware tests (chargerfw test ...) --------------------

    def _test_controller(self, connector: object) -> ConnectorController:
        if not isinstance(connector, int) or isinstance(connector, bool):
            raise InvalidParams(f"connector must be an integer, got {connector!r}")
        controller = self.controllers.get(connector)
        if controller is None:
            raise InvalidParams(f"no connector {connector} (have {sorted(self.controllers)})")
        return controller

    def _test_refusals(self, controllers: list[ConnectorController],
                       allowed_faults: frozenset[FaultKind] = frozenset()) -> None:
        """Refuse (-32000) while a test runs, a transaction runs or waits, a vehicle is
        connected, or a fault is active on the connectors under test (or station-wide)."""
        assert self.supervisor is not None
        if self._test_running is not None:
            raise Refused(f"a {self._test_running} test is running: wait for it to end")
        for controller in controllers:
            cid = controller.id
            state = controller.machine.state
            if state.phase is TxPhase.RUNNING or controller.transaction is not None:
                raise Refused(f"a transaction runs on connector {cid}: stop it first")
            if state.phase is TxPhase.AUTHORIZED:
                raise Refused(f"connector {cid} is authorized for {state.id_tag} and waits for "
                              "a vehicle: cancel it (tap the card again) first")
            if state.pilot in PLUGGED:
                raise Refused(f"a vehicle is connected to connector {cid} (pilot "
                              f"{state.pilot.value}): unplug it first")
            # F is what we drive while Unavailable or latched Faulted: _settle_pilots looks
            # behind it. E, a missing diode, or F we do not drive: the pilot line is wrong.
            own_f = (state.pilot is PilotState.F
                     and controller.machine.outputs.pilot.mode is PilotMode.STATE_F)
            if state.pilot is not PilotState.A and not own_f:
                raise Refused(f"connector {cid}: the pilot reads {state.pilot.value}: check "
                              "the cable and the pilot wiring first")
            active = sorted(f.kind.value for f in self.supervisor.active_faults(cid)
                            if f.kind not in allowed_faults)
            if active:
                raise Refused(f"connector {cid}: fault(s) {', '.join(active)} active: "
                              "remove the cause (see `chargerfw faults --active`) first")

    async def _run_test(self, name: str, controllers: list[ConnectorController],
                        supervised: int | None, sequence: Callable[[], dict[str, Any]]
                        ) -> dict[str, Any]:
        """Pause the connectors (Unavailable, no session), run the blocking ``sequence`` off
        the loop under the supervisor's test rules, then restore pilot and status."""
        assert self.supervisor is not None
        self._test_running = name
        self._test_faults = []
        self._emit("test.started", test=name, connectors=[c.id for c in controllers])
        for controller in controllers:
            controller.begin_test(name)
        self.supervisor.begin_test(supervised)
        try:
            await self._settle_pilots(controllers)
            result = await asyncio.to_thread(sequence)
            await asyncio.sleep(0)  # let fault events the monitor sent meanwhile arrive
        except Refusal as exc:
            raise Refused(f"{name} test aborted: {exc}") from None
        finally:
            self.supervisor.end_test(supervised)
            faults, self._test_faults = self._test_faults, None
            self._test_running = None
            for controller in controllers:
                controller.end_test()
        result["faults_raised"] = sorted({e.fault.kind.value for e in faults})
        self._emit("test.ended", test=name, passed=result.get("passed"))
        return result

    async def _settle_pilots(self, controllers: list[ConnectorController]) -> None:
        """A connector we hold in state F (Unavailable, latched fault) gets +12 V so the
        monitor sees whether a vehicle is behind it; a vehicle refuses the test."""
        held = [c for c in controllers if c.machine.state.pilot is PilotState.F]
        for controller in held:
            controller.devices.pilot.set_standby()
        deadline = time.monotonic() + PILOT_SETTLE_S
        while any(c.machine.state.pilot is PilotState.F for c in held):
            if time.monotonic() > deadline:
                raise Refused("the pilot stays in F on +12 V: check the pilot generator")
            await asyncio.sleep(0.02)
        for controller in held:
            pilot = controller.machine.state.pilot
            if pilot is not PilotState.A:
                raise Refused(f"connector {controller.id}: pilot reads {pilot.value} on +12 V "
                              "(a vehicle or a wiring fault): unplug it first")

    async def test_contactor(self, connector: int = 1) -> dict[str, Any]:
        """Close and open the contactor through the supervisor (pilot A, no fault), checking
        the mirror. A contactor fault of its own does not refuse: the test shows it (a welded
        one is reported without being energised)."""
        controller = self._test_controller(connector)
        contactor = controller.devices.contactor
        if not contactor.has_feedback:
            raise InvalidParams(f"connector {controller.id} has no contactor feedback_pin")
        own = frozenset({FaultKind.CONTACTOR_WELDED, FaultKind.CONTACTOR_FAILED_TO_CLOSE})
        self._test_refusals([controller], allowed_faults=own)
        assert self.supervisor is not None
        stand_in = _SupervisedTestContactor(self.supervisor, controller.id, contactor)
        result = await self._run_test("contactor", [controller], controller.id,
                                      lambda: run_contactor_sequence(stand_in))
        # The monitor may act first (it opens a contactor that failed to close): its faults
        # are findings of the test too.
        raised = set(result["faults_raised"])
        still = {f.kind for f in self.supervisor.active_faults(controller.id)}
        if FaultKind.CONTACTOR_WELDED in still or "contactor_welded" in raised:
            result["result"] = "welded"
        elif "contactor_failed_to_close" in raised and result["result"] == "ok":
            result["result"] = "failed_to_close"
        result["passed"] = result["result"] == "ok" and not raised
        result["connector"] = controller.id
        return result

    async def test_rcd(self) -> dict[str, Any]:
        """Pulse the RCM test output with every connector paused; the trip is seen and clears."""
        assert self.board is not None
        rcm = self.board.rcm
        if rcm is None or self.config.rcm is None or self.config.rcm.test_pin is None:
            raise Refused("the station has no [rcm] with a test_pin")
        controllers = list(self.controllers.values())
        # The RCM's own trip is what the test is about; any other fault refuses.
        self._test_refusals(controllers, allowed_faults=frozenset())
        board = self.board
        result = await self._run_test("rcd", controllers, STATION_WIDE,
                                      lambda: run_rcd_test(board))
        unexpected = set(result["faults_raised"]) - {FaultKind.RCD_TRIP.value}
        result["passed"] = bool(result["passed"]) and not unexpected
        return result

    async def test_pilot(self, connector: int = 1) -> dict[str, Any]:
        """Standby, 6/16/32 A PWM (capped at the connector's rating) and state F, each read
        back; the machine's pilot output is restored after."""
        controller = self._test_controller(connector)
        self._test_refusals([controller])
        devices, max_a = controller.devices, controller.section.max_current_a
        result = await self._run_test("pilot", [controller], controller.id,
                                      lambda: run_pilot_test(devices, max_a))
        result["connector"] = controller.id
        return result

    async def test_lock(self, connector: int = 1) -> dict[str, Any]:
        """Lock, then unlock, each confirmed by the feedback switch if there is one."""
        controller = self._test_controller(connector)
        if controller.devices.lock is None:
            raise InvalidParams(f"connector {controller.id} has no [connector.lock]")
        self._test_refusals([controller])
        devices = controller.devices
        result = await self._run_test("lock", [controller], controller.id,
                                      lambda: run_lock_test(devices))
        result["connector"] = controller.id
        return result

    def _sim_handlers(self) -> dict[str, Callable[..., Any]]:
        def sim() -> SimulatedStation:
            if self.sim is None:
                raise Refused("the simulated station is not running")
            return self.sim

        def on_vehicle(action: str) -> Callable[..., dict[str, Any]]:
            def handler(connector: int = 1) -> dict[str, Any]:
                vehicle = self._sim_parts(sim(), connector).vehicle
                try:
                    getattr(vehicle, action)()
                except RuntimeError as exc:  # unplugged, another vehicle, ...
                    raise Refused(str(exc)) from None
                return {"connector": connector, "vehicle": vehicle.state.value}
            return handler

        async def tap(uid: str, hold_s: float = 0.3) -> dict[str, Any]:
            reader = sim().reader
            if reader is None:
                raise Refused("the station has no [reader]")
            if not 0 <= float(hold_s) <= 10:
                raise InvalidParams("hold_s must be between 0 and 10")
            if self._tap_timer is not None:
                # A card still lying on the reader from the previous tap is taken off first,
                # so that the same card twice in a row is two taps.
                self._tap_timer.cancel()
                self._tap_timer = None
                reader.remove()
            try:
                reader.present(uid)
            except ValueError as exc:
                raise InvalidParams(f"uid: {exc}") from None
            except Exception as exc:
                raise Refused(str(exc)) from None
            self._tap_timer = asyncio.get_running_loop().call_later(float(hold_s), reader.remove)
            return {"presented": uid.upper()}

        def station_switch(part: str, method: str) -> Callable[[], dict[str, Any]]:
            def handler() -> dict[str, Any]:
                board_sim = sim().board.sim
                switch = getattr(board_sim, part, None)
                if switch is None:
                    raise Refused(f"the station has no {part}")
                getattr(switch, method)()
                return {part: method}
            return handler

        def contactor(method: str) -> Callable[..., dict[str, Any]]:
            def handler(connector: int = 1) -> dict[str, Any]:
                getattr(self._sim_parts(sim(), connector).contactor, method)()
                return {"connector": connector, "contactor": method}
            return handler

        def reader_presence(method: str) -> Callable[[], dict[str, Any]]:
            def handler() -> dict[str, Any]:
                reader = sim().reader
                if reader is None:
                    raise Refused("the station has no [reader]")
                getattr(reader, method)()
                return {"reader": method}
            return handler

        def temperature(celsius: float, connector: int = 1) -> dict[str, Any]:
            chip = self._sim_parts(sim(), connector).temperature
            if chip is None:
                raise Refused(f"connector {connector} has no temperature sensor")
            value = float(celsius)
            if not -55 <= value <= 150:
                raise InvalidParams("celsius must be between -55 and 150")
            chip.temperature_c = value
            return {"connector": connector, "celsius": value}

        def overdraw(amps: float, connector: int = 1) -> dict[str, Any]:
            value = float(amps)
            if not 0 <= value <= 100:
                raise InvalidParams("amps must be between 0 and 100")
            self._sim_parts(sim(), connector)
            sim().load(connector).overdraw_a = value
            return {"connector": connector, "overdraw_a": value}

        return {
            "sim.plug": on_vehicle("plug_in"),
            "sim.charge": on_vehicle("request_charge"),
            "sim.stop_charging": on_vehicle("stop_charging"),
            "sim.unplug": on_vehicle("unplug"),
            "sim.short_pilot": on_vehicle("short_pilot"),
            "sim.clear_short": on_vehicle("clear_short"),
            "sim.remove_diode": on_vehicle("remove_diode"),
            "sim.restore_diode": on_vehicle("restore_diode"),
            "sim.tap": tap,
            "sim.rcd_trip": station_switch("rcm", "trip"),
            "sim.rcd_clear": station_switch("rcm", "clear"),
            "sim.estop_press": station_switch("emergency_stop", "press"),
            "sim.estop_release": station_switch("emergency_stop", "release"),
            "sim.weld": contactor("weld"),
            "sim.repair": contactor("repair"),
            "sim.fail_to_close": contactor("fail_to_close"),
            "sim.temperature": temperature,
            "sim.reader_unplug": reader_presence("unplug"),
            "sim.reader_replug": reader_presence("replug"),
            "sim.overdraw": overdraw,
        }

    @staticmethod
    def _sim_parts(sim: SimulatedStation, connector: object) -> Any:
        if not isinstance(connector, int) or isinstance(connector, bool):
            raise InvalidParams(f"connector must be an integer, got {connector!r}")
        try:
            return sim.parts(connector)
        except SimulationError as exc:
            raise InvalidParams(str(exc)) from None


class _SupervisedTestContactor:
    """The contactor as the contactor test sees it in the service: it closes only through
    :meth:`SafetySupervisor.request_test_close` (no fault, no vehicle), never around it."""

    def __init__(self, supervisor: SafetySupervisor, connector_id: int,
                 contactor: Contactor) -> None:
        self._supervisor = supervisor
        self._connector_id = connector_id
        self._contactor = contactor

    @property
    def feedback_timeout_s(self) -> float:
        return self._contactor.feedback_timeout_s

    def close(self) -> None:
        if not self._supervisor.request_test_close(self._connector_id):
            raise Refusal("the safety supervisor refused to close the contactor (a fault, or "
                          "the pilot left A)")

    def open(self) -> None:
        self._supervisor.request_open(self._connector_id)

    def check_feedback(self) -> ContactorFeedback:
        return self._contactor.check_feedback()
