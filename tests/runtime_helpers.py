"""Helpers for the station runtime tests: a simulated station config on loopback, the runtime
in-process or as a ``chargerfw run`` subprocess (stopped by its pid only), and the control
socket from async code."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ocpp_testcsms import TestCsms
from realstack import free_port

from chargerfw import control
from chargerfw.config import StationConfig, parse_config
from chargerfw.runtime.station import StationRuntime
from chargerfw.sim.hardware import simulated_hardware
from chargerfw.station.safety import SafetySettings
from chargerfw.store import Store

REPO = Path(__file__).resolve().parent.parent
SIM_TOML = REPO / "hw" / "stations" / "sim.toml"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def dump_toml(data: dict[str, Any]) -> str:
    """Enough TOML for a station config (tables, arrays of tables, scalars)."""
    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict | list)}
        for key, value in scalars.items():
            lines.append(f"{key} = {_toml_value(value)}")
        for key, value in body.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                lines.append(f"\n[{name}]")
                table(name, value)
            elif isinstance(value, list):
                for item in value:
                    lines.append(f"\n[[{name}]]")
                    table(name, item)

    table("", data)
    return "\n".join(lines) + "\n"


def sim_station_config(tmp_path: Path, url: str, *, station_id: str = "CP1",
                       password: str | None = None,
                       keys: dict[str, str] | None = None) -> tuple[Path, StationConfig]:
    """hw/stations/sim.toml pointed at ``url``, with its state in ``tmp_path`` and its
    simulated meter on a free port; ``keys`` are OCPP configuration keys put in the store."""
    raw = tomllib.loads(SIM_TOML.read_text())
    raw["station"]["id"] = station_id
    raw["ocpp"] = {"url": url, "security_profile": 1 if password else 0}
    if password:
        raw["ocpp"]["password"] = password
    raw["storage"] = {"path": str(tmp_path / "state.db")}
    raw["security"] = {"certificates_dir": str(tmp_path / "certs")}
    raw["connector"][0]["meter"]["tcp_port"] = free_port()
    raw["connector"][0]["meter"]["poll_interval_s"] = 0.5
    path = tmp_path / "station.toml"
    path.write_text(dump_toml(raw))
    config = parse_config(tomllib.loads(path.read_text()), str(path))
    with Store(config.storage.path) as store:
        for key, value in {"MeterValueSampleInterval": "1", "HeartbeatInterval": "300",
                           **(keys or {})}.items():
            store.config_set(key, value)
    return path, config


FAST_SAFETY = SafetySettings(poll_interval_s=0.05)


@contextlib.asynccontextmanager
async def running_station(config: StationConfig, socket_path: Path,
                          safety: SafetySettings = FAST_SAFETY) -> AsyncIterator[StationRuntime]:
    """The runtime in this process, ready; stopped (like SIGTERM) on exit."""
    runtime = StationRuntime(config, control_socket=socket_path, safety_settings=safety,
                             shutdown_flush_s=1.0, simulator=simulated_hardware)
    task = asyncio.create_task(runtime.run())
    try:
        ready = asyncio.create_task(runtime.ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=10,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        assert ready in done, "station did not become ready"
        yield runtime
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 15)


async def ctl(socket_path: Path, method: str, **params: Any) -> Any:
    """control.call from async code."""
    return await asyncio.to_thread(control.call, socket_path, method, **params)


async def wait_status(socket_path: Path, predicate: Callable[[dict[str, Any]], Any],
                      timeout: float = 10.0, what: str = "station status") -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(control.ControlUnavailable, ConnectionError, TimeoutError):
            last = await ctl(socket_path, "status")
            if predicate(last):
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s; last: {last}")


class StationProcess:
    """``chargerfw run`` as a child process; stopped only by its own pid."""

    def __init__(self, config_path: Path, runtime_dir: Path, log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.extra_env = env or {}
        self.config_path = config_path
        self.socket_path = runtime_dir / "control.sock"
        self.runtime_dir = runtime_dir
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "CHARGERFW_RUNTIME_DIR": str(self.runtime_dir)}
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)  # only what the test asks for
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chargerfw", "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)

    async def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"chargerfw run exited with {self.proc.returncode}:\n"
                                     + self.log_path.read_text()[-3000:])
            with contextlib.suppress(control.ControlUnavailable, ConnectionError, OSError):
                return await ctl(self.socket_path, "status")
            await asyncio.sleep(0.05)
        raise AssertionError("chargerfw run did not open its control socket in time")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    async def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("chargerfw run did not exit in time")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill_if_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


class Cli:
    """`python -m chargerfw ...` with the station's runtime dir (so it finds the socket)."""

    def __init__(self, config_path: Path, runtime_dir: Path) -> None:
        self.config_path = config_path
        self.env = {**os.environ, "CHARGERFW_RUNTIME_DIR": str(runtime_dir)}
        self.env.pop("CHARGERFW_CONTROL_SOCKET", None)

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chargerfw", *args, "-c", str(self.config_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.env)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode, out.decode(), err.decode()


LiveStation = tuple[StationRuntime, Path, Cli, TestCsms]


@contextlib.asynccontextmanager
async def live_station(tmp_path: Path) -> AsyncIterator[LiveStation]:
    """A simulated station running in this process against a test backend, with the command
    line pointed at it, once the backend has its first StatusNotification."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="cfw-", dir="/tmp"))  # short socket path
    try:
        async with TestCsms() as csms:
            config_path, config = sim_station_config(tmp_path, csms.url)
            sock = runtime_dir / "control.sock"
            async with running_station(config, sock) as runtime:
                await csms.wait_for(lambda: csms.of("StatusNotification"))
                yield runtime, sock, Cli(config_path, runtime_dir), csms
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)
