"""``chargerfw sim fleet``: N simulated chargers in one process, for load-testing any OCPP 1.6J
backend.

Each charger is a whole station: a :class:`~chargerfw.runtime.station.StationRuntime` on
simulated hardware (its own simulated meter, reader, pilot, contactor, RCM, e-stop and
temperature sensor, built from the packaged ``hw/stations/sim.toml``), its own SQLite store in
``<state dir>/<charge point id>/``, its own OCPP connection. A runner per charger plays a
scenario (:mod:`chargerfw.sim.scenario`) or random sessions against it, through the same
``sim.*`` control handlers the control socket serves.

Choices (why):
- The simulated meter has no transport (``transport = "rtu"`` on a simulated station gives
  :class:`~chargerfw.sim.meter.SimulatedMeterBackend`): no port per charger, the real decoding
  and plausibility code still runs.
- No control socket by default (nothing to clean up, no 108-byte path limit);
  ``control_sockets=True`` puts one per charger in its state directory, so
  ``CHARGERFW_RUNTIME_DIR=<state dir>/<id> chargerfw status`` shows that charger.
- The safety monitor thread polls every ``safety_poll_s`` (1 s by default instead of the
  firmware's 0.1 s): one thread per charger, each pass an ADC burst on the simulated pilot,
  all under one GIL. Measured with 200 chargers and the backend in another process: at 0.5 s
  the event loop ran late by 18 ms median / 0.5 s p95, at 1 s by 2 ms / 74 ms. A pilot change
  is then seen within about two seconds, which a backend cannot tell from a slow driver.
- What was sent and confirmed is counted from each charger's OCPP frame log in its store (the
  firmware logs every frame in and out): read every ``tally_interval_s``, well before the ring
  of :data:`~chargerfw.store.FRAME_LOG_SIZE` frames wraps; frames lost to a wrap are counted
  as ``frames_missed`` rather than guessed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import shutil
import statistics
import tempfile
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chargerfw.config import StationConfig, parse_config
from chargerfw.drivers.types import PilotState
from chargerfw.hwdata import data_path
from chargerfw.logs import get_logger
from chargerfw.runtime.control import ControlError
from chargerfw.runtime.station import RunOutcome, StationRuntime
from chargerfw.sim.hardware import SimulatedStation
from chargerfw.sim.scenario import (
    Charge,
    Fault,
    FaultName,
    PlugIn,
    Resume,
    Scenario,
    Step,
    Suspend,
    Tap,
    Unplug,
    Wait,
    charger_uid,
)
from chargerfw.station.connector import PLUGGED
from chargerfw.station.safety import SafetySettings
from chargerfw.store import Store, StoreError

log = get_logger(__name__)

NOMINAL_VOLTAGE_V = 230.0
CONNECTOR = 1  # a fleet charger has one connector
POLL_S = 0.1  # how often a runner looks at its charger while waiting for something
MAX_ERRORS_KEPT = 20  # per charger: CALLERROR details and failure messages kept for the report
TALLY_ACTIONS = ("BootNotification", "StatusNotification", "Authorize", "StartTransaction",
                 "MeterValues", "StopTransaction", "Heartbeat", "DataTransfer")


class FleetError(ValueError):
    """A fleet that cannot be set up as asked (bad count, prefix, scenario for this station)."""


class StepFailed(Exception):
    """A step did not have the effect it should have had (the message says what)."""


# ---- settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomProfile:
    """Plausible random sessions: how long a charger is idle, how long a car charges, at what
    power. Every charger draws from its own generator seeded from the fleet seed."""

    idle_s: tuple[float, float] = (2.0, 20.0)
    plug_to_tap_s: tuple[float, float] = (0.5, 3.0)
    tap_to_unplug_s: tuple[float, float] = (1.0, 5.0)
    charge_s: tuple[float, float] = (20.0, 240.0)
    powers_w: tuple[float, ...] = (3700.0, 7400.0, 11000.0, 16500.0, 22000.0)
    suspend_probability: float = 0.2
    suspend_s: tuple[float, float] = (5.0, 30.0)
    unplug_without_tap_probability: float = 0.25


@dataclass(frozen=True)
class FleetSettings:
    count: int
    csms_url: str
    id_prefix: str = "FLEET-"
    password: str | None = None
    state_dir: Path | None = None  # None: a temporary directory, removed at the end
    seed: int = 0
    duration_s: float | None = None  # scripted: a cap; random: how long (None: until stopped)
    stagger_s: float | None = None  # None: the scenario's (random: 0.1 s)
    safety_poll_s: float = 1.0
    meter_poll_s: float = 1.0
    meter_values_interval_s: int = 10  # OCPP MeterValueSampleInterval
    boot_timeout_s: float = 60.0
    shutdown_flush_s: float = 3.0
    control_sockets: bool = False
    tally_interval_s: float = 1.0
    random_profile: RandomProfile = RandomProfile()

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 10_000:
            raise FleetError(f"count must be between 1 and 10000, got {self.count}")
        if not self.csms_url.startswith(("ws://", "wss://")):
            raise FleetError(f"the CSMS URL must start with ws:// or wss://, got {self.csms_url!r}")
        longest = len(charge_point_id(self.id_prefix, self.count, self.count))
        if not self.id_prefix or longest > 48 or not self.id_prefix.isprintable() \
                or any(c in self.id_prefix for c in "/ ?#%"):
            raise FleetError(f"id prefix {self.id_prefix!r}: a charge point id must be 1-48 "
                             "printable characters without '/', space, '?', '#' or '%'")
        for name in ("safety_poll_s", "meter_poll_s", "boot_timeout_s", "tally_interval_s"):
            if getattr(self, name) <= 0:
                raise FleetError(f"{name} must be > 0")
        if self.meter_values_interval_s < 0:
            raise FleetError("meter_values_interval_s must be >= 0")


def charge_point_id(prefix: str, index: int, count: int) -> str:
    """``FLEET-007``: the prefix and the 1-based number, zero-padded to the fleet's width."""
    return f"{prefix}{index:0{max(3, len(str(count)))}d}"


