"""The safety process: ``chargerfw safety run``, its own interpreter beside the station process.

It owns the board (coils, feedback, fault inputs, pilot, lock, temperature) through a
:class:`~chargerfw.safety.core.SafetyCore` and serves the station over a Unix socket
(:mod:`~chargerfw.safety.protocol`). Nothing here waits for the station: the interlocks act on
the hardware threads and the monitor thread, and a station that falls silent for longer than
the heartbeat bound (killed, frozen, restarting, or its loop stuck) leaves every coil open.

* Latched faults (welded contactor, repeated RCD trips, internal error) are kept in a small
  file of the process's own, written atomically, so they hold across a restart of either
  process.
* systemd: READY once the board is guarded and the start-up RCM self-test has run; the
  watchdog is fed only while the monitor is current, so a stuck poll is a restart. Where the
  system allows, the process runs with SCHED_FIFO and locked memory.
* A board with a hardware watchdog or a charge-pump coil driver gets its output toggled on
  every state pass: a dead safety process drops the coil too.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from chargerfw.config import StationConfig
from chargerfw.drivers.board import Board
from chargerfw.drivers.gpio import Pin
from chargerfw.durable import write_atomically
from chargerfw.hwlock import runtime_dir
from chargerfw.logs import get_logger
from chargerfw.safety import protocol as p
from chargerfw.safety.core import PilotCommand, SafetyCore
from chargerfw.safety.results import HardwareTestReply
from chargerfw.safety.sequences import Refusal
from chargerfw.sdnotify import SystemdNotifier
from chargerfw.station.faults import FAULT_SPECS, ClearRule, Fault, FaultKind
from chargerfw.station.safety import (
    FaultChanged,
    PilotObserved,
    SafetyEvent,
    SafetySettings,
    ThermalLimitChanged,
)
from chargerfw.station.technician import HardwareTest

log = get_logger(__name__)

SOCKET_NAME = "safety.sock"
MCL_CURRENT, MCL_FUTURE = 1, 2
# The safety process's threads (monitor, heartbeat watch, one reader and writer per client) run
# shallow code; with locked memory a default 8 MiB stack would be resident in full per thread.
THREAD_STACK_BYTES = 512 * 1024


class SimulatedWorld(Protocol):
    """The simulated world around a ``hardware = "sim"`` board (vehicles, meters), which the
    safety process holds when it runs a simulated station."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """A ``sim.*`` control method; raises ValueError (bad params) or RuntimeError
        (refused)."""
        ...

    def snapshot(self) -> dict[str, Any]: ...


class LatchedFaults:
    """The technician faults, on disk: one JSON list, replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[tuple[FaultKind, int, str]]:
        try:
            entries = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("safety.latched_unreadable", path=str(self.path), error=str(exc))
            # Fail safe: a latch we cannot read is kept as an internal error for a technician.
            return [(FaultKind.INTERNAL_ERROR, 0, f"latched faults unreadable: {exc}")]
        restored = []
        for entry in entries:
            try:
                restored.append(
                    (
                        FaultKind(entry["kind"]),
                        int(entry["connector"]),
                        str(entry.get("detail", "")),
                    )
                )
            except (KeyError, TypeError, ValueError):
                log.error("safety.latched_entry_unreadable", entry=repr(entry))
        return restored

    def save(self, faults: Iterable[Fault]) -> None:
        entries = [
            {"kind": f.kind.value, "connector": f.connector_id, "detail": f.detail}
            for f in faults
            if FAULT_SPECS[f.kind].clear_rule is ClearRule.TECHNICIAN
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(entries).encode())


