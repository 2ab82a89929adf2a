"""One simulated charger of a fleet: its station runtime (rebuilt after a backend Reset), its
counters, and the steps a runner plays on it. The steps act and look through the control API
(the ``sim.*`` requests, the connector's status, fault clearing), answered in this process by the
runtime's own handlers, as the control socket would answer them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chargerfw.control.api import (
    ConnectorStatus,
    ControlError,
    FaultClearRequest,
    FaultsRequest,
    ReplyT,
    Request,
    SimChargeRequest,
    SimEstopPressRequest,
    SimEstopReleaseRequest,
    SimOverdrawRequest,
    SimPlugRequest,
    SimRcdClearRequest,
    SimRcdTripRequest,
    SimRepairRequest,
    SimStopChargingRequest,
    SimTapRequest,
    SimTemperatureRequest,
    SimUnplugRequest,
    SimWeldRequest,
    TransactionStatus,
)
from chargerfw.drivers.board import ConnectorSim
from chargerfw.drivers.simulated.vehicle import VehicleState
from chargerfw.drivers.types import PLUGGED, PilotState
from chargerfw.logs import get_logger
from chargerfw.runtime.station import RunOutcome, StationRuntime
from chargerfw.sim.fleet.report import ChargerReport
from chargerfw.sim.fleet.settings import CONNECTOR, FleetSettings, charge_current_a, station_config
from chargerfw.sim.fleet.tally import FrameTally
from chargerfw.sim.hardware import simulated_hardware
from chargerfw.sim.scenario import (
    Charge,
    Fault,
    FaultName,
    PlugIn,
    Resume,
    Step,
    Suspend,
    Tap,
    Unplug,
    Wait,
    charger_uid,
)
from chargerfw.station.enums import STATION, ChargePointStatus
from chargerfw.station.faults import FaultKind
from chargerfw.station.safety import SafetySettings
from chargerfw.store import Store, StoreError

log = get_logger(__name__)

POLL_S = 0.1  # how often a runner looks at its charger while waiting for something


class StepFailed(Exception):
    """A step did not have the effect it should have had (the message says what)."""


class FleetCharger:
    """One simulated charger: its runtime (rebuilt after a backend Reset), its counters, and the
    steps a runner plays on it."""

    def __init__(self, settings: FleetSettings, index: int, state_dir: Path,
                 random_generator: random.Random) -> None:
        self.settings = settings
        self.index = index
        self.state_dir = state_dir
        self.config = station_config(settings, index, state_dir)
        self.id = self.config.station.id
        self.uid = charger_uid(index)
        self.rng = random_generator
        self.report = ChargerReport(self.id, self.uid)
        self.tally = FrameTally(self.report)
        self.runtime: StationRuntime | None = None
        self.online_at: float | None = None
        self.events: collections.Counter[str] = collections.Counter()
        self._stopping = False
        self._current_a = 16.0  # what the vehicle draws when it charges (last charge step)
        self._injected: set[FaultName] = set()
        self._seen_local_ids: set[int] = set()
        self._health_before_restarts = (0, 0)
        self.finished = False  # the station will not run again (stopped or failed)

    # -- life cycle ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the store with the OCPP keys a fleet charger starts with."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with Store(self.config.storage.path) as store:
            store.config_set("MeterValueSampleInterval", str(self.settings.meter_values_interval_s))
            newest = store.frame_log(limit=1)  # a reused state dir: count only this run's
            self.tally.last_seq = newest[-1].seq if newest else 0

    async def run(self, ready: asyncio.Event) -> None:
        """Run the station until :meth:`stop`; a backend Reset (soft or hard) rebuilds it in
        place, as ``chargerfw run`` and systemd would."""
        try:
            await self._run(ready)
        finally:
            self.finished = True
            ready.set()

    async def _run(self, ready: asyncio.Event) -> None:
        while not self._stopping:
            socket = self.state_dir / "control.sock" if self.settings.control_sockets else None
            runtime = StationRuntime(
                self.config, control_socket=socket,
                safety_settings=SafetySettings(poll_interval_s=self.settings.safety_poll_s),
                shutdown_flush_s=self.settings.shutdown_flush_s,
                simulator=simulated_hardware)
            runtime.event_listeners.append(self._on_event)
            self.runtime = runtime
            task = asyncio.create_task(runtime.run(), name=f"station-{self.id}")
            waiter = asyncio.create_task(runtime.ready.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if runtime.ready.is_set():
                ready.set()
            try:
                outcome = await task
            except Exception as exc:  # the runtime failed to start or died: keep the report
                self.report.restarts.append(f"runtime error: {exc!r}")
                log.error("fleet.runtime_failed", charger=self.id, error=repr(exc))
                if not runtime.ready.is_set():
                    ready.set()  # let the fleet go on without this charger
                    self._remember_link(runtime)
                    return
                outcome = RunOutcome.HARD_RESET
            self._remember_link(runtime)
            if self._stopping or outcome is RunOutcome.STOPPED:
                return
            self.report.restarts.append(f"backend reset: {outcome.value}")
            self.online_at = None

    def stop(self) -> None:
        self._stopping = True
        if self.runtime is not None:
            self.runtime.request_stop()

    def _remember_link(self, runtime: StationRuntime) -> None:
        client = runtime.client
        if client is None:
            return
        health = client.connection.health
        connects, failures = self._health_before_restarts
        connects += health.connects
        failures += health.failed_attempts
        self._health_before_restarts = (connects, failures)
        self.report.connects, self.report.connection_failures = connects, failures
        if health.last_error:
            self.report.last_connection_error = health.last_error

    def _on_event(self, event: str, fields: dict[str, Any]) -> None:
        self.events[event] += 1

    @property
    def online(self) -> bool:
        runtime = self.runtime
        return bool(runtime and runtime.client and runtime.client.online)

    def tally_now(self) -> None:
        """Read new frames from the running store (cheap: the newest few rows)."""
        runtime = self.runtime
        if runtime is None or runtime.store is None:
            return
        with contextlib.suppress(StoreError, Exception):
            self.tally.read(runtime.store)

    def final_tally(self, since: float) -> None:
        """After the runtime stopped: the last frames, the sessions and the outbox, read from
        the store on disk."""
        path = self.config.storage.path
        if not path.exists():
            return
        with Store(path) as store:
            self.tally.read(store)
            records = [r for r in store.transactions(limit=100_000) if r.started_at >= since]
            self.report.sessions_started = len(records)
            self.report.sessions_stopped = sum(r.stopped_at is not None for r in records)
            self.report.sessions_confirmed = sum(r.backend_tx_id is not None for r in records)
            outbox = store.outbox_all(limit=100_000)
            self.report.outbox_pending = sum(m.state == "pending" for m in outbox)
            self.report.outbox_dead = sum(m.state == "dead" for m in outbox)

    # -- what a runner looks at ---------------------------------------------------------------

    def _rt(self) -> StationRuntime:
        if self.runtime is None or not self.runtime.ready.is_set():
            raise StepFailed("the station is not running")
        return self.runtime

    def connector(self) -> ConnectorStatus:
        """The charger's connector as the status shows it."""
        return self._rt().handlers.connector_status(CONNECTOR)

    def status(self) -> ChargePointStatus:
        return self.connector().status

    def running_tx(self) -> TransactionStatus | None:
        return self.connector().transaction

    def offered_at_pilot_a(self) -> float | None:
        """What the simulated vehicle reads from the pilot's PWM duty (None: no PWM)."""
        return self._sim_parts().vehicle.offered_current_a

    def offered_while_drawing_a(self) -> float:
        """The current the pilot offers while the vehicle may draw it (the contactor is
        closed, or the vehicle asks for charge: state C); 0 otherwise. The sum over a site's
        chargers is what its supply must carry at the worst."""
        parts = self._sim_parts()
        offered = parts.vehicle.offered_current_a
        if offered is None or not (parts.contactor.is_closed
                                   or parts.vehicle.state is VehicleState.CHARGING):
            return 0.0
        return offered

    def _sim_parts(self) -> ConnectorSim:
        parts = self._rt().board.connectors[CONNECTOR].sim
        if parts is None:
            raise StepFailed("the station has no simulated hardware")
        return parts

    async def request(self, request: Request[ReplyT]) -> ReplyT:
        """A control request, answered by the running station's handlers."""
        try:
            return await self._rt().handlers.call(request)
        except ControlError as exc:
            raise StepFailed(f"{request.method.value}: {exc}") from None

    async def wait_for(self, what: str, predicate: Callable[[], Any], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if predicate():
                    return
            except StepFailed:
                pass  # restarting after a reset: keep looking until the deadline
            if time.monotonic() > deadline:
                status = "?"
                with contextlib.suppress(Exception):
                    status = self.status().value
                raise StepFailed(f"{what} not seen within {timeout_s:g} s (status {status})")
            await asyncio.sleep(POLL_S)

    async def wait_online(self) -> None:
        deadline = time.monotonic() + self.settings.boot_timeout_s
        while not self.online:
            if self.finished:
                raise StepFailed("the station stopped: "
                                 + (self.report.restarts[-1] if self.report.restarts else "?"))
            if time.monotonic() > deadline:
                runtime = self.runtime
                registration = runtime.client.registration if runtime and runtime.client else None
                error = (runtime.client.connection.health.last_error
                         if runtime and runtime.client else None)
                raise StepFailed(f"not accepted by the backend within "
                                 f"{self.settings.boot_timeout_s:g} s (registration "
                                 f"{registration}, last connection error {error})")
            await asyncio.sleep(POLL_S)
        if self.online_at is None:
            self.online_at = time.monotonic()

    # -- steps --------------------------------------------------------------------------------

    async def play(self, step: Step) -> None:
        """Carry out one step; :class:`StepFailed` if it did not have its effect."""
        match step:
            case PlugIn():
                await self.request(SimPlugRequest(CONNECTOR))
                await self.wait_for("the vehicle plugged in",
                                    lambda: self.connector().pilot in PLUGGED, 10)
            case Tap():
                await self._tap(step)
            case Charge():
                phases = self.config.connector_by_id(CONNECTOR).phases
                self._current_a = charge_current_a(step, phases)
                await self._draw(step.timeout_s)
                await asyncio.sleep(step.duration_s)
            case Suspend():
                await self.request(SimStopChargingRequest(CONNECTOR))
                await self.wait_for("SuspendedEV",
                                    lambda: self.status() is not ChargePointStatus.CHARGING, 10)
            case Resume():
                await self._draw(30.0)
            case Fault():
                await self._fault(step)
            case Wait():
                await asyncio.sleep(step.duration_s)
            case Unplug():
                await self.request(SimUnplugRequest(CONNECTOR))
                await self.wait_for(
                    "the vehicle unplugged",
                    lambda: self.connector().pilot is PilotState.A
                    and self.running_tx() is None, 10)
            case _:
                if step.action == "await_remote_start":
                    await self.wait_for("a session started by the backend",
                                        lambda: self.running_tx() is not None, step.timeout_s)
                elif step.action == "await_remote_stop":
                    await self.wait_for("the session stopped by the backend",
                                        lambda: self.running_tx() is None, step.timeout_s)
                else:  # pragma: no cover - the scenario model knows every action
                    raise StepFailed(f"unknown action {step.action!r}")

    async def _draw(self, timeout_s: float) -> None:
        await self.request(SimChargeRequest(CONNECTOR, max_current_a=self._current_a))
        await self.wait_for("Charging", lambda: self.status() is ChargePointStatus.CHARGING,
                            timeout_s)

    async def _tap(self, step: Tap) -> None:
        uid = step.uid or self.uid
        running = self.running_tx() is not None
        expect = step.expect
        if expect == "auto":
            expect = "stop" if running else "start"
        rejected_before = self.events["tag.rejected"]
        await self.request(SimTapRequest(uid))
        if expect == "start":
            def started() -> bool:
                if self.events["tag.rejected"] > rejected_before:
                    raise StepFailed(f"card {uid} rejected by the station/backend")
                tx = self.running_tx()
                return tx is not None and tx.transaction_id is not None
            await self._wait_strict("a session confirmed by the backend", started,
                                    step.timeout_s)
        elif expect == "stop":
            await self.wait_for("the session to stop", lambda: self.running_tx() is None,
                                step.timeout_s)
        elif expect == "rejected":
            await self.wait_for("the card rejected",
                                lambda: self.events["tag.rejected"] > rejected_before,
                                step.timeout_s)

    async def _wait_strict(self, what: str, predicate: Callable[[], bool],
                           timeout_s: float) -> None:
        """Like wait_for, but a StepFailed from the predicate fails at once."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise StepFailed(f"{what} not seen within {timeout_s:g} s "
                                 f"(status {self.status().value})")
            await asyncio.sleep(POLL_S)

    async def _fault(self, step: Fault) -> None:
        kind = step.kind
        self._injected.add(kind)
        contactor_closed = self.connector().contactor_closed
        await self._inject(kind)
        if kind == "weld" and contactor_closed:
            pass  # a weld shows only when the contactor opens (at the end of the session)
        else:
            await self.wait_for(f"Faulted after {kind}",
                                lambda: self.status() is ChargePointStatus.FAULTED,
                                step.timeout_s)
        if step.clear_after_s is None:
            return
        await asyncio.sleep(step.clear_after_s)
        await self._clear(kind, step.timeout_s)
        if kind in ("rcd", "estop", "overtemp") or (kind == "weld" and not contactor_closed):
            await self.wait_for(f"{kind} cleared",
                                lambda: self.status() is not ChargePointStatus.FAULTED,
                                step.timeout_s)

    async def _inject(self, kind: FaultName) -> None:
        if kind == "rcd":
            await self.request(SimRcdTripRequest())
        elif kind == "estop":
            await self.request(SimEstopPressRequest())
        elif kind == "overtemp":
            limits = self.config.connector_by_id(CONNECTOR).temperature
            hot = (limits.stop_at_c if limits else 65.0) + 10.0
            await self.request(SimTemperatureRequest(hot, CONNECTOR))
        elif kind == "weld":
            await self.request(SimWeldRequest(CONNECTOR))
        elif kind == "overcurrent":
            offered = self.connector().current_limit_a or 0.0
            await self.request(SimOverdrawRequest(min(100.0, offered + 10.0), CONNECTOR))

    async def _clear(self, kind: FaultName, timeout_s: float) -> None:
        """Remove the cause; the latched kinds are cleared as a technician would."""
        self._injected.discard(kind)
        if kind == "rcd":
            await self.request(SimRcdClearRequest())
            await self._technician_clear(FaultKind.RCD_TRIP_REPEATED, STATION, timeout_s)
        elif kind == "estop":
            await self.request(SimEstopReleaseRequest())
        elif kind == "overtemp":
            await self.request(SimTemperatureRequest(25.0, CONNECTOR))
        elif kind == "weld":
            await self.request(SimRepairRequest(CONNECTOR))
            await self._technician_clear(FaultKind.CONTACTOR_WELDED, CONNECTOR, timeout_s)
        elif kind == "overcurrent":
            await self.request(SimOverdrawRequest(0.0, CONNECTOR))

    async def _technician_clear(self, fault: FaultKind, connector: int,
                                timeout_s: float) -> None:
        """Clear a latched fault once the monitor has seen its condition gone."""
        handlers = self._rt().handlers
        faults = await handlers.call(FaultsRequest())
        if not any(f.kind is fault for f in faults.active):
            return
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await handlers.call(FaultClearRequest(fault, connector))
                return
            except ControlError as exc:
                if time.monotonic() > deadline:
                    raise StepFailed(f"technician clear of {fault.value}: {exc}") from None
            await asyncio.sleep(POLL_S)

    async def reset_hardware(self) -> None:
        """After a failed step: undo injected faults, the vehicle leaves, so the next run
        starts clean."""
        for kind in list(self._injected):
            with contextlib.suppress(StepFailed, Exception):
                await self._clear(kind, 10.0)
        with contextlib.suppress(StepFailed, Exception):
            await self.request(SimUnplugRequest(CONNECTOR))
            await self.wait_for("the vehicle unplugged",
                                lambda: self.running_tx() is None, 10)


