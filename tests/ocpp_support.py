"""The firmware's OCPP client running against a test backend: in memory (:func:`memory_client`,
over :func:`memory_link` pairs) or on loopback (:func:`running_client`), with fast back-off.

The in-memory link is the null modem of these tests: two ends with ``recv()``/``send()`` as
the ``ocpp`` library expects, connected by asyncio queues. :class:`MemoryConnection` stands in
for :class:`~chargerfw.ocpp.connection.OcppConnection`: each (re)connect hands the backend's
end of a fresh pair to the test backend, and is refused while that backend is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from chargerfw.config.station import SecuritySection
from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.ocpp.connection import (
    BackendLink,
    Backoff,
    FrameSink,
    LinkHealth,
    OcppConnection,
    Session,
)
from chargerfw.ocpp.station_port import BootInfo
from chargerfw.ocpp.v16.certificates import StationCertificates
from chargerfw.ocpp.v16.client import OcppClient
from chargerfw.store import Store

log = logging.getLogger(__name__)


class MemoryLinkClosed(Exception):
    """The in-memory link is closed (what websockets' ConnectionClosed is to a socket)."""


class _Pipe:
    """The shared state of one in-memory link: a queue per direction; None marks the close."""

    def __init__(self) -> None:
        self.queues: tuple[asyncio.Queue[str | None], asyncio.Queue[str | None]] = (
            asyncio.Queue(), asyncio.Queue())
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for queue in self.queues:
                queue.put_nowait(None)


class MemoryEnd:
    """One end of an in-memory OCPP-J link."""

    def __init__(self, pipe: _Pipe, side: int) -> None:
        self._pipe = pipe
        self._inbox = pipe.queues[side]
        self._peer_inbox = pipe.queues[1 - side]

    @property
    def closed(self) -> bool:
        return self._pipe.closed

    async def recv(self) -> str:
        frame = None if self._pipe.closed else await self._inbox.get()
        if frame is None:
            raise MemoryLinkClosed("the in-memory link is closed")
        return frame

    async def send(self, frame: str) -> None:
        if self._pipe.closed:
            raise MemoryLinkClosed("the in-memory link is closed")
        self._peer_inbox.put_nowait(frame)

    async def close(self) -> None:
        """Close the link for both ends (a pending ``recv()`` on either raises)."""
        self._pipe.close()


def memory_link() -> tuple[MemoryEnd, MemoryEnd]:
    """Two connected ends: what one sends, the other receives, in order."""
    pipe = _Pipe()
    return MemoryEnd(pipe, 0), MemoryEnd(pipe, 1)


class _SinkingEnd:
    """The charge point's end as the client sees it: every frame also goes to the sink."""

    def __init__(self, end: MemoryEnd, connection: MemoryConnection) -> None:
        self._end = end
        self._connection = connection

    async def recv(self) -> str:
        frame = await self._end.recv()
        if self._connection.frame_sink:
            self._connection.frame_sink("in", frame)
        return frame

    async def send(self, message: str) -> None:
        await self._end.send(message)
        if self._connection.frame_sink:
            self._connection.frame_sink("out", message)


class MemoryBackend(Protocol):
    def accept(self, link: MemoryEnd, path: str) -> bool:
        """Serve the backend's end of a new link at ``path``; False to refuse it."""
        ...


class MemoryConnection:
    """A :class:`~chargerfw.ocpp.connection.BackendLink` over in-memory links to ``backend``."""

    def __init__(self, backend: MemoryBackend, charge_point_id: str = "CP1",
                 retry_s: float = 0.02) -> None:
        self.charge_point_id = charge_point_id
        self.health = LinkHealth(url=f"memory:///ocpp/{charge_point_id}")
        self.frame_sink: FrameSink | None = None
        self.auth_failed: Callable[[str], None] | None = None
        self.security_event: Callable[[str, str], None] | None = None
        self._backend = backend
        self._retry_s = retry_s
        self._current: MemoryEnd | None = None
        self._stopping = False
        self._closing: set[asyncio.Future[None]] = set()

    async def run(self, session: Session) -> None:
        while not self._stopping:
            self.health.state = "connecting"
            ours, theirs = memory_link()
            if not self._backend.accept(theirs, f"/ocpp/{self.charge_point_id}"):
                self.health.state = "disconnected"
                self.health.failed_attempts += 1
                self.health.last_error = "refused"
                await asyncio.sleep(self._retry_s)
                continue
            self._current = ours
            self.health.state = "connected"
            self.health.connects += 1
            reason = "closed"
            try:
                await session(_SinkingEnd(ours, self))
            except MemoryLinkClosed:
                pass
            except Exception as exc:  # as OcppConnection: a session bug does not end the link
                log.exception("memory session failed")
                reason = f"session error: {exc!r}"
            finally:
                self._current = None
                await ours.close()
                self.health.state = "disconnected"
                self.health.last_error = reason
            if not self._stopping:
                await asyncio.sleep(self._retry_s)
        self.health.state = "disconnected"

    async def close(self) -> None:
        self._stopping = True
        if self._current is not None:
            await self._current.close()

    def reconnect(self, why: str) -> None:
        if self._current is not None:
            task = asyncio.ensure_future(self._current.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def set_ping_interval(self, seconds: int) -> None:
        self.health.ping_interval_s = seconds


def compact(sampled_values: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """SampledValues as (measurand, phase, value, unit, location) rows, for short asserts."""
    return [(v["measurand"], v.get("phase"), v["value"], v.get("unit"), v["location"])
            for v in sampled_values]


def client_keys(store: Store, overrides: dict[str, str] | None = None) -> ConfigurationKeys:
    return ConfigurationKeys(store, number_of_connectors=2, overrides=overrides)


def make_client(store: Store, keys: ConfigurationKeys, connection: BackendLink, *,
                station: Any = None, call_timeout_s: float = 3.0,
                certificates: Callable[[Store, ConfigurationKeys], StationCertificates] | None
                = None) -> OcppClient:
    """A client for two connectors (three-phase 1, single-phase 2) with fast ticks;
    ``certificates`` builds its certificate messages (none without)."""
    return OcppClient(store=store, keys=keys, connection=connection,
                      boot=BootInfo(vendor="chargerfw", model="test", firmware_version="0.1"),
                      connector_phases={1: 3, 2: 1}, station=station,
                      call_timeout_s=call_timeout_s, tick_s=0.02, meter_persist_interval_s=0.0,
                      certificates=None if certificates is None else certificates(store, keys))


@contextlib.asynccontextmanager
async def running(client: OcppClient) -> AsyncIterator[OcppClient]:
    """``client`` running until the block ends; then closed, with its store."""
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        client.store.close()


@contextlib.asynccontextmanager
async def memory_client(tmp_path: Path, backend: MemoryBackend, *, station: Any = None,
                        keys_overrides: dict[str, str] | None = None,
                        call_timeout_s: float = 3.0,
                        certificates: Callable[[Store, ConfigurationKeys], StationCertificates]
                        | None = None) -> AsyncIterator[OcppClient]:
    """A running client whose links to ``backend`` (a ``TestCsms(in_memory=True)``) are in
    memory."""
    store = Store(tmp_path / "state.db")
    client = make_client(store, client_keys(store, keys_overrides), MemoryConnection(backend),
                         station=station, call_timeout_s=call_timeout_s,
                         certificates=certificates)
    async with running(client):
        yield client


@contextlib.asynccontextmanager
async def running_client(tmp_path: Path, url: str, *, station: Any = None,
                         keys_overrides: dict[str, str] | None = None,
                         password: str | None = None, profile: int = 0,
                         security: SecuritySection | None = None,
                         call_timeout_s: float = 3.0,
                         backoff: Backoff | None = None) -> AsyncIterator[OcppClient]:
    """A running client connected to ``url`` over a real WebSocket on loopback (reconnecting
    after 10-200 ms unless ``backoff`` says otherwise); ``security`` is its certificate
    store (profiles 2 and 3)."""
    store = Store(tmp_path / "state.db")
    keys = client_keys(store, keys_overrides)
    connection = OcppConnection(url, "CP1", security_profile=profile, password=password,
                                security=security,
                                ping_interval_s=lambda: keys.get_int("WebSocketPingInterval"),
                                backoff=backoff or Backoff(initial_s=0.05, maximum_s=0.2,
                                                           floor_s=0.01),
                                stable_after_s=0.5)
    client = make_client(store, keys, connection, station=station, call_timeout_s=call_timeout_s)
    async with running(client):
        yield client
