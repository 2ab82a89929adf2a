"""Station latencies: card tap to contactor closed, fault input to contactor open, and start-up
to BootNotification. Prints figures; not a pass/fail test.

Set-up: the bench CSMS (``station_common.py csms``, the ``ocpp`` library's server side) runs as
its own process on 127.0.0.1. The station runtime (``StationRuntime``, hardware = "sim", the
shipped hw/stations/sim.toml, logging at INFO to a file as in service) runs in this process so
the bench can watch the contactor coil pin: the time a figure ends is taken in the coil pin's
output listener, on whatever thread wrote the pin.

1. Tap -> contactor closed. Before every tap the vehicle is plugged in and already requesting
   charge (pilot state C, connector Preparing, the safety monitor has seen C); the tap is
   ``SimulatedReader.present(uid)`` (the same path a real reader's event takes), the end is the
   coil being energised. Every repetition starts from a fresh plug-in; the session ends by
   unplugging. "local": the tag is in the local authorization list and LocalPreAuthorize is
   true. "online": LocalPreAuthorize is false and every tap is a new tag, so each one costs an
   Authorize.req/conf over loopback. The StartTransaction is written to the durable outbox (one
   fsync) before the coil is energised; its delivery is not waited for. Beside them, a bare
   ``ocpp`` library ChargePoint sends Authorize to the same CSMS from this process.
2. Fault input -> contactor open. While charging, a "hardware" thread (standing in for
   RPi.GPIO's edge-callback thread) drives the RCM trip or emergency-stop pin; the end is the
   coil de-energised. With the loop idle, and with a coroutine blocking the asyncio loop for
   200 ms (CPU-bound: it holds the GIL, the worst case; or time.sleep: GIL free) and the edge
   placed 30..120 ms into that block. "edge" is when the thread was due to drive the pin, so
   the figure includes waking the thread and getting the GIL from the busy loop. The loop's own
   handling of the fault (status, StopTransaction) is timed too: it has to wait for the block.
   The station sets sys.setswitchinterval(0.001) (Python's default is 5 ms), the knob that
   bounds how long a busy loop thread keeps the GIL from the fault-input thread; a last run
   repeats the CPU-bound case with Python's default to show what that setting buys.
3. Start-up: ``chargerfw run --config <sim config>`` spawned N times (after one warm-up run
   that creates the database), timed to the ``station.ready`` log line and to the CSMS handling
   its BootNotification; beside it, in the same rounds, fresh interpreters timed from spawn to
   the end of ``pass`` / the imports (reported by the child, so interpreter exit is left out),
   which splits interpreter and import cost from the station's own start-up work.

Options: --tap-reps (30), --fault-reps (40), --startup-runs (5), or CHARGERFW_BENCH_QUICK=1
for a short smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station_common import (
    CsmsProcess,
    bench_csms,
    chargerfw_command,
    child_env,
    stop_child,
    summary,
    summary_header,
    summary_row,
    write_station_config,
)

from chargerfw.config import load_config
from chargerfw.control.api import ConfigSetRequest
from chargerfw.logs import setup_logging
from chargerfw.runtime.station import StationRuntime
from chargerfw.sim.hardware import simulated_hardware
from chargerfw.station.auth import IdTagInfo
from chargerfw.station.connector import outputs
from chargerfw.station.enums import AuthorizationStatus
from chargerfw.station.safety import SafetySettings
from chargerfw.store import Store

BLOCK_S = 0.200
NS_PER_MS = 1_000_000


# ---- watching the coil -------------------------------------------------------------------------


class CoilProbe:
    """Timestamps (perf_counter_ns) every change of a simulated contactor coil, on the thread
    that wrote the pin; the loop can wait for the next change."""

    def __init__(self, mirror: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.mirror = mirror
        self.loop = loop
        self.changes: deque[tuple[int, bool]] = deque(maxlen=64)
        self._changed = asyncio.Event()
        mirror.coil.on_output_change(self._on_write)

    def _on_write(self, _pin: object) -> None:
        now = time.perf_counter_ns()
        energised = bool(self.mirror.energised)
        if not self.changes or self.changes[-1][1] != energised:
            self.changes.append((now, energised))
            self.loop.call_soon_threadsafe(self._changed.set)

    @property
    def energised(self) -> bool:
        return bool(self.mirror.energised)

    async def wait(self, energised: bool, since_ns: int, timeout: float = 10.0) -> int:
        """The time the coil became ``energised`` at or after ``since_ns``."""
        async with asyncio.timeout(timeout):
            while True:
                for at, state in self.changes:
                    if at >= since_ns and state is energised:
                        return at
                self._changed.clear()
                await self._changed.wait()


class EventProbe:
    """Timestamps station events (``runtime.event_listeners``) such as fault.raised."""

    def __init__(self, runtime: StationRuntime) -> None:
        self.seen: list[tuple[int, str, dict[str, Any]]] = []
        self._changed = asyncio.Event()
        runtime.event_listeners.append(self._on_event)

    def _on_event(self, event: str, fields: dict[str, Any]) -> None:
        self.seen.append((time.perf_counter_ns(), event, fields))
        self._changed.set()

    async def wait(self, event: str, since_ns: int, timeout: float = 10.0) -> int:
        async with asyncio.timeout(timeout):
            while True:
                for at, name, _ in self.seen:
                    if at >= since_ns and name == event:
                        return at
                self._changed.clear()
                await self._changed.wait()


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: {what} not reached within {timeout} s")
        await asyncio.sleep(0.005)


@dataclass
class Station:
    runtime: StationRuntime
    coil: CoilProbe
    events: EventProbe
    parts: Any  # ConnectorSim of connector 1
    task: asyncio.Task[Any]

    @property
    def controller(self) -> Any:
        return self.runtime.controllers[1]

    def outbox_empty(self) -> bool:
        assert self.runtime.store is not None
        return self.runtime.store.outbox_head() is None

    async def settle(self) -> None:
        """Let the previous repetition's OCPP traffic drain (outbox, status notifications)."""
        await wait_until(self.outbox_empty, "empty outbox")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_station(state_dir: Path, csms: CsmsProcess, local_tags: list[str]) -> Any:
    path = write_station_config(state_dir, csms.url, station_id="BENCH-LAT", ocpp_keys={
        "LocalPreAuthorize": "true", "MeterValueSampleInterval": "60",
        "HeartbeatInterval": "300"})
    config = load_config(str(path))
    with Store(config.storage.path) as store:
        store.local_list_apply(1, {t: IdTagInfo(AuthorizationStatus.ACCEPTED) for t in local_tags},
                               full=True)
    # Default poll interval (0.1 s); repeated RCD trips must not latch for this bench.
    settings = SafetySettings(rcd_trips_to_latch=1_000_000)
    runtime = StationRuntime(config, control_socket=None, safety_settings=settings,
                             shutdown_flush_s=1.0, simulator=simulated_hardware)
    task = asyncio.create_task(runtime.run())
    try:
        ready = asyncio.create_task(runtime.ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=20,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        if ready not in done:
            raise RuntimeError("bench: the station did not become ready")
        assert runtime.client is not None and runtime.sim is not None
        await wait_until(lambda: runtime.client.online, "BootNotification accepted", 20)  # type: ignore[union-attr]
        parts = runtime.sim.parts(1)
        loop = asyncio.get_running_loop()
        station = Station(runtime, CoilProbe(parts.contactor, loop), EventProbe(runtime), parts,
                          task)
        yield station
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 20)


