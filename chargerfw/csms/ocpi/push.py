"""Delivers queued OCPI pushes (locations, sessions, CDRs, tariffs, CommandResults).

The queue lives in the database, so pushes survive restarts. Each partner's pushes go out in
order: a failed push is retried with exponential back-off before anything queued after it.

Routing headers name us as the sender and the partner as the receiver; through a hub, a
session or CDR is addressed to the party of its token (the eMSP it is for), everything else
to the hub itself (a broadcast push). A push for a party the hub reports OFFLINE, PLANNED or
SUSPENDED is given up at once, as the spec asks (the party GETs what it missed once back), so
it does not hold up the hub's other pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import httpx

from chargerfw.csms.authorization import ocpi_request_headers
from chargerfw.csms.background import BackgroundLoop
from chargerfw.csms.store import AsyncStore, PushItem, utcnow
from chargerfw.logs import get_logger

log = get_logger(__name__)

# Statuses at a hub of a party no push can reach: the spec says not to queue pushes for it
# (once back, it GETs what it missed from our Sender interfaces).
UNREACHABLE_STATUSES = ("OFFLINE", "PLANNED", "SUSPENDED")


class PushWorker:
    """Background task draining the push queue; ``wake()`` after enqueueing."""

    def __init__(self, db: AsyncStore, http: httpx.AsyncClient, *, retry_base_s: float = 2.0,
                 retry_max_s: float = 3600.0, max_attempts: int = 50,
                 poll_s: float = 1.0) -> None:
        self._db = db
        self._http = http
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop("ocpi-push", self._run)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def retry_delay(self, attempts: int) -> float:
        """Back-off before attempt ``attempts + 1``: base * 2^attempts, capped."""
        return float(min(self.retry_base_s * (2 ** min(attempts, 30)), self.retry_max_s))

    async def _run(self) -> None:
        while True:
            try:
                await self.drain_once()
            except Exception:  # a database hiccup must not end the worker
                log.exception("ocpi.push.worker_error")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation arriving as the wait ends, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()

    async def drain_once(self) -> int:
        """Send every push that is due now; returns how many were delivered."""
        delivered = 0
        while True:
            items = await self._db(self._db.store.due_pushes)
            if not items:
                return delivered
            progressed = False
            for item in items:
                if await self._send(item):
                    delivered += 1
                    progressed = True
            if not progressed:
                return delivered

    async def _send(self, item: PushItem) -> bool:
        error = None
        give_up = False
        receiver = await self._receiver(item)
        status = await self._status_at_hub(item, receiver)
        if item.their_token is None:
            error = "partner has no token"
        elif status in UNREACHABLE_STATUSES:
            error = f"party {receiver[0]}/{receiver[1]} is {status} at the hub"
            give_up = True
        else:
            try:
                cpo = self._db.store.cpo
                headers = ocpi_request_headers(
                    item.their_token, (cpo.country_code, cpo.party_id), receiver,
                    correlation_id=f"push-{item.id}")  # the same across retries
                response = await self._http.request(item.method, item.url, json=item.body,
                                                    headers=headers)
                if 200 <= response.status_code < 300 and _ocpi_success(response):
                    await self._db(self._db.store.push_done, item.id)
                    log.info("ocpi.push.done", module=item.module, method=item.method,
                             partner=item.partner_id)
                    return True
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if item.method == "PATCH" and _client_error(response):
                    # It changes something the receiver does not hold as we think: sending
                    # it (or the PATCHes built on it) again cannot help, and would hold up
                    # everything queued behind. Given up, the next update is sent whole.
                    dropped = await self._db(self._db.store.patch_refused, item.id, error)
                    log.warning("ocpi.push.patch_refused", module=item.module,
                                partner=item.partner_id, error=error, later_dropped=dropped)
                    return False
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        attempts = item.attempts + 1
        retry_at = None
        if attempts < self.max_attempts and not give_up:
            retry_at = utcnow() + timedelta(seconds=self.retry_delay(item.attempts))
        log.warning("ocpi.push.failed", module=item.module, method=item.method,
                    partner=item.partner_id, attempts=attempts, error=error,
                    gave_up=retry_at is None)
        await self._db(self._db.store.push_failed, item.id, error, retry_at)
        return False

    async def _status_at_hub(self, item: PushItem,
                             receiver: tuple[str | None, str | None]) -> str | None:
        """The status the hub reports for the party a push through it is for; None when the
        push does not go through a hub, is for the hub itself, or the party is unknown to
        it (the hub then decides)."""
        if item.role != "HUB" or receiver[0] is None or receiver[1] is None or receiver == (
                item.country_code, item.party_id):
            return None
        info = await self._db(self._db.store.get_hub_party, item.partner_id, *receiver)
        return str(info["status"]) if info else None

    async def _receiver(self, item: PushItem) -> tuple[str | None, str | None]:
        """The party a push is addressed to (OCPI-to-*)."""
        if item.role == "HUB" and item.module in ("sessions", "cdrs"):
            token = item.body.get("cdr_token") if isinstance(item.body, dict) else None
            if token is None and item.module == "sessions":
                # A PATCH carries only what changed: the session says whose it is.
                session = await self._db(self._db.store.get_session, item.url.rsplit("/", 1)[-1])
                token = session["cdr_token"] if session else None
            if token is not None:
                return token["country_code"], token["party_id"]
        return item.country_code, item.party_id


def _ocpi_success(response: httpx.Response) -> bool:
    """A 2xx whose body is an OCPI envelope must carry status_code 1000."""
    try:
        body = response.json()
    except ValueError:
        return True
    if isinstance(body, dict) and "status_code" in body:
        return body["status_code"] == 1000
    return True


def _client_error(response: httpx.Response) -> bool:
    """HTTP 4xx, or an OCPI client error (2xxx) in the envelope."""
    if 400 <= response.status_code < 500:
        return True
    try:
        body = response.json()
    except ValueError:
        return False
    return (isinstance(body, dict) and isinstance(body.get("status_code"), int)
            and 2000 <= body["status_code"] < 3000)
