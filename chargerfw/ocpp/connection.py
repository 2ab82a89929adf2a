"""The OCPP-J WebSocket link: connect, authenticate, keep alive, reconnect.

- URL ``{url}/{charge_point_id}``, subprotocol ``ocpp1.6`` (a server that does not agree to it
  is treated as a failed connection attempt).
- Security profile 0: plain ws. 1: HTTP Basic (user = charge point id, password =
  AuthorizationKey) over ws. 2: Basic over wss, the server certificate (and host name)
  verified against the installed CentralSystemRootCertificates only. 3: wss with the station's
  client certificate, no Basic auth. The TLS context is :func:`chargerfw.ocpp.tls.tls_context`;
  profiles 2 and 3 use ``secure_url`` when ``url`` is ws:// (a profile raised from 0 or 1).
- Credentials: the passwords to try, in order (a new AuthorizationKey, then the previous one);
  a 401 moves to the next one for the next attempt.
- Liveness: WebSocket pings every WebSocketPingInterval seconds (websockets' keepalive); a pong
  missing for as long closes the socket, the session ends and we reconnect. The interval can
  change on a live socket. :class:`LinkHealth` shows connected-since, last frame, last pong
  latency, so "connected" is never a guess (field lesson 4).
- Reconnect: exponential back-off with full jitter, reset only once a session stayed up for
  ``stable_after_s``. We run this small loop ourselves rather than websockets' ``async for
  connect()`` iterator: that one gives up on HTTP 401/403 (a charger must keep trying while a
  backend is being provisioned), resets the back-off after any successful handshake (a backend
  that accepts and drops at once would be hammered), and jitters only the first delay.
"""

from __future__ import annotations

import base64
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chargerfw.logs import get_logger

# asyncio, ssl and websockets are imported where a link is run: the control API's status
# (LinkHealth) needs none of them.
if TYPE_CHECKING:
    import asyncio

    from websockets.asyncio.client import ClientConnection

    from chargerfw.config.station import SecuritySection

log = get_logger(__name__)

SUBPROTOCOL = "ocpp1.6"


class ConnectionSetupError(ValueError):
    """The link cannot be set up as configured (bad profile, missing CA or password)."""


# What the link reports of each connection attempt: (security profile, the password sent or
# None, the failure or None when the handshake succeeded).
AttemptObserver = Callable[[int, "str | None", "BaseException | None"], None]


@dataclass
class LinkHealth:
    """What a status command shows about the backend link."""

    state: str = "disconnected"  # disconnected | connecting | connected
    url: str = ""
    connected_since: float | None = None
    last_frame_in_at: float | None = None
    last_frame_out_at: float | None = None
    last_pong_latency_s: float | None = None
    ping_interval_s: int = 0
    connects: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    next_attempt_in_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backoff:
    """Exponential back-off with full jitter: the n-th delay is uniform in
    [0, min(maximum, initial * factor**n)], never below ``floor``."""

    def __init__(self, initial_s: float = 2.0, maximum_s: float = 120.0, factor: float = 2.0,
                 floor_s: float = 0.5, rng: Callable[[], float] = random.random) -> None:
        if not 0 <= floor_s <= initial_s <= maximum_s or factor < 1:
            raise ValueError("need 0 <= floor <= initial <= maximum and factor >= 1")
        self.initial_s, self.maximum_s, self.factor, self.floor_s = initial_s, maximum_s, factor, floor_s
        self._rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        cap = min(self.maximum_s, self.initial_s * self.factor ** self.failures)
        self.failures += 1
        return max(self.floor_s, cap * self._rng())

    def reset(self) -> None:
        self.failures = 0


FrameSink = Callable[[str, str], None]  # (direction "in"/"out", raw frame)


class Transport(Protocol):
    """One open link as the ``ocpp`` library talks through it: text frames in and out."""

    async def recv(self) -> str: ...

    async def send(self, message: str) -> None: ...


class WsTransport:
    """The ``recv()/send()`` pair the ``ocpp`` library talks through, counting frames."""

    def __init__(self, ws: ClientConnection, health: LinkHealth, sink: FrameSink | None) -> None:
        self.ws = ws
        self._health = health
        self._sink = sink

    async def recv(self) -> str:
        while True:
            message = await self.ws.recv()
            self._health.last_frame_in_at = time.time()
            if isinstance(message, bytes):  # OCPP-J is text only
                log.warning("ocpp.binary_frame_ignored", size=len(message))
                continue
            if self._sink:
                self._sink("in", message)
            return message

    async def send(self, message: str) -> None:
        await self.ws.send(message)
        self._health.last_frame_out_at = time.time()
        if self._sink:
            self._sink("out", message)


Session = Callable[[Transport], Awaitable[None]]