# ---- 1. tap -> contactor closed --------------------------------------------------------------------


async def plug_in_requesting_charge(st: Station) -> None:
    vehicle = st.parts.vehicle
    vehicle.plug_in()
    vehicle.request_charge()
    await wait_until(lambda: st.controller.state.pilot.value == "C"
                     and outputs(st.controller.state).status.value == "Preparing",
                     "pilot C seen and Preparing")
    await st.settle()


async def unplug(st: Station) -> None:
    st.parts.vehicle.unplug()
    await wait_until(lambda: st.controller.state.pilot.value == "A"
                     and st.controller.transaction is None and not st.coil.energised,
                     "unplugged, session over")
    await st.settle()


async def tap_to_close_ms(st: Station, tag: str) -> float:
    reader = st.runtime.sim.reader  # type: ignore[union-attr]
    assert reader is not None
    await plug_in_requesting_charge(st)
    tapped = time.perf_counter_ns()
    reader.present(tag)
    closed = await st.coil.wait(True, tapped)
    reader.remove()
    await unplug(st)
    return (closed - tapped) / NS_PER_MS


async def bare_authorize_ms(csms: CsmsProcess, tags: list[str]) -> list[float]:
    """Authorize round trips of a plain ocpp library ChargePoint against the same CSMS."""
    from ocpp.v16 import ChargePoint, call
    from websockets.asyncio.client import connect

    times = []
    async with connect(f"{csms.url}/BENCH-BARE", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = ChargePoint("BENCH-BARE", ws)
        reader = asyncio.create_task(cp.start())
        try:
            await cp.call(call.BootNotification(charge_point_vendor="bench",
                                                charge_point_model="bare"))
            for tag in tags:
                started = time.perf_counter_ns()
                result = await cp.call(call.Authorize(id_tag=tag))
                times.append((time.perf_counter_ns() - started) / NS_PER_MS)
                if result.id_tag_info["status"] != "Accepted":
                    raise RuntimeError(f"bench: bare Authorize got {result}")
                await asyncio.sleep(0.01)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    return times


async def bench_tap(st: Station, csms: CsmsProcess, local_tags: list[str],
                    reps: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"local": [], "online": [], "bare": []}
    results["bare"] = await bare_authorize_ms(csms, [f"0B{i:012X}" for i in range(reps)])
    for tag in local_tags[:reps]:
        results["local"].append(await tap_to_close_ms(st, tag))
    answer = st.runtime.handlers.set_ocpp_key(ConfigSetRequest("LocalPreAuthorize", "false"))
    if answer.status != "Accepted":
        raise RuntimeError(f"bench: LocalPreAuthorize=false refused: {answer}")
    authorizes_before = csms.count("Authorize", "BENCH-LAT")
    for i in range(reps):
        results["online"].append(await tap_to_close_ms(st, f"0C{i:012X}"))
    sent = csms.count("Authorize", "BENCH-LAT") - authorizes_before
    if sent != reps:
        raise RuntimeError(f"bench: expected {reps} Authorize.req from the station, saw {sent}")
    st.runtime.handlers.set_ocpp_key(ConfigSetRequest("LocalPreAuthorize", "true"))
    return results


# ---- 2. fault input -> contactor open ----------------------------------------------------------------


@dataclass
class FaultSample:
    edge_to_open_ms: float  # when the edge was due -> coil off (thread wake-up + GIL included)
    callback_to_open_ms: float  # the thread had the GIL and drove the pin -> coil off
    edge_to_loop_ms: float  # edge -> the asyncio side handled fault.raised
    open_before_loop_free: bool  # coil off while the blocking coroutine still ran


@dataclass
class FaultScenario:
    label: str
    fault: str  # "rcm" or "emergency_stop"
    block: str | None  # None, "cpu" (holds the GIL) or "sleep" (releases it)
    switch_interval_s: float | None = None  # sys.setswitchinterval for this scenario only
    samples: list[FaultSample] = field(default_factory=list)


def _switch(st: Station, fault: str) -> tuple[Callable[[], None], Callable[[], None]]:
    board_sim = st.runtime.sim.board.sim  # type: ignore[union-attr]
    part = board_sim.rcm if fault == "rcm" else board_sim.emergency_stop
    return part.trip, part.clear


def _block_loop(kind: str, seconds: float, started: threading.Event,
                times: dict[str, int]) -> None:
    """Runs ON the loop's thread and keeps the loop from doing anything else."""
    times["block_start"] = time.perf_counter_ns()
    started.set()
    if kind == "sleep":
        time.sleep(seconds)
    else:
        deadline = time.perf_counter() + seconds
        spins = 0
        while time.perf_counter() < deadline:
            spins += 1  # pure Python work: the GIL is only given up at switch intervals
    times["block_end"] = time.perf_counter_ns()


def _hardware_edge(started: threading.Event, delay_s: float, trip: Callable[[], None],
                   times: dict[str, int]) -> None:
    """The GPIO edge-callback thread: the pin changes ``delay_s`` after the block began."""
    if not started.wait(5):
        return
    due = times["block_start"] + int(delay_s * 1e9)
    pause = (due - time.perf_counter_ns()) / 1e9
    if pause > 0:
        time.sleep(pause)
    times["edge_due"] = due
    times["callback"] = time.perf_counter_ns()
    trip()


async def fault_once(st: Station, scenario: FaultScenario, tag: str, rng: random.Random) -> None:
    trip, clear = _switch(st, scenario.fault)
    # Charging: a fresh session on the plugged-in vehicle (after a fault it is Finishing).
    result = await st.runtime.handle_tap(tag)
    if result != "authorized" or not st.coil.energised:
        raise RuntimeError(f"bench: could not start charging for the fault run ({result})")
    await st.settle()
    times: dict[str, int] = {}
    started = threading.Event()
    delay = rng.uniform(0.030, 0.120) if scenario.block else 0.0
    hw = threading.Thread(target=_hardware_edge, args=(started, delay, trip, times),
                          name="bench-gpio-edge", daemon=True)
    hw.start()
    since = time.perf_counter_ns()
    if scenario.block:
        asyncio.get_running_loop().call_soon(_block_loop, scenario.block, BLOCK_S, started,
                                             times)
    else:
        started.set()
        times["block_start"] = time.perf_counter_ns()
    opened = await st.coil.wait(False, since)
    noticed = await st.events.wait("fault.raised", since)
    hw.join(5)
    edge = times["edge_due"]
    scenario.samples.append(FaultSample(
        edge_to_open_ms=(opened - edge) / NS_PER_MS,
        callback_to_open_ms=(opened - times["callback"]) / NS_PER_MS,
        edge_to_loop_ms=(noticed - edge) / NS_PER_MS,
        open_before_loop_free=opened < times.get("block_end", 0)))
    cleared_since = time.perf_counter_ns()
    clear()
    await st.events.wait("fault.cleared", cleared_since)
    await wait_until(lambda: outputs(st.controller.state).status.value == "Finishing",
                     "Finishing after the fault")
    await st.settle()


async def bench_faults(st: Station, local_tag: str, reps: int) -> list[FaultScenario]:
    scenarios = [
        FaultScenario("RCD trip, loop idle", "rcm", None),
        FaultScenario("RCD trip, loop blocked 200 ms (CPU, holds GIL)", "rcm", "cpu"),
        FaultScenario("RCD trip, loop blocked 200 ms (time.sleep)", "rcm", "sleep"),
        FaultScenario("E-stop press, loop blocked 200 ms (CPU, holds GIL)", "emergency_stop",
                      "cpu"),
        FaultScenario("RCD trip, loop blocked 200 ms (CPU), Python's default 5 ms GIL switch "
                      "interval", "rcm", "cpu", switch_interval_s=0.005),
    ]
    rng = random.Random(61851)
    await plug_in_requesting_charge(st)
    default_interval = sys.getswitchinterval()
    for scenario in scenarios:
        sys.setswitchinterval(scenario.switch_interval_s or default_interval)
        try:
            for _ in range(reps):
                await fault_once(st, scenario, local_tag, rng)
        finally:
            sys.setswitchinterval(default_interval)
    await unplug(st)
    return scenarios


# ---- 3. start-up -> BootNotification -----------------------------------------------------------------


@dataclass
class StartupSample:
    ready_ms: float | None  # spawn -> "station.ready" on stdout
    boot_ms: float  # spawn -> the CSMS handled BootNotification


async def startup_once(csms: CsmsProcess, config_path: Path, runtime_dir: Path,
                       station_id: str) -> StartupSample:
    ready_at: list[int] = []

    async def watch(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            if not ready_at and b"event='station.ready'" in line:
                ready_at.append(time.monotonic_ns())

    spawned = time.monotonic_ns()
    proc = await asyncio.create_subprocess_exec(
        *chargerfw_command(), "run", "--config", str(config_path),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=child_env(runtime_dir))
    assert proc.stdout is not None
    watcher = asyncio.create_task(watch(proc.stdout))
    try:
        boot = await csms.wait_call("BootNotification", station_id, spawned, timeout=60)
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: bool(ready_at), "station.ready", 5)
    finally:
        await stop_child(proc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher, 5)
    ready = (ready_at[0] - spawned) / NS_PER_MS if ready_at else None
    return StartupSample(ready, (boot.at_ns - spawned) / NS_PER_MS)


async def timed_python_ms(code: str) -> float:
    """Spawn -> ``code`` done in a fresh interpreter (the child reports CLOCK_MONOTONIC right
    after it, so the interpreter's exit, which tears down every module, is not counted)."""
    started = time.monotonic_ns()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", f"{code}\nimport time\nprint(time.monotonic_ns())",
        stdout=asyncio.subprocess.PIPE, env=child_env())
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench: python -c {code!r} failed")
    return (int(out.split()[-1]) - started) / NS_PER_MS