def station_config(settings: FleetSettings, index: int, state_dir: Path) -> StationConfig:
    """The packaged simulated station as fleet charger ``index``: its id, the backend, its
    store, a transport-less simulated meter."""
    raw = tomllib.loads((data_path("stations") / "sim.toml").read_text())
    raw["station"]["id"] = charge_point_id(settings.id_prefix, index, settings.count)
    raw["station"]["serial_number"] = f"SIMFLEET{index:06d}"
    raw["hardware"] = "sim"
    for connector in raw["connector"]:
        connector["meter"].update(transport="rtu", port="simulated",
                                  poll_interval_s=settings.meter_poll_s)
    raw["ocpp"] = {"url": settings.csms_url, "security_profile": 1 if settings.password else 0}
    if settings.password:
        raw["ocpp"]["password"] = settings.password
    raw["storage"] = {"path": str(state_dir / "state.db")}
    return parse_config(raw, f"fleet charger {index}")


def check_scenario_fits(scenario: Scenario, config: StationConfig) -> None:
    """A scenario asking for more than the fleet's station can give is an error up front."""
    section = config.connector_by_id(CONNECTOR)
    max_power = section.max_current_a * NOMINAL_VOLTAGE_V * section.phases
    problems = []
    for number, step in enumerate(scenario.step, start=1):
        if isinstance(step, Charge):
            current = charge_current_a(step, section.phases)
            if current > section.max_current_a:
                what = f"power_w {step.power_w:g}" if step.power_w else f"current_a {current:g}"
                problems.append(
                    f"step[{number}] (charge): {what} is more than the fleet station gives "
                    f"({section.max_current_a:g} A x {section.phases} phases = {max_power:g} W)")
    if problems:
        raise FleetError("; ".join(problems))


