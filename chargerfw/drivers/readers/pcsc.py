"""PC/SC readers (ACR122U and other CCID contactless readers) through pcscd and pyscard.

The UID comes from the PC/SC part 3 pseudo-APDU GET DATA ``FF CA 00 00 00`` -> UID + 90 00.

This uses pyscard's ``smartcard.scard`` layer (SCardGetStatusChange in a worker thread)
rather than its CardMonitor/ReaderMonitor: those are process-wide singletons whose monitoring
thread stops for good when pcscd goes away (SCARD_E_NO_SERVICE), so a restarted pcscd or a
second reader could never be followed. Here each reader owns its context and re-establishes it
after the daemon or the reader comes back.
"""

from __future__ import annotations

import asyncio
import threading

from smartcard import scard

from chargerfw.drivers.readers.base import CardError, PollingReader, ReaderUnavailable

GET_UID_APDU = [0xFF, 0xCA, 0x00, 0x00, 0x00]
SW_OK = (0x90, 0x00)
_GONE_STATES = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE


def _error_text(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult).strip()} ({hresult & 0xFFFFFFFF:#010x})"


def parse_get_uid_response(response: list[int] | bytes) -> bytes:
    """The UID in a GET UID response; :class:`CardError` for an error status word."""
    data = bytes(response)
    if len(data) < 2:
        raise CardError(f"GET UID answer too short: {data.hex(' ')}")
    sw1, sw2 = data[-2], data[-1]
    if (sw1, sw2) != SW_OK:
        raise CardError(f"GET UID refused with SW {sw1:02X} {sw2:02X}")
    if not 1 <= len(data) - 2 <= 10:
        raise CardError(f"GET UID answered a UID of {len(data) - 2} bytes")
    return data[:-2]


class PcscReader(PollingReader):
    """The first PC/SC reader whose name contains ``reader_name`` (any reader if None)."""

    def __init__(self, *, reader_name: str | None = None, name: str | None = None,
                 poll_interval_s: float = 0.2, retry_initial_s: float = 0.5,
                 retry_max_s: float = 10.0) -> None:
        super().__init__(name or f"pcsc:{reader_name or '*'}", poll_interval_s=poll_interval_s,
                         retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._reader_filter = reader_name
        self._idle_between_polls_s = 0  # SCardGetStatusChange itself waits for a change
        self._lock = threading.Lock()  # one PC/SC call on our context at a time
        self._context: int | None = None
        self._reader_name: str | None = None
        self._state = scard.SCARD_STATE_UNAWARE
        self._insertion: tuple[int, bytes] | None = None  # (event counter, ATR) already read
        self._uid: bytes | None = None

    @property
    def pcsc_reader_name(self) -> str | None:
        """The full PC/SC name of the reader in use."""
        return self._reader_name

    # -- blocking parts, run in a worker thread ------------------------------------------
    def _release_context(self) -> None:
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def _open_sync(self) -> None:
        with self._lock:
            if self._context is None:
                hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
                if hresult != scard.SCARD_S_SUCCESS:
                    raise ReaderUnavailable(f"PC/SC service (pcscd): {_error_text(hresult)}")
                self._context = context
            hresult, readers = scard.SCardListReaders(self._context, [])
            if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
                readers = []
            elif hresult != scard.SCARD_S_SUCCESS:
                self._release_context()  # the daemon may have restarted: start afresh
                raise ReaderUnavailable(f"PC/SC list readers: {_error_text(hresult)}")
            matching = [r for r in readers if self._reader_filter is None or self._reader_filter in r]
            if not matching:
                raise ReaderUnavailable(
                    f"no PC/SC reader matching {self._reader_filter!r} (readers: {readers or 'none'})")
            self._reader_name = matching[0]
            self._state = scard.SCARD_STATE_UNAWARE
            self._insertion = None
            self._uid = None

    def _close_sync(self) -> None:
        with self._lock:
            self._release_context()
            self._reader_name = None

    def _poll_sync(self) -> bytes | None:
        with self._lock:
            if self._context is None or self._reader_name is None:
                raise ReaderUnavailable("PC/SC reader not open")
            timeout_ms = max(1, int(self._poll_interval_s * 1000))
            hresult, states = scard.SCardGetStatusChange(
                self._context, timeout_ms, [(self._reader_name, self._state)])
            if hresult == scard.SCARD_E_TIMEOUT:
                return self._uid  # nothing changed
            if hresult != scard.SCARD_S_SUCCESS:
                if hresult == scard.SCARD_E_NO_SERVICE:
                    self._release_context()
                raise ReaderUnavailable(f"PC/SC {self._reader_name}: {_error_text(hresult)}")
            _name, event_state, atr = states[0]
            if event_state & _GONE_STATES:
                raise ReaderUnavailable(f"PC/SC reader {self._reader_name!r} removed")
            self._state = event_state & ~scard.SCARD_STATE_CHANGED
            if not event_state & scard.SCARD_STATE_PRESENT or event_state & scard.SCARD_STATE_MUTE:
                self._insertion, self._uid = None, None
                return None
            insertion = (event_state >> 16, bytes(atr))  # pcsc-lite counts card events in the high word
            if insertion == self._insertion:
                return self._uid
            self._insertion, self._uid = insertion, None
            self._uid = self._read_uid_from_card()
            return self._uid

    def _read_uid_from_card(self) -> bytes | None:
        assert self._context is not None and self._reader_name is not None
        hresult, card, protocol = scard.SCardConnect(
            self._context, self._reader_name, scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if hresult in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD):
            return None  # gone before we could ask
        if hresult != scard.SCARD_S_SUCCESS:
            raise CardError(f"cannot connect to the card: {_error_text(hresult)}")
        try:
            hresult, response = scard.SCardTransmit(card, protocol, GET_UID_APDU)
            if hresult != scard.SCARD_S_SUCCESS:
                raise CardError(f"GET UID transmit failed: {_error_text(hresult)}")
            return parse_get_uid_response(response)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

    # -- hooks ---------------------------------------------------------------------------
    async def _open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    async def _close(self) -> None:
        await asyncio.to_thread(self._close_sync)

    async def _read_uid(self) -> bytes | None:
        return await asyncio.to_thread(self._poll_sync)
