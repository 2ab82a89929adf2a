"""Resident memory and CPU of a running station, idle and charging. Prints figures.

Measured on ``chargerfw run --config <sim config>`` child processes (hardware = "sim", the
shipped hw/stations/sim.toml) connected over loopback to the bench CSMS (its own process):

* "station + sim meter": plain ``chargerfw run``. With hardware = "sim" the process also serves
  the simulated Modbus TCP meter (pymodbus server) and moves the simulated vehicle's load, so
  these figures include the meter's server side.
* "station only": the same ``chargerfw run`` code with the in-process meter server left out
  (``station_common.py run-external-meter``); a separate ``chargerfw sim meter`` process (fixed
  0 W load) answers the same Modbus requests, and is measured on its own line.
* "baseline": ``python -c "import ocpp.v16, websockets"`` left waiting, the least an OCPP 1.6J
  station process holds, measured beside them in the same windows.

Both stations run at the same time. Each window is ``--seconds`` long (default 60;
CHARGERFW_BENCH_SECONDS or CHARGERFW_BENCH_QUICK=1 shorten it): first idle (booted, vehicle
unplugged), then charging (vehicle plugged in, card tapped, pilot C, contactor closed, meter
polled every 1 s (poll_interval_s default), MeterValueSampleInterval set to 10 s so MeterValues
flow during the window). CPU is utime+stime of all the process's threads over wall time, as % of
one core (/proc/PID/stat), and of the main thread alone (the asyncio loop; the rest is mostly the
safety monitor thread, which polls pilot, contactor feedback and temperature every 0.1 s: in
simulation each pilot read computes a burst of simulated ADS1115 conversions); memory is VmRSS
(sampled each second) and VmHWM (/proc/PID/status). On this shared VM the CPU figures move
between runs (steal and frequency); compare lines of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from station_common import (
    CLK_TCK,
    REPO,
    CsmsProcess,
    bench_csms,
    chargerfw_command,
    child_env,
    free_port,
    proc_cpu_ticks,
    proc_status,
    stop_child,
    write_station_config,
)

from chargerfw import control
from chargerfw.logs import setup_logging

SAMPLE_INTERVAL_S = 10  # MeterValueSampleInterval for the charging window
METER_MODEL = "eastron-sdm630-v2"  # as in hw/stations/sim.toml
TAG = "04BE4C0000AA01"
BASELINE_IMPORT = "import ocpp.v16, websockets"


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    station_id: str | None = None
    socket_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Window:
    """One process over one window."""

    cpu_percent: float
    main_thread_cpu_percent: float  # the asyncio loop's thread
    rss_kib: list[int] = field(default_factory=list)
    hwm_kib: int = 0
    threads: int = 0
    meter_values: int | None = None


async def start_station(name: str, station_id: str, tmp: Path, csms: CsmsProcess, *,
                        external_meter_port: int | None = None) -> Child:
    state_dir = tmp / station_id
    config = write_station_config(
        state_dir, csms.url, station_id=station_id, meter_port=external_meter_port,
        ocpp_keys={"MeterValueSampleInterval": str(SAMPLE_INTERVAL_S),
                   "HeartbeatInterval": "300"})
    runtime_dir = state_dir / "run"
    if external_meter_port is None:
        command = [*chargerfw_command(), "run", "--config", str(config)]
    else:
        command = [sys.executable, str(REPO / "bench" / "station_common.py"),
                   "run-external-meter", "--config", str(config)]
    log = open(state_dir / "station.log", "wb")  # the child gets its own descriptor
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT, env=child_env(runtime_dir))
    finally:
        log.close()  # the child has its own descriptor
    return Child(name, proc, station_id, runtime_dir / control.SOCKET_NAME)


async def start_meter(port: int) -> Child:
    proc = await asyncio.create_subprocess_exec(
        *chargerfw_command(), "sim", "meter", "--model", METER_MODEL, "--tcp",
        f"127.0.0.1:{port}", "--power", "0", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=child_env())
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return Child("sim meter", proc)
        if proc.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"bench: chargerfw sim meter did not serve port {port}")
        await asyncio.sleep(0.05)


async def start_waiting_python(name: str, code: str) -> Child:
    """A fresh interpreter that runs ``code`` and then waits (until SIGTERM)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", f"{code}\nimport signal\nprint(flush=True)\nsignal.pause()",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env=child_env())
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)  # ``code`` has run
    return Child(name, proc)


async def start_baseline() -> Child:
    """The baseline process: the OCPP library and websockets imported, then waiting."""
    return await start_waiting_python("baseline", BASELINE_IMPORT)


async def ctl(child: Child, method: str, **params: object) -> object:
    assert child.socket_path is not None
    return await asyncio.to_thread(control.call, child.socket_path, method, **params)


async def wait_status(child: Child, what: str, predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if child.proc.returncode is not None:
            raise RuntimeError(f"bench: {child.name} exited with {child.proc.returncode}")
        with contextlib.suppress(control.ControlUnavailable, ConnectionError, TimeoutError):
            last = await ctl(child, "status")
            if predicate(last):  # type: ignore[operator]
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"bench: {child.name}: {what} not reached in {timeout} s; last {last}")


async def start_charging(child: Child) -> None:
    await ctl(child, "sim.plug", connector=1)
    await ctl(child, "sim.charge", connector=1)
    await ctl(child, "sim.tap", uid=TAG)
    await wait_status(child, "Charging with the contactor closed", lambda s: (
        s["connectors"][0]["status"] == "Charging" and s["connectors"][0]["contactor_closed"]))