class BackendLink(Protocol):
    """What the OCPP client needs of its connection: :class:`OcppConnection` on the Pi, an
    in-memory link in tests."""

    charge_point_id: str
    health: LinkHealth
    frame_sink: FrameSink | None  # sees every frame in and out
    auth_failed: Callable[[str], None] | None  # the backend refused our credentials
    security_event: Callable[[str, str], None] | None  # (event type, tech info): TLS refusals

    async def run(self, session: Session) -> None: ...

    async def close(self) -> None: ...

    def reconnect(self, why: str) -> None: ...

    def set_ping_interval(self, seconds: int) -> None: ...


class OcppConnection:
    """Keeps one WebSocket to the backend open and runs ``session`` on each connection."""

    def __init__(
        self,
        url: str,
        charge_point_id: str,
        *,
        security_profile: Callable[[], int] | int = 0,
        password: Callable[[], str | None] | str | None = None,
        passwords: Callable[[], Sequence[str]] | None = None,
        security: SecuritySection | None = None,
        secure_url: str | None = None,
        ping_interval_s: Callable[[], int] | int = 60,
        open_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        stable_after_s: float = 30.0,
        frame_sink: FrameSink | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.charge_point_id = charge_point_id
        self._profile = security_profile if callable(security_profile) else (lambda: security_profile)
        fixed = password if callable(password) else (lambda: password)
        self._passwords: Callable[[], Sequence[str]] = passwords or (
            lambda: [p] if (p := fixed()) else [])
        self._password_index = 0  # which of the passwords the next attempt sends
        self._security = security
        self.secure_url = secure_url.rstrip("/") if secure_url else None
        self._ping_interval = ping_interval_s if callable(ping_interval_s) else (lambda: ping_interval_s)
        self._open_timeout_s = open_timeout_s
        self.backoff = backoff or Backoff()
        self._stable_after_s = stable_after_s
        self.frame_sink = frame_sink
        self.auth_failed: Callable[[str], None] | None = None
        self.security_event: Callable[[str, str], None] | None = None
        self.attempt_observer: AttemptObserver | None = None
        self.health = LinkHealth(url=f"{self.url}/{charge_point_id}")
        self._ws: ClientConnection | None = None
        self._stopping = False
        self._background: set[asyncio.Future[None]] = set()

    # -- set-up -----------------------------------------------------------------------------

    def url_for(self, profile: int) -> str:
        """The backend URL (without the charge point id) for ``profile``: ``secure_url`` for
        the TLS profiles when ``url`` is ws://."""
        if profile >= 2 and self.url.startswith("ws://") and self.secure_url:
            return self.secure_url
        return self.url

    def password(self) -> str | None:
        """The password the next attempt sends (profiles 1 and 2)."""
        candidates = self._passwords()
        if not candidates:
            return None
        return candidates[self._password_index % len(candidates)]

    def connect_kwargs(self) -> dict[str, Any]:
        """Arguments for :func:`websockets.asyncio.client.connect` for the current profile."""
        import ssl

        from chargerfw.ocpp.tls import TlsSetupError, tls_context
        from chargerfw.ocppj.library_log import WEBSOCKETS_LOGGER

        profile = self._profile()
        uri = f"{self.url_for(profile)}/{self.charge_point_id}"
        self.health.url = uri
        kwargs: dict[str, Any] = {
            "uri": uri,
            "subprotocols": [SUBPROTOCOL],
            "open_timeout": self._open_timeout_s,
            # After a missed pong websockets still tries a closing handshake; on a dead link
            # that only delays noticing it, so keep it short.
            "close_timeout": 2.0,
            "compression": None,  # OCPP frames are small; save the Pi the zlib work
            "proxy": None,
            "user_agent_header": "chargerfw",
            "logger": WEBSOCKETS_LOGGER,  # handshake headers redacted
        }
        if profile not in (0, 1, 2, 3):
            raise ConnectionSetupError(f"security profile {profile} is not supported (0-3)")
        if profile in (1, 2):
            password = self.password()
            if not password:
                raise ConnectionSetupError(f"security profile {profile} needs a password")
            token = base64.b64encode(f"{self.charge_point_id}:{password}".encode()).decode()
            kwargs["additional_headers"] = {"Authorization": f"Basic {token}"}
        if profile >= 2:
            if not uri.startswith("wss://"):
                raise ConnectionSetupError(
                    f"security profile {profile} needs a wss:// url ([ocpp] url or secure_url)")
            if self._security is None:
                raise ConnectionSetupError(
                    f"security profile {profile} needs the certificate store ([security])")
            try:
                kwargs["ssl"] = tls_context(
                    profile, self._security.central_system_roots_dir,
                    self._security.charge_point_certificate, self._security.charge_point_key)
            except TlsSetupError as exc:
                raise ConnectionSetupError(str(exc)) from None
        elif uri.startswith("wss://"):
            kwargs["ssl"] = ssl.create_default_context()
        interval = self._ping_interval()
        kwargs["ping_interval"] = interval or None
        kwargs["ping_timeout"] = interval or None
        return kwargs

    # -- control ----------------------------------------------------------------------------

    def set_ping_interval(self, seconds: int) -> None:
        """Apply WebSocketPingInterval on the live socket (0 stops pinging at the next tick)."""
        self.health.ping_interval_s = seconds
        ws = self._ws
        if ws is not None and ws.ping_interval is not None:
            # websockets' keepalive re-reads these on every round.
            ws.ping_interval = seconds or 10**9
            ws.ping_timeout = seconds or None
        elif ws is not None and seconds:
            self.reconnect("ping interval switched on")

    def reconnect(self, why: str) -> None:
        """Drop the current socket; the run loop connects again (e.g. after a new password)."""
        import asyncio

        ws = self._ws
        if ws is not None:
            log.info("ocpp.reconnect_requested", reason=why)
            task = asyncio.ensure_future(ws.close(code=1000, reason=why[:100]))
            self._background.add(task)  # keep a reference until done
            task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, session: Session) -> None:
        """Connect, run ``session`` until the socket closes, back off, repeat; until close()."""
        from websockets.asyncio.client import connect

        while not self._stopping:
            self.health.state = "connecting"
            self.health.next_attempt_in_s = None
            profile = self._profile()
            password = self.password() if profile in (1, 2) else None
            try:
                kwargs = self.connect_kwargs()
                ws = await connect(**kwargs)
                if ws.subprotocol != SUBPROTOCOL:
                    await ws.close(code=1002, reason="ocpp1.6 required")
                    raise ConnectionSetupError(f"server chose subprotocol {ws.subprotocol!r}")
            except Exception as exc:  # refused, 401, TLS, timeout, bad URI: never give up
                self._note_refused_credentials(exc)
                self._note_handshake_failure(exc)
                self._observe(profile, password, exc)
                await self._wait_after_failure(exc)
                continue
            self._observe(profile, password, None)
            await self._serve(ws, session)
        self.health.state = "disconnected"

    async def _serve(self, ws: ClientConnection, session: Session) -> None:
        import asyncio

        from websockets.exceptions import ConnectionClosed

        self._ws = ws
        started = time.monotonic()
        self.health.state = "connected"
        self.health.connected_since = time.time()
        self.health.connects += 1
        self.health.ping_interval_s = self._ping_interval()
        self.health.last_error = None
        log.info("ocpp.connected", url=self.health.url, profile=self._profile())
        watcher = asyncio.create_task(self._watch_latency(ws))
        reason = "closed"
        try:
            await session(WsTransport(ws, self.health, self.frame_sink))
        except ConnectionClosed as exc:
            reason = f"closed: {exc}"
        except Exception as exc:  # a session bug must not end the firmware's backend link
            log.exception("ocpp.session_failed")
            reason = f"session error: {exc!r}"
        finally:
            watcher.cancel()
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()
            self.health.state = "disconnected"
            self.health.connected_since = None
            self.health.last_error = reason
            log.warning("ocpp.disconnected", reason=reason,
                        close_code=ws.close_code, close_reason=ws.close_reason)
        if time.monotonic() - started >= self._stable_after_s:
            self.backoff.reset()
        if not self._stopping:
            # A short pause even after a long session: never a tight reconnect loop.
            delay = self.backoff.next_delay()
            self.health.next_attempt_in_s = delay
            await asyncio.sleep(delay)

    async def _watch_latency(self, ws: ClientConnection) -> None:
        import asyncio

        while True:
            await asyncio.sleep(1.0)
            if ws.latency:
                self.health.last_pong_latency_s = ws.latency

    def _note_refused_credentials(self, exc: BaseException) -> None:
        from websockets.exceptions import InvalidStatus

        if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
            self._password_index += 1  # the next attempt tries the next password
            if self.auth_failed is not None:
                self.auth_failed(f"HTTP {exc.response.status_code} from {self.health.url}")

    def _note_handshake_failure(self, exc: BaseException) -> None:
        from chargerfw.ocpp.tls import handshake_security_event

        event = handshake_security_event(exc)
        if event is not None and self.security_event is not None:
            self.security_event(*event)

    def _observe(self, profile: int, password: str | None, error: BaseException | None) -> None:
        if error is None:
            self._password_index = 0  # start from the newest password again next time
        if self.attempt_observer is not None:
            try:
                self.attempt_observer(profile, password, error)
            except Exception:  # an observer's bug must not end the backend link
                log.exception("ocpp.attempt_observer_failed")

    async def _wait_after_failure(self, exc: BaseException) -> None:
        import asyncio

        self.health.state = "disconnected"
        self.health.failed_attempts += 1
        self.health.last_error = f"{type(exc).__name__}: {exc}"
        delay = self.backoff.next_delay()
        self.health.next_attempt_in_s = delay
        log.warning("ocpp.connect_failed", error=self.health.last_error, retry_in_s=round(delay, 2))
        await asyncio.sleep(delay)
