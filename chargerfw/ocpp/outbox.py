"""The durable outbox pump: the store's transaction messages to the backend, strictly in order.

Version-neutral: the pump owns the order, the waiting and the store's delivery bookkeeping;
a protocol adapter supplies an :class:`OutboxSender` that turns a message into a request on
its link and reads the answer.

- Only the head of the outbox is ever sent; the next waits until the head is delivered or dead.
- A CALLERROR counts as a failed attempt: the message is resent after the retry interval times
  the failures so far, and after the allowed attempts it is dead (kept on disk).
- No answer in time is not a failure to process: the message stays at the head and goes again
  (a dead link is found by the ping, and the message goes out on the next connection).
- A message that cannot be turned into a request at all is dead at once, and so is a
  notification the backend refuses as an action it does not know or support (a backend without
  the security extension): retrying it could never succeed and would hold up the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from chargerfw.logs import get_logger
from chargerfw.store import OutboxMessage, Store

log = get_logger(__name__)

NO_ANSWER_RETRY_S = 5.0
# An idle pump looks at the head again this often: another process (a technician's command)
# may have queued something it was not woken for.
IDLE_RECHECK_S = 10.0
PRUNE_EVERY = 100  # deliveries


class Undeliverable(Exception):
    """The message cannot be turned into a request (e.g. no transactionId is known for it)."""


class Refused(Exception):
    """The backend answered the message with an error (a failure to process it). ``final``:
    the answer says no resend can succeed (the message is dead at once)."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


@dataclass(frozen=True, slots=True)
class Delivered:
    """The backend's answer to a delivered message, as far as the store keeps it."""

    backend_tx_id: int | None = None  # the answer to a transaction start: the backend's id
    start_status: str | None = None  # ... and the status of its idTag
    id_tag_info: dict[str, str] | None = None  # an idTagInfo in the answer (StationPort spelling)


RequestT = TypeVar("RequestT")


class OutboxSender(Protocol[RequestT]):
    """One link's way of delivering outbox messages."""

    def request_for(self, message: OutboxMessage) -> RequestT:
        """The request for ``message``; raises :class:`Undeliverable`."""
        ...

    async def send(self, message: OutboxMessage, request: RequestT) -> Delivered:
        """Send ``request`` and wait for the answer; raises :class:`Refused`, or
        :class:`TimeoutError` when no answer came in time."""
        ...

    def delivered(self, message: OutboxMessage, answer: Delivered) -> None:
        """After the store recorded the delivery: act on what the answer said."""
        ...


class OutboxPump:
    """Drains the store's outbox over whichever link is up.

    ``max_attempts`` and ``retry_interval_s`` read the current retry settings (in OCPP 1.6
    TransactionMessageAttempts and TransactionMessageRetryInterval)."""

    def __init__(self, store: Store, *, max_attempts: Callable[[], int],
                 retry_interval_s: Callable[[], int]) -> None:
        self.store = store
        self._max_attempts = max_attempts
        self._retry_interval_s = retry_interval_s
        self._wakeup = asyncio.Event()
        self._deliveries = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def wake(self) -> None:
        """Something was queued, or the retry settings changed: look at the head again. Any
        thread may call it (a security event recorded on a worker thread, say)."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._wakeup.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self, sender: OutboxSender[RequestT]) -> None:
        """Deliver messages with ``sender`` for the life of one link."""
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        while True:
            message = self.store.outbox_head()
            if message is None:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_RECHECK_S):
                        await self._wakeup.wait()
                continue
            wait = message.next_attempt_at - time.time()
            if wait > 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wakeup.wait()
                continue
            await self._deliver(sender, message)

    async def _deliver(self, sender: OutboxSender[RequestT], message: OutboxMessage) -> None:
        try:
            request = sender.request_for(message)
        except Undeliverable as exc:
            log.error("outbox.undeliverable", seq=message.seq, error=str(exc))
            self.store.outbox_failed(message.seq, str(exc), max_attempts=1, retry_interval_s=0)
            return
        self.store.outbox_note_send(message.seq)
        try:
            answer = await sender.send(message, request)
        except Refused as exc:
            self.store.outbox_failed(message.seq, str(exc),
                                     max_attempts=1 if exc.final else self._max_attempts(),
                                     retry_interval_s=self._retry_interval_s())
            return
        except TimeoutError:
            self.store.outbox_defer(message.seq, time.time() + NO_ANSWER_RETRY_S, "timeout")
            return
        self.store.outbox_delivered(message.seq, backend_tx_id=answer.backend_tx_id,
                                    start_status=answer.start_status)
        sender.delivered(message, answer)
        self._deliveries += 1
        if self._deliveries % PRUNE_EVERY == 0:
            self.store.outbox_prune()
