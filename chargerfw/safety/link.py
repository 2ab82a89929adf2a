"""The station's end of the safety process's socket: a :class:`~chargerfw.safety.port.SafetyPort`
over :mod:`~chargerfw.safety.protocol`.

Requests go out at once and the safety process decides; what it sees comes back as events and as
a :class:`~chargerfw.safety.protocol.State` every 100 ms, which this link keeps (contactors,
pilot, temperatures, active faults) and compares with what it told the station, so a lost event
is made good by the next state. The heartbeat is sent from the station's event loop
(:meth:`SafetyLink.heartbeat_forever`): a loop that stops turning stops it, and the safety
process opens every coil. A link that breaks (the safety process restarted) reconnects by itself
and calls ``on_reconnect``, so the station can ask again for what it wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from chargerfw.drivers.lock import LockResult
from chargerfw.drivers.types import MeterSample, PilotState
from chargerfw.logs import get_logger
from chargerfw.safety import protocol as p
from chargerfw.safety.core import PilotCommand
from chargerfw.safety.results import (
    ContactorTestReply,
    HardwareTestReply,
    LockTestReply,
    PilotTestReply,
    RcdTestReply,
)
from chargerfw.safety.sequences import Refusal
from chargerfw.station.faults import Fault, FaultKind
from chargerfw.station.safety import (
    FaultChanged,
    Notify,
    PilotObserved,
    ThermalLimitChanged,
)
from chargerfw.station.technician import HardwareTest

log = get_logger(__name__)

STALE_AFTER_S = 1.0  # no State for this long: the safety process is not current
CALL_TIMEOUT_S = 10.0  # a lock waits for its feedback; a clear answers at once
TEST_TIMEOUT_S = 60.0  # a hardware test takes seconds (a lock, a contactor's feedback)
RECONNECT_S = (0.05, 1.0)  # back-off bounds
RESULT_TYPES: dict[HardwareTest, type[HardwareTestReply]] = {
    HardwareTest.CONTACTOR: ContactorTestReply,
    HardwareTest.RCD: RcdTestReply,
    HardwareTest.PILOT: PilotTestReply,
    HardwareTest.LOCK: LockTestReply,
}


class SafetyUnavailable(ConnectionError):
    """The safety process does not answer on its socket."""


class SafetyRefused(RuntimeError):
    """The safety process answered a request with a refusal (the message says why)."""


class SafetyLink:
    """The station process's view of, and requests to, the safety process."""

    def __init__(
        self,
        socket_path: Path,
        notify: Notify,
        *,
        role: p.Role = "station",
        name: str = "",
        heartbeat_interval_s: float = 0.05,
        on_reconnect: Callable[[], None] | None = None,
        lock_connectors: frozenset[int] = frozenset(),
    ) -> None:
        self.socket_path = socket_path
        self.role = role
        self.name = name
        self.heartbeat_interval_s = heartbeat_interval_s
        self._notify = notify
        self._on_reconnect = on_reconnect
        self._lock_connectors = lock_connectors
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._calls: dict[int, tuple[threading.Event, list[p.Reply]]] = {}
        self._faults: dict[tuple[FaultKind, int], Fault] = {}
        self._connectors: dict[int, p.ConnectorState] = {}
        self._state_at: float | None = None
        self._monitor_current = False
        self._first_state = threading.Event()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self.sim_snapshot: dict[str, Any] | None = None
        # Called (on the link's thread) once per opening of the tamper contact the safety
        # process watches.
        self.on_tamper_opened: Callable[[], None] | None = None
        self._tamper_openings: int | None = None

    # -- life ---------------------------------------------------------------------------------

    def start(self, connect_timeout_s: float = 10.0) -> None:
        """Connect (waiting up to ``connect_timeout_s`` for the safety process) and hold its
        first state."""
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                self._connect()
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise SafetyUnavailable(
                        f"no safety process answers on {self.socket_path}: {exc}"
                    ) from None
                time.sleep(RECONNECT_S[0])
        self._reader = threading.Thread(target=self._read_forever, name="safety-link", daemon=True)
        self._reader.start()
        if not self._first_state.wait(max(1.0, deadline - time.monotonic())):
            raise SafetyUnavailable(f"the safety process on {self.socket_path} sent no state")

    def stop(self) -> None:
        self._stop.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._reader is not None:
            self._reader.join(2.0)

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
            sock.sendall(p.encode(p.Hello(self.role, self.name)))
        except OSError:
            sock.close()
            raise
        self._sock = sock

    async def heartbeat_forever(self) -> None:
        """From the station's event loop: the safety process's proof that the loop turns."""
        while True:
            self._send(p.Heartbeat())
            await asyncio.sleep(self.heartbeat_interval_s)

    @property
    def monitor_current(self) -> bool:
        at = self._state_at
        return self._monitor_current and at is not None and time.monotonic() - at <= STALE_AFTER_S

    # -- requests -----------------------------------------------------------------------------

    def request_close(self, connector_id: int) -> bool:
        """Asked: the safety process closes once its interlocks allow (it says if it will not
        in its log; the station sees the coil in the next state)."""
        return self._send(p.Close(connector_id))

    def request_open(self, connector_id: int) -> None:
        self._send(p.Open(connector_id))

    def open_all(self) -> None:
        self._send(p.OpenAll())

    def set_pilot(self, connector_id: int, command: PilotCommand) -> None:
        self._send(p.SetPilot(connector_id, command.mode, command.current_a))

    def has_lock(self, connector_id: int) -> bool:
        return connector_id in self._lock_connectors

    def drive_lock(self, connector_id: int, locked: bool) -> LockResult:
        reply = self._call(lambda rid: p.DriveLock(rid, connector_id, locked))
        return LockResult(reply.result)

    def update_meter(self, connector_id: int, sample: MeterSample) -> None:
        self._send(p.Meter(connector_id, sample))

    def meter_fault(self, connector_id: int, active: bool, detail: str = "") -> None:
        self._send(p.MeterFault(connector_id, active, detail))

    def clear_by_technician(self, kind: FaultKind, connector_id: int) -> bool:
        try:
            self._call(lambda rid: p.ClearFault(rid, kind, connector_id))
        except SafetyRefused:
            return False
        return True

    def run_test(self, test: HardwareTest, connector_id: int) -> HardwareTestReply:
        try:
            reply = self._call(
                lambda rid: p.RunTest(rid, test, connector_id), timeout_s=TEST_TIMEOUT_S
            )
        except SafetyRefused as exc:
            raise Refusal(str(exc)) from None
        return msgspec.convert(reply.result, RESULT_TYPES[test])

    def simulate(self, method: str, params: dict[str, Any]) -> Any:
        """A ``sim.*`` method for the simulated world the safety process holds."""
        return self._call(lambda rid: p.Simulate(rid, method, params)).result

    # -- what the safety process sees ---------------------------------------------------------

    def contactor_closed(self, connector_id: int) -> bool:
        with self._state_lock:
            state = self._connectors.get(connector_id)
        return state is not None and state.contactor_closed

    def temperature_c(self, connector_id: int) -> float | None:
        with self._state_lock:
            state = self._connectors.get(connector_id)
        return None if state is None else state.temperature_c

    def pilot(self, connector_id: int) -> PilotState | None:
        with self._state_lock:
            state = self._connectors.get(connector_id)
        return None if state is None else state.pilot

    def active_faults(self, connector_id: int | None = None) -> frozenset[Fault]:
        with self._state_lock:
            return frozenset(
                f
                for f in self._faults.values()
                if connector_id is None or f.connector_id in (connector_id, 0)
            )

    # -- the wire -----------------------------------------------------------------------------

    def _send(self, message: p.Request) -> bool:
        line = p.encode(message)
        with self._send_lock:
            sock = self._sock
            if sock is None:
                return False
            try:
                sock.sendall(line)
            except OSError:
                return False
        return True

    def _call(self, make: Callable[[int], p.Request], timeout_s: float = CALL_TIMEOUT_S) -> p.Reply:
        request_id = next(self._ids)
        done = threading.Event()
        box: list[p.Reply] = []
        self._calls[request_id] = (done, box)
        try:
            if not self._send(make(request_id)):
                raise SafetyUnavailable(f"the safety process on {self.socket_path} is gone")
            if not done.wait(timeout_s):
                raise SafetyUnavailable(f"the safety process gave no answer in {timeout_s} s")
        finally:
            self._calls.pop(request_id, None)
        reply = box[0]
        if not reply.ok:
            raise SafetyRefused(reply.error or "refused")
        return reply

    def _read_forever(self) -> None:
        delay = RECONNECT_S[0]
        while not self._stop.is_set():
            sock = self._sock
            if sock is not None:
                self._read_until_broken(sock)
            if self._stop.is_set():
                return
            self._sock = None
            with self._state_lock:
                self._state_at = None
            log.warning("safety.link_lost", socket=str(self.socket_path))
            while not self._stop.wait(delay):
                try:
                    self._connect()
                except OSError:
                    delay = min(RECONNECT_S[1], delay * 2)
                    continue
                delay = RECONNECT_S[0]
                log.info("safety.link_back")
                if self._on_reconnect is not None:
                    self._on_reconnect()
                break

    def _read_until_broken(self, sock: socket.socket) -> None:
        try:
            for line in sock.makefile("rb"):
                try:
                    message = p.answer_decoder.decode(line)
                except msgspec.DecodeError as exc:
                    log.error("safety.bad_answer", error=str(exc))
                    continue
                self._receive(message)
        except (OSError, ValueError):
            pass

    def _receive(self, message: p.Answer) -> None:
        match message:
            case p.Reply(id=request_id):
                call = self._calls.get(request_id)
                if call is not None:
                    call[1].append(message)
                    call[0].set()
                elif not message.ok:
                    log.warning("safety.refused", error=message.error)
            case p.FaultEvent():
                self._apply_fault(message)
            case p.PilotEvent(connector=cid, pilot=pilot):
                self._notify(PilotObserved(cid, pilot))
            case p.ThermalEvent(connector=cid, limit_a=limit):
                self._notify(ThermalLimitChanged(cid, limit))
            case p.State():
                self._apply_state(message)

    def _apply_fault(self, event: p.FaultEvent) -> None:
        key = (event.kind, event.connector)
        fault = Fault(event.kind, event.connector, event.detail, event.timestamp)
        with self._state_lock:
            known = key in self._faults
            if event.active:
                self._faults[key] = fault
            else:
                self._faults.pop(key, None)
        if known != event.active:
            self._notify(FaultChanged(fault, event.active))

    def _apply_state(self, state: p.State) -> None:
        with self._state_lock:
            self._connectors = {c.connector: c for c in state.connectors}
            self._monitor_current = state.monitor_current
            self._state_at = time.monotonic()
            self.sim_snapshot = state.sim
            seen, self._tamper_openings = self._tamper_openings, state.tamper_openings
            known = set(self._faults)
        openings = state.tamper_openings or 0
        # A safety process that restarted counts from 0 again: its count is all new then.
        new = openings - (seen or 0) if seen is not None and openings >= seen else openings
        if new > 0 and self.on_tamper_opened is not None:
            for _ in range(new):
                self.on_tamper_opened()
        now = {(f.kind, f.connector) for f in state.faults}
        # Events lost on the way (a full queue, a reconnect) are made good here.
        for event in state.faults:
            if (event.kind, event.connector) not in known:
                self._apply_fault(event)
        for kind, cid in known - now:
            self._apply_fault(p.FaultEvent(kind, cid, False))
        self._first_state.set()
