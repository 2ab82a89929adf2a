"""NXP PN532 (ISO 14443A) over UART (HSU, pyserial) and over I2C (smbus2).

Both links carry the same frames (PN532 user manual UM0701, section 6.2):

    normal   00 00 FF LEN LCS TFI PD0..PDn DCS 00    LEN+LCS = 0, TFI+sum(PD)+DCS = 0 (mod 256)
    extended 00 00 FF FF FF LENM LENL LCS TFI ... DCS 00
    ACK      00 00 FF 00 FF 00          NACK 00 00 FF FF 00 00
    error    00 00 FF 01 FF 7F 81 00    (application level error)

TFI is D4 host -> PN532 and D5 PN532 -> host; a reply's command code is the request's + 1.
The codec functions are pure; the links only move bytes: UART reads the stream, I2C polls the
status byte (bit 0 = ready) that starts every read from the chip (address 0x24).
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from chargerfw.drivers.readers.base import (
    ChecksumError,
    FrameError,
    MalformedFrame,
    PollingReader,
    ReaderError,
    ReaderUnavailable,
    TruncatedFrame,
)
from chargerfw.drivers.readers.serialport import close_quietly, open_serial, write_all

HOST_TO_PN532 = 0xD4
PN532_TO_HOST = 0xD5
ERROR_TFI = 0x7F
ACK_FRAME = bytes([0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00])
NACK_FRAME = bytes([0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00])
ERROR_FRAME = bytes([0x00, 0x00, 0xFF, 0x01, 0xFF, ERROR_TFI, 0x81, 0x00])
_START_CODE = b"\x00\xff"

CMD_GET_FIRMWARE_VERSION = 0x02
CMD_SAM_CONFIGURATION = 0x14
CMD_RF_CONFIGURATION = 0x32
CMD_IN_LIST_PASSIVE_TARGET = 0x4A

# SAMConfiguration: normal mode (no SAM), timeout 0x14 x 50 ms (virtual card mode only), use IRQ.
SAM_NORMAL_MODE = bytes([0x01, 0x14, 0x01])
# RFConfiguration item 5 (MaxRetries): MxRtyATR, MxRtyPSL, MxRtyPassiveActivation. 0xFF for the
# last would make InListPassiveTarget wait for a card forever; one retry makes it a quick poll.
RF_MAX_RETRIES_ONE_SHOT = bytes([0x05, 0xFF, 0x01, 0x01])
# InListPassiveTarget: at most 1 target, 106 kbps type A.
LIST_ONE_TYPE_A = bytes([0x01, 0x00])

# HSU wake-up from power-down: 0x55 then a long preamble of zeros before the first command.
UART_WAKEUP = bytes([0x55, 0x55]) + bytes(14)
DEFAULT_UART_BAUDRATE = 115200
DEFAULT_I2C_ADDRESS = 0x24
I2C_READY = 0x01


@dataclass(frozen=True, slots=True)
class Pn532Ack:
    pass


@dataclass(frozen=True, slots=True)
class Pn532Nack:
    pass


@dataclass(frozen=True, slots=True)
class Pn532ErrorFrame:
    """The chip's application level error frame (syntax error in the host's frame)."""


@dataclass(frozen=True, slots=True)
class Pn532InfoFrame:
    tfi: int
    data: bytes  # command code and parameters


Pn532Frame = Pn532Ack | Pn532Nack | Pn532ErrorFrame | Pn532InfoFrame


class Pn532NoReply(FrameError):
    """The frame expected from the PN532 did not arrive in time."""


class Pn532CommandError(FrameError):
    """The PN532 refused a command (NACK, error frame) or answered another one."""


def encode_pn532_frame(data: bytes, tfi: int = HOST_TO_PN532) -> bytes:
    """An information frame carrying ``data`` (command code + parameters) after ``tfi``."""
    body = bytes([tfi]) + data
    dcs = -sum(body) & 0xFF
    if len(body) <= 0xFF:
        header = bytes([len(body), -len(body) & 0xFF])
    elif len(body) <= 0xFFFF:
        lenm, lenl = len(body) >> 8, len(body) & 0xFF
        header = bytes([0xFF, 0xFF, lenm, lenl, -(lenm + lenl) & 0xFF])
    else:
        raise ValueError(f"a PN532 frame carries at most 65535 bytes, got {len(body)}")
    return b"\x00" + _START_CODE + header + body + bytes([dcs, 0x00])


def decode_pn532_frame(buffer: bytes) -> tuple[Pn532Frame, int]:
    """The first frame in ``buffer`` and the number of bytes it used (including bytes before
    its start code, such as the preamble or wake-up bytes).

    Raises :class:`TruncatedFrame` when more bytes are needed, :class:`ChecksumError` for a
    wrong length or data checksum and :class:`MalformedFrame` for anything else.
    """
    start = buffer.find(_START_CODE)
    if start < 0:
        raise TruncatedFrame(f"no PN532 start code in {len(buffer)} bytes")
    pos = start + 2
    if len(buffer) < pos + 2:
        raise TruncatedFrame("PN532 frame ends before its length")
    length, lcs = buffer[pos], buffer[pos + 1]
    if (length, lcs) in ((0x00, 0xFF), (0xFF, 0x00)):  # ACK / NACK
        if len(buffer) < pos + 3:
            raise TruncatedFrame("PN532 ACK/NACK ends before its postamble")
        if buffer[pos + 2] != 0x00:
            raise MalformedFrame(f"PN532 ACK/NACK postamble is {buffer[pos + 2]:02X}, not 00")
        return (Pn532Ack() if length == 0 else Pn532Nack()), pos + 3
    if (length, lcs) == (0xFF, 0xFF):  # extended frame
        if len(buffer) < pos + 5:
            raise TruncatedFrame("PN532 extended frame ends before its length")
        lenm, lenl, lcs = buffer[pos + 2], buffer[pos + 3], buffer[pos + 4]
        if (lenm + lenl + lcs) & 0xFF:
            raise ChecksumError(f"PN532 extended length checksum {lcs:02X} wrong for {lenm:02X}{lenl:02X}")
        length, pos = (lenm << 8) | lenl, pos + 5
    else:
        if (length + lcs) & 0xFF:
            raise ChecksumError(f"PN532 length checksum {lcs:02X} wrong for length {length}")
        pos += 2
    if length == 0:
        raise MalformedFrame("PN532 information frame with no TFI")
    if len(buffer) < pos + length + 2:
        raise TruncatedFrame(f"PN532 frame has {max(0, len(buffer) - pos)} of {length + 2} bytes after its header")
    body = buffer[pos:pos + length]
    dcs = buffer[pos + length]
    if (sum(body) + dcs) & 0xFF:
        raise ChecksumError(f"PN532 data checksum {dcs:02X} wrong")
    if buffer[pos + length + 1] != 0x00:
        raise MalformedFrame(f"PN532 postamble is {buffer[pos + length + 1]:02X}, not 00")
    used = pos + length + 2
    tfi = body[0]
    if tfi == ERROR_TFI and length == 1:
        return Pn532ErrorFrame(), used
    if tfi not in (HOST_TO_PN532, PN532_TO_HOST):
        raise MalformedFrame(f"PN532 frame identifier {tfi:02X} is neither D4 nor D5")
    return Pn532InfoFrame(tfi=tfi, data=bytes(body[1:])), used


def parse_in_list_passive_target(params: bytes) -> bytes | None:
    """The UID in an InListPassiveTarget (106 kbps type A) reply, None if no target.

    ``params`` follow the reply code 4B: NbTg, Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1..
    """
    if not params:
        raise MalformedFrame("InListPassiveTarget reply without NbTg")
    if params[0] == 0:
        return None
    if len(params) < 6:
        raise MalformedFrame(f"InListPassiveTarget reply too short: {params.hex(' ')}")
    uid_length = params[5]
    uid = params[6:6 + uid_length]
    if uid_length not in (4, 7, 10) or len(uid) != uid_length:
        raise MalformedFrame(f"InListPassiveTarget reply with bad UID length {uid_length}: {params.hex(' ')}")
    return bytes(uid)


class Pn532Link(abc.ABC):
    """Moves frames between host and chip; blocking (the reader runs it in a worker thread)."""

    description: str

    @abc.abstractmethod
    def open(self) -> None:
        """Open the bus; :class:`ReaderUnavailable` if it is not there."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def write_frame(self, frame: bytes) -> None: ...

    @abc.abstractmethod
    def read_frame(self, timeout_s: float, max_length: int) -> Pn532Frame:
        """The next frame; :class:`Pn532NoReply` if none in time, :class:`FrameError` if bad,
        :class:`ReaderUnavailable` if the bus fails."""

    def wake(self) -> None:  # noqa: B027 - nothing to do on most links
        """Wake the chip from power-down before the first command."""

    def discard_input(self) -> None:  # noqa: B027
        """After an error: drop what is left of a bad exchange so it cannot answer the next."""


