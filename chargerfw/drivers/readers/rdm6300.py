"""RDM6300 125 kHz (EM4100) reader over UART, 9600 8N1.

A frame is 14 bytes: STX 0x02, 10 ASCII hex digits (1 version byte + 4 tag bytes), 2 ASCII hex
digits of checksum (XOR of the 5 data bytes), ETX 0x03. The module repeats the frame while the
tag stays in the field and says nothing when it leaves, so removal is a timeout
(``removal_timeout_s``) since the last good frame.
"""

from __future__ import annotations

import asyncio
import time
from functools import reduce
from operator import xor

import serial

from chargerfw.drivers.readers.base import (
    ChecksumError,
    FrameError,
    MalformedFrame,
    PollingReader,
    TruncatedFrame,
)
from chargerfw.drivers.readers.serialport import close_quietly, open_serial, read_some

STX = 0x02
ETX = 0x03
FRAME_LENGTH = 14
DEFAULT_BAUDRATE = 9600
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


def encode_rdm6300_frame(uid: bytes) -> bytes:
    """The frame an RDM6300 sends for a 5-byte tag number (version byte first)."""
    if len(uid) != 5:
        raise ValueError(f"an RDM6300 tag number has 5 bytes, got {len(uid)}")
    checksum = reduce(xor, uid, 0)
    return bytes([STX]) + uid.hex().upper().encode() + f"{checksum:02X}".encode() + bytes([ETX])


def decode_rdm6300_frame(frame: bytes) -> bytes:
    """The 5-byte tag number in one complete frame.

    Raises :class:`TruncatedFrame` (too short), :class:`MalformedFrame` (markers, length,
    non-hex digits) or :class:`ChecksumError`.
    """
    if len(frame) < FRAME_LENGTH:
        raise TruncatedFrame(f"RDM6300 frame has {len(frame)} of {FRAME_LENGTH} bytes: {frame.hex(' ')}")
    if len(frame) > FRAME_LENGTH:
        raise MalformedFrame(f"RDM6300 frame has {len(frame)} bytes, expected {FRAME_LENGTH}")
    if frame[0] != STX or frame[-1] != ETX:
        raise MalformedFrame(f"RDM6300 frame without STX/ETX: {frame.hex(' ')}")
    digits = frame[1:13]
    if not set(digits) <= _HEX_DIGITS:
        raise MalformedFrame(f"RDM6300 frame has non-hex digits: {digits!r}")
    uid = bytes.fromhex(digits[:10].decode())
    checksum = int(digits[10:].decode(), 16)
    expected = reduce(xor, uid, 0)
    if checksum != expected:
        raise ChecksumError(f"RDM6300 checksum {checksum:02X}, computed {expected:02X}")
    return uid


class Rdm6300StreamDecoder:
    """Cuts a byte stream into frames: ``feed`` returns tag numbers and the errors of bad
    frames in arrival order. Data digits are ASCII, so an STX inside a frame marks the frame
    before it as truncated and starts the next one."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        self._buffer += data
        results: list[bytes | FrameError] = []
        while self._buffer:
            start = self._buffer.find(STX)
            if start != 0:
                stray = len(self._buffer) if start < 0 else start
                results.append(MalformedFrame(f"{stray} stray bytes outside a frame"))
                del self._buffer[:stray]
                continue
            next_start = self._buffer.find(STX, 1, FRAME_LENGTH)
            if next_start > 0:
                results.append(TruncatedFrame(
                    f"RDM6300 frame cut after {next_start} bytes: {bytes(self._buffer[:next_start]).hex(' ')}"))
                del self._buffer[:next_start]
                continue
            if len(self._buffer) < FRAME_LENGTH:
                break  # wait for the rest
            frame = bytes(self._buffer[:FRAME_LENGTH])
            del self._buffer[:FRAME_LENGTH]
            try:
                results.append(decode_rdm6300_frame(frame))
            except FrameError as exc:
                results.append(exc)
        return results

    def flush(self) -> list[FrameError]:
        """The line went idle: a partial frame in the buffer will never complete."""
        if not self._buffer:
            return []
        error = TruncatedFrame(f"RDM6300 frame cut after {len(self._buffer)} bytes: "
                               f"{bytes(self._buffer).hex(' ')}")
        self._buffer.clear()
        return [error]


class Rdm6300Reader(PollingReader):
    """RDM6300 on a serial port."""

    def __init__(self, port: str, *, name: str | None = None, baudrate: int = DEFAULT_BAUDRATE,
                 poll_interval_s: float = 0.2, removal_timeout_s: float = 0.5,
                 retry_initial_s: float = 0.5, retry_max_s: float = 10.0) -> None:
        super().__init__(name or f"rdm6300:{port}", poll_interval_s=poll_interval_s,
                         retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._port_name = port
        self._baudrate = baudrate
        self._removal_timeout_s = removal_timeout_s
        self._idle_between_polls_s = 0  # the read itself waits up to poll_interval_s
        self._serial: serial.Serial | None = None
        self._decoder = Rdm6300StreamDecoder()
        self._last_uid: bytes | None = None
        self._last_seen = 0.0

    async def _open(self) -> None:
        self._serial = await asyncio.to_thread(
            open_serial, self._port_name, self._baudrate, self._poll_interval_s)
        self._decoder = Rdm6300StreamDecoder()
        self._last_uid = None

    async def _close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            await asyncio.to_thread(close_quietly, port)

    async def _read_uid(self) -> bytes | None:
        assert self._serial is not None
        data = await asyncio.to_thread(read_some, self._serial)
        results = self._decoder.feed(data) if data else self._decoder.flush()
        for result in results:
            if isinstance(result, FrameError):
                self._frame_error(result)
            else:
                self._last_uid = result
                self._last_seen = time.monotonic()
        if self._last_uid is not None and time.monotonic() - self._last_seen > self._removal_timeout_s:
            self._last_uid = None
        return self._last_uid