def charge_current_a(step: Charge, phases: int) -> float:
    if step.current_a is not None:
        return step.current_a
    assert step.power_w is not None
    return step.power_w / (NOMINAL_VOLTAGE_V * phases)


# ---- what each charger did ----------------------------------------------------------------


@dataclass
class MessageCount:
    sent: int = 0  # CALL frames out (a resend counts again)
    confirmed: int = 0  # CALLRESULT frames in for them
    errors: int = 0  # CALLERROR frames in for them


@dataclass
class ChargerReport:
    charge_point_id: str
    id_tag: str
    boot_accepted: bool = False
    registration: str | None = None
    connects: int = 0
    connection_failures: int = 0
    last_connection_error: str | None = None
    sessions_started: int = 0
    sessions_stopped: int = 0
    sessions_confirmed: int = 0  # StartTransaction answered with a transactionId
    messages: dict[str, MessageCount] = field(default_factory=dict)
    backend_calls: dict[str, int] = field(default_factory=dict)  # CALLs the backend sent us
    call_errors: int = 0
    call_error_details: list[dict[str, str]] = field(default_factory=list)
    frames_missed: int = 0
    outbox_pending: int = 0
    outbox_dead: int = 0
    runs_completed: int = 0
    steps_done: int = 0
    steps_failed: int = 0
    failures: list[str] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.steps_failed += 1
        if len(self.failures) < MAX_ERRORS_KEPT:
            self.failures.append(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FleetReport:
    csms_url: str
    mode: str  # "scenario:<name>" or "random"
    count: int
    seed: int
    started_at: float
    elapsed_s: float = 0.0
    all_online_after_s: float | None = None
    interrupted: bool = False
    loop_lag_ms: dict[str, float] = field(default_factory=dict)
    chargers: list[ChargerReport] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        messages: dict[str, MessageCount] = {}
        for charger in self.chargers:
            for action, count in charger.messages.items():
                total = messages.setdefault(action, MessageCount())
                total.sent += count.sent
                total.confirmed += count.confirmed
                total.errors += count.errors
        sums = {name: sum(getattr(c, name) for c in self.chargers) for name in (
            "connects", "connection_failures", "sessions_started", "sessions_stopped",
            "sessions_confirmed", "call_errors", "frames_missed", "outbox_pending",
            "outbox_dead", "runs_completed", "steps_done", "steps_failed")}
        return {"chargers": len(self.chargers),
                "boots_accepted": sum(c.boot_accepted for c in self.chargers),
                **sums,
                "restarts": sum(len(c.restarts) for c in self.chargers),
                "messages": {a: asdict(m) for a, m in sorted(messages.items())}}

    @property
    def failed(self) -> bool:
        """A step failed or a charger was never accepted by the backend."""
        return any(c.steps_failed or not c.boot_accepted for c in self.chargers)

    def exit_code(self) -> int:
        if self.failed:
            return 1
        return 130 if self.interrupted else 0

    def to_dict(self) -> dict[str, Any]:
        return {"csms_url": self.csms_url, "mode": self.mode, "count": self.count,
                "seed": self.seed, "started_at": self.started_at,
                "elapsed_s": round(self.elapsed_s, 3),
                "all_online_after_s": (None if self.all_online_after_s is None
                                       else round(self.all_online_after_s, 3)),
                "interrupted": self.interrupted, "failed": self.failed,
                "loop_lag_ms": self.loop_lag_ms, "totals": self.totals(),
                "chargers": [c.to_dict() for c in self.chargers]}


class FrameTally:
    """Counts OCPP frames from a store's frame log: CALLs we sent per action, their results
    and CALLERRORs (matched by unique id), and the CALLs the backend sent."""

    def __init__(self, report: ChargerReport) -> None:
        self.report = report
        self.last_seq = 0
        self._waiting: dict[str, str] = {}  # unique id -> action of our CALL

    def read(self, store: Store) -> None:
        """Take in the frames logged since the last read."""
        records = store.frame_log(limit=32)
        if records and records[0].seq > self.last_seq + 1 and len(records) == 32:
            records = store.frame_log()  # more than 32 new: the whole ring
        fresh = [r for r in records if r.seq > self.last_seq]
        if fresh and fresh[0].seq > self.last_seq + 1:
            self.report.frames_missed += fresh[0].seq - self.last_seq - 1
        for record in fresh:
            self.last_seq = record.seq
            self._count(record.direction, record.frame)

    def _count(self, direction: str, frame: str) -> None:
        try:
            message = json.loads(frame)
            kind, unique = message[0], str(message[1])
        except (ValueError, TypeError, IndexError, KeyError):
            return
        report = self.report
        if kind == 2 and direction == "out":
            action = str(message[2])
            report.messages.setdefault(action, MessageCount()).sent += 1
            self._waiting[unique] = action
        elif kind == 2:
            action = str(message[2])
            report.backend_calls[action] = report.backend_calls.get(action, 0) + 1
        elif kind == 3 and direction == "in" and unique in self._waiting:
            action = self._waiting.pop(unique)
            report.messages.setdefault(action, MessageCount()).confirmed += 1
            payload = message[2] if len(message) > 2 and isinstance(message[2], dict) else {}
            if action == "BootNotification":
                report.registration = str(payload.get("status"))
                report.boot_accepted = report.boot_accepted or payload.get("status") == "Accepted"
        elif kind == 4 and direction == "in":
            action = self._waiting.pop(unique, "?")
            report.messages.setdefault(action, MessageCount()).errors += 1
            report.call_errors += 1
            if len(report.call_error_details) < MAX_ERRORS_KEPT:
                report.call_error_details.append({
                    "action": action, "code": str(message[2]) if len(message) > 2 else "",
                    "description": str(message[3]) if len(message) > 3 else ""})


# ---- one charger ----------------------------------------------------------------------------


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
                simulator=SimulatedStation.create)
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

    def _controller(self) -> Any:
        return self._rt().controllers[CONNECTOR]

    def status(self) -> str:
        return str(self._rt().connector_outputs(CONNECTOR).status.value)

    def running_tx(self) -> Any:
        return self._controller().transaction

    async def call(self, method: str, **params: Any) -> Any:
        handler = self._rt().handlers.handlers()[method]
        try:
            result = handler(**params)
            if asyncio.iscoroutine(result):
                result = await result
        except ControlError as exc:
            raise StepFailed(f"{method}: {exc}") from None
        return result

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
                    status = self.status()
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
                await self.call("sim.plug", connector=CONNECTOR)
                await self.wait_for("the vehicle plugged in",
                                    lambda: self._rt().connector_state(CONNECTOR).pilot in PLUGGED, 10)
            case Tap():
                await self._tap(step)
            case Charge():
                phases = self.config.connector_by_id(CONNECTOR).phases
                self._current_a = charge_current_a(step, phases)
                await self._draw(step.timeout_s)
                await asyncio.sleep(step.duration_s)
            case Suspend():
                await self.call("sim.stop_charging", connector=CONNECTOR)
                await self.wait_for("SuspendedEV", lambda: self.status() != "Charging", 10)
            case Resume():
                await self._draw(30.0)
            case Fault():
                await self._fault(step)
            case Wait():
                await asyncio.sleep(step.duration_s)
            case Unplug():
                await self.call("sim.unplug", connector=CONNECTOR)
                await self.wait_for(
                    "the vehicle unplugged",
                    lambda: self._rt().connector_state(CONNECTOR).pilot is PilotState.A
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
        vehicle = self._rt().sim.parts(CONNECTOR).vehicle  # type: ignore[union-attr]
        vehicle.max_current_a = self._current_a
        await self.call("sim.charge", connector=CONNECTOR)
        await self.wait_for("Charging", lambda: self.status() == "Charging", timeout_s)

    async def _tap(self, step: Tap) -> None:
        uid = step.uid or self.uid
        running = self.running_tx() is not None
        expect = step.expect
        if expect == "auto":
            expect = "stop" if running else "start"
        rejected_before = self.events["tag.rejected"]
        await self.call("sim.tap", uid=uid)
        if expect == "start":
            def started() -> bool:
                if self.events["tag.rejected"] > rejected_before:
                    raise StepFailed(f"card {uid} rejected by the station/backend")
                tx = self.running_tx()
                return tx is not None and tx.backend_tx_id is not None
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
                                 f"(status {self.status()})")
            await asyncio.sleep(POLL_S)

    async def _fault(self, step: Fault) -> None:
        kind = step.kind
        self._injected.add(kind)
        contactor_closed = self._controller().devices.contactor.commanded_closed
        await self._inject(kind)
        if kind == "weld" and contactor_closed:
            pass  # a weld shows only when the contactor opens (at the end of the session)
        else:
            await self.wait_for(f"Faulted after {kind}", lambda: self.status() == "Faulted",
                                step.timeout_s)
        if step.clear_after_s is None:
            return
        await asyncio.sleep(step.clear_after_s)
        await self._clear(kind, step.timeout_s)
        if kind in ("rcd", "estop", "overtemp") or (kind == "weld" and not contactor_closed):
            await self.wait_for(f"{kind} cleared", lambda: self.status() != "Faulted",
                                step.timeout_s)

    async def _inject(self, kind: FaultName) -> None:
        if kind == "rcd":
            await self.call("sim.rcd_trip")
        elif kind == "estop":
            await self.call("sim.estop_press")
        elif kind == "overtemp":
            limits = self.config.connector_by_id(CONNECTOR).temperature
            hot = (limits.stop_at_c if limits else 65.0) + 10.0
            await self.call("sim.temperature", celsius=hot, connector=CONNECTOR)
        elif kind == "weld":
            await self.call("sim.weld", connector=CONNECTOR)
        elif kind == "overcurrent":
            offered = self._rt().connector_outputs(CONNECTOR).offered_current_a or 0.0
            await self.call("sim.overdraw", amps=min(100.0, offered + 10.0),
                            connector=CONNECTOR)

    async def _clear(self, kind: FaultName, timeout_s: float) -> None:
        """Remove the cause; the latched kinds are cleared as a technician would."""
        self._injected.discard(kind)
        if kind == "rcd":
            await self.call("sim.rcd_clear")
            await self._technician_clear("rcd_trip_repeated", None, timeout_s)
        elif kind == "estop":
            await self.call("sim.estop_release")
        elif kind == "overtemp":
            await self.call("sim.temperature", celsius=25.0, connector=CONNECTOR)
        elif kind == "weld":
            await self.call("sim.repair", connector=CONNECTOR)
            await self._technician_clear("contactor_welded", CONNECTOR, timeout_s)
        elif kind == "overcurrent":
            await self.call("sim.overdraw", amps=0.0, connector=CONNECTOR)

    async def _technician_clear(self, fault: str, connector: int | None,
                                timeout_s: float) -> None:
        """Clear a latched fault once the monitor has seen its condition gone."""
        runtime = self._rt()
        if not any(f["kind"] == fault for f in runtime.handlers.faults()["active"]):
            return
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                runtime.handlers.clear_fault(fault, connector)
                return
            except ControlError as exc:
                if time.monotonic() > deadline:
                    raise StepFailed(f"technician clear of {fault}: {exc}") from None
            await asyncio.sleep(POLL_S)

    async def reset_hardware(self) -> None:
        """After a failed step: undo injected faults, the vehicle leaves, so the next run
        starts clean."""
        for kind in list(self._injected):
            with contextlib.suppress(StepFailed, Exception):
                await self._clear(kind, 10.0)
        with contextlib.suppress(StepFailed, Exception):
            await self.call("sim.unplug", connector=CONNECTOR)
            await self.wait_for("the vehicle unplugged",
                                lambda: self.running_tx() is None, 10)


