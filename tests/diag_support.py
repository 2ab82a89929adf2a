"""Shared pieces of the technician CLI tests: a simulated station config in a temp dir, a fake
service on the control socket (the control server with typed handlers a test writes, and a
status answer built from the reply dataclasses), a prepared simulated board for the
direct-hardware path, and a simulated Modbus TCP meter in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tomlkit
from click.testing import CliRunner, Result
from realstack import free_port

from chargerfw.cli import main
from chargerfw.config import StationConfig
from chargerfw.control.api import (
    ActiveFault,
    BackendStatus,
    ConnectorMeter,
    ConnectorStatus,
    LinkStatus,
    Method,
    OutboxStatus,
    ReaderStatus,
    StatusReply,
    TransactionStatus,
)
from chargerfw.control.server import ControlServer
from chargerfw.drivers.board import Board, build_board
from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.sim.meter import SimulatedMeter, serve_tcp
from chargerfw.station.connector import TxPhase
from chargerfw.station.enums import Availability, ChargePointErrorCode, ChargePointStatus
from chargerfw.station.faults import Fault, FaultKind

REPO = Path(__file__).resolve().parent.parent
SIM_TOML = REPO / "hw" / "stations" / "sim.toml"


def write_station(directory: Path, *, meter_port: int | None = None,
                  ocpp_url: str | None = None, station_id: str = "CP1",
                  edit: Callable[[Any], None] | None = None) -> Path:
    """hw/stations/sim.toml with its store in ``directory``, its meter on ``meter_port`` and
    its backend at ``ocpp_url`` (default: a closed port). ``CP1`` is the identity the test
    CSMS accepts with the sim config's password."""
    document = tomlkit.parse(SIM_TOML.read_text())
    document["station"]["id"] = station_id
    document["storage"]["path"] = str(directory / "state.db")
    document["security"] = {"certificates_dir": str(directory / "certs")}
    document["connector"][0]["meter"]["tcp_port"] = meter_port or free_port()
    document["ocpp"]["url"] = ocpp_url or f"ws://127.0.0.1:{free_port()}/ocpp"
    if edit:
        edit(document)
    path = directory / "station.toml"
    path.write_text(tomlkit.dumps(document))
    return path


def invoke(*args: str, input: str | None = None) -> Result:
    """Run the CLI in-process; stdout and stderr apart."""
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


class FakeService:
    """The control socket's own server on ``socket_path`` with test handlers (method -> a
    function from its request to its reply), in its own thread; ``calls`` records (method,
    request)."""

    def __init__(self, socket_path: Path, handlers: dict[Method, Callable[[Any], Any]]) -> None:
        self.socket_path = socket_path
        self.calls: list[tuple[Method, Any]] = []
        self.handlers = {method: self._recording(method, fn) for method, fn in handlers.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def _recording(self, method: Method, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def handler(request: Any) -> Any:
            self.calls.append((method, request))
            return fn(request)
        return handler

    def methods(self) -> list[Method]:
        return [method for method, _ in self.calls]

    def __enter__(self) -> FakeService:
        ready = threading.Event()

        async def serve() -> None:
            server = ControlServer(self.socket_path, self.handlers)
            await server.start()
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            try:
                await self._stop.wait()
            finally:
                await server.close()

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
        self._thread.start()
        assert ready.wait(5), "fake service did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


def active_fault(kind: FaultKind, connector: int | None) -> ActiveFault:
    """An active fault as the service reports it (the catalogue's texts with it)."""
    return ActiveFault.of(Fault(kind, connector, "", 1.0))


def status_result(*, pilot: str = "A", transaction: TransactionStatus | None = None,
                  faults: list[ActiveFault] | None = None, link_state: str = "connected",
                  meter: ConnectorMeter | None = None) -> StatusReply:
    """A status answer as the service's ``status`` method gives it."""
    return StatusReply(
        station="SIM-CP-1", firmware_version="0.1.0", hardware="sim", started_at=1.0,
        available=True,
        connectors=[ConnectorStatus(
            id=1, status=ChargePointStatus.CHARGING if transaction else ChargePointStatus.AVAILABLE,
            error_code=ChargePointErrorCode.NO_ERROR, vendor_error_code=None,
            pilot=PilotState(pilot), pilot_output=PilotMode.PWM, current_limit_a=32.0,
            contactor_closed=bool(transaction), availability=Availability.OPERATIVE,
            scheduled_availability=None, phase=TxPhase.IDLE, reservation=None,
            transaction=transaction, starting=False, under_test=None, temperature_c=None,
            meter=meter)],
        backend=BackendStatus(
            url="ws://127.0.0.1:9/ocpp", online=link_state == "connected",
            registration="Accepted",
            link=LinkStatus(state=link_state, url="ws://127.0.0.1:9/ocpp/SIM-CP-1",
                            connected_since=1.0, last_pong_latency_s=0.002, ping_interval_s=60,
                            connects=1,
                            last_error=None if link_state == "connected" else "refused"),
            clock_offset_s=0.4),
        outbox=OutboxStatus(pending=2, dead=0),
        faults=faults or [],
        reader=ReaderStatus(name="sim", available=True),
    )


class PreparedBoard:
    """Swap ``chargerfw.cli.common.open_board`` for one that builds the simulated board and
    lets the test prepare it (plug a vehicle, weld the contactor) before the command runs."""

    def __init__(self, prepare: Callable[[Board], None] | None = None) -> None:
        self.prepare = prepare
        self.boards: list[Board] = []

    def __call__(self, config: StationConfig) -> Board:
        board = build_board(config)
        if self.prepare:
            self.prepare(board)
        self.boards.append(board)
        return board


@contextlib.contextmanager
def sim_meter_thread(model: str = "eastron-sdm630-v2", port: int = 0,
                     **load: float) -> Iterator[tuple[SimulatedMeter, int]]:
    """A simulated meter served over Modbus TCP on 127.0.0.1 from its own thread."""
    meter = SimulatedMeter(model)
    meter.set_load(**load)
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        holder["stop"] = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        async with serve_tcp(meter, "127.0.0.1", port) as (_, bound):
            holder["port"] = bound
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(5), "simulated meter did not start"
    try:
        yield meter, holder["port"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(5)


@contextlib.contextmanager
def csms_in_thread() -> Iterator[Any]:
    """The test CSMS (password ``sim-secret``, the sim config's) in its own thread: the CLI
    runs its own event loop."""
    from ocpp_testcsms import TestCsms

    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        async with TestCsms(password="sim-secret") as server:
            holder["server"], holder["loop"] = server, asyncio.get_running_loop()
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield holder["server"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(5)