class Pn532UartLink(Pn532Link):
    """PN532 HSU on a serial port (115200 8N1 by default)."""

    def __init__(self, port: str, baudrate: int = DEFAULT_UART_BAUDRATE) -> None:
        self.port = port
        self.baudrate = baudrate
        self.description = f"pn532-uart:{port}"
        self._serial: serial.Serial | None = None
        self._pending = bytearray()

    def open(self) -> None:
        self._serial = open_serial(self.port, self.baudrate, timeout_s=0.02)
        self._pending.clear()

    def close(self) -> None:
        port, self._serial = self._serial, None
        close_quietly(port)

    def wake(self) -> None:
        self._write(UART_WAKEUP)

    def write_frame(self, frame: bytes) -> None:
        self._write(frame)

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            raise ReaderUnavailable(f"{self.description} is not open")
        write_all(self._serial, data)

    def _read_available(self) -> bytes:
        if self._serial is None:
            raise ReaderUnavailable(f"{self.description} is not open")
        try:
            data = self._serial.read(max(1, self._serial.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise ReaderUnavailable(f"{self.description}: {exc}") from exc
        return data

    def read_frame(self, timeout_s: float, max_length: int) -> Pn532Frame:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._pending:
                try:
                    frame, used = decode_pn532_frame(bytes(self._pending))
                except TruncatedFrame:
                    pass
                except FrameError:
                    self._pending.clear()
                    raise
                else:
                    del self._pending[:used]
                    return frame
            if time.monotonic() >= deadline:
                partial, self._pending = bytes(self._pending), bytearray()
                if partial.strip(b"\x00"):
                    raise TruncatedFrame(f"PN532 frame incomplete after {timeout_s}s: {partial.hex(' ')}")
                raise Pn532NoReply(f"no frame from {self.description} in {timeout_s}s")
            self._pending += self._read_available()

    def discard_input(self) -> None:
        # Read until the line has been quiet for a while (bounded), then forget it all.
        deadline = time.monotonic() + 0.5
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.05:
            if self._read_available():
                quiet_since = time.monotonic()
        self._pending.clear()


class Pn532I2cLink(Pn532Link):
    """PN532 on an I2C bus through smbus2's combined transactions (``i2c_rdwr``).

    ``smbus_factory`` builds the bus object from the bus number (``smbus2.SMBus`` by default;
    tests pass a simulated chip with the same ``i2c_rdwr``/``close`` methods).
    """

    def __init__(self, bus: int = 1, address: int = DEFAULT_I2C_ADDRESS, *,
                 smbus_factory: Callable[[int], Any] | None = None,
                 status_poll_interval_s: float = 0.002) -> None:
        self.bus_number = bus
        self.address = address
        self.description = f"pn532-i2c:{bus}:{address:#04x}"
        self._smbus_factory = smbus_factory
        self._poll_s = status_poll_interval_s
        self._bus: Any = None

    def open(self) -> None:
        from smbus2 import SMBus

        factory = self._smbus_factory or SMBus
        try:
            self._bus = factory(self.bus_number)
        except (OSError, ValueError) as exc:
            raise ReaderUnavailable(f"cannot open I2C bus {self.bus_number}: {exc}") from exc

    def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            try:
                bus.close()
            except OSError:
                pass

    def _read(self, length: int) -> bytes:
        from smbus2 import i2c_msg

        msg = i2c_msg.read(self.address, length)
        self._transfer(msg)
        return bytes(msg)

    def _transfer(self, msg: Any) -> None:
        if self._bus is None:
            raise ReaderUnavailable(f"{self.description} is not open")
        try:
            self._bus.i2c_rdwr(msg)
        except OSError as exc:  # EREMOTEIO: no device answered its address
            raise ReaderUnavailable(f"{self.description}: {exc}") from exc

    def write_frame(self, frame: bytes) -> None:
        from smbus2 import i2c_msg

        self._transfer(i2c_msg.write(self.address, frame))

    def read_frame(self, timeout_s: float, max_length: int) -> Pn532Frame:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self._read(1)[0]
            if status & I2C_READY:
                # Every read starts with the status byte again; the frame follows it.
                data = self._read(1 + max_length)
                if data[0] & I2C_READY:
                    frame, _used = decode_pn532_frame(data[1:])
                    return frame
            if time.monotonic() >= deadline:
                raise Pn532NoReply(f"{self.description} not ready within {timeout_s}s")
            time.sleep(self._poll_s)


ACK_READ_LENGTH = len(ACK_FRAME)
REPLY_READ_LENGTH = 64


def pn532_command(link: Pn532Link, command: int, params: bytes = b"", *,
                  timeout_s: float = 0.5) -> bytes:
    """Send one command, wait up to ``timeout_s`` each for ACK and reply; the reply's
    parameters (after the reply code)."""
    try:
        link.write_frame(encode_pn532_frame(bytes([command]) + params))
        ack = link.read_frame(timeout_s, ACK_READ_LENGTH)
        if not isinstance(ack, Pn532Ack):
            raise Pn532CommandError(f"PN532 answered command {command:02X} with {ack} instead of ACK")
        reply = link.read_frame(timeout_s, REPLY_READ_LENGTH)
        if isinstance(reply, Pn532ErrorFrame):
            raise Pn532CommandError(f"PN532 reported an error for command {command:02X}")
        if (not isinstance(reply, Pn532InfoFrame) or reply.tfi != PN532_TO_HOST
                or not reply.data or reply.data[0] != command + 1):
            raise Pn532CommandError(f"PN532 sent {reply} for command {command:02X}")
        return reply.data[1:]
    except FrameError:
        link.discard_input()
        raise


class Pn532Reader(PollingReader):
    """A PN532 polled with InListPassiveTarget over any :class:`Pn532Link`."""

    def __init__(self, link: Pn532Link, *, name: str | None = None, poll_interval_s: float = 0.2,
                 reply_timeout_s: float = 0.5, missed_replies_before_lost: int = 2,
                 retry_initial_s: float = 0.5, retry_max_s: float = 10.0) -> None:
        super().__init__(name or link.description, poll_interval_s=poll_interval_s,
                         retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        self._link = link
        self._reply_timeout_s = reply_timeout_s
        self._missed_limit = missed_replies_before_lost
        self._missed = 0

    def _open_sync(self) -> None:
        self._link.open()
        try:
            self._link.wake()
            pn532_command(self._link, CMD_SAM_CONFIGURATION, SAM_NORMAL_MODE,
                          timeout_s=self._reply_timeout_s)
            pn532_command(self._link, CMD_RF_CONFIGURATION, RF_MAX_RETRIES_ONE_SHOT,
                          timeout_s=self._reply_timeout_s)
        except ReaderError as exc:
            self._link.close()
            raise ReaderUnavailable(f"{self._link.description} did not configure: {exc}") from exc
        self._missed = 0

    async def _open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    async def _close(self) -> None:
        await asyncio.to_thread(self._link.close)

    def _read_uid_sync(self) -> bytes | None:
        try:
            params = pn532_command(self._link, CMD_IN_LIST_PASSIVE_TARGET, LIST_ONE_TYPE_A,
                                   timeout_s=self._reply_timeout_s)
        except Pn532NoReply as exc:
            self._missed += 1
            if self._missed >= self._missed_limit:
                raise ReaderUnavailable(f"{self._link.description}: {self._missed} replies missed") from exc
            raise
        self._missed = 0
        return parse_in_list_passive_target(params)

    async def _read_uid(self) -> bytes | None:
        return await asyncio.to_thread(self._read_uid_sync)