async def measure(children: list[Child], seconds: float,
                  csms: CsmsProcess) -> dict[str, Window]:
    """CPU over the window and RSS each second, for every child at once."""
    start_ticks = {c.name: proc_cpu_ticks(c.pid) for c in children}
    start_main = {c.name: proc_cpu_ticks(c.pid, c.pid) for c in children}
    rss: dict[str, list[int]] = {c.name: [] for c in children}
    started = time.monotonic()
    started_ns = time.monotonic_ns()
    while (elapsed := time.monotonic() - started) < seconds:
        for c in children:
            rss[c.name].append(proc_status(c.pid)["VmRSS"])
        await asyncio.sleep(min(1.0, max(0.0, seconds - elapsed)))
    wall = time.monotonic() - started
    ended_ns = time.monotonic_ns()
    windows = {}
    for c in children:
        used_s = (proc_cpu_ticks(c.pid) - start_ticks[c.name]) / CLK_TCK
        main_s = (proc_cpu_ticks(c.pid, c.pid) - start_main[c.name]) / CLK_TCK
        status = proc_status(c.pid)
        rss[c.name].append(status["VmRSS"])
        windows[c.name] = Window(
            cpu_percent=100.0 * used_s / wall, main_thread_cpu_percent=100.0 * main_s / wall,
            rss_kib=rss[c.name], hwm_kib=status["VmHWM"],
            threads=status["Threads"],
            meter_values=(csms.count("MeterValues", c.station_id, started_ns, ended_ns)
                          if c.station_id else None))
    return windows


def print_windows(title: str, windows: dict[str, Window], seconds: float) -> None:
    print(f"\n{title} ({seconds:g} s)")
    print(f"  {'process':<22} {'CPU % of 1 core':>15} {'in loop thread':>14} {'VmRSS MiB mean':>14} "
          f"{'VmRSS MiB max':>14} {'VmHWM MiB':>10} {'threads':>8} {'MeterValues':>12}")
    for name, w in windows.items():
        mean = sum(w.rss_kib) / len(w.rss_kib) / 1024
        mv = "-" if w.meter_values is None else str(w.meter_values)
        print(f"  {name:<22} {w.cpu_percent:>15.2f} {w.main_thread_cpu_percent:>14.2f} "
              f"{mean:>14.1f} {max(w.rss_kib) / 1024:>14.1f} "
              f"{w.hwm_kib / 1024:>10.1f} {w.threads:>8} {mv:>12}")


@contextlib.asynccontextmanager
async def children_stopped(children: list[Child]) -> AsyncIterator[list[Child]]:
    try:
        yield children
    finally:
        for c in reversed(children):
            await stop_child(c.proc)


async def run(seconds: float) -> None:
    print(f"station resources bench: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"clock tick {CLK_TCK} Hz, loopback only, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="chargerfw-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with bench_csms() as csms, children_stopped([]) as children:
            meter_port = free_port()
            children.append(await start_meter(meter_port))
            with_meter = await start_station("station + sim meter", "BENCH-RES-A", tmp, csms)
            children.append(with_meter)
            alone = await start_station("station only", "BENCH-RES-B", tmp, csms,
                                        external_meter_port=meter_port)
            children.append(alone)
            stations = [with_meter, alone]
            for station in stations:
                await wait_status(station, "online", lambda s: s["backend"]["online"])
                await wait_status(station, "a first meter sample",
                                  lambda s: s["connectors"][0]["meter"] is not None)
            await asyncio.sleep(2.0)  # start-up work (first status, first samples) settles
            baseline = await start_baseline()
            children.append(baseline)
            order = [with_meter, alone, children[0], baseline]
            idle = await measure(order, seconds, csms)
            print_windows("idle: booted, accepted, vehicle unplugged", idle, seconds)
            for station in stations:
                await start_charging(station)
            await asyncio.sleep(2.0)
            charging = await measure(order, seconds, csms)
            print_windows(f"charging: pilot C, contactor closed, meter polled every 1 s, "
                          f"MeterValueSampleInterval={SAMPLE_INTERVAL_S} s", charging, seconds)
            for station in stations:
                await wait_status(station, "still charging", lambda s: (
                    s["connectors"][0]["status"] == "Charging"), timeout=5)
        print("\n  'station + sim meter' serves the simulated Modbus TCP meter in-process; 'station "
              "only' is the same\n  code without it, polling the separate 'sim meter' process. "
              "Their difference is the in-process\n  meter's cost; RSS also moves by 1-2 MiB with "
              "import order alone. Each process has its own\n  interpreter, so 'station only' + "
              "'sim meter' RSS does not add up to the first line. 'baseline' is\n  "
              f"`python -c \"{BASELINE_IMPORT}\"`, waiting.")


def main() -> None:
    quick = os.environ.get("CHARGERFW_BENCH_QUICK") == "1"
    default = float(os.environ.get("CHARGERFW_BENCH_SECONDS") or (10 if quick else 60))
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=default,
                        help="length of each window (idle, charging) [default: %(default)s]")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    setup_logging("WARNING", stream=sys.stderr)
    started = time.monotonic()
    asyncio.run(run(args.seconds))
    print(f"\n(bench took {time.monotonic() - started:.0f} s; load average now "
          f"{os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