async def bench_startup(csms: CsmsProcess, tmp: Path, runs: int) -> dict[str, list[float]]:
    station_id = "BENCH-BOOT"
    state_dir = tmp / "boot"
    config_path = write_station_config(state_dir, csms.url, station_id=station_id)
    runtime_dir = tmp / "boot-run"
    await startup_once(csms, config_path, runtime_dir, station_id)  # warm-up: creates the db
    results: dict[str, list[float]] = {"boot": [], "ready": [], "python": [], "runtime": [],
                                       "cli": [], "both": []}
    for _ in range(runs):  # interleaved, so that every figure sees the same machine load
        sample = await startup_once(csms, config_path, runtime_dir, station_id)
        results["boot"].append(sample.boot_ms)
        if sample.ready_ms is not None:
            results["ready"].append(sample.ready_ms)
        results["python"].append(await timed_python_ms("pass"))  # interpreter start-up
        results["runtime"].append(await timed_python_ms("import chargerfw.runtime.station"))
        results["cli"].append(await timed_python_ms("import chargerfw.cli.run"))
        results["both"].append(await timed_python_ms(
            "import chargerfw.cli.run, chargerfw.runtime.station, chargerfw.sim.hardware, "
            "pymodbus.server"))
    return results


# ---- main ---------------------------------------------------------------------------------------------


