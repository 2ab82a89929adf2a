"""`chargerfw run` and the locks: the hardware lock for the whole life of a station on real
hardware (hardware = "pi"), and one station per control socket (also on "sim")."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import msgspec
import pytest
from ocpp_testcsms import TestCsms
from runtime_helpers import ctl, dump_toml, running_station, sim_station_config

from chargerfw.config import parse_config
from chargerfw.control.server import ControlSocketInUse
from chargerfw.drivers.board import build_board
from chargerfw.hwlock import HardwareBusy, HardwareLock, is_locked
from chargerfw.runtime import assembly as assembly_module
from chargerfw.runtime.station import BUSY_EXIT_CODE, StationRuntime
from chargerfw.sim.hardware import simulated_hardware

pytestmark = pytest.mark.timeout(60)


def pi_config(path: Path, safety_mode: str = "thread") -> Path:
    """The sim station's file as a Pi station without a reader (nothing here drives it)."""
    raw = tomllib.loads(path.read_text())
    raw["hardware"] = "pi"
    raw.pop("reader", None)
    raw["safety"] = {"mode": safety_mode}
    pi = path.with_name("pi.toml")
    pi.write_text(dump_toml(raw))
    return pi


def run_cli(config_path: Path, runtime_dir: Path,
            command: tuple[str, ...] = ("run",)) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHARGERFW_RUNTIME_DIR": str(runtime_dir)}
    env.pop("CHARGERFW_CONTROL_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "chargerfw", *command, "-c", str(config_path)],
                          capture_output=True, text=True, env=env, timeout=30,
                          stdin=subprocess.DEVNULL)


# Whoever owns the pins takes the lock: the station itself in thread mode, the safety process in
# process mode (the default on a Pi).
@pytest.mark.parametrize(("mode", "command"), [("thread", ("run",)),
                                               ("process", ("safety", "run"))])
def test_the_pin_owner_on_pi_refuses_while_a_technician_holds_the_hardware(
        tmp_path, runtime_dir, mode, command):
    path, _ = sim_station_config(tmp_path, "ws://127.0.0.1:9/ocpp")
    with HardwareLock("chargerfw test contactor"):
        done = run_cli(pi_config(path, mode), runtime_dir, command)
    assert done.returncode == BUSY_EXIT_CODE == 4, done.stderr
    assert f"in use by chargerfw test contactor (pid {os.getpid()})" in done.stderr
    assert "Traceback" not in done.stderr
    assert is_locked(runtime_dir) is None


async def test_run_on_pi_holds_the_hardware_lock_for_its_whole_life(
        tmp_path, runtime_dir, monkeypatch):
    # No Pi here: the board is the simulated one, everything else runs as on a Pi.
    monkeypatch.setattr(assembly_module, "build_board",
                        lambda config: build_board(msgspec.structs.replace(config, hardware="sim")))
    async with TestCsms() as csms:
        path, _ = sim_station_config(tmp_path, csms.url)
        pi = pi_config(path)
        config = parse_config(tomllib.loads(pi.read_text()), str(pi))
        async with running_station(config, runtime_dir / "control.sock") as runtime:
            assert runtime.config.hardware == "pi"
            holder = is_locked(runtime_dir)
            assert holder is not None and holder.owner == "chargerfw run"
            assert holder.pid == os.getpid()
            with pytest.raises(HardwareBusy, match=r"in use by chargerfw run \(pid"):
                HardwareLock("chargerfw test rcd").acquire()
            assert (await ctl(runtime_dir / "control.sock", "status"))["hardware"] == "pi"
    assert is_locked(runtime_dir) is None  # released with the station


async def test_two_sim_stations_on_one_control_socket(tmp_path, runtime_dir):
    sock = runtime_dir / "control.sock"
    async with TestCsms() as csms:
        path, config = sim_station_config(tmp_path, csms.url)
        async with running_station(config, sock) as first:
            await csms.wait_for(lambda: csms.of("StatusNotification"))
            # The same station again, in this process: refused before it opens the store.
            second = StationRuntime(config, control_socket=sock, simulator=simulated_hardware)
            with pytest.raises(ControlSocketInUse, match=r"chargerfw run CP1 \(pid"):
                await asyncio.wait_for(second.run(), 10)
            assert second.parts is None  # the store was never opened
            # The same as a process: a clear message and its exit code.
            other = tmp_path / "other"
            other.mkdir()
            other_path, _ = sim_station_config(other, csms.url, station_id="CP2")
            done = await asyncio.to_thread(run_cli, other_path, runtime_dir)
            assert done.returncode == BUSY_EXIT_CODE, done.stderr
            assert f"control socket {sock} belongs to chargerfw run CP1" in done.stderr
            assert "Traceback" not in done.stderr
            # The first one is untouched and still answers.
            assert (await ctl(sock, "status"))["station"] == "CP1"
            assert first.ready.is_set() and sock.is_socket()
