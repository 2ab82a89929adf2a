"""Shared helpers for the station benchmarks (station_latency.py, station_resources.py).

* a tiny OCPP 1.6J CSMS (the ``ocpp`` library's server side) run as its own process with
  ``python bench/station_common.py csms``: it accepts everything and prints one line per CALL
  it receives, ``CALL <monotonic_ns> <charge point id> <action>``, so a bench can time when a
  BootNotification arrived and count MeterValues (CLOCK_MONOTONIC is shared by all processes);
* ``python bench/station_common.py run-external-meter --config FILE``: ``chargerfw run`` with
  everything as usual except that the simulated meter is not served in-process (a separately
  started ``chargerfw sim meter`` answers on the configured port instead);
* station config files made from the shipped hw/stations/sim.toml (OCPP keys through its
  ``[ocpp.keys]``); /proc readers; percentiles.

Run without arguments it prints what it is and exits (``make bench`` runs every bench/*.py).
Everything listens on 127.0.0.1 only; every process started here is stopped by its own pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SIM_TOML = REPO / "hw" / "stations" / "sim.toml"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chargerfw_command() -> list[str]:
    """The installed ``chargerfw`` console script next to this interpreter, else ``-m``."""
    script = Path(sys.executable).parent / "chargerfw"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chargerfw"]


def child_env(runtime_dir: Path | None = None) -> dict[str, str]:
    """The environment for a station child: no systemd notify socket of ours leaks into it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    if runtime_dir is not None:
        env["CHARGERFW_RUNTIME_DIR"] = str(runtime_dir)
    return env


# ---- station configs ---------------------------------------------------------------------------


def write_station_config(state_dir: Path, csms_url: str, *, station_id: str,
                         meter_port: int | None = None,
                         ocpp_keys: dict[str, str] | None = None) -> Path:
    """hw/stations/sim.toml pointed at ``csms_url`` with its state in ``state_dir`` and its
    simulated meter on ``meter_port`` (a free one when None); ``ocpp_keys`` are added to its
    ``[ocpp.keys]`` (factory values of OCPP configuration keys). Validated before returning."""
    import tomlkit

    from chargerfw.config import load_config

    state_dir.mkdir(parents=True, exist_ok=True)
    doc = tomlkit.parse(SIM_TOML.read_text())
    doc["station"]["id"] = station_id  # type: ignore[index]
    ocpp = doc["ocpp"]
    ocpp["url"] = csms_url  # type: ignore[index]
    if ocpp_keys:
        keys = ocpp.setdefault("keys", tomlkit.table())  # type: ignore[union-attr]
        for key, value in ocpp_keys.items():
            keys[key] = value
    doc["storage"]["path"] = str(state_dir / "chargerfw.db")  # type: ignore[index]
    connector = doc["connector"][0]  # type: ignore[index]
    connector["meter"]["tcp_port"] = meter_port or free_port()  # type: ignore[index]
    path = state_dir / "station.toml"
    path.write_text(tomlkit.dumps(doc))
    load_config(str(path))  # a ConfigError here names the problem
    return path


# ---- figures -------------------------------------------------------------------------------------


