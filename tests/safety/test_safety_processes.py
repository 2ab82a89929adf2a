"""The two real processes on simulated hardware: ``chargerfw safety run`` (holding the simulated
world) and ``chargerfw run`` with ``[safety] mode = "process"``, against a test backend. The
station is frozen (SIGSTOP) and killed (SIGKILL) while charging: the coil opens within the
heartbeat bound, every fault still opens it while the station cannot act, and what happened
while it was away reaches it when it is back. The coil is watched from a third connection (a
technician's link), which sees the safety process's state every 100 ms and the time each fault
was raised (the coil opens on that same thread, first)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import wait_until
from ocpp_testcsms import TestCsms
from runtime_helpers import StationProcess, ctl, dump_toml, sim_station_config, wait_status

from chargerfw.safety.link import SafetyLink
from chargerfw.station.faults import Fault, FaultKind

pytestmark = pytest.mark.timeout(120)

TAG = "04C0FFEE"


# The station link's heartbeat period (SafetyLink's default).
HEARTBEAT_INTERVAL_S = 0.05


def two_process_config(tmp_path: Path, url: str, bound_ms: int) -> Path:
    path, _ = sim_station_config(tmp_path, url)
    raw = tomllib.loads(path.read_text())
    raw["safety"] = {"mode": "process", "heartbeat_bound_ms": bound_ms, "lock_memory": False}
    path.write_text(dump_toml(raw))
    return path


class SafetyChild:
    """``chargerfw safety run`` as a child process; ended only by its own pid."""

    def __init__(self, config_path: Path, runtime_dir: Path, log_path: Path) -> None:
        self.socket_path = runtime_dir / "safety.sock"
        env = {**os.environ, "CHARGERFW_RUNTIME_DIR": str(runtime_dir)}
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chargerfw", "safety", "run", "-c", str(config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)

    def end(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@dataclass
class Pair:
    safety: SafetyChild
    station: StationProcess
    observer: SafetyLink
    csms: TestCsms

    def coil_closed(self) -> bool:
        return self.observer.contactor_closed(1)

    def fault(self, kind: FaultKind) -> Fault | None:
        return next((f for f in self.observer.active_faults() if f.kind is kind), None)

    async def simulate(self, method: str, **params: object) -> None:
        """A ``sim.*`` method straight to the safety process's world (the station may be
        frozen or gone)."""
        await asyncio.to_thread(self.observer.simulate, method, dict(params))

    async def charging(self) -> None:
        sock = self.station.socket_path
        await ctl(sock, "sim.tap", uid=TAG)
        await ctl(sock, "sim.plug")
        await ctl(sock, "sim.charge")
        await wait_until(self.coil_closed, timeout=15, what="the coil closed for charging")


@contextlib.asynccontextmanager
async def two_processes(tmp_path: Path, runtime_dir: Path, bound_ms: int = 200
                        ) -> AsyncIterator[Pair]:
    async with TestCsms() as csms:
        config_path = two_process_config(tmp_path, csms.url, bound_ms)
        safety = SafetyChild(config_path, runtime_dir, tmp_path / "safety.log")
        station = StationProcess(config_path, runtime_dir, tmp_path / "station.log")
        pair: Pair | None = None
        observer = SafetyLink(safety.socket_path, lambda event: None, role="technician",
                              name="test observer")
        try:
            await asyncio.to_thread(observer.start, 20.0)
            station.start()
            await station.wait_ready()
            await csms.wait_for(lambda: csms.of("StatusNotification"), timeout=15)
            pair = Pair(safety, station, observer, csms)
            try:
                yield pair
            except BaseException:
                _print_logs_of(pair, tmp_path)
                raise
        finally:
            observer.stop()
            station.kill_if_running()
            # A test may have started another station process (systemd's restart) in its place.
            if pair is not None:
                pair.station.kill_if_running()
            safety.end()


def _print_logs_of(pair: Pair, tmp_path: Path) -> None:
    """What both processes said, shown by pytest with a failure (a load-dependent failure is
    otherwise lost with its temporary directory)."""
    print("faults seen by the observer:", sorted(f.kind.value for f in pair.observer.active_faults()))
    for log_path in sorted(tmp_path.glob("*.log")):
        lines = log_path.read_text(errors="replace").splitlines()
        shown = [line for line in lines if "ocpp.frame" not in line][-40:]
        print(f"--- {log_path.name} (last {len(shown)} lines without frames)")
        print("\n".join(shown))


async def test_a_killed_station_leaves_the_outlet_dead_and_finds_the_truth_when_back(
        tmp_path, short_dir):
    async with two_processes(tmp_path, short_dir) as pair:
        await pair.charging()
        killed_at = time.time()
        pair.station.signal(signal.SIGKILL)
        await wait_until(lambda: not pair.coil_closed(), timeout=5, what="the coil open")
        lost = pair.fault(FaultKind.SUPERVISION_LOST)
        assert lost is not None
        # The kernel closes a killed process's socket: the safety process does not wait out
        # the bound (the bench prints the figures).
        assert lost.timestamp - killed_at < 0.2 + 0.1
        # While the station is gone, the e-stop is pressed: the safety process keeps it.
        await pair.simulate("sim.estop_press")
        await wait_until(lambda: pair.fault(FaultKind.EMERGENCY_STOP), timeout=5,
                         what="emergency_stop active")
        # A new station process (systemd's restart) hears of it and tells the backend.
        restarted = StationProcess(pair.station.config_path, pair.station.runtime_dir,
                                   tmp_path / "station2.log")
        pair.station = restarted
        restarted.start()
        await restarted.wait_ready()
        status = await wait_status(
            restarted.socket_path,
            lambda s: any(f["kind"] == "emergency_stop" for f in s["faults"]),
            what="the restarted station shows the emergency stop")
        assert status["connectors"][0]["contactor_closed"] is False
        await wait_until(lambda: pair.fault(FaultKind.SUPERVISION_LOST) is None, timeout=10,
                         what="supervision back with the new station's heartbeat")
        await pair.csms.wait_for(
            lambda: any(m.payload.get("errorCode") == "OtherError"
                        and m.payload.get("status") == "Faulted"
                        for m in pair.csms.of("StatusNotification")), timeout=15)


async def test_a_frozen_station_opens_the_coil_after_the_bound_and_recovers(
        tmp_path, short_dir):
    async with two_processes(tmp_path, short_dir, bound_ms=200) as pair:
        await pair.charging()
        frozen_at = time.time()
        pair.station.signal(signal.SIGSTOP)
        try:
            await wait_until(lambda: not pair.coil_closed(), timeout=5, what="the coil open")
            lost = pair.fault(FaultKind.SUPERVISION_LOST)
            assert lost is not None
            # The bound runs from the last heartbeat, sent up to one interval before the stop.
            earliest = 0.2 - HEARTBEAT_INTERVAL_S - 0.02
            assert earliest <= lost.timestamp - frozen_at < 0.2 + 0.1  # the bound, not sooner
        finally:
            pair.station.signal(signal.SIGCONT)
        # The heartbeat is back: supervision clears and the session goes on.
        await wait_until(lambda: pair.fault(FaultKind.SUPERVISION_LOST) is None, timeout=10,
                         what="supervision_lost cleared")
        await wait_until(pair.coil_closed, timeout=15, what="charging resumed")


# Each fault, raised while the station is frozen (with a bound of 1 s, the longest allowed, so
# that silence alone does not open the coil first): the safety process opens the coil itself.
FAULTS_WHILE_FROZEN: dict[str, tuple[str, dict[str, object], FaultKind | None]] = {
    "rcd trip": ("sim.rcd_trip", {}, FaultKind.RCD_TRIP),
    "emergency stop": ("sim.estop_press", {}, FaultKind.EMERGENCY_STOP),
    "over-temperature": ("sim.temperature", {"celsius": 80.0}, FaultKind.OVER_TEMPERATURE),
    "pilot shorted": ("sim.short_pilot", {}, FaultKind.PILOT_ERROR),
    "diode missing": ("sim.remove_diode", {}, FaultKind.DIODE_FAULT),
    "contactor drops out": ("sim.fail_to_close", {}, FaultKind.CONTACTOR_FAILED_TO_CLOSE),
    "vehicle stops (C to B)": ("sim.stop_charging", {}, None),
    "vehicle unplugged (C to A)": ("sim.unplug", {}, None),
}


@pytest.mark.parametrize("fault", FAULTS_WHILE_FROZEN)
async def test_every_fault_opens_the_coil_while_the_station_is_frozen(
        tmp_path, short_dir, fault):
    method, params, kind = FAULTS_WHILE_FROZEN[fault]
    bound_s = 1.0
    async with two_processes(tmp_path, short_dir, bound_ms=int(bound_s * 1000)) as pair:
        await pair.charging()
        frozen_at = time.time()
        pair.station.signal(signal.SIGSTOP)
        try:
            await pair.simulate(method, **params)
            await wait_until(lambda: not pair.coil_closed(), timeout=5, what="the coil open")
            seen_open_at = time.time()
            if kind is None:  # no fault: the pilot left C and the monitor opened the coil
                assert seen_open_at - frozen_at < bound_s
            else:
                raised = pair.fault(kind)
                assert raised is not None and raised.timestamp - frozen_at < bound_s
            lost = pair.fault(FaultKind.SUPERVISION_LOST)
            # not what opened it
            assert lost is None or lost.timestamp - frozen_at >= bound_s - HEARTBEAT_INTERVAL_S
        finally:
            pair.station.signal(signal.SIGCONT)


async def test_the_tamper_contact_the_safety_process_holds_reaches_the_backend(
        tmp_path, short_dir):
    """With the safety process holding the pins, each opening of the tamper contact it counts
    is one TamperDetectionActivated on the station, sent to the backend."""
    async with TestCsms() as csms:
        config_path = two_process_config(tmp_path, csms.url, 200)
        raw = tomllib.loads(config_path.read_text())
        raw.setdefault("security", {})["tamper"] = {"pin": 26}
        config_path.write_text(dump_toml(raw))
        safety = SafetyChild(config_path, short_dir, tmp_path / "safety.log")
        station = StationProcess(config_path, short_dir, tmp_path / "station.log")
        try:
            station.start()
            await station.wait_ready()
            await csms.wait_for(lambda: csms.of("StatusNotification"), timeout=15)
            sock = station.socket_path
            for _ in range(2):
                assert await ctl(sock, "sim.tamper_open") == {"tamper": "open"}
                assert await ctl(sock, "sim.tamper_close") == {"tamper": "close"}
            await csms.wait_for(lambda: len([
                m for m in csms.of("SecurityEventNotification")
                if m.payload["type"] == "TamperDetectionActivated"]) == 2, timeout=15)
        finally:
            station.kill_if_running()
            safety.end()
