"""The token reader interface shared by every reader kind.

The public API lives in :class:`TokenReader` (gpiozero style); a backend implements a few
private hooks. Most backends derive from :class:`PollingReader` and only say how to open the
device, how to ask it which card (if any) is on it, and how to close it; the base class does
the rest: repeat suppression, removal, READER_LOST / READER_BACK with back-off, fan-out of
events to every consumer.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Callable

from chargerfw.drivers.types import TagEvent, TagEventKind
from chargerfw.logs import get_logger

log = get_logger(__name__)

TagListener = Callable[[TagEvent], None]


class ReaderError(Exception):
    """Base of every token reader error."""


class ReaderUnavailable(ReaderError):
    """The reader cannot be opened or stopped answering (port gone, I/O error, daemon gone)."""


class FrameError(ReaderError):
    """A frame from the reader that cannot be used; the reader skips it and carries on."""


class TruncatedFrame(FrameError):
    """A frame that ended before its declared length (or more bytes are needed)."""


class ChecksumError(FrameError):
    """A frame whose checksum does not match its content."""


class MalformedFrame(FrameError):
    """A frame with the wrong markers, lengths or content."""


class CardError(ReaderError):
    """A card is on the reader but its UID could not be read (error status word, mute card)."""


def uid_to_id_tag(uid: bytes) -> str:
    """The OCPP idTag for a UID: uppercase hex, byte 0 first, no separators."""
    return uid.hex().upper()


def id_tag_to_uid(id_tag: str) -> bytes:
    """Parse a UID written as hex (``04A1B2C3``, ``04:a1:b2:c3`` or ``04 A1 B2 C3``)."""
    cleaned = id_tag.replace(":", "").replace(" ", "").replace("-", "")
    try:
        uid = bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"UID {id_tag!r} is not hexadecimal") from None
    if not 1 <= len(uid) <= 10:
        raise ValueError(f"UID {id_tag!r} has {len(uid)} bytes; expected 1 to 10")
    return uid


class TagEventStream:
    """One consumer's queue of events; registered when created so no event is missed."""

    def __init__(self, reader: TokenReader) -> None:
        self._reader = reader
        self._queue: asyncio.Queue[TagEvent | None] = asyncio.Queue()
        reader._streams.append(self._queue)

    def __aiter__(self) -> TagEventStream:
        return self

    async def __anext__(self) -> TagEvent:
        event = await self._queue.get()
        if event is None:  # the reader stopped
            self.close()
            raise StopAsyncIteration
        return event

    async def next(self, timeout_s: float | None = None) -> TagEvent:
        """The next event; ``TimeoutError`` if none arrives in ``timeout_s``."""
        return await asyncio.wait_for(self.__anext__(), timeout_s)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._reader._streams.remove(self._queue)

    async def aclose(self) -> None:
        self.close()