# ---- runners --------------------------------------------------------------------------------


def random_session(rng: random.Random, profile: RandomProfile, max_power_w: float) -> list[Step]:
    """One plausible session: idle, plug in, tap, charge (maybe a pause), stop, unplug."""
    power = min(rng.choice(profile.powers_w), max_power_w)
    steps: list[Step] = [Wait(action="wait", duration_s=round(rng.uniform(*profile.idle_s), 1)),
                         PlugIn(action="plug_in"),
                         Wait(action="wait",
                              duration_s=round(rng.uniform(*profile.plug_to_tap_s), 1)),
                         Tap(action="tap")]
    charge_s = rng.uniform(*profile.charge_s)
    if rng.random() < profile.suspend_probability:
        first = round(charge_s * rng.uniform(0.2, 0.8), 1)
        steps += [Charge(action="charge", duration_s=first, power_w=power),
                  Suspend(action="suspend"),
                  Wait(action="wait", duration_s=round(rng.uniform(*profile.suspend_s), 1)),
                  Resume(action="resume"),
                  Wait(action="wait", duration_s=round(charge_s - first, 1))]
    else:
        steps.append(Charge(action="charge", duration_s=round(charge_s, 1), power_w=power))
    if rng.random() >= profile.unplug_without_tap_probability:
        steps += [Tap(action="tap"),
                  Wait(action="wait", duration_s=round(rng.uniform(*profile.tap_to_unplug_s), 1))]
    steps.append(Unplug(action="unplug"))
    return steps


