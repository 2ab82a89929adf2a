"""A tiny OCPP 1.6J central system for tests, built from the ``ocpp`` library's ChargePoint on
a loopback websockets server, or in memory (``TestCsms(in_memory=True)``: charge points
connect through :func:`accept`, see ``ocpp_support.MemoryConnection``). It records every CALL
the charge point makes (action, payload, raw frame), can refuse, delay or drop, can send raw
frames and wait for the raw reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol

from ocpp.exceptions import InternalError, NotSupportedError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as LibChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import ServerConnection, basic_auth, serve


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Received:
    action: str
    payload: dict[str, Any]
    unique_id: str
    frame: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class CsmsBehaviour:
    boot_status: str = "Accepted"
    boot_interval: int = 300
    authorize_status: str = "Accepted"
    authorize_error: bool = False  # answer Authorize with a CALLERROR (InternalError)
    start_errors: int = 0  # answer this many StartTransactions with a CALLERROR
    first_tx_id: int = 1000
    # Actions to swallow (no answer at all), to simulate a backend that hangs.
    swallow: set[str] = field(default_factory=set)
    sign_certificate_status: str = "Accepted"  # the answer to SignCertificate
    # Answer SecurityEventNotification with NotSupported (a backend without the security
    # extension).
    refuse_security_events: bool = False


class Link(Protocol):
    """The backend's end of one charge point connection: a WebSocket or an in-memory end."""

    async def recv(self) -> str | bytes: ...

    async def send(self, frame: str) -> None: ...

    async def close(self) -> None: ...


class _Recorder:
    """The connection the library reads: records frames, routes raw replies to waiters."""

    def __init__(self, ws: Link, csms: TestCsms) -> None:
        self.ws = ws
        self.csms = csms

    async def recv(self) -> str:
        while True:
            frame = await self.ws.recv()
            assert isinstance(frame, str)
            self.csms.frames_in.append(frame)
            try:
                message = json.loads(frame)
            except ValueError:
                continue
            if message[0] == 2:
                rec = Received(message[2], message[3], message[1], frame)
                self.csms.received.append(rec)
                self.csms.changed.set()
                if message[2] in self.csms.behaviour.swallow:
                    continue
            elif message[1] in self.csms.raw_waiters:
                self.csms.raw_waiters.pop(message[1]).set_result(message)
                continue
            return frame

    async def send(self, frame: str) -> None:
        await self.ws.send(frame)


class _ServerSide(LibChargePoint):
    def __init__(self, cp_id: str, conn: _Recorder, csms: TestCsms) -> None:
        super().__init__(cp_id, conn, response_timeout=5)
        self.csms = csms

    @on(Action.boot_notification)
    def boot(self, **_: Any) -> call_result.BootNotification:
        b = self.csms.behaviour
        return call_result.BootNotification(current_time=_now(), interval=b.boot_interval,
                                            status=b.boot_status)

    @on(Action.heartbeat)
    def heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def status(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.authorize)
    def authorize(self, id_tag: str) -> call_result.Authorize:
        if self.csms.behaviour.authorize_error:
            raise InternalError(description="test backend fails Authorize")
        return call_result.Authorize(id_tag_info={"status": self.csms.behaviour.authorize_status})

    @on(Action.start_transaction)
    def start_transaction(self, **_: Any) -> call_result.StartTransaction:
        b = self.csms.behaviour
        if b.start_errors > 0:
            b.start_errors -= 1
            raise InternalError(description="test backend refuses")
        return call_result.StartTransaction(transaction_id=next(self.csms.tx_ids),
                                            id_tag_info={"status": "Accepted"})

    @on(Action.meter_values)
    def meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    def stop_transaction(self, **_: Any) -> call_result.StopTransaction:
        return call_result.StopTransaction()

    @on(Action.data_transfer)
    def data_transfer(self, vendor_id: str, **_: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status="Accepted", data=f"hello {vendor_id}")

    @on(Action.diagnostics_status_notification)
    def diagnostics_status(self, **_: Any) -> call_result.DiagnosticsStatusNotification:
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def firmware_status(self, **_: Any) -> call_result.FirmwareStatusNotification:
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    def log_status(self, **_: Any) -> call_result.LogStatusNotification:
        return call_result.LogStatusNotification()

    @on(Action.signed_firmware_status_notification)
    def signed_firmware_status(self, **_: Any) -> call_result.SignedFirmwareStatusNotification:
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.sign_certificate)
    def sign_certificate(self, csr: str) -> call_result.SignCertificate:
        return call_result.SignCertificate(status=self.csms.behaviour.sign_certificate_status)

    @on(Action.security_event_notification)
    def security_event(self, **_: Any) -> call_result.SecurityEventNotification:
        if self.csms.behaviour.refuse_security_events:
            raise NotSupportedError(description="test backend has no security extension")
        return call_result.SecurityEventNotification()