class TokenReader(abc.ABC):
    """A token (RFID/NFC card) reader that reports :class:`TagEvent`.

    ``PRESENTED`` is reported once per card arrival, ``REMOVED`` when it leaves,
    ``READER_LOST`` when the reader disappears (and again never until it is back), then
    ``READER_BACK``. Consume with ``async for event in reader.events()`` (call ``events()``
    before ``start()`` to see every event) or ``reader.add_listener(callback)``.
    """

    def __init__(self, name: str, *, retry_initial_s: float = 0.5, retry_max_s: float = 10.0) -> None:
        self._name = name
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._streams: list[asyncio.Queue[TagEvent | None]] = []
        self._listeners: list[TagListener] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._present_uid: bytes | None = None
        self._lost = False

    # -- public API -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def available(self) -> bool:
        """False between READER_LOST and READER_BACK."""
        return not self._lost

    @property
    def present_id_tag(self) -> str | None:
        """The idTag of the card on the reader now, or None."""
        return uid_to_id_tag(self._present_uid) if self._present_uid is not None else None

    def events(self) -> TagEventStream:
        """An async iterator of this reader's events from now on; ends when the reader stops."""
        return TagEventStream(self)

    def add_listener(self, listener: TagListener) -> None:
        """Call ``listener(event)`` in the event loop for every event."""
        self._listeners.append(listener)

    def remove_listener(self, listener: TagListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def start(self, *, require_reader: bool = False) -> None:
        """Start reading. With ``require_reader`` a reader that cannot be opened now raises
        :class:`ReaderUnavailable`; otherwise it is reported as READER_LOST and retried."""
        if self.running:
            return
        self._stopping.clear()
        opened = False
        if require_reader:
            await self._open()
            opened = True
        self._task = asyncio.create_task(self._run(opened), name=f"reader-{self._name}")

    async def stop(self) -> None:
        """Stop reading, release the device and end every event stream."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._close()
        self._present_uid = None
        for queue in list(self._streams):
            queue.put_nowait(None)

    async def __aenter__(self) -> TokenReader:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- hooks for backends -----------------------------------------------------------
    @abc.abstractmethod
    async def _run(self, opened: bool) -> None:
        """Run until ``self._stopping`` is set; report through the ``_card_*``/``_reader_*``
        helpers. ``opened`` says whether ``start`` already opened the device."""

    async def _open(self) -> None:  # noqa: B027 - optional hook
        """Open the device; raise :class:`ReaderUnavailable` if it is not there."""

    async def _close(self) -> None:  # noqa: B027 - optional hook
        """Release the device (idempotent)."""

    # -- state helpers (call from the event loop) -----------------------------------
    def _card_present(self, uid: bytes) -> None:
        if uid == self._present_uid:
            return  # same card still there: no repeat
        if self._present_uid is not None:
            self._card_absent()
        self._present_uid = uid
        self._emit(TagEventKind.PRESENTED, uid)

    def _card_absent(self) -> None:
        if self._present_uid is None:
            return
        uid, self._present_uid = self._present_uid, None
        self._emit(TagEventKind.REMOVED, uid)

    def _reader_lost(self, reason: str) -> None:
        # The card state is unknown without a reader: forget it silently; a card still there
        # when the reader is back is presented again.
        self._present_uid = None
        if self._lost:
            return
        self._lost = True
        log.warning("reader.lost", reader=self._name, reason=reason)
        self._emit(TagEventKind.READER_LOST)

    def _reader_back(self) -> None:
        if not self._lost:
            return
        self._lost = False
        log.info("reader.back", reader=self._name)
        self._emit(TagEventKind.READER_BACK)

    def _frame_error(self, error: FrameError) -> None:
        log.warning("reader.frame_error", reader=self._name, error=type(error).__name__,
                    detail=str(error))

    def _emit(self, kind: TagEventKind, uid: bytes | None = None) -> None:
        event = TagEvent(
            kind=kind, reader=self._name, id_tag=uid_to_id_tag(uid) if uid is not None else None,
            uid=uid or b"", timestamp=time.time(),
        )
        log.info("reader.event", reader=self._name, kind=str(kind), id_tag=event.id_tag)
        for queue in self._streams:
            queue.put_nowait(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken consumer must not stop the reader
                log.exception("reader.listener_failed", reader=self._name)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


class PollingReader(TokenReader):
    """A reader asked in a loop "which card is on you?"; backends implement the hooks
    ``_open``, ``_read_uid`` and ``_close``."""

    #: pause between polls; 0 for backends whose ``_read_uid`` itself waits for a change.
    _idle_between_polls_s: float

    def __init__(self, name: str, *, poll_interval_s: float = 0.2, retry_initial_s: float = 0.5,
                 retry_max_s: float = 10.0) -> None:
        super().__init__(name, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._poll_interval_s = poll_interval_s
        self._idle_between_polls_s = poll_interval_s

    @abc.abstractmethod
    async def _read_uid(self) -> bytes | None:
        """The UID of the card on the reader now, or None. Raise :class:`ReaderUnavailable`
        when the reader is gone, :class:`FrameError` or :class:`CardError` when this poll
        says nothing reliable (the card state is kept as it was)."""

    async def _run(self, opened: bool) -> None:
        retry_s = self._retry_initial_s
        while not self._stopping.is_set():
            if not opened:
                try:
                    await self._open()
                except ReaderUnavailable as exc:
                    self._reader_lost(str(exc))
                    await self._sleep_unless_stopping(retry_s)
                    retry_s = min(retry_s * 2, self._retry_max_s)
                    continue
            opened = False
            retry_s = self._retry_initial_s
            self._reader_back()
            try:
                await self._poll_until_stopped()
            except ReaderUnavailable as exc:
                self._reader_lost(str(exc))
            except Exception as exc:  # a backend bug or an unforeseen error must not end reading
                log.exception("reader.unexpected_error", reader=self._name)
                self._reader_lost(f"unexpected {type(exc).__name__}: {exc}")
            else:
                continue  # stopping
            await self._close()
            await self._sleep_unless_stopping(retry_s)

    async def _poll_until_stopped(self) -> None:
        while not self._stopping.is_set():
            try:
                uid = await self._read_uid()
            except FrameError as exc:
                self._frame_error(exc)
            except CardError as exc:
                log.warning("reader.card_error", reader=self._name, detail=str(exc))
            else:
                if uid is None:
                    self._card_absent()
                else:
                    self._card_present(uid)
            if self._idle_between_polls_s:
                await self._sleep_unless_stopping(self._idle_between_polls_s)