async def _play_run(charger: FleetCharger, steps: list[Step], run: int) -> bool:
    """Play one run of steps; on a failure note it, reset the hardware and give up the run."""
    for number, step in enumerate(steps, start=1):
        try:
            await charger.play(step)
        except StepFailed as exc:
            charger.report.fail(f"run {run} step {number} ({step.action}): {exc}")
            await charger.reset_hardware()
            return False
        charger.report.steps_done += 1
    return True


async def scripted_runner(charger: FleetCharger, scenario: Scenario) -> None:
    try:
        await charger.wait_online()
    except StepFailed as exc:
        charger.report.fail(f"boot: {exc}")
        return
    for run in range(1, scenario.repeat + 1):
        if await _play_run(charger, list(scenario.step), run):
            charger.report.runs_completed += 1
        if run < scenario.repeat:
            await asyncio.sleep(scenario.pause_s)


async def random_runner(charger: FleetCharger, profile: RandomProfile) -> None:
    try:
        await charger.wait_online()
    except StepFailed as exc:
        charger.report.fail(f"boot: {exc}")
        return
    section = charger.config.connector_by_id(CONNECTOR)
    max_power = section.max_current_a * NOMINAL_VOLTAGE_V * section.phases
    run = 0
    while True:
        run += 1
        if await _play_run(charger, random_session(charger.rng, profile, max_power), run):
            charger.report.runs_completed += 1