class TestCsms:
    __test__ = False  # not a pytest class

    def __init__(self, behaviour: CsmsBehaviour | None = None, password: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, in_memory: bool = False) -> None:
        self.behaviour = behaviour or CsmsBehaviour()
        self.password = password
        self.ssl_context = ssl_context
        self.in_memory = in_memory
        self.listening = False
        self._serving: set[asyncio.Task[None]] = set()
        self.received: list[Received] = []
        self.frames_in: list[str] = []
        self.paths: list[str] = []
        self.subprotocols: list[str | None] = []
        self.changed = asyncio.Event()
        self.raw_waiters: dict[str, asyncio.Future[list[Any]]] = {}
        self.tx_ids = itertools.count(self.behaviour.first_tx_id)
        self.client_certificates: list[str] = []  # the CN of each accepted client certificate
        self.authorizations: list[str | None] = []  # each handshake's Authorization header
        self.connections: list[Link] = []
        self.server_side: _ServerSide | None = None
        self._server: Any = None
        self.port = 0

    async def __aenter__(self) -> TestCsms:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, port: int = 0) -> None:
        """Listen (on loopback ``port``, 0 = any free one); in memory: accept connections."""
        self.listening = True
        if self.in_memory:
            return
        kwargs: dict[str, Any] = {"subprotocols": ["ocpp1.6"], "ssl": self.ssl_context,
                                  "process_request": self._check_client}
        self._basic_auth = basic_auth(
            realm="ocpp", check_credentials=lambda user, pw: pw == self.password and user == "CP1")
        self._server = await serve(self._handle, "127.0.0.1", port, **kwargs)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _check_client(self, connection: ServerConnection, request: Any) -> Any:
        """A client certificate (security profile 3; the server's context asks for one) must
        name the charge point of the path; without one, Basic auth when ``password`` is set
        (read at each handshake: a test may change it)."""
        self.authorizations.append(request.headers.get("Authorization"))
        ssl_object = connection.transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        if certificate:
            names = dict(item[0] for item in certificate["subject"])
            if names.get("commonName") != request.path.rsplit("/", 1)[-1]:
                return connection.respond(HTTPStatus.FORBIDDEN, "not this charge point\n")
            self.client_certificates.append(names["commonName"])
            return None
        if self.password is not None:
            return await self._basic_auth(connection, request)
        return None

    async def stop(self) -> None:
        """Stop listening; connections that are open stay open (see drop_connections)."""
        self.listening = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        assert not self.in_memory, "an in-memory backend has no URL"
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{self.port}/ocpp"

    def accept(self, link: Link, path: str) -> bool:
        """An in-memory charge point connects at ``path``: served, unless we are stopped."""
        assert self.in_memory
        if not self.listening:
            return False
        task = asyncio.ensure_future(self._serve(link, path, "ocpp1.6"))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)
        return True

    async def _handle(self, ws: ServerConnection) -> None:
        await self._serve(ws, ws.request.path, ws.subprotocol)

    async def _serve(self, link: Link, path: str, subprotocol: str | None) -> None:
        self.connections.append(link)
        self.paths.append(path)
        self.subprotocols.append(subprotocol)
        cp = _ServerSide(path.rsplit("/", 1)[-1], _Recorder(link, self), self)
        self.server_side = cp
        try:
            await cp.start()
        except Exception:
            pass

    async def drop_connections(self) -> None:
        for ws in list(self.connections):
            await ws.close()
        self.connections.clear()

    def actions(self) -> list[str]:
        return [r.action for r in self.received]

    def of(self, action: str) -> list[Received]:
        return [r for r in self.received if r.action == action]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Until ``predicate()`` holds: checked on every message and every 0.1 s besides, for a
        predicate that also looks at something else (a station's task that ended without a
        word to the backend)."""
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.1)
        await asyncio.wait_for(loop(), timeout)

    async def send_raw(self, frame: str, reply_id: str, timeout: float = 5.0) -> list[Any]:
        """Send a raw frame to the charge point; return the reply with ``reply_id``."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.raw_waiters[reply_id] = future
        await self.connections[-1].send(frame)
        return await asyncio.wait_for(future, timeout)