class _Client:
    """One connection: lines in on its reader thread, lines out through its writer thread (so
    a frozen peer never blocks whoever reports)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.role: p.Role | None = None
        self.outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=1000)
        self.closed = threading.Event()

    def send(
        self, message: p.Reply | p.FaultEvent | p.PilotEvent | p.ThermalEvent | p.State
    ) -> None:
        try:
            self.outbox.put_nowait(p.encode(message))
        except queue.Full:  # the peer stopped reading: it hears the next State when back
            pass

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(queue.Full):
                self.outbox.put_nowait(None)
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()


class SafetyProcess:
    """Serves one station (and technicians' commands) from the safety core."""

    def __init__(
        self,
        config: StationConfig,
        board: Board,
        socket_path: Path,
        latched_path: Path,
        *,
        settings: SafetySettings | None = None,
        heartbeat_bound_s: float = 0.2,
        notifier: SystemdNotifier | None = None,
        world: SimulatedWorld | None = None,
        watchdog_output: Pin | None = None,
    ) -> None:
        self.config = config
        self.board = board
        self.socket_path = socket_path
        self.latched = LatchedFaults(latched_path)
        self.notifier = notifier or SystemdNotifier()
        self.world = world
        self._watchdog_output = watchdog_output
        self._clients: set[_Client] = set()
        self._station: _Client | None = None
        self._clients_lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self.core = SafetyCore(
            config, board, self._on_event, settings, heartbeat_bound_s=heartbeat_bound_s
        )
        self._tamper_openings: int | None = None
        if board.tamper is not None:
            self._tamper_openings = 1 if board.tamper.is_tripped else 0
            board.tamper.on_trip(self._tamper_opened)

    def _tamper_opened(self) -> None:
        assert self._tamper_openings is not None
        self._tamper_openings += 1

    # -- life ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Guard the board and serve until :meth:`stop` (SIGTERM); every coil open after."""
        for kind, cid, detail in self.latched.load():
            with contextlib.suppress(ValueError, KeyError):
                self.core.restore_latched_fault(kind, cid, detail)
        self.core.start()
        if self.world is not None:
            self.world.start()
        self._listen()
        self.notifier.ready(f"guarding {len(self.config.connector)} connector(s)")
        log.info("safety.ready", socket=str(self.socket_path))
        try:
            self._state_loop()
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Any thread or a signal handler: open every coil now, then wind down."""
        self.core.open_all()
        self._stop.set()

    def _shutdown(self) -> None:
        self.notifier.stopping()
        self.core.stop()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._clients_lock:
            clients = list(self._clients)
        for client in clients:
            client.close()
        if self.world is not None:
            self.world.stop()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log.info("safety.stopped")

    def _state_loop(self) -> None:
        interval = p.STATE_INTERVAL_S
        level = False
        while not self._stop.wait(interval):
            current = self.core.monitor_current
            if current:
                self.notifier.notify("WATCHDOG=1")
                if self._watchdog_output is not None:  # a square wave only while guarding
                    level = not level
                    self._watchdog_output.write(level)
            state = self._state(current)
            with self._clients_lock:
                clients = list(self._clients)
            for client in clients:
                if client.role is not None:
                    client.send(state)

    def _state(self, current: bool) -> p.State:
        return p.State(
            monitor_current=current,
            connectors=[
                p.ConnectorState(r.connector_id, r.pilot, r.contactor_closed, r.temperature_c)
                for r in self.core.readings()
            ],
            faults=[_fault_event(f, True) for f in self.core.active_faults()],
            sim=self.world.snapshot() if self.world is not None else None,
            tamper_openings=self._tamper_openings,
        )

    # -- events from the core -----------------------------------------------------------------

    def _on_event(self, event: SafetyEvent) -> None:
        """On whichever thread acted (a GPIO callback, the monitor): after the hardware."""
        message: p.FaultEvent | p.PilotEvent | p.ThermalEvent
        match event:
            case FaultChanged(fault=fault, active=active):
                message = _fault_event(fault, active)
                if FAULT_SPECS[fault.kind].clear_rule is ClearRule.TECHNICIAN:
                    try:
                        self.latched.save(
                            f
                            for f in self.core.active_faults()
                            if not (
                                f.kind is fault.kind
                                and f.connector_id == fault.connector_id
                                and not active
                            )
                        )
                    except OSError as exc:
                        log.error("safety.latched_not_saved", error=str(exc))
            case PilotObserved(connector_id=cid, pilot=pilot):
                message = p.PilotEvent(cid, pilot)
            case ThermalLimitChanged(connector_id=cid, limit_a=limit):
                message = p.ThermalEvent(cid, limit)
        station = self._station
        if station is not None:
            station.send(message)

    # -- the socket ---------------------------------------------------------------------------

    def _listen(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # ours from a process that died
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o117)
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(old_umask)
        listener.listen(8)
        self._listener = listener
        threading.Thread(target=self._accept_forever, name="safety-accept", daemon=True).start()

    def _accept_forever(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            client = _Client(sock)
            with self._clients_lock:
                self._clients.add(client)
            threading.Thread(
                target=self._write_forever, args=(client,), name="safety-writer", daemon=True
            ).start()
            threading.Thread(
                target=self._read_forever, args=(client,), name="safety-reader", daemon=True
            ).start()

    def _write_forever(self, client: _Client) -> None:
        while True:
            line = client.outbox.get()
            if line is None:
                return
            try:
                client.sock.sendall(line)
            except OSError:
                client.close()
                return

    def _read_forever(self, client: _Client) -> None:
        reader = client.sock.makefile("rb")
        try:
            for line in reader:
                if len(line) > p.MAX_LINE_BYTES:
                    client.send(p.Reply(0, False, f"line longer than {p.MAX_LINE_BYTES} bytes"))
                    break
                if line.strip():
                    self._handle(client, line)
        except (OSError, ValueError):
            pass
        finally:
            self._disconnected(client)

    def _disconnected(self, client: _Client) -> None:
        with self._clients_lock:
            self._clients.discard(client)
            station_left = self._station is client
            if station_left:
                self._station = None
        if station_left:
            log.warning("safety.station_disconnected")
            self.core.station_gone()
        client.close()

    def _handle(self, client: _Client, line: bytes) -> None:
        try:
            message = p.request_decoder.decode(line)
        except msgspec.DecodeError as exc:
            client.send(p.Reply(_request_id(line), False, f"bad message: {exc}"))
            return
        if client.role is None and not isinstance(message, p.Hello):
            client.send(p.Reply(0, False, "say hello first"))
            return
        try:
            self._dispatch(client, message)
        except (KeyError, ValueError, RuntimeError) as exc:
            request_id = getattr(message, "id", 0)
            client.send(p.Reply(request_id, False, str(exc) or type(exc).__name__))

    def _dispatch(self, client: _Client, message: p.Request) -> None:
        core = self.core
        match message:
            case p.Hello(role=role):
                self._greet(client, role)
            case p.Heartbeat():
                core.heartbeat()
            case p.Close(connector=cid):
                self._require_station(client)
                if not core.request_close(cid):
                    log.info("safety.close_refused", connector=cid)
            case p.Open(connector=cid):
                core.request_open(cid)
            case p.OpenAll():
                core.open_all()
            case p.SetPilot(connector=cid, mode=mode, current_a=current):
                self._require_station(client)
                core.set_pilot(cid, PilotCommand(mode, current))
            case p.Meter(connector=cid, sample=sample):
                core.update_meter(cid, sample)
            case p.MeterFault(connector=cid, active=active, detail=detail):
                core.meter_fault(cid, active, detail)
            case p.DriveLock(id=request_id, connector=cid, locked=locked):
                self._require_station(client)
                self._in_background(client, request_id, lambda: core.drive_lock(cid, locked).value)
            case p.ClearFault(id=request_id, kind=kind, connector=cid):
                cleared = core.clear_by_technician(kind, cid)
                client.send(
                    p.Reply(
                        request_id, cleared, None if cleared else "its condition is still present"
                    )
                )
            case p.RunTest(id=request_id, test=test, connector=cid):
                self._in_background(
                    client, request_id, lambda: msgspec.to_builtins(self._run_test(test, cid))
                )
            case p.Simulate(id=request_id, method=method, params=params):
                if self.world is None:
                    raise RuntimeError("this safety process runs no simulated world")
                client.send(p.Reply(request_id, True, result=self.world.call(method, params)))

    def _in_background(self, client: _Client, request_id: int, work: Callable[[], Any]) -> None:
        """What waits for hardware (a lock's feedback, a test) runs on a thread of its own, so
        the connection keeps reading: the station's heartbeat goes on meanwhile."""

        def run() -> None:
            try:
                client.send(p.Reply(request_id, True, result=work()))
            except (KeyError, ValueError, RuntimeError) as exc:
                client.send(p.Reply(request_id, False, str(exc) or type(exc).__name__))

        threading.Thread(target=run, name="safety-request", daemon=True).start()

    def _run_test(self, test: HardwareTest, connector_id: int) -> HardwareTestReply:
        try:
            return self.core.run_test(test, connector_id)
        except Refusal as exc:
            raise RuntimeError(str(exc)) from None

    def _greet(self, client: _Client, role: p.Role) -> None:
        with self._clients_lock:
            if role == "station":
                if self._station is not None and not self._station.closed.is_set():
                    raise RuntimeError("another station process is connected")
                self._station = client
            client.role = role
        log.info("safety.client", role=role)
        if role == "station":
            self.core.heartbeat()
        client.send(self._state(self.core.monitor_current))

    def _require_station(self, client: _Client) -> None:
        if client.role != "station":
            raise RuntimeError("only the station process drives contactors, pilot and lock")


def _fault_event(fault: Fault, active: bool) -> p.FaultEvent:
    return p.FaultEvent(fault.kind, fault.connector_id, active, fault.detail, fault.timestamp)


def _request_id(line: bytes) -> int:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        value = json.loads(line).get("id", 0)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def latched_faults_path(config: StationConfig) -> Path:
    """The safety process's latched faults, beside the station's store."""
    return config.storage.path.parent / "safety-latched.json"


def default_socket_path() -> Path:
    """``$CHARGERFW_RUNTIME_DIR/safety.sock``: where the safety process listens and the station
    and the technician's commands look for it."""
    return runtime_dir() / SOCKET_NAME


def go_realtime(priority: int, lock_memory: bool) -> list[str]:
    """SCHED_FIFO at ``priority`` (0: leave the policy) and mlockall, where the system allows
    (systemd's CPUSchedulingPolicy may have done the first already). Returns what could not be
    done, for the log: the process runs without it rather than not at all."""
    problems = []
    if priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except (OSError, AttributeError) as exc:
            problems.append(f"SCHED_FIFO {priority}: {exc}")
    if lock_memory:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's mlockall
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
            problems.append(f"mlockall: {os.strerror(ctypes.get_errno())}")
    return problems