# ---- the fleet ------------------------------------------------------------------------------


class LoopLag:
    """How late the event loop runs a 100 ms timer: the fleet's own health figure."""

    def __init__(self) -> None:
        self.samples: collections.deque[float] = collections.deque(maxlen=10_000)

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.1)
            self.samples.append(max(0.0, loop.time() - before - 0.1) * 1000)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        ordered = sorted(self.samples)
        return {"median": round(statistics.median(ordered), 1),
                "p95": round(ordered[int(len(ordered) * 0.95) - 1 if len(ordered) > 1 else 0], 1),
                "max": round(ordered[-1], 1)}


@contextlib.contextmanager
def _state_root(settings: FleetSettings) -> Iterator[Path]:
    if settings.state_dir is not None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        yield settings.state_dir
        return
    root = Path(tempfile.mkdtemp(prefix="chargerfw-fleet-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Fleet:
    """The chargers, their runners, the tally, and the report."""

    def __init__(self, settings: FleetSettings, scenario: Scenario | None = None,
                 *, echo: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.scenario = scenario
        self.echo = echo or (lambda _line: None)
        self.chargers: list[FleetCharger] = []
        self._stop = asyncio.Event()
        self.interrupted = False

    def request_stop(self) -> None:
        """Ctrl-C: end the runners, stop the stations, report (any loop callback)."""
        self.interrupted = True
        self._stop.set()

    async def run(self) -> FleetReport:
        settings = self.settings
        if self.scenario is not None:  # before anything is created
            check_scenario_fits(self.scenario, station_config(settings, 1, Path("unused")))
        with _state_root(settings) as root:
            self.chargers = [
                FleetCharger(settings, i, root / charge_point_id(settings.id_prefix, i,
                                                                  settings.count),
                             random.Random(f"{settings.seed}-{i}"))
                for i in range(1, settings.count + 1)]
            for charger in self.chargers:
                await asyncio.to_thread(charger.prepare)
            return await self._run(root)

    async def _run(self, root: Path) -> FleetReport:
        settings, scenario = self.settings, self.scenario
        report = FleetReport(settings.csms_url,
                             f"scenario:{scenario.name}" if scenario else "random",
                             settings.count, settings.seed, time.time())
        started = time.monotonic()
        stagger = settings.stagger_s if settings.stagger_s is not None else (
            scenario.stagger_s if scenario else 0.1)
        lag = LoopLag()
        background = [asyncio.create_task(lag.watch(), name="fleet-lag"),
                      asyncio.create_task(self._tally_forever(), name="fleet-tally")]
        stations: list[asyncio.Task[None]] = []
        runners: list[asyncio.Task[None]] = []
        self.echo(f"fleet: {settings.count} chargers -> {settings.csms_url} "
                  f"({report.mode}, state in {root})")

        async def start_charger(charger: FleetCharger, delay: float) -> None:
            await asyncio.sleep(delay)
            ready = asyncio.Event()
            stations.append(asyncio.create_task(charger.run(ready), name=f"fleet-{charger.id}"))
            await ready.wait()
            if scenario is not None:
                await scripted_runner(charger, scenario)
            else:
                await random_runner(charger, settings.random_profile)

        runners = [asyncio.create_task(start_charger(c, n * stagger), name=f"runner-{c.id}")
                   for n, c in enumerate(self.chargers)]
        all_done = asyncio.gather(*runners, return_exceptions=True)
        stop_wait = asyncio.create_task(self._stop.wait())
        waits: set[asyncio.Future[Any]] = {all_done, stop_wait}
        try:
            done, _ = await asyncio.wait(waits, timeout=settings.duration_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            for task in runners:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await all_done
            onlines = [c.online_at for c in self.chargers]
            if onlines and all(t is not None for t in onlines):
                report.all_online_after_s = max(onlines) - started  # type: ignore[type-var,operator]
            self.echo("fleet: stopping the stations ...")
            for charger in self.chargers:
                charger.stop()
            if stations:
                await asyncio.wait(stations, timeout=settings.shutdown_flush_s + 15)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        for runner, charger in zip(runners, self.chargers, strict=True):
            if runner.done() and not runner.cancelled() and runner.exception() is not None:
                charger.report.fail(f"runner crashed: {runner.exception()!r}")
        for charger in self.chargers:
            await asyncio.to_thread(charger.final_tally, report.started_at)
        report.elapsed_s = time.monotonic() - started
        report.interrupted = self.interrupted
        report.loop_lag_ms = lag.summary()
        report.chargers = [c.report for c in self.chargers]
        return report

    async def _tally_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tally_interval_s)
            for charger in self.chargers:
                charger.tally_now()


async def run_fleet(settings: FleetSettings, scenario: Scenario | None = None,
                    *, echo: Callable[[str], None] | None = None,
                    on_fleet: Callable[[Fleet], Awaitable[None] | None] | None = None
                    ) -> FleetReport:
    """Run a fleet to the end of its scenario (or ``duration_s``) and report."""
    fleet = Fleet(settings, scenario, echo=echo)
    if on_fleet is not None:
        result = on_fleet(fleet)
        if asyncio.iscoroutine(result):
            await result
    return await fleet.run()


def render_report(report: FleetReport, max_rows: int = 500) -> str:
    """The report for a person: one row per charger, totals, what failed."""

    def pair(counts: dict[str, MessageCount], action: str) -> str:
        count = counts.get(action)
        if count is None:
            return "0/0"
        return f"{count.sent}/{count.confirmed}" + (f"!{count.errors}" if count.errors else "")

    header = (f"{'charger':<16} {'boot':<8} {'conn':>4} {'fail':>4} {'sess':>9} "
              f"{'Start':>7} {'Stop':>7} {'MeterVal':>9} {'Status':>7} {'CERR':>4} "
              f"{'steps':>9}")
    lines = [f"fleet {report.mode}: {report.count} chargers -> {report.csms_url}, "
             f"seed {report.seed}, {report.elapsed_s:.1f} s"
             + (" (interrupted)" if report.interrupted else ""),
             "messages: sent/confirmed (!CALLERROR); sess: started/stopped/confirmed", header]
    for c in report.chargers[:max_rows]:
        boot = "accepted" if c.boot_accepted else (c.registration or "none")
        lines.append(
            f"{c.charge_point_id:<16} {boot:<8} {c.connects:>4} {c.connection_failures:>4} "
            f"{f'{c.sessions_started}/{c.sessions_stopped}/{c.sessions_confirmed}':>9} "
            f"{pair(c.messages, 'StartTransaction'):>7} {pair(c.messages, 'StopTransaction'):>7} "
            f"{pair(c.messages, 'MeterValues'):>9} {pair(c.messages, 'StatusNotification'):>7} "
            f"{c.call_errors:>4} {f'{c.steps_done}/{c.steps_failed}':>9}")
    if len(report.chargers) > max_rows:
        lines.append(f"... {len(report.chargers) - max_rows} more chargers (--json for all)")
    totals = report.totals()
    lines.append("")
    lines.append(
        f"totals: boots accepted {totals['boots_accepted']}/{totals['chargers']}, "
        f"connects {totals['connects']}, connection failures {totals['connection_failures']}, "
        f"sessions started {totals['sessions_started']} stopped {totals['sessions_stopped']} "
        f"confirmed {totals['sessions_confirmed']}, CALLERRORs {totals['call_errors']}, "
        f"steps {totals['steps_done']} done {totals['steps_failed']} failed, "
        f"restarts {totals['restarts']}")
    for action, count in totals["messages"].items():
        lines.append(f"  {action:<20} sent {count['sent']:>7}  confirmed {count['confirmed']:>7}"
                     f"  CALLERROR {count['errors']:>5}")
    if totals["outbox_pending"] or totals["outbox_dead"] or totals["frames_missed"]:
        lines.append(f"  undelivered at the end: {totals['outbox_pending']} pending, "
                     f"{totals['outbox_dead']} given up; frames not counted (log wrapped): "
                     f"{totals['frames_missed']}")
    if report.all_online_after_s is not None:
        lines.append(f"all chargers online after {report.all_online_after_s:.1f} s")
    if report.loop_lag_ms:
        lag = report.loop_lag_ms
        lines.append(f"event loop lag ms: median {lag['median']}, p95 {lag['p95']}, "
                     f"max {lag['max']}")
    problems = [(c.charge_point_id, f) for c in report.chargers for f in c.failures]
    problems += [(c.charge_point_id, f"CALLERROR {e['code']} to {e['action']}: "
                                     f"{e['description']}")
                 for c in report.chargers for e in c.call_error_details]
    problems += [(c.charge_point_id, r) for c in report.chargers for r in c.restarts]
    if problems:
        lines.append("")
        lines.append("what failed:")
        for cp_id, text in problems[:50]:
            lines.append(f"  {cp_id}: {text}")
        if len(problems) > 50:
            lines.append(f"  ... {len(problems) - 50} more (--json for all)")
    return "\n".join(lines)
