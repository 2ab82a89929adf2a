"""The safety process's timings and memory, each beside a baseline measured in the same run.
Prints figures; not a pass/fail test.

Every figure ends in the simulated contactor coil's output listener (time.monotonic_ns on the
thread that wrote the pin), in the process that owns the coil. The simulated ADC is given the
ADS1115's real conversion time (860 SPS, 48 samples a read: ~56 ms), as on a Pi.

1. Fault input edge -> coil off, with every core busy: one busy-loop process per core, and
   the station process itself saturated (its event loop runs CPU-bound 50 ms blocks, a second
   thread spins; it still heartbeats within the bound). An "edge" thread sleeps a random
   30..120 ms and presses the emergency stop; the figure starts when the edge was due, so it
   includes waking the thread and getting the interpreter lock.
   - baseline "one process": the safety core in the same interpreter as the busy station
     (``[safety] mode = "thread"``, how every station ran before the safety process);
   - "safety process": the safety process as ``chargerfw safety run`` builds it (no simulated
     world: the bench drives the simulated parts), its own interpreter; with SCHED_FIFO
     (what the unit sets) and, for comparison, without.
2. Vehicle stop -> coil off: the simulated vehicle goes C->B (stops asking) or C->A (unplugged)
   while charging; the monitor reads the pilot every poll_interval_ms. Baseline: the thread
   mode's poll interval (100 ms); then the safety process's (20 ms).
3. Station process gone -> coil off: the safety process's station connection belongs to a
   small stand-in process that heartbeats from its event loop like the station; it is
   SIGKILLed (the kernel closes its socket) or SIGSTOPped (its heartbeat stops; the bound,
   200 ms, has to pass) while charging. Baseline: how late a 1 ms timed wait wakes in the
   safety process under the same load (the scheduling floor every figure here stands on).
4. Resident memory (VmRSS, VmHWM) of: the safety process as on a Pi (built as ``chargerfw
   safety run`` builds it, on the simulated board without the simulated world, no TLS, with
   and without mlockall, a station stand-in connected and heartbeating), ``chargerfw safety
   run`` on the shipped sim station (with the simulated world and its Modbus server), and
   beside them a bare interpreter.

Options: --edge-reps (200), --pilot-reps (100), --gone-reps (60), or CHARGERFW_BENCH_QUICK=1
for a short smoke run. Run as root for SCHED_FIFO and mlockall (the figures say when not).
Every process started here is stopped by its own pid; sockets are Unix sockets in a temporary
folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

# asyncio and the shared bench helpers (which import it) load inside the functions: the safety
# child must hide TLS before asyncio is first imported, as ``chargerfw safety run`` does.
if TYPE_CHECKING:
    import asyncio

NS_PER_MS = 1_000_000
HERE = Path(__file__).resolve()
ADC_SAMPLE_S = 1 / 860  # the ADS1115's conversion time at 860 SPS


# ---- the rig: a safety core, the simulated parts, a probe on the coil --------------------------


class Rig:
    """A safety core on a simulated board (in this process), driven the way a station and a
    vehicle would, with the coil's off-times recorded."""

    def __init__(self, core: Any, board: Any) -> None:
        self.core = core
        self.board = board
        parts = board.connectors[1].sim
        self.mirror = parts.contactor
        self.vehicle = parts.vehicle
        self.off_at: list[int] = []
        self._changed = threading.Event()
        self.mirror.coil.on_output_change(self._on_coil)
        for devices in board.connectors.values():  # the Pi's conversion time
            devices.pilot.adc.sample_interval_s = ADC_SAMPLE_S

    def _on_coil(self, _pin: object) -> None:
        if not self.mirror.energised:
            self.off_at.append(time.monotonic_ns())
        self._changed.set()

    def wait(self, predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench: {what} not reached within {timeout} s")
            time.sleep(0.002)

    def charge(self) -> None:
        """Vehicle in C and the coil closed, as the station would ask for it."""
        from chargerfw.drivers.types import PilotMode, PilotState
        from chargerfw.safety.core import PilotCommand

        self.wait(lambda: not self.core.active_faults(), "no active fault")
        self.core.set_pilot(1, PilotCommand(PilotMode.PWM, 16.0))
        if self.vehicle.state.value == "unplugged":
            self.vehicle.plug_in()
        self.vehicle.request_charge()
        self.wait(lambda: self.core.pilot(1) is PilotState.C, "pilot C")
        deadline = time.monotonic() + 10
        while not self.mirror.energised:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench: the coil did not close: {self.core.active_faults()}")
            self.core.request_close(1)  # an RCM self-test runs first when nothing is closed
            time.sleep(0.02)

    def off_after(self, since_ns: int, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            later = [t for t in self.off_at if t >= since_ns]
            if later:
                return later[0]
            if time.monotonic() > deadline:
                raise RuntimeError("bench: the coil did not open")
            self._changed.wait(0.01)
            self._changed.clear()


def edge_reps(rig: Rig, reps: int) -> list[float]:
    """Emergency stop pressed by an 'edge' thread at a random time while charging."""
    estop = rig.board.sim.emergency_stop
    figures = []
    for _ in range(reps):
        rig.charge()
        due: list[int] = []

        def edge(due: list[int] = due) -> None:
            delay_ns = random.randint(30, 120) * NS_PER_MS
            due.append(time.monotonic_ns() + delay_ns)
            time.sleep(delay_ns / 1e9)
            estop.press()

        thread = threading.Thread(target=edge, name="edge")
        thread.start()
        thread.join()
        figures.append((rig.off_after(due[0]) - due[0]) / NS_PER_MS)
        estop.release()
    return figures


def pilot_reps(rig: Rig, reps: int) -> dict[str, list[float]]:
    """The vehicle stops asking (C->B), or is unplugged (C->A), while charging."""
    figures: dict[str, list[float]] = {"C->B": [], "C->A": []}
    for i in range(reps):
        rig.charge()
        time.sleep(random.uniform(0.0, 0.1))  # anywhere in the monitor's cycle
        kind = "C->B" if i % 2 == 0 else "C->A"
        at = time.monotonic_ns()
        if kind == "C->B":
            rig.vehicle.stop_charging()
        else:
            rig.vehicle.unplug()
        figures[kind].append((rig.off_after(at) - at) / NS_PER_MS)
    return figures


def floor_reps(reps: int) -> list[float]:
    """How late a 1 ms timed wait wakes up in this process (ms past the 1 ms)."""
    event = threading.Event()
    late = []
    for _ in range(reps):
        start = time.monotonic_ns()
        event.wait(0.001)
        late.append((time.monotonic_ns() - start) / NS_PER_MS - 1.0)
    return late


# ---- load ------------------------------------------------------------------------------------


def spin_forever() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_cores() -> Iterator[None]:
    """One busy-loop process per core, at normal priority."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for hog in hogs:
            os.kill(hog.pid, signal.SIGKILL)
            hog.wait()


async def busy_station_loop(stop: asyncio.Event | None = None) -> None:
    """The station's event loop saturated: CPU-bound 50 ms blocks (under any heartbeat bound),
    with a spinning thread beside it."""
    import asyncio

    threading.Thread(target=spin_forever, daemon=True).start()
    while stop is None or not stop.is_set():
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            pass
        await asyncio.sleep(0)


# ---- child: the station stand-in -------------------------------------------------------------


async def station_child(socket_path: Path, busy: bool) -> None:
    """Holds the safety process's station connection and heartbeats from its event loop."""
    import asyncio

    from chargerfw.safety.link import SafetyLink

    link = SafetyLink(socket_path, lambda event: None, name="bench station")
    await asyncio.to_thread(link.start, 20.0)
    beats = asyncio.create_task(link.heartbeat_forever())
    print("connected", flush=True)
    if busy:
        await busy_station_loop()
    await beats


# ---- child: the safety process with the bench inside ----------------------------------------


def safety_child(config_path: Path, socket_path: Path, job: str, reps: int, out: Path,
                 realtime: int) -> None:
    """The safety process as ``chargerfw safety run`` builds it (without the simulated world),
    running one job of the bench inside, results to ``out`` as JSON."""
    import msgspec

    from chargerfw.cli.service import build_safety_process, prepare_safety_interpreter
    from chargerfw.config import load_config
    from chargerfw.drivers.board import build_board
    from chargerfw.station.faults import FaultKind

    config = load_config(str(config_path))
    safety = msgspec.structs.replace(config.safety, realtime_priority=realtime,
                                     lock_memory=False)
    config = msgspec.structs.replace(config, safety=safety)
    problems = prepare_safety_interpreter(config, without_tls=True)
    from station_common import child_env

    board = build_board(config)
    process = build_safety_process(config, socket_path, board, simulated_world=False)
    rig = Rig(process.core, board)
    runner = threading.Thread(target=process.run, daemon=True)
    runner.start()
    rig.wait(socket_path.exists, "the safety socket")
    station_cmd = [sys.executable, str(HERE), "station-child", "--socket", str(socket_path)]
    stations: list[subprocess.Popen[bytes]] = []

    def new_station(busy: bool = False) -> subprocess.Popen[bytes]:
        child = subprocess.Popen([*station_cmd, *(["--busy"] if busy else [])],
                                 stdout=subprocess.DEVNULL, env=child_env())
        stations.append(child)
        rig.wait(lambda: FaultKind.SUPERVISION_LOST not in
                 {f.kind for f in process.core.active_faults()}, "the station's heartbeat", 30)
        return child

    results: dict[str, Any] = {
        "realtime": os.sched_getscheduler(0) == getattr(os, "SCHED_FIFO", -1),
        "problems": problems}
    try:
        if job == "edge":
            new_station(busy=True)
            results["edge"] = edge_reps(rig, reps)
            results["floor"] = floor_reps(max(reps, 100))
        elif job == "pilot":
            new_station()
            results.update(pilot_reps(rig, reps))
        elif job == "gone":
            results["SIGKILL"], results["SIGSTOP"] = [], []
            child = new_station()
            for i in range(reps):
                rig.charge()
                time.sleep(random.uniform(0.02, 0.1))
                if i % 2 == 0:
                    at = time.monotonic_ns()
                    os.kill(child.pid, signal.SIGKILL)
                    results["SIGKILL"].append((rig.off_after(at) - at) / NS_PER_MS)
                    child.wait()
                    child = new_station()
                else:
                    at = time.monotonic_ns()
                    os.kill(child.pid, signal.SIGSTOP)
                    results["SIGSTOP"].append((rig.off_after(at) - at) / NS_PER_MS)
                    os.kill(child.pid, signal.SIGCONT)
                    rig.wait(lambda: FaultKind.SUPERVISION_LOST not in
                             {f.kind for f in process.core.active_faults()}, "heartbeat back")
            results["floor"] = floor_reps(100)
    finally:
        for child in stations:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            child.wait()
        process.stop()
        runner.join(5)
        board.close()
    out.write_text(json.dumps(results))


# ---- the baseline: the safety core in the station's interpreter ------------------------------


def one_process(config_path: Path, job: str, reps: int) -> dict[str, Any]:
    """The safety core as ``mode = "thread"`` runs it: in this interpreter, beside a busy
    station loop (edge), at the thread mode's poll interval (pilot)."""
    import asyncio

    from chargerfw.config import load_config
    from chargerfw.drivers.board import build_board
    from chargerfw.logs import setup_logging
    from chargerfw.runtime.assembly import SAFETY_SWITCH_INTERVAL_S
    from chargerfw.safety.core import SafetyCore
    from chargerfw.station.safety import SafetySettings

    # Logs go where the safety child's go (nowhere), at the same level: the same work, and
    # this report stays readable.
    setup_logging("INFO", stream=open(os.devnull, "w"))
    config = load_config(str(config_path))
    board = build_board(config)
    core = SafetyCore(config, board, lambda event: None, SafetySettings())  # thread defaults
    rig = Rig(core, board)
    core.start()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SAFETY_SWITCH_INTERVAL_S)  # what the station sets in thread mode
    loop_stop = asyncio.Event()
    loop_thread = None
    try:
        if job == "edge":
            loop = asyncio.new_event_loop()
            loop_thread = threading.Thread(
                target=lambda: loop.run_until_complete(busy_station_loop(loop_stop)),
                daemon=True)
            loop_thread.start()
            return {"edge": edge_reps(rig, reps)}
        return pilot_reps(rig, reps)
    finally:
        if loop_thread is not None:
            loop.call_soon_threadsafe(loop_stop.set)
            loop_thread.join(5)
        sys.setswitchinterval(switch)
        core.stop()
        board.close()


# ---- the parent --------------------------------------------------------------------------------


def run_safety_child(config_path: Path, job: str, reps: int, realtime: int) -> dict[str, Any]:
    from station_common import child_env

    with tempfile.TemporaryDirectory(prefix="cfw-bench-", dir="/tmp") as folder:
        out = Path(folder) / "out.json"
        subprocess.run([sys.executable, str(HERE), "safety-child", "--config", str(config_path),
                        "--socket", str(Path(folder) / "safety.sock"), "--job", job,
                        "--reps", str(reps), "--out", str(out), "--realtime", str(realtime)],
                       check=True, env=child_env(), stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


# The safety process as ``chargerfw safety run`` builds it on a Pi, less the hardware: the same
# steps, on the simulated board without the simulated world; nothing of the bench is loaded.
PI_SHAPED_SAFETY_PROCESS = """
import sys
from pathlib import Path

import msgspec

from chargerfw.cli.service import build_safety_process, prepare_safety_interpreter
from chargerfw.config import load_config
from chargerfw.logs import setup_logging

config_path, socket_path, memory = sys.argv[1:4]
config = load_config(config_path)
safety = msgspec.structs.replace(config.safety, realtime_priority=0,
                                 lock_memory=memory == "locked")
config = msgspec.structs.replace(config, safety=safety)
prepare_safety_interpreter(config, without_tls=True)
setup_logging("INFO")
build_safety_process(config, Path(socket_path), simulated_world=False).run()
"""


def pi_shaped_safety_memory(config_path: Path, memory: str) -> dict[str, int]:
    """The Pi-shaped safety process with a station connected and heartbeating, settled."""
    from station_common import child_env, proc_status

    with tempfile.TemporaryDirectory(prefix="cfw-bench-", dir="/tmp") as folder:
        socket_path = Path(folder) / "safety.sock"
        safety = subprocess.Popen(
            [sys.executable, "-c", PI_SHAPED_SAFETY_PROCESS, str(config_path), str(socket_path),
             memory], env=child_env(Path(folder)), stdout=subprocess.DEVNULL)
        station = None
        try:
            deadline = time.monotonic() + 20
            while not socket_path.exists():
                if time.monotonic() > deadline or safety.poll() is not None:
                    raise RuntimeError("bench: the Pi-shaped safety process did not start")
                time.sleep(0.05)
            station = subprocess.Popen(
                [sys.executable, str(HERE), "station-child", "--socket", str(socket_path)],
                env=child_env(), stdout=subprocess.DEVNULL)
            time.sleep(2.0)
            if station.poll() is not None or safety.poll() is not None:
                raise RuntimeError("bench: the safety process or its station ended early")
            return proc_status(safety.pid)
        finally:
            for child in (station, safety):
                if child is not None:
                    os.kill(child.pid, signal.SIGKILL)
                    child.wait()


def sim_safety_memory(config_path: Path) -> dict[str, int]:
    """``chargerfw safety run`` on the sim station (with its simulated world), settled."""
    from station_common import chargerfw_command, child_env, proc_status

    with tempfile.TemporaryDirectory(prefix="cfw-bench-", dir="/tmp") as folder:
        child = subprocess.Popen([*chargerfw_command(), "safety", "run", "-c", str(config_path)],
                                 env=child_env(Path(folder)), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not (Path(folder) / "safety.sock").exists():
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("bench: chargerfw safety run did not start")
                time.sleep(0.05)
            time.sleep(1.0)
            return proc_status(child.pid)
        finally:
            os.kill(child.pid, signal.SIGTERM)
            child.wait(10)


def bare_interpreter_memory() -> dict[str, int]:
    from station_common import proc_status

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)
        return proc_status(child.pid)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role")
    station = sub.add_parser("station-child")
    station.add_argument("--socket", type=Path, required=True)
    station.add_argument("--busy", action="store_true")
    child = sub.add_parser("safety-child")
    child.add_argument("--config", type=Path, required=True)
    child.add_argument("--socket", type=Path, required=True)
    child.add_argument("--job", required=True)
    child.add_argument("--reps", type=int, required=True)
    child.add_argument("--out", type=Path, required=True)
    child.add_argument("--realtime", type=int, default=0)
    quick = os.environ.get("CHARGERFW_BENCH_QUICK") == "1"
    parser.add_argument("--edge-reps", type=int, default=20 if quick else 200)
    parser.add_argument("--pilot-reps", type=int, default=10 if quick else 100)
    parser.add_argument("--gone-reps", type=int, default=6 if quick else 60)
    args = parser.parse_args()
    if args.role == "station-child":
        import asyncio

        asyncio.run(station_child(args.socket, args.busy))
        return
    if args.role == "safety-child":
        safety_child(args.config, args.socket, args.job, args.reps, args.out, args.realtime)
        return
    from station_common import summary_header, summary_row, write_station_config

    with tempfile.TemporaryDirectory(prefix="cfw-bench-") as folder:
        config_path = write_station_config(Path(folder), "ws://127.0.0.1:9/ocpp",
                                           station_id="BENCH-SAFETY")
        bound = tomllib.loads(config_path.read_text()).get("safety", {}).get(
            "heartbeat_bound_ms", 200)
        print(f"safety process bench ({os.cpu_count()} cores, "
              f"{'root' if os.geteuid() == 0 else 'not root'}); times in ms")

        print("\n1. fault input edge -> coil off, every core busy, the station saturated")
        with busy_cores():
            base = one_process(config_path, "edge", args.edge_reps)
            fifo = run_safety_child(config_path, "edge", args.edge_reps, realtime=50)
            other = run_safety_child(config_path, "edge", args.edge_reps, realtime=0)
        print(summary_header())
        print(summary_row("baseline: one process (mode = thread)", base["edge"], "ms"))
        fifo_label = "SCHED_FIFO 50" if fifo["realtime"] else "FIFO refused: " + str(fifo["problems"])
        print(summary_row(f"safety process, {fifo_label}", fifo["edge"], "ms"))
        print(summary_row("safety process, SCHED_OTHER", other["edge"], "ms"))
        print(summary_row("  floor: 1 ms wait, late by (SCHED_FIFO)", fifo["floor"], "ms"))
        print(summary_row("  floor: 1 ms wait, late by (SCHED_OTHER)", other["floor"], "ms"))

        print("\n2. vehicle stops -> coil off (pilot read ~56 ms, as an ADS1115 on a Pi)")
        base_pilot = one_process(config_path, "pilot", args.pilot_reps)
        sp_pilot = run_safety_child(config_path, "pilot", args.pilot_reps, realtime=50)
        print(summary_header())
        for kind in ("C->B", "C->A"):
            print(summary_row(f"baseline: one process, poll 100 ms, {kind}", base_pilot[kind],
                              "ms"))
            print(summary_row(f"safety process, poll 20 ms, {kind}", sp_pilot[kind], "ms"))

        print(f"\n3. station process gone -> coil off (heartbeat bound {bound} ms)")
        gone = run_safety_child(config_path, "gone", args.gone_reps, realtime=50)
        print(summary_header())
        print(summary_row("baseline: 1 ms wait, late by (safety process)", gone["floor"], "ms"))
        print(summary_row("station SIGKILLed (its socket closes)", gone["SIGKILL"], "ms"))
        print(summary_row("station SIGSTOPped (the bound passes)", gone["SIGSTOP"], "ms"))

        print("\n4. resident memory (kB)")
        bare = bare_interpreter_memory()
        plain = pi_shaped_safety_memory(config_path, "unlocked")
        locked = pi_shaped_safety_memory(config_path, "locked")
        sim = sim_safety_memory(config_path)
        print(f"  {'':<58} {'VmRSS':>9} {'VmHWM':>9}")
        for label, status in (("baseline: bare interpreter (python -c sleep)", bare),
                              ("safety process as on a Pi, memory not locked", plain),
                              ("safety process as on a Pi, mlockall", locked),
                              ("chargerfw safety run, sim station (+ simulated world)", sim)):
            print(f"  {label:<58} {status['VmRSS']:>9} {status['VmHWM']:>9}")


if __name__ == "__main__":
    main()