def print_tap(tap: dict[str, list[float]], reps: int) -> None:
    print(f"\n1. card tap -> contactor closed ({reps} taps each; the vehicle is plugged in and "
          "requesting charge (pilot C) before the tap)")
    print(summary_header())
    print(summary_row("local list, LocalPreAuthorize=true", tap["local"], "ms"))
    print(summary_row("online Authorize over loopback", tap["online"], "ms"))
    print(summary_row("bare ocpp library Authorize round trip", tap["bare"], "ms"))
    online, bare = summary(tap["online"])["median"], summary(tap["bare"])["median"]
    print(f"  median online tap - median bare round trip = {online - bare:.2f} ms: reader event, "
          "authorizer, state machine,\n  StartTransaction written to the outbox (fsync), "
          "contactor command")


def print_faults(scenarios: list[FaultScenario], reps: int) -> None:
    print(f"\n2. fault input -> contactor coil off ({reps} trips each, while charging; with a "
          f"block, the edge comes\n   30..120 ms into a {BLOCK_S * 1000:.0f} ms block of the "
          "asyncio loop)")
    print(summary_header())
    for sc in scenarios:
        print(f"  {sc.label}")
        print(summary_row("  edge due -> coil off", [s.edge_to_open_ms for s in sc.samples], "ms"))
        print(summary_row("  callback running -> coil off",
                          [s.callback_to_open_ms for s in sc.samples], "ms"))
        print(summary_row("  edge due -> asyncio side handled fault.raised",
                          [s.edge_to_loop_ms for s in sc.samples], "ms"))
        if sc.block:
            early = sum(s.open_before_loop_free for s in sc.samples)
            print(f"    coil off while the loop was still blocked: {early}/{len(sc.samples)}")


