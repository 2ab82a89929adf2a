"""The safety process's server and the station's link to it, in one process on simulated
hardware: what the link asks, what the interlocks allow, the heartbeat bound, latched faults kept
on disk, and bad input refused. (The two real processes, frozen and killed: test_safety_processes.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import wait_until
from runtime_helpers import sim_station_config

from chargerfw.drivers.board import Board, build_board
from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.safety.core import PilotCommand
from chargerfw.safety.link import SafetyLink
from chargerfw.safety.process import SafetyProcess
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FaultKind
from chargerfw.station.safety import FaultChanged, SafetyEvent, SafetySettings

pytestmark = pytest.mark.timeout(60)

BOUND_S = 0.2


@dataclass
class Rig:
    process: SafetyProcess
    board: Board
    link: SafetyLink
    events: list[SafetyEvent]
    socket_path: Path
    latched_path: Path

    def faults_seen(self) -> list[tuple[FaultKind, int, bool]]:
        return [(e.fault.kind, e.fault.connector_id, e.active) for e in self.events
                if isinstance(e, FaultChanged)]


@contextlib.contextmanager
def serving(tmp_path: Path, short_dir: Path, latched: Path | None = None
            ) -> Iterator[tuple[SafetyProcess, Board, Path]]:
    _, config = sim_station_config(tmp_path, "ws://127.0.0.1:9/ocpp")
    board = build_board(config)
    socket_path = short_dir / "safety.sock"
    process = SafetyProcess(config, board, socket_path,
                            latched or tmp_path / "safety-latched.json",
                            settings=SafetySettings(poll_interval_s=0.02),
                            heartbeat_bound_s=BOUND_S)
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        assert time.monotonic() < deadline, "the safety process did not listen"
        time.sleep(0.01)
    try:
        yield process, board, socket_path
    finally:
        process.stop()
        thread.join(5)
        board.close()


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, short_dir: Path, heartbeat: bool = True) -> AsyncIterator[Rig]:
    loop = asyncio.get_running_loop()
    events: list[SafetyEvent] = []
    with serving(tmp_path, short_dir) as (process, board, socket_path):
        link = SafetyLink(socket_path, lambda e: loop.call_soon_threadsafe(events.append, e),
                          lock_connectors=frozenset({1}))
        await asyncio.to_thread(link.start)
        beats = asyncio.create_task(link.heartbeat_forever()) if heartbeat else None
        try:
            yield Rig(process, board, link, events, socket_path,
                      tmp_path / "safety-latched.json")
        finally:
            if beats is not None:
                beats.cancel()
            link.stop()


async def charging(rig: Rig) -> None:
    """A vehicle that asks for energy, offered 16 A, the coil closed through the link."""
    parts = rig.board.connectors[1].sim
    assert parts is not None
    parts.vehicle.plug_in()
    rig.link.set_pilot(1, PilotCommand(PilotMode.PWM, 16.0))
    parts.vehicle.request_charge()
    await wait_until(lambda: rig.link.pilot(1) is PilotState.C, what="pilot C seen")
    assert rig.link.request_close(1)
    await wait_until(lambda: rig.link.contactor_closed(1), what="contactor closed")


async def test_a_close_request_passes_the_interlocks_and_an_rcm_self_test(tmp_path, short_dir):
    async with rig(tmp_path, short_dir) as r:
        # Its state reports come every poll; on a loaded machine the first may be a moment late.
        await wait_until(lambda: r.link.monitor_current, what="the safety process current")
        # No vehicle: the request is refused by the safety process, the coil stays open.
        r.link.request_close(1)
        await asyncio.sleep(0.2)
        assert not r.board.connectors[1].contactor.commanded_closed
        await charging(r)
        assert r.board.connectors[1].contactor.commanded_closed
        # The self-test's trip opened nothing and raised nothing.
        assert FaultKind.RCD_TRIP not in {k for k, _, _ in r.faults_seen()}


async def test_a_silent_station_leaves_the_coil_open_until_its_heartbeat_is_back(
        tmp_path, short_dir):
    async with rig(tmp_path, short_dir, heartbeat=False) as r:
        beats = asyncio.create_task(r.link.heartbeat_forever())
        await charging(r)
        beats.cancel()
        silenced = time.monotonic()
        # Opened on its own; how soon after the bound is a figure of bench/safety_latency.py
        # (a timed assertion here would measure the machine's load, not the safety process).
        await wait_until(lambda: not r.board.connectors[1].contactor.commanded_closed,
                         timeout=2, interval=0.005, what="coil opened")
        assert time.monotonic() - silenced >= BOUND_S * 0.5  # not before the station fell silent
        await wait_until(lambda: (FaultKind.SUPERVISION_LOST, STATION, True) in r.faults_seen(),
                         what="supervision lost reported")
        # The station is back: the fault clears, and a new request may close again.
        beats = asyncio.create_task(r.link.heartbeat_forever())
        await wait_until(lambda: (FaultKind.SUPERVISION_LOST, STATION, False) in r.faults_seen(),
                         what="supervision back")
        r.link.request_close(1)
        await wait_until(lambda: r.link.contactor_closed(1), what="closed again")
        beats.cancel()


async def test_an_rcd_trip_opens_at_once_and_reaches_the_station(tmp_path, short_dir):
    async with rig(tmp_path, short_dir) as r:
        await charging(r)
        assert r.board.sim is not None and r.board.sim.rcm is not None
        r.board.sim.rcm.trip()
        assert not r.board.connectors[1].contactor.commanded_closed  # on the tripping thread
        await wait_until(lambda: (FaultKind.RCD_TRIP, STATION, True) in r.faults_seen(),
                         what="trip reported")
        r.link.request_close(1)
        await asyncio.sleep(0.2)
        assert not r.link.contactor_closed(1)
        r.board.sim.rcm.clear()
        await wait_until(lambda: (FaultKind.RCD_TRIP, STATION, False) in r.faults_seen(),
                         what="trip cleared")


async def test_a_latched_fault_survives_a_restart_of_the_safety_process(tmp_path, short_dir):
    async with rig(tmp_path, short_dir) as r:
        parts = r.board.connectors[1].sim
        assert parts is not None
        parts.contactor.weld()
        await wait_until(lambda: (FaultKind.CONTACTOR_WELDED, 1, True) in r.faults_seen(),
                         what="weld seen")
        latched = r.latched_path
    assert json.loads(latched.read_text()) == [
        {"kind": "contactor_welded", "connector": 1, "detail": "mirror contact closed while "
                                                              "commanded open"}]
    # A new process on a repaired contactor: the latch holds until a technician clears it.
    with serving(tmp_path, short_dir, latched) as (process, _board, _socket):
        assert FaultKind.CONTACTOR_WELDED in {f.kind for f in process.core.active_faults(1)}
        assert process.core.clear_by_technician(FaultKind.CONTACTOR_WELDED, 1)
        assert json.loads(latched.read_text()) == []


def test_bad_input_gets_an_error_and_changes_nothing(tmp_path, short_dir):
    with serving(tmp_path, short_dir) as (process, board, socket_path):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(socket_path))
            reader = sock.makefile("rb")
            sock.sendall(b'{"type": "close", "connector": 1}\n')  # before hello
            assert json.loads(reader.readline()) == {
                "type": "reply", "id": 0, "ok": False, "error": "say hello first",
                "result": None}
            sock.sendall(b'{"type": "hello", "role": "technician"}\n')
            assert json.loads(reader.readline())["type"] == "state"
            sock.sendall(b'not json\n')
            reply = json.loads(reader.readline())
            while reply["type"] != "reply":
                reply = json.loads(reader.readline())
            assert not reply["ok"] and reply["error"].startswith("bad message:")
            sock.sendall(b'{"type": "clear_fault", "id": 7, "kind": "no_such", "connector": 0}\n')
            reply = json.loads(reader.readline())
            while reply["type"] != "reply":
                reply = json.loads(reader.readline())
            assert reply["id"] == 7 and not reply["ok"] and "no_such" in reply["error"]
            # Only the station closes coils.
            sock.sendall(b'{"type": "set_pilot", "connector": 1, "mode": "standby"}\n')
            reply = json.loads(reader.readline())
            while reply["type"] != "reply":
                reply = json.loads(reader.readline())
            assert not reply["ok"] and "only the station" in reply["error"]
        assert not board.connectors[1].contactor.commanded_closed
        assert process.core.active_faults() == frozenset()
