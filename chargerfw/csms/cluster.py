"""Several backend processes (on one or more machines) sharing one PostgreSQL database.

- **Registry and leases.** Each process registers in ``backend_workers`` and renews its lease
  every ``renew_s``; the database's clock stamps and judges leases, so machines' clocks need
  not agree. A charger's row names the process holding its connection (``worker_id``); once
  that process's lease has run out (``lease_s`` without renewal) the leader marks its chargers
  disconnected from the last renewal on, and the offline grace runs as for any disconnect.
- **Leader.** Work done once for the fleet (pushes to partners, partner pulls, sweepers, the
  operator-command queue) runs in the process holding a PostgreSQL session advisory lock on
  its own connection. The lock goes with that connection: a process that dies or loses the
  database loses it, and another takes it within ``renew_s``.
- **One process at a time.** ``exclusive(name)`` holds a PostgreSQL advisory lock named by a
  string (a site's re-allocation: two processes sharing out one site's current from two
  snapshots could together give more than the site has).
- **Requests to chargers held elsewhere.** ``call()`` writes the request to ``backend_calls``
  and NOTIFYs the holder's channel in the same transaction; the holder sends it over its
  websocket and writes the outcome back, NOTIFYing the caller. Both sides also look at the
  table every ``renew_s``, so a notification lost while a listening connection was being
  re-established delays an answer instead of losing it; a caller whose holder's lease ran
  out gets ``not_connected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection, Engine

from chargerfw.csms.tables import backend_calls, backend_workers, charge_points
from chargerfw.logs import get_logger

log = get_logger(__name__)

# The advisory lock key of the leader ("cfwslead" in ASCII; any fixed 64-bit number would do).
LEADER_LOCK_KEY = 0x636677736C656164
# How often a process asks again for a named lock another process holds.
EXCLUSIVE_POLL_S = 0.05
DEFAULT_LEASE_S = 10.0
DEFAULT_RENEW_S = 2.0
# A call whose caller never collected the answer (the caller died) is deleted after this.
STALE_CALL_S = 3600

# Outcomes of a call sent through another process.
RESULT = "result"
CALL_ERROR = "call_error"
TIMEOUT = "timeout"
NOT_CONNECTED = "not_connected"

PENDING, SENDING, ANSWERED = "pending", "sending", "answered"


class ClusterStartError(RuntimeError):
    """The process could not join the cluster (no listening connection to the database)."""


@dataclass(frozen=True)
class RemoteRequest:
    """An OCPP request by its action name and snake_case payload (``ocpp.v16.call``)."""

    action: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class RemoteAnswer:
    """What became of a request: RESULT with the snake_case result payload, or CALL_ERROR,
    TIMEOUT or NOT_CONNECTED with a text saying why."""

    outcome: str
    answer: Any


# Sends a request over a connection this process holds (charge point id, request).
LocalSender = Callable[[str, RemoteRequest], Awaitable[RemoteAnswer]]


@dataclass(frozen=True)
class LeaderJob:
    """Once-for-the-fleet work: started when this process becomes leader, stopped when it
    stops being one (or shuts down)."""

    name: str
    start: Callable[[], None]
    stop: Callable[[], Awaitable[None]]


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _conninfo(engine: Engine) -> str:
    """The engine's database as a libpq URI for psycopg's own (async) connections."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _db_now() -> sa.ColumnElement[Any]:
    # Naive UTC, as UtcDateTime columns store it.
    return sa.func.timezone("UTC", sa.func.now())


def _lease_start(lease_s: float) -> sa.ColumnElement[Any]:
    """Leases renewed after this are live."""
    return _db_now() - sa.literal_column("interval '1 second'") * lease_s