def nearest_rank(ordered: Sequence[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(values: Sequence[float]) -> dict[str, float]:
    """min / median / p90 / p99 / max (nearest rank), in the values' unit."""
    ordered = sorted(values)
    if not ordered:
        return {}
    return {"min": ordered[0], "median": nearest_rank(ordered, 50),
            "p90": nearest_rank(ordered, 90), "p99": nearest_rank(ordered, 99),
            "max": ordered[-1]}


def summary_row(label: str, values: Sequence[float], unit: str, width: int = 58) -> str:
    """One aligned line: label, n, min, median, p90, p99, max."""
    if not values:
        return f"  {label:<{width}} (no samples)"
    s = summary(values)
    decimals = 3 if s["max"] < 10 else 1
    cells = " ".join(f"{s[k]:>9.{decimals}f}" for k in ("min", "median", "p90", "p99", "max"))
    return f"  {label:<{width}} {len(values):>4} {cells}  {unit}"


def summary_header(width: int = 58) -> str:
    return (f"  {'':<{width}} {'n':>4} {'min':>9} {'median':>9} {'p90':>9} {'p99':>9} {'max':>9}")


# ---- /proc -------------------------------------------------------------------------------------


def proc_cpu_ticks(pid: int, tid: int | None = None) -> int:
    """utime + stime so far, in clock ticks: of every thread of ``pid`` (/proc/PID/stat), or
    of thread ``tid`` alone (/proc/PID/task/TID/stat; the main thread's tid is the pid)."""
    where = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    raw = Path(where).read_text()
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads from /proc/PID/status."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(rest.split()[0])
    return values


# ---- the bench CSMS as a child process -------------------------------------------------------


@dataclass(frozen=True)
class CsmsCall:
    at_ns: int  # time.monotonic_ns() in the CSMS process when its handler ran
    charge_point: str
    action: str


class CsmsProcess:
    """``python bench/station_common.py csms`` as a child; its CALL lines are collected."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.calls: list[CsmsCall] = []
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "csms",
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=child_env())
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        if not line.startswith(b"LISTENING "):
            raise RuntimeError(f"the bench CSMS did not start: {line!r}")
        self.port = int(line.split()[1])
        self._reader = asyncio.create_task(self._read(self.proc.stdout))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            parts = line.decode().split()
            if len(parts) == 4 and parts[0] == "CALL":
                self.calls.append(CsmsCall(int(parts[1]), parts[2], parts[3]))
                self._changed.set()

    def count(self, action: str, charge_point: str, since_ns: int = 0,
              until_ns: int | None = None) -> int:
        return sum(1 for c in self.calls
                   if c.action == action and c.charge_point == charge_point
                   and c.at_ns >= since_ns and (until_ns is None or c.at_ns < until_ns))

    async def wait_call(self, action: str, charge_point: str, since_ns: int,
                        timeout: float = 30.0) -> CsmsCall:
        """The first ``action`` from ``charge_point`` received at or after ``since_ns``."""
        async with asyncio.timeout(timeout):
            while True:
                for c in self.calls:
                    if (c.action == action and c.charge_point == charge_point
                            and c.at_ns >= since_ns):
                        return c
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


@contextlib.asynccontextmanager
async def bench_csms() -> AsyncIterator[CsmsProcess]:
    csms = CsmsProcess()
    try:
        await csms.start()
        yield csms
    finally:
        await csms.stop()


async def stop_child(proc: asyncio.subprocess.Process, timeout: float = 20.0) -> int:
    """SIGTERM (then SIGKILL after ``timeout``) to this child, by its pid only."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


# ---- what runs in the CSMS child -------------------------------------------------------------


async def _serve_csms() -> None:
    from datetime import UTC, datetime
    from itertools import count

    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    tx_ids = count(1)

    def now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    class AcceptingCsms(ChargePoint):
        """Accepts every charge point, tag and transaction; prints each CALL it handles."""

        def _seen(self, action: str) -> None:
            sys.stdout.write(f"CALL {time.monotonic_ns()} {self.id} {action}\n")
            sys.stdout.flush()

        @on(Action.boot_notification)
        def boot(self, **_: Any) -> call_result.BootNotification:
            self._seen("BootNotification")
            return call_result.BootNotification(current_time=now(), interval=300,
                                                status="Accepted")

        @on(Action.heartbeat)
        def heartbeat(self) -> call_result.Heartbeat:
            self._seen("Heartbeat")
            return call_result.Heartbeat(current_time=now())

        @on(Action.status_notification)
        def status(self, **_: Any) -> call_result.StatusNotification:
            self._seen("StatusNotification")
            return call_result.StatusNotification()

        @on(Action.authorize)
        def authorize(self, id_tag: str) -> call_result.Authorize:
            self._seen("Authorize")
            return call_result.Authorize(id_tag_info={"status": "Accepted"})

        @on(Action.start_transaction)
        def start_transaction(self, **_: Any) -> call_result.StartTransaction:
            self._seen("StartTransaction")
            return call_result.StartTransaction(transaction_id=next(tx_ids),
                                                id_tag_info={"status": "Accepted"})

        @on(Action.meter_values)
        def meter_values(self, **_: Any) -> call_result.MeterValues:
            self._seen("MeterValues")
            return call_result.MeterValues()

        @on(Action.stop_transaction)
        def stop_transaction(self, **_: Any) -> call_result.StopTransaction:
            self._seen("StopTransaction")
            return call_result.StopTransaction()

        @on(Action.data_transfer)
        def data_transfer(self, **_: Any) -> call_result.DataTransfer:
            self._seen("DataTransfer")
            return call_result.DataTransfer(status="Accepted")

    async def handle(ws: ServerConnection) -> None:
        cp_id = ws.request.path.rstrip("/").rsplit("/", 1)[-1] if ws.request else "?"
        with contextlib.suppress(ConnectionClosed):
            await AcceptingCsms(cp_id or "?", ws).start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(handle, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"LISTENING {port}", flush=True)
        await stop.wait()


def _run_with_external_meter(args: list[str]) -> None:
    """``chargerfw run ARGS`` with the in-process simulated meter server left out."""
    # The console script's import order first: the order alone moves RSS by a few MiB.
    import chargerfw.cli
    import chargerfw.sim.hardware as simhw

    @contextlib.asynccontextmanager
    async def not_served(meter: object, host: str = "127.0.0.1",
                         port: int = 0) -> AsyncIterator[tuple[str, int]]:
        yield host, port  # another process serves this port

    simhw.serve_tcp = not_served  # type: ignore[assignment]
    chargerfw.cli.console(["run", *args])


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "csms":
        asyncio.run(_serve_csms())
    elif command == "run-external-meter":
        _run_with_external_meter(sys.argv[2:])
    else:
        print("station_common.py: helpers for station_latency.py and station_resources.py "
              "(no figures of its own)")
