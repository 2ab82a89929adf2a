"""The station runtime's life cycle: ``chargerfw run`` as one asyncio process.

Start-up:

0. the hardware lock (``hardware = "pi"``) and the control socket's lock, both held for the
   runtime's life; either held elsewhere refuses the start (``HardwareBusy`` /
   ``ControlSocketInUse``, ``chargerfw run`` exits :data:`BUSY_EXIT_CODE`) before the store is
   touched;
1. the parts, in order (:mod:`chargerfw.runtime.assembly`): store and recovery, board, OCPP
   client, safety supervisor, station core, reader, simulated hardware;
2. what every connector shows before any event (pilot and status), the meter tasks, the OCPP
   client, the control socket;
3. READY to systemd, then the watchdog is fed from the loop.

Shutdown (SIGTERM/SIGINT, :meth:`StationRuntime.request_stop`): contactors open at once (in
the signal handler), every running transaction ends with ``Reboot`` (its StopTransaction is on
disk before anything else happens), the outbox gets ``shutdown_flush_s`` to drain, then the
client, reader, meters, supervisor and board are closed.

Reset from the backend: ``Soft`` stops transactions with ``SoftReset`` and :meth:`run` returns
:attr:`RunOutcome.SOFT_RESET` (``chargerfw run`` then builds a fresh runtime in the same
process, and tries again ResetRetries times if that fresh runtime fails to start, then
falls back to a hard reset); ``Hard`` stops them with ``HardReset`` and returns
:attr:`RunOutcome.HARD_RESET` (``chargerfw run`` exits with :data:`HARD_RESET_EXIT_CODE` so
systemd restarts the process).

The rest of the runtime: the core's state and actions (:mod:`~chargerfw.runtime.core`), each
connector's executor (:mod:`~chargerfw.runtime.connector`), the OCPP port
(:mod:`~chargerfw.runtime.port`), the control socket's methods
(:mod:`~chargerfw.runtime.handlers`) and the technician's hardware tests
(:mod:`~chargerfw.runtime.hwtests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from chargerfw import __version__
from chargerfw.config import StationConfig
from chargerfw.control.api import StatusRequest, encode_reply
from chargerfw.control.server import ControlServer, ControlSocketLock
from chargerfw.drivers.board import Board
from chargerfw.drivers.meter.driver import EnergyMeter
from chargerfw.drivers.readers import TokenReader
from chargerfw.drivers.types import MeterFault, TagEvent
from chargerfw.hwlock import HardwareLock
from chargerfw.logs import get_logger
from chargerfw.ocpp.security_log import RESET, STARTUP, record_security_event
from chargerfw.ocpp.station_port import ResetKind
from chargerfw.ocpp.v16.client import OcppClient
from chargerfw.runtime.assembly import StationParts, assemble
from chargerfw.runtime.connector import ConnectorController
from chargerfw.runtime.core import CoreRunner
from chargerfw.runtime.diagnostics import StationLogs
from chargerfw.runtime.firmware import FirmwareUpdater, SelfTest
from chargerfw.runtime.handlers import ControlHandlers
from chargerfw.runtime.security_watch import SecurityWatch
from chargerfw.runtime.simulation import SimulatedHardware, Simulator, SimulatorMissing
from chargerfw.runtime.smart_charging import SmartCharging
from chargerfw.safety.core import SafetyCore
from chargerfw.safety.link import SafetyLink
from chargerfw.safety.port import SafetyPort
from chargerfw.sdnotify import SystemdNotifier
from chargerfw.station.connector import ConnectorOutputs, ConnectorState, outputs
from chargerfw.station.enums import StopReason
from chargerfw.station.safety import SafetySettings
from chargerfw.station.station import STATION, StopAll, station_status
from chargerfw.store import Store

log = get_logger(__name__)

HARD_RESET_EXIT_CODE = 3
# `chargerfw run` could not start: another process holds the hardware lock (hardware = "pi")
# or serves the same control socket. HardwareBusy / ControlSocketInUse name the holder.
BUSY_EXIT_CODE = 4
HARDWARE_LOCK_OWNER = "chargerfw run"
SHUTDOWN_FLUSH_S = 3.0
METER_RETRY_S = 2.0


class RunOutcome(enum.StrEnum):
    STOPPED = "stopped"  # SIGTERM/SIGINT or request_stop(): exit 0
    SOFT_RESET = "soft_reset"  # restart in-process
    HARD_RESET = "hard_reset"  # exit non-zero; systemd restarts


class NotRunning(RuntimeError):
    """A part was asked for before the station started (or after it stopped)."""


class StationRuntime:
    """One station for the life of a process (or until a soft reset): starts its parts, runs
    its tasks, and stops it all leaving every contactor open."""

    def __init__(
        self,
        config: StationConfig,
        *,
        control_socket: Path | str | None = None,
        safety_settings: SafetySettings | None = None,
        notifier: SystemdNotifier | None = None,
        shutdown_flush_s: float = SHUTDOWN_FLUSH_S,
        simulator: Simulator | None = None,
        safety_socket: Path | None = None,
        self_test: SelfTest | None = None,
    ) -> None:
        if config.ocpp is None:
            raise ValueError("chargerfw run needs an [ocpp] section in the station config")
        if config.hardware == "sim" and simulator is None:
            raise SimulatorMissing()
        self.config = config
        self.control_socket = Path(control_socket) if control_socket else None
        self.safety_settings = safety_settings or SafetySettings()
        self.notifier = notifier or SystemdNotifier()
        self.shutdown_flush_s = shutdown_flush_s
        self.simulator = simulator
        # Where the safety process listens ([safety] mode = "process"); None: the safety
        # core runs in this process.
        self.safety_socket = safety_socket
        # What a new firmware release on trial checks at start-up (besides being Accepted).
        self.self_test = self_test
        self.started_at: float | None = None
        self.ready = asyncio.Event()
        self.parts: StationParts | None = None  # set once every part is built
        self.control: ControlServer | None = None
        self.handlers = ControlHandlers(self)
        self.event_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._stop = asyncio.Event()
        self._outcome = RunOutcome.STOPPED
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()  # short jobs: keep a reference
        # ResetRetries as it was when a reset was asked for: how many times ``chargerfw run``
        # tries a soft reset's restart again if it fails.
        self.reset_retries = 0

    # -- the parts, for the control handlers, the fleet and tests --------------------------

    def _parts(self) -> StationParts:
        if self.parts is None:
            raise NotRunning(f"station {self.config.station.id} is not running")
        return self.parts

    @property
    def store(self) -> Store:
        return self._parts().store

    @property
    def board(self) -> Board:
        """The board, when this process owns it (no safety process)."""
        board = self._parts().board
        if board is None:
            raise NotRunning("the safety process holds the board")
        return board

    @property
    def client(self) -> OcppClient:
        return self._parts().client

    @property
    def safety(self) -> SafetyPort:
        return self._parts().safety

    @property
    def local_safety(self) -> SafetyCore:
        """The safety core, when it runs in this process."""
        safety = self._parts().safety
        if not isinstance(safety, SafetyCore):
            raise NotRunning("the safety core runs in the safety process")
        return safety

    @property
    def core(self) -> CoreRunner:
        return self._parts().core

    @property
    def smart_charging(self) -> SmartCharging:
        return self._parts().smart_charging

    @property
    def firmware(self) -> FirmwareUpdater:
        return self._parts().firmware

    @property
    def reader(self) -> TokenReader | None:
        return self._parts().reader

    @property
    def sim(self) -> SimulatedHardware | None:
        return self._parts().sim

    @property
    def controllers(self) -> dict[int, ConnectorController]:
        return self._parts().core.controllers

    @property
    def station_available(self) -> bool:
        return self._parts().core.state.available

    @property
    def tap_waiters(self) -> list[asyncio.Future[TagEvent]]:
        return self._parts().core.tap_waiters

    def connector_state(self, connector_id: int) -> ConnectorState:
        """The connector's state as the station core holds it (KeyError if unknown)."""
        return self.core.state.connector(connector_id)

    def connector_outputs(self, connector_id: int) -> ConnectorOutputs:
        """What the connector shows and drives now, derived from its state."""
        return outputs(self.connector_state(connector_id))

    def begin_test(self, test: str, connector_ids: list[int]) -> None:
        """A technician's hardware test takes these connectors over: Unavailable, no session,
        the test owns their pilots."""
        self.core.begin_test(test, connector_ids)

    def end_test(self, connector_ids: list[int]) -> None:
        """The test is over: each connector's own pilot output and status again."""
        self.core.end_test(connector_ids)

    async def handle_tap(self, id_tag: str) -> str:
        """A card presented to the reader (what the reader's event does)."""
        return await self.core.handle_tap(id_tag)

    def emit(self, event: str, *, log_it: bool = True, **fields: Any) -> None:
        """A station event for listeners (the demo prints them) and the log."""
        if log_it:
            log.info(event, **fields)
        for listener in list(self.event_listeners):
            with contextlib.suppress(Exception):
                listener(event, fields)

    # -- life cycle -----------------------------------------------------------------------

    def request_stop(self, outcome: RunOutcome = RunOutcome.STOPPED) -> None:
        """Ask :meth:`run` to shut down (any loop callback; signal handlers use this). The
        contactors open here, before the loop gets to anything else."""
        if self._stop.is_set():
            return  # already stopping (or stopped: the pins are released)
        if self.parts is not None:
            try:
                self.parts.safety.open_all()
            except Exception:
                log.exception("station.open_all_failed")
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

    def _restart(self, kind: ResetKind) -> None:
        if self.parts is not None:  # read now: the store is closed once the runtime stopped
            self.reset_retries = self.parts.client.keys.get_int("ResetRetries")
            record_security_event(self.parts.store, RESET, f"{kind} reset")
        self.request_stop(RunOutcome.HARD_RESET if kind == "Hard" else RunOutcome.SOFT_RESET)

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        config = self.config
        self.started_at = time.time()
        # Both locks come before the store is touched: a second station must not recover (end
        # with PowerLoss) the transactions of the one that runs.
        if config.hardware == "pi" and self.safety_socket is None:
            # One process at a time drives the pins, I2C and the meter bus; CLI commands that go
            # to the hardware directly take the same lock. The kernel drops it if we die.
            hardware_lock = HardwareLock(HARDWARE_LOCK_OWNER)
            hardware_lock.acquire()  # HardwareBusy names the holder
            stack.callback(hardware_lock.release)
        # hardware = "sim": no hardware lock; simulated pins are private to this process, and
        # a fleet runs many simulated stations side by side.
        if self.control_socket is not None:
            socket_lock = ControlSocketLock(
                self.control_socket, f"{HARDWARE_LOCK_OWNER} {config.station.id}"
            )
            socket_lock.acquire()  # ControlSocketInUse names the holder
            stack.callback(socket_lock.release)
        parts = self.parts = await assemble(
            config,
            stack,
            safety_settings=self.safety_settings,
            simulator=self.simulator,
            emit=self.emit,
            run_background=self._run_background,
            restart=self._restart,
            safety_socket=self.safety_socket,
            self_test=self.self_test,
        )

        record_security_event(parts.store, STARTUP, f"chargerfw {__version__}")
        security_watch = SecurityWatch(config, parts.store)
        security_watch.watch_tamper(
            parts.board, parts.safety if isinstance(parts.safety, SafetyLink) else None)
        parts.client.attach_logs(StationLogs(
            config, parts.store,
            lambda: encode_reply(StatusRequest, self.handlers.status(StatusRequest())),
            asyncio.get_running_loop()))

        # What the station and the connectors show before any event: pilot and status.
        client, core = parts.client, parts.core
        client.set_status(STATION, station_status(core.state).value)
        for controller in core.controllers.values():
            out = outputs(controller.state)
            controller.apply_pilot(out.pilot)  # standby, or F when Inoperative
            client.set_status(
                controller.id,
                out.status.value,
                out.error_code.value,
                vendor_error_code=out.vendor_error_code,
            )
        # The backend link starts first: its BootNotification does not wait for the meters'
        # first polls (each task starts at the next await, in this order).
        self._spawn(client.run(), "ocpp-client")
        self._spawn(parts.smart_charging.run(), "smart-charging")
        self._spawn(parts.firmware.run(), "firmware")
        self._spawn(security_watch.run(), "security-watch")
        for controller in core.controllers.values():
            meter = self._make_meter(controller)
            self._spawn(self._meter_loop(controller.id, meter), f"meter-{controller.id}")
        if isinstance(parts.safety, SafetyLink):
            self._spawn(parts.safety.heartbeat_forever(), "safety-heartbeat")
        if self.control_socket is not None:
            self.control = ControlServer(self.control_socket, self.handlers.handlers())
            await self.control.start()
        self.notifier.ready(f"station {config.station.id} running")
        # systemd's watchdog: fed from this loop, and only while the safety monitor is current
        # (here or in the safety process): a stuck poll is a restart too.
        self._spawn(
            self.notifier.feed_watchdog_forever(lambda: parts.safety.monitor_current),
            "watchdog",
            may_end=True,
        )
        log.info(
            "station.ready",
            station=config.station.id,
            hardware=config.hardware,
            connectors=len(core.controllers),
            version=__version__,
        )
        self.ready.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, may_end: bool = False) -> None:
        """A task for the life of the runtime; one that ends (unless ``may_end``) or fails
        stops the runtime."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._task_done(t, may_end))

    def _run_background(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
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
        parts = self.parts
        if parts is not None:
            parts.safety.open_all()
            reason = {
                RunOutcome.SOFT_RESET: StopReason.SOFT_RESET,
                RunOutcome.HARD_RESET: StopReason.HARD_RESET,
            }.get(self._outcome, StopReason.REBOOT)
            parts.core.apply(StopAll(reason))
        if self.control is not None:
            await self.control.close()
        if parts is not None:
            with contextlib.suppress(Exception):
                delivered = await parts.client.flush(self.shutdown_flush_s)
                log.info("station.outbox_flushed", delivered=delivered)
            # Closing the link first lets the session end by itself (close frame sent).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(parts.client.close(), 3.0)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=3.0)
            if pending:  # never let one stuck task hold the exit (systemd would kill us)
                log.warning("station.tasks_not_stopped", tasks=[t.get_name() for t in pending])
        self._tasks.clear()
        log.info("station.stopped", outcome=self._outcome.value)

    # -- meters ---------------------------------------------------------------------------

    def _make_meter(self, controller: ConnectorController) -> EnergyMeter:
        sim = self._parts().sim
        if sim is not None:
            return sim.make_meter(controller.section, controller.id)
        return EnergyMeter.from_config(controller.section.meter)

    async def _meter_loop(self, connector_id: int, meter: EnergyMeter) -> None:
        parts = self._parts()
        while True:
            try:
                async for item in meter.events():
                    if isinstance(item, MeterFault):
                        parts.safety.meter_fault(
                            connector_id, item.active, f"{item.kind.value}: {item.detail}"
                        )
                    else:
                        parts.core.on_sample(connector_id, item)
            except Exception as exc:  # the driver types its errors; anything else: retry
                log.error("meter.loop_failed", connector=connector_id, error=repr(exc))
                parts.safety.meter_fault(connector_id, True, repr(exc))
            finally:
                with contextlib.suppress(Exception):
                    await meter.close()
            await asyncio.sleep(METER_RETRY_S)