def print_startup(startup: dict[str, list[float]], runs: int) -> None:
    print(f"\n3. start-up ({runs} runs of `chargerfw run --config <sim config>` after one warm-up "
          "run;\n   the sim station also starts its simulated Modbus TCP meter)")
    print(summary_header())
    print(summary_row("spawn -> CSMS handled BootNotification", startup["boot"], "ms"))
    print(summary_row("spawn -> station.ready logged", startup["ready"], "ms"))
    print(summary_row("spawn -> `python -c pass` done (interpreter)", startup["python"],
                      "ms"))
    print(summary_row("spawn -> `import chargerfw.runtime.station` done",
                      startup["runtime"], "ms"))
    print(summary_row("spawn -> `import chargerfw.cli.run` done (the command)",
                      startup["cli"], "ms"))
    print(summary_row("spawn -> cli.run, runtime.station, sim.hardware, pymodbus.server",
                      startup["both"], "ms"))
    if startup["ready"] and startup["both"]:
        own = summary(startup["ready"])["median"] - summary(startup["both"])["median"]
        print(f"  median spawn -> ready minus median interpreter + imports = {own:.0f} ms of "
              "start-up work\n  (store, board, safety monitor, sim meter server, reader, "
              "OCPP client task)")


async def measure_all(args: argparse.Namespace, tmp: Path) -> None:
    async with bench_csms() as csms:
        local_tags = [f"0A{i:012X}" for i in range(args.tap_reps)]
        async with running_station(tmp / "lat", csms, local_tags) as st:
            print_tap(await bench_tap(st, csms, local_tags, args.tap_reps), args.tap_reps)
            print_faults(await bench_faults(st, local_tags[0], args.fault_reps), args.fault_reps)
        print_startup(await bench_startup(csms, tmp, args.startup_runs), args.startup_runs)


async def run(args: argparse.Namespace) -> None:
    print(f"station latency bench: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"GIL switch interval {sys.getswitchinterval() * 1000:.0f} ms, loopback only, "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="chargerfw-bench-") as tmp_name:
        tmp = Path(tmp_name)
        # The in-process station logs at INFO as in service, to a file (journald's part).
        with open(tmp / "station.log", "w") as log_file:
            setup_logging("INFO", stream=log_file)
            try:
                await measure_all(args, tmp)
            finally:
                setup_logging("WARNING", stream=sys.stderr)


def main() -> None:
    quick = os.environ.get("CHARGERFW_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tap-reps", type=int, default=5 if quick else 30)
    parser.add_argument("--fault-reps", type=int, default=5 if quick else 40)
    parser.add_argument("--startup-runs", type=int, default=2 if quick else 5)
    args = parser.parse_args()
    if min(args.tap_reps, args.fault_reps, args.startup_runs) < 1:
        parser.error("repetitions must be >= 1")
    started = time.monotonic()
    asyncio.run(run(args))
    print(f"\n(bench took {time.monotonic() - started:.0f} s; load average now "
          f"{os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
