"""`chargerfw csms serve --workers N`: a supervisor process running N backend processes on
one machine, all on the same PostgreSQL database and the same ports.

Each worker is a whole backend (``serve_forever``) listening with SO_REUSEPORT, so the kernel
spreads new connections (chargers, OCPI and admin requests, file downloads) over them;
which worker holds which charger, and which one leads the fleet's once-only work, is settled
through the database (``chargerfw.csms.cluster``). The supervisor migrates the database
once, then starts the workers, restarts one that dies (with a growing delay while it keeps
dying at once; its chargers reconnect to the others meanwhile) and, on SIGTERM or SIGINT,
stops them all with SIGTERM and waits for them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from chargerfw.csms.db import create_db_engine, database_url, upgrade_database
from chargerfw.csms.server import CsmsSettings, serve_forever
from chargerfw.logs import get_logger

log = get_logger(__name__)

FIRST_RESTART_DELAY_S = 1.0
LONGEST_RESTART_DELAY_S = 30.0
# A worker that ran this long before it died starts its restarts from the first delay again.
STABLE_AFTER_S = 30.0
# How long a worker gets to stop cleanly after SIGTERM before it is killed.
STOP_TIMEOUT_S = 20.0


class WorkersRefused(ValueError):
    """More than one worker was asked for where only one process may run."""


def check_workers(db: str, count: int) -> None:
    """Several processes need PostgreSQL; a SQLite file serves one."""
    if count > 1 and database_url(db).startswith("sqlite"):
        raise WorkersRefused(f"--workers {count} needs PostgreSQL (--db postgresql://...): "
                             "a SQLite database is served by one backend process")


_PORT_FIELDS = ("ocpp_port", "api_port", "files_port", "admin_port", "plain_ocpp_port")


def _reserve_ports(settings: CsmsSettings) -> tuple[CsmsSettings, list[socket.socket]]:
    """Turn each port 0 into a free port all workers can share. The supervisor keeps a bound
    (not listening) SO_REUSEPORT socket on it, which takes no connections but keeps the port
    from being handed to anyone else while workers come and go."""
    held: list[socket.socket] = []
    chosen: dict[str, Any] = {}
    for field in _PORT_FIELDS:
        if getattr(settings, field) != 0:
            continue
        host = settings.admin_host if field == "admin_port" else settings.host
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, 0))
        held.append(sock)
        chosen[field] = int(sock.getsockname()[1])
    return dataclasses.replace(settings, reuse_port=True, **chosen), held


def _run_worker(settings: CsmsSettings, number: int) -> None:
    """A worker process's body (forked from the supervisor)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)

    def ready(_running: object) -> None:
        print(f"worker {number} ready (pid {os.getpid()})", flush=True)

    asyncio.run(serve_forever(settings, ready))


@dataclass
class _Slot:
    number: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    delay_s: float = FIRST_RESTART_DELAY_S
    restart_at: float | None = None


class Supervisor:
    """Starts, watches and stops the workers."""

    def __init__(self, settings: CsmsSettings, count: int,
                 echo: Callable[[str], None] = print) -> None:
        check_workers(settings.db, count)
        self.settings = settings
        self.count = count
        self.echo = echo
        self._stopping = False
        # fork: a worker inherits the supervisor's logging set-up; the supervisor itself runs
        # no event loop and no threads when it forks.
        self._context = multiprocessing.get_context("fork")

    def _migrate(self) -> None:
        engine = create_db_engine(self.settings.db)
        try:
            upgrade_database(engine)
        finally:
            engine.dispose()

    def _start(self, slot: _Slot, settings: CsmsSettings) -> None:
        process = self._context.Process(target=_run_worker, args=(settings, slot.number),
                                        name=f"csms-worker-{slot.number}", daemon=False)
        process.start()
        slot.process, slot.started_at, slot.restart_at = process, time.monotonic(), None
        log.info("csms.worker_process_started", worker=slot.number, pid=process.pid)

    def _request_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit status."""
        self._migrate()  # once, before any worker starts
        settings, held = _reserve_ports(self.settings)
        previous = {sig: signal.signal(sig, self._request_stop)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        slots = [_Slot(number) for number in range(1, self.count + 1)]
        try:
            self.echo(f"{self.count} workers sharing OCPP port {settings.ocpp_port}, "
                      f"API port {settings.api_port}"
                      + (f", files port {settings.files_port}"
                         if settings.files_port is not None else "")
                      + (f", admin port {settings.admin_port}"
                         if settings.admin_port is not None else ""))
            for slot in slots:
                self._start(slot, settings)
            while not self._stopping:
                self._watch(slots, settings)
                time.sleep(0.2)
        finally:
            self._stop_all(slots)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in held:
                sock.close()
        return 0

    def _watch(self, slots: list[_Slot], settings: CsmsSettings) -> None:
        now = time.monotonic()
        for slot in slots:
            process = slot.process
            if process is not None and not process.is_alive():
                process.join()
                ran_s = now - slot.started_at
                if ran_s >= STABLE_AFTER_S:
                    slot.delay_s = FIRST_RESTART_DELAY_S
                log.warning("csms.worker_process_died", worker=slot.number, pid=process.pid,
                            exit_code=process.exitcode, ran_s=round(ran_s, 1),
                            restart_in_s=slot.delay_s)
                self.echo(f"worker {slot.number} (pid {process.pid}) exited with "
                          f"{process.exitcode}; restarting in {slot.delay_s:g} s")
                slot.process, slot.restart_at = None, now + slot.delay_s
                slot.delay_s = min(slot.delay_s * 2, LONGEST_RESTART_DELAY_S)
            elif process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._start(slot, settings)

    def _stop_all(self, slots: list[_Slot]) -> None:
        running = [slot.process for slot in slots if slot.process is not None]
        for process in running:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("csms.worker_process_killed", pid=process.pid)
                process.kill()
                process.join()
        log.info("csms.workers_stopped", count=len(running))
