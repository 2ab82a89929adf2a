"""Start-up time and resident memory of the firmware's processes, each beside the bare
interpreter measured in the same run. Prints figures; not a pass/fail test.

1. Spawn -> exit (wall time seen by the caller, interpreter teardown included), in interleaved
   rounds so every line sees the same machine load:
   * ``python -c pass``: the bare interpreter (this venv's, as the console script uses it);
   * ``python -c "import ocpp.v16, websockets"``: the libraries an OCPP 1.6J station needs;
   * ``chargerfw --help``;
   * ``chargerfw status`` with no service answering (the direct path: config, store; exit 3);
   * ``chargerfw status`` against a running simulated station (the control socket path).
2. Spawn -> BootNotification: ``chargerfw run --config <sim config>`` (hardware = "sim", the
   shipped hw/stations/sim.toml) against the bench CSMS (``station_common.py csms``), timed to
   the CSMS handling its BootNotification; after one warm-up run that creates the database.
   Twice, in interleaved rounds: serving its simulated Modbus TCP meter in-process (plain
   ``chargerfw run``), and polling a separate ``chargerfw sim meter`` as a station polls a real
   meter (``station_common.py run-external-meter``, the "station only" of part 3).
3. Resident memory (VmRSS, /proc/PID/status), sampled every 0.5 s: the station idle (booted,
   vehicle unplugged) and charging (card tapped, contactor closed, meter polled every 1 s,
   MeterValues every 10 s), beside the baseline process (``import ocpp.v16, websockets``, then
   waiting) in the same windows. "station + sim meter" is plain ``chargerfw
   run``, which with hardware = "sim" also serves the simulated Modbus TCP meter in-process;
   "station only" leaves that server out (``station_common.py run-external-meter``) and polls
   a separate ``chargerfw sim meter`` process, as a station polls a real meter.

Figures are p50 / p99 (nearest rank) with the sample count n; with n < 100 p99 is the largest
sample. Options: --rounds (30), --boots (10), --seconds (10 per memory window), or
CHARGERFW_BENCH_QUICK=1 for a short smoke run; --bytecode compiles chargerfw's sources first,
as pip does when it installs the wheel on a Pi (a checkout's editable install under
PYTHONDONTWRITEBYTECODE=1 compiles every module it imports in every spawn), and removes the
caches it made afterwards. Loopback only; every process started here is stopped by its own pid.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from station_common import (
    REPO,
    CsmsProcess,
    bench_csms,
    chargerfw_command,
    child_env,
    free_port,
    nearest_rank,
    proc_status,
    stop_child,
    write_station_config,
)
from station_resources import (
    BASELINE_IMPORT,
    Child,
    start_baseline,
    start_charging,
    start_meter,
    start_station,
    start_waiting_python,
    wait_status,
)

from chargerfw.logs import setup_logging

NS_PER_MS = 1_000_000


def row(label: str, values: Sequence[float], unit: str, width: int = 52) -> str:
    if not values:
        return f"  {label:<{width}} (no samples)"
    ordered = sorted(values)
    p50, p99 = nearest_rank(ordered, 50), nearest_rank(ordered, 99)
    return f"  {label:<{width}} {len(values):>4} {p50:>9.1f} {p99:>9.1f}  {unit}"


def header(width: int = 52) -> str:
    return f"  {'':<{width}} {'n':>4} {'p50':>9} {'p99':>9}"


def spawn_ms(argv: list[str], env: dict[str, str], expect: int = 0) -> float:
    """Spawn -> exit of one process, in ms; its exit status must be ``expect``."""
    started = time.perf_counter_ns()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter_ns() - started) / NS_PER_MS
    if done.returncode != expect:
        raise RuntimeError(f"bench: {argv} exited {done.returncode}, not {expect}: "
                           f"{done.stderr.decode()[-500:]}")
    return elapsed


# ---- 1. spawn -> exit --------------------------------------------------------------------------


async def bench_commands(station: Child, config: Path, tmp: Path,
                         rounds: int) -> dict[str, list[float]]:
    assert station.socket_path is not None
    cli = chargerfw_command()
    no_service = tmp / "no-service-run"  # a runtime directory where nothing listens
    no_service.mkdir()
    cases: list[tuple[str, list[str], dict[str, str], int]] = [
        ("python -c pass (bare interpreter)", [sys.executable, "-c", "pass"], child_env(), 0),
        (f'python -c "{BASELINE_IMPORT}"', [sys.executable, "-c", BASELINE_IMPORT],
         child_env(), 0),
        ("chargerfw --help", [*cli, "--help"], child_env(), 0),
        ("chargerfw status, no service (direct, exit 3)",
         [*cli, "status", "--config", str(config)], child_env(no_service), 3),
        ("chargerfw status, running station (socket)",
         [*cli, "status", "--config", str(config)], child_env(station.socket_path.parent), 0),
    ]
    results: dict[str, list[float]] = {label: [] for label, *_ in cases}
    for _label, argv, env, expect in cases:  # warm the page cache; not counted
        await asyncio.to_thread(spawn_ms, argv, env, expect)
    for _ in range(rounds):
        for label, argv, env, expect in cases:
            results[label].append(await asyncio.to_thread(spawn_ms, argv, env, expect))
    return results


# ---- 2. spawn -> BootNotification --------------------------------------------------------------


async def boot_once(csms: CsmsProcess, command: list[str], runtime_dir: Path,
                    station_id: str) -> float:
    spawned = time.monotonic_ns()
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env=child_env(runtime_dir))
    try:
        boot = await csms.wait_call("BootNotification", station_id, spawned, timeout=60)
    finally:
        await stop_child(proc)
    return (boot.at_ns - spawned) / NS_PER_MS


async def bench_boot(csms: CsmsProcess, tmp: Path, boots: int,
                     meter_port: int) -> dict[str, list[float]]:
    """Spawn -> BootNotification of the station serving its meter in-process ("boot") and of
    one polling the meter served on ``meter_port`` ("boot external meter")."""
    runs: dict[str, tuple[list[str], Path, str]] = {}
    for label, station_id, port in (("boot", "BENCH-STARTUP-BOOT", None),
                                    ("boot external meter", "BENCH-STARTUP-BOOT-X", meter_port)):
        config = write_station_config(tmp / station_id, csms.url, station_id=station_id,
                                      meter_port=port)
        command = [*chargerfw_command(), "run", "--config", str(config)] if port is None else [
            sys.executable, str(REPO / "bench" / "station_common.py"), "run-external-meter",
            "--config", str(config)]
        runs[label] = (command, tmp / station_id / "run", station_id)
    results: dict[str, list[float]] = {"boot": [], "boot external meter": [], "python": []}
    for command, runtime_dir, station_id in runs.values():  # warm-up: creates the database
        await boot_once(csms, command, runtime_dir, station_id)
    for _ in range(boots):
        for label, (command, runtime_dir, station_id) in runs.items():
            results[label].append(await boot_once(csms, command, runtime_dir, station_id))
        results["python"].append(await asyncio.to_thread(
            spawn_ms, [sys.executable, "-c", "pass"], child_env()))
    return results


# ---- 3. resident memory ----------------------------------------------------------------------


async def sample_rss(children: list[Child], seconds: float) -> dict[str, list[float]]:
    """VmRSS of each child every 0.5 s, in MiB."""
    rss: dict[str, list[float]] = {c.name: [] for c in children}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for c in children:
            rss[c.name].append(proc_status(c.pid)["VmRSS"] / 1024)
        await asyncio.sleep(0.5)
    return rss


# ---- main ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def compiled_bytecode() -> Iterator[None]:
    """chargerfw's sources (and the bench's helpers) compiled to bytecode for the duration; the
    caches made here are removed after."""
    trees = [REPO / "chargerfw", REPO / "hw", REPO / "bench"]
    before = {cache for tree in trees for cache in tree.rglob("__pycache__")}
    for tree in trees:
        compileall.compile_dir(tree, quiet=1)
    try:
        yield
    finally:
        for cache in {c for tree in trees for c in tree.rglob("__pycache__")} - before:
            shutil.rmtree(cache, ignore_errors=True)


def bytecode_note(compiled: bool) -> str:
    if compiled:
        return "chargerfw's bytecode compiled first (as installed)"
    if sys.flags.dont_write_bytecode and not any((REPO / "chargerfw").rglob("__pycache__")):
        return "no bytecode cache: each spawn compiles chargerfw's sources"
    return "chargerfw's bytecode as found"


def print_commands(results: dict[str, list[float]]) -> None:
    print("\n1. spawn -> exit")
    print(header())
    for label, values in results.items():
        print(row(label, values, "ms"))
    bare = nearest_rank(sorted(next(iter(results.values()))), 50)
    for label, values in list(results.items())[1:]:
        own = nearest_rank(sorted(values), 50) - bare
        print(f"  {label}: p50 {own:+.0f} ms over the bare interpreter")


def print_boot(results: dict[str, list[float]]) -> None:
    print("\n2. `chargerfw run --config <sim config>` spawn -> CSMS handled BootNotification")
    print(header())
    print(row("spawn -> BootNotification (meter served in-process)", results["boot"], "ms"))
    print(row("spawn -> BootNotification (external meter)", results["boot external meter"],
              "ms"))
    print(row("python -c pass (bare interpreter, same rounds)", results["python"], "ms"))


def print_memory(windows: dict[str, dict[str, list[float]]]) -> None:
    print("\n3. resident memory (VmRSS)")
    print(header())
    for window, rss in windows.items():
        for name, values in rss.items():
            print(row(f"{name}, {window}", values, "MiB"))
    base = nearest_rank(sorted(windows["charging"]["baseline"]), 50)
    for name, values in windows["charging"].items():
        if name not in ("baseline", "bare interpreter"):
            print(f"  {name}, charging: p50 {nearest_rank(sorted(values), 50) / base:.2f} x "
                  "the baseline")
    print(f"  baseline: `python -c \"{BASELINE_IMPORT}\"`, waiting; bare interpreter: "
          "`python -c pass`, waiting.")


async def run(args: argparse.Namespace) -> None:
    print(f"start-up bench: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loopback "
          f"only, load average {os.getloadavg()[0]:.2f}; {bytecode_note(args.bytecode)}")
    with tempfile.TemporaryDirectory(prefix="chargerfw-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with bench_csms() as csms:
            meter_port = free_port()
            children = [await start_meter(meter_port)]
            try:
                boot = await bench_boot(csms, tmp, args.boots, meter_port)
                station = await start_station("station + sim meter", "BENCH-STARTUP-A", tmp,
                                              csms)
                children.append(station)
                alone = await start_station("station only", "BENCH-STARTUP-B", tmp, csms,
                                            external_meter_port=meter_port)
                children.append(alone)
                baselines = [await start_waiting_python("bare interpreter", "pass"),
                             await start_baseline()]
                children.extend(baselines)
                stations = [station, alone]
                for child in stations:
                    await wait_status(child, "online", lambda s: s["backend"]["online"])
                    await wait_status(child, "a first meter sample",
                                      lambda s: s["connectors"][0]["meter"] is not None)
                config = tmp / "BENCH-STARTUP-A" / "station.toml"
                commands = await bench_commands(station, config, tmp, args.rounds)
                await asyncio.sleep(2.0)  # the status calls' work settles
                measured = [*stations, *baselines]
                windows = {"idle": await sample_rss(measured, args.seconds)}
                for child in stations:
                    await start_charging(child)
                await asyncio.sleep(2.0)
                windows["charging"] = await sample_rss(measured, args.seconds)
            finally:
                for child in reversed(children):
                    await stop_child(child.proc)
    print_commands(commands)
    print_boot(boot)
    print_memory(windows)


def main() -> None:
    quick = os.environ.get("CHARGERFW_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5 if quick else 30,
                        help="spawns of each command [default: %(default)s]")
    parser.add_argument("--boots", type=int, default=3 if quick else 10,
                        help="`chargerfw run` spawns timed to BootNotification")
    parser.add_argument("--seconds", type=float, default=3 if quick else 10,
                        help="length of each memory window (idle, charging)")
    parser.add_argument("--bytecode", action="store_true",
                        help="compile chargerfw's sources first, as installing the wheel does")
    args = parser.parse_args()
    if min(args.rounds, args.boots) < 1 or args.seconds <= 0:
        parser.error("counts must be >= 1 and --seconds > 0")
    setup_logging("WARNING", stream=sys.stderr)
    started = time.monotonic()
    with compiled_bytecode() if args.bytecode else contextlib.nullcontext():
        asyncio.run(run(args))
    print(f"\n(bench took {time.monotonic() - started:.0f} s; load average now "
          f"{os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