def lock_key(name: str) -> int:
    """The 64-bit advisory lock key of a named lock."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                          signed=True)


def channel_of(worker_id: str) -> str:
    return f"cfw_{worker_id}"


def _notify(c: Connection, worker_id: str, message: str) -> None:
    """Delivered when the transaction commits (so the row it names is visible)."""
    c.execute(sa.select(sa.func.pg_notify(channel_of(worker_id), message)))


class Cluster:
    """This process's membership of the cluster: its lease, its listening connection, the
    leader lock, and the calls it passes to and serves for other processes."""

    def __init__(self, engine: Engine, *, lease_s: float = DEFAULT_LEASE_S,
                 renew_s: float = DEFAULT_RENEW_S, host: str | None = None) -> None:
        if renew_s * 2 > lease_s:
            raise ValueError("the lease must last at least two renewals")
        self.engine = engine
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.host = host or socket.gethostname()
        self.worker_id = f"w{uuid.uuid4().hex[:24]}"
        self.leading = False
        self._conninfo = _conninfo(engine)
        self._sender: LocalSender | None = None
        self._on_evicted: Callable[[], Awaitable[None]] | None = None
        self._on_taken: Callable[[str], Coroutine[Any, Any, None]] | None = None
        self._jobs: list[LeaderJob] = []
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._leader_task: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()
        self._listening = asyncio.Event()
        self._lock_connection: psycopg.AsyncConnection[Any] | None = None
        self._exclusive_connection: psycopg.AsyncConnection[Any] | None = None
        self._exclusive_connecting = asyncio.Lock()
        self._exclusive_local: dict[str, asyncio.Lock] = {}
        # The lease's own thread: a renewal never queues behind other work of the process
        # (a storm of password checks once kept it waiting past the lease).
        self._lease_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-lease")

    # -- wiring --

    def serve_calls(self, sender: LocalSender) -> None:
        """How calls from other processes reach this process's chargers."""
        self._sender = sender

    def on_evicted(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Told when this process finds its lease was taken from it (it was silent too
        long and counted dead): its connections must be dropped so chargers come back."""
        self._on_evicted = callback

    def on_taken(self, callback: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        """Told the id of a charger another process now holds."""
        self._on_taken = callback

    def lead(self, job: LeaderJob) -> None:
        self._jobs.append(job)

    # -- lifecycle --

    async def start(self) -> None:
        await self._on_lease_thread(self._register)
        self._tasks.append(asyncio.create_task(self._listen_loop(), name="cluster-listen"))
        try:
            async with asyncio.timeout(max(10.0, self.lease_s)):
                await self._listening.wait()
        except TimeoutError:
            await self.close()
            raise ClusterStartError("cannot LISTEN on the database") from None
        self._tasks.append(asyncio.create_task(self._renew_loop(), name="cluster-renew"))
        log.info("csms.worker_started", worker=self.worker_id, host=self.host,
                 pid=os.getpid())

    def campaign(self) -> None:
        """Compete for leadership from now on (once the leader jobs are known)."""
        if self._leader_task is None:
            self._leader_task = asyncio.create_task(self._leader_loop(), name="cluster-leader")

    async def resign(self) -> None:
        """Stop competing; the leader jobs stop and the lock is released."""
        if self._leader_task is not None:
            self._leader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leader_task
            self._leader_task = None
        await self._step_down()
        if self._lock_connection is not None:
            with contextlib.suppress(Exception):
                await self._lock_connection.close()
            self._lock_connection = None

    async def close(self) -> None:
        """Leave the cluster: leadership is released and this process's remaining chargers
        and unanswered calls are settled at once (no lease to wait out)."""
        await self.resign()
        for task in self._tasks + list(self._serving):
            task.cancel()
        for task in self._tasks + list(self._serving):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._exclusive_connection is not None:
            with contextlib.suppress(Exception):
                await self._exclusive_connection.close()
            self._exclusive_connection = None
        with contextlib.suppress(Exception):
            await self._on_lease_thread(self._deregister)
        self._lease_thread.shutdown(wait=False)
        log.info("csms.worker_stopped", worker=self.worker_id)

    async def _on_lease_thread(self, work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._lease_thread, work)

    # -- one process at a time --

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Run a block in one process of the cluster at a time, and in one task of this
        process (a session's advisory locks are re-entrant, so this process's own tasks are
        kept apart by an asyncio lock). The locks live on one connection kept for them: a
        process that dies releases its locks with it."""
        key = lock_key(name)
        async with self._exclusive_local.setdefault(name, asyncio.Lock()):
            waited_since = asyncio.get_running_loop().time()
            warned_at = waited_since
            while True:
                try:
                    connection = await self._exclusive_connection_open()
                    cursor = await connection.execute("SELECT pg_try_advisory_lock(%s)",
                                                      (key,))
                    row = await cursor.fetchone()
                    if row is not None and row[0]:
                        break
                except (psycopg.Error, OSError) as exc:
                    # Reconnected on the next try (a broken connection is not reused).
                    log.warning("csms.cluster_lock_failed", lock=name, error=str(exc))
                now = asyncio.get_running_loop().time()
                if now - warned_at >= self.lease_s:
                    # A frozen process keeps its locks until it dies or its connection does.
                    log.warning("csms.cluster_lock_busy", lock=name,
                                waited_s=round(now - waited_since, 1))
                    warned_at = now
                await asyncio.sleep(EXCLUSIVE_POLL_S)
            try:
                yield
            finally:
                try:
                    await connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
                except (psycopg.Error, OSError) as exc:
                    # The connection is gone, and the lock with it.
                    log.warning("csms.cluster_lock_connection_lost", lock=name,
                                error=str(exc))

    async def _exclusive_connection_open(self) -> psycopg.AsyncConnection[Any]:
        async with self._exclusive_connecting:
            if self._exclusive_connection is None or self._exclusive_connection.closed \
                    or self._exclusive_connection.broken:
                self._exclusive_connection = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True)
            return self._exclusive_connection

    # -- the fleet's view --

    def _live_holder(self, charge_point_id: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(charge_points.c.worker_id)
                             .join(backend_workers,
                                   backend_workers.c.id == charge_points.c.worker_id)
                             .where(charge_points.c.id == charge_point_id,
                                    charge_points.c.connected.is_(True),
                                    backend_workers.c.heartbeat_at
                                    > _lease_start(self.lease_s))).scalar()

    async def holder_of(self, charge_point_id: str) -> str | None:
        """The live backend process holding the charger's connection (None: none)."""
        return await asyncio.to_thread(self._live_holder, charge_point_id)

    def _connected_from(self, charge_point_id: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(charge_points.c.connected_from).where(
                charge_points.c.id == charge_point_id)).scalar()

    async def connected_from(self, charge_point_id: str) -> str | None:
        """The address the charger last connected from, to whichever process."""
        return await asyncio.to_thread(self._connected_from, charge_point_id)

    # -- calls to chargers held by another process --

    async def call(self, charge_point_id: str, request: RemoteRequest, timeout_s: float
                   ) -> RemoteAnswer:
        """Pass a request to the process holding the charger; wait up to ``timeout_s``."""
        call_id = await asyncio.to_thread(self._post_call, charge_point_id, request)
        if call_id is None:
            return RemoteAnswer(NOT_CONNECTED, "not connected to any backend process")
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        self._waiting[call_id] = woken
        deadline = loop.time() + timeout_s
        try:
            while (remaining := deadline - loop.time()) > 0:
                # asyncio.wait neither cancels ``woken`` nor swallows a cancellation.
                await asyncio.wait({woken}, timeout=min(remaining, self.renew_s))
                answer = await asyncio.to_thread(self._collect, call_id)
                if answer is not None:
                    return answer
                if woken.done():  # woken for nothing: wait for the next notification
                    woken = loop.create_future()
                    self._waiting[call_id] = woken
            await asyncio.to_thread(self._give_up, call_id)
            return RemoteAnswer(TIMEOUT, f"no answer within {timeout_s:g} s")
        finally:
            self._waiting.pop(call_id, None)

    def _post_call(self, charge_point_id: str, request: RemoteRequest) -> int | None:
        holder = self._live_holder(charge_point_id)
        if holder is None:
            return None
        with self.engine.begin() as c:
            call_id = int(c.execute(backend_calls.insert().values(
                charge_point_id=charge_point_id, caller_id=self.worker_id, holder_id=holder,
                action=request.action, payload=request.payload, state=PENDING,
                created_at=_db_now()).returning(backend_calls.c.id)).scalar_one())
            _notify(c, holder, f"call:{call_id}")
        return call_id

    def _collect(self, call_id: int) -> RemoteAnswer | None:
        """The answer once there is one (the row is then removed); NOT_CONNECTED when the
        holder died before answering; None while it is still due."""
        with self.engine.begin() as c:
            row = c.execute(sa.select(backend_calls.c.state, backend_calls.c.outcome,
                                      backend_calls.c.answer, backend_calls.c.holder_id)
                            .where(backend_calls.c.id == call_id)).first()
            if row is None:
                return RemoteAnswer(NOT_CONNECTED, "the call was withdrawn")
            state, outcome, answer, holder = row
            if state != ANSWERED:
                alive = c.execute(sa.select(backend_workers.c.id).where(
                    backend_workers.c.id == holder,
                    backend_workers.c.heartbeat_at > _lease_start(self.lease_s))).first()
                if alive is not None:
                    return None
                outcome, answer = NOT_CONNECTED, "the backend process holding it stopped"
            c.execute(backend_calls.delete().where(backend_calls.c.id == call_id))
            return RemoteAnswer(str(outcome), answer)

    def _give_up(self, call_id: int) -> None:
        # A request not yet taken by its holder is withdrawn (it is never sent late); one
        # being sent is left to be answered and cleaned up later.
        with self.engine.begin() as c:
            c.execute(backend_calls.delete().where(backend_calls.c.id == call_id,
                                                   backend_calls.c.state != SENDING))

    async def _serve(self, call_id: int) -> None:
        """Send a request another process passed to us and write its outcome back."""
        claimed = await asyncio.to_thread(self._claim, call_id)
        if claimed is None:
            return  # already taken (a notification and a poll both found it), or withdrawn
        charge_point_id, request, caller = claimed
        try:
            if self._sender is None:
                raise RuntimeError("this process serves no chargers")
            answer = await self._sender(charge_point_id, request)
        except Exception as exc:
            log.exception("csms.remote_call_failed", charge_point=charge_point_id,
                          action=request.action)
            answer = RemoteAnswer(CALL_ERROR, f"{type(exc).__name__}: {exc}")
        await asyncio.to_thread(self._answer, call_id, caller, answer)

    def _claim(self, call_id: int) -> tuple[str, RemoteRequest, str] | None:
        with self.engine.begin() as c:
            row = c.execute(backend_calls.update().where(
                backend_calls.c.id == call_id, backend_calls.c.holder_id == self.worker_id,
                backend_calls.c.state == PENDING).values(state=SENDING).returning(
                backend_calls.c.charge_point_id, backend_calls.c.action,
                backend_calls.c.payload, backend_calls.c.caller_id)).first()
        if row is None:
            return None
        return row[0], RemoteRequest(row[1], dict(row[2])), row[3]

    def _answer(self, call_id: int, caller: str, answer: RemoteAnswer) -> None:
        with self.engine.begin() as c:
            c.execute(backend_calls.update().where(backend_calls.c.id == call_id).values(
                state=ANSWERED, outcome=answer.outcome, answer=answer.answer))
            _notify(c, caller, f"answer:{call_id}")

    def _pending_for_me(self) -> list[int]:
        with self.engine.connect() as c:
            return [int(i) for i in c.execute(sa.select(backend_calls.c.id).where(
                backend_calls.c.holder_id == self.worker_id,
                backend_calls.c.state == PENDING)).scalars()]

    def _heard(self, message: str) -> None:
        kind, _, number = message.partition(":")
        if kind == "taken":
            if self._on_taken is not None:
                self._spawn(self._on_taken(number), f"cluster-taken-{number}")
            return
        try:
            call_id = int(number)
        except ValueError:
            log.warning("csms.cluster_bad_notification", message=message[:100])
            return
        if kind == "call":
            self._spawn_serve(call_id)
        elif kind == "answer" and (woken := self._waiting.get(call_id)) is not None \
                and not woken.done():
            woken.set_result(None)

    def _spawn_serve(self, call_id: int) -> None:
        self._spawn(self._serve(call_id), f"cluster-call-{call_id}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    def _tell_taken(self, worker_id: str, charge_point_id: str) -> None:
        with self.engine.begin() as c:
            _notify(c, worker_id, f"taken:{charge_point_id}")

    async def taken_over(self, previous_holder: str, charge_point_id: str) -> None:
        """Tell the process that held the charger before that this one holds it now: the
        old connection is dead to the charger (it may not know yet)."""
        await asyncio.to_thread(self._tell_taken, previous_holder, charge_point_id)

    # -- membership --

    def _register(self) -> None:
        with self.engine.begin() as c:
            c.execute(backend_workers.insert().values(
                id=self.worker_id, host=self.host[:255], pid=os.getpid(),
                started_at=_db_now(), heartbeat_at=_db_now(), leading=False))

    def _renew(self) -> bool:
        """Renew the lease; False when it was gone (this process had been counted dead)."""
        with self.engine.begin() as c:
            return bool(c.execute(backend_workers.update().where(
                backend_workers.c.id == self.worker_id).values(
                heartbeat_at=_db_now(), leading=self.leading)).rowcount)

    def _deregister(self) -> None:
        with self.engine.begin() as c:
            self._bury(c, self.worker_id, None)

    def _bury(self, c: Connection, worker_id: str, last_seen: Any) -> int:
        """Settle what a process leaves behind: its chargers are disconnected (since
        ``last_seen``; None: now), its unanswered calls answered NOT_CONNECTED. Returns how
        many chargers it held."""
        released = c.execute(charge_points.update().where(
            charge_points.c.worker_id == worker_id).values(
            connected=False, worker_id=None,
            last_seen=_db_now() if last_seen is None else last_seen)).rowcount
        unanswered = c.execute(backend_calls.update().where(
            backend_calls.c.holder_id == worker_id, backend_calls.c.state != ANSWERED).values(
            state=ANSWERED, outcome=NOT_CONNECTED,
            answer="the backend process holding it stopped").returning(
            backend_calls.c.id, backend_calls.c.caller_id)).all()
        for call_id, caller in unanswered:
            _notify(c, caller, f"answer:{call_id}")
        c.execute(backend_workers.delete().where(backend_workers.c.id == worker_id))
        return int(released)

    def _reap(self) -> None:
        """The leader's round: processes whose lease ran out are dead; chargers marked
        connected by no live process are disconnected; calls nobody collected are dropped."""
        with self.engine.begin() as c:
            dead = c.execute(sa.select(backend_workers.c.id, backend_workers.c.heartbeat_at)
                             .where(backend_workers.c.heartbeat_at
                                    <= _lease_start(self.lease_s))
                             .with_for_update(skip_locked=True)).all()
            for worker_id, heartbeat_at in dead:
                released = self._bury(c, worker_id, heartbeat_at)
                log.warning("csms.worker_lease_expired", worker=worker_id,
                            chargers=released)
            # Also those a backend left connected before processes shared the database.
            c.execute(charge_points.update().where(sa.or_(
                charge_points.c.worker_id.not_in(sa.select(backend_workers.c.id)),
                sa.and_(charge_points.c.worker_id.is_(None),
                        charge_points.c.connected.is_(True)))).values(
                connected=False, worker_id=None, last_seen=_db_now()))
            c.execute(backend_calls.delete().where(
                backend_calls.c.created_at
                < _db_now() - sa.literal_column("interval '1 second'") * STALE_CALL_S))

    # -- background loops --

    async def _listen_loop(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True) as connection:
                    await connection.execute(sql.SQL("LISTEN {}").format(
                        sql.Identifier(channel_of(self.worker_id))))
                    self._listening.set()
                    async for note in connection.notifies():
                        self._heard(note.payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("csms.cluster_listen_lost", worker=self.worker_id, error=str(exc))
            self._listening.clear()
            await asyncio.sleep(min(1.0, self.renew_s))

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_s)
            try:
                if not await self._on_lease_thread(self._renew):
                    log.error("csms.worker_lease_lost", worker=self.worker_id)
                    await self._on_lease_thread(self._register)
                    if self._on_evicted is not None:
                        await self._on_evicted()
                # Requests whose notification was missed.
                for call_id in await asyncio.to_thread(self._pending_for_me):
                    self._spawn_serve(call_id)
            except Exception:
                log.exception("csms.worker_renew_failed", worker=self.worker_id)

    async def _leader_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.lease_s):
                    await self._lead_round()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning("csms.leader_lock_lost", worker=self.worker_id, error=str(exc))
                await self._step_down()
                if self._lock_connection is not None:
                    with contextlib.suppress(Exception):
                        await self._lock_connection.close()
                    self._lock_connection = None
            except Exception:
                log.exception("csms.leader_round_failed", worker=self.worker_id)
            await asyncio.sleep(self.renew_s)

    async def _lead_round(self) -> None:
        if self._lock_connection is None or self._lock_connection.closed:
            self._lock_connection = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True)
        if self.leading:
            await self._lock_connection.execute("SELECT 1")  # still holding the lock
        else:
            cursor = await self._lock_connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,))
            row = await cursor.fetchone()
            if row is None or not row[0]:
                return
            self.leading = True
            log.info("csms.leader", worker=self.worker_id)
            for job in self._jobs:
                job.start()
        await asyncio.to_thread(self._reap)

    async def _step_down(self) -> None:
        if not self.leading:
            return
        self.leading = False
        for job in reversed(self._jobs):
            try:
                await job.stop()
            except Exception:
                log.exception("csms.leader_job_stop_failed", job=job.name)
        log.info("csms.leader_stepped_down", worker=self.worker_id)
