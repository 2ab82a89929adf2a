"""Device-side PN532 simulators: the chip's command handling (:class:`Pn532Emulator`), served
over a serial port (:class:`Pn532UartSimulator`, e.g. one end of a socat pty pair) or as an
smbus2-like bus object (:class:`Pn532I2cBusSimulator`) that a :class:`Pn532I2cLink` can use.

Faults can be injected into the next reply: a bad data or length checksum, a truncated frame,
no reply, the chip's error frame, a reply split into pieces.
"""

from __future__ import annotations

import ctypes
import enum
import threading
import time
from collections import deque
from typing import Any

from chargerfw.drivers.readers.base import FrameError, TruncatedFrame, id_tag_to_uid
from chargerfw.drivers.readers.pn532 import (
    ACK_FRAME,
    CMD_GET_FIRMWARE_VERSION,
    CMD_IN_LIST_PASSIVE_TARGET,
    CMD_RF_CONFIGURATION,
    CMD_SAM_CONFIGURATION,
    DEFAULT_I2C_ADDRESS,
    DEFAULT_UART_BAUDRATE,
    ERROR_FRAME,
    HOST_TO_PN532,
    PN532_TO_HOST,
    Pn532InfoFrame,
    decode_pn532_frame,
    encode_pn532_frame,
)
from chargerfw.sim.serialdevice import SerialDeviceSimulator


class Pn532Fault(enum.Enum):
    BAD_DATA_CHECKSUM = "bad_data_checksum"
    BAD_LENGTH_CHECKSUM = "bad_length_checksum"
    TRUNCATED = "truncated"  # the reply stops half-way
    NO_REPLY = "no_reply"  # ACK, then nothing
    ERROR_FRAME = "error_frame"  # the chip's application error frame instead of the reply
    SPLIT = "split"  # the reply arrives in several pieces (UART only)


class Pn532Emulator:
    """The PN532's side of the host protocol with one ISO 14443A card slot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uid: bytes | None = None
        self._faults: deque[Pn532Fault] = deque()
        self._inbox = bytearray()
        self.sam_configured = False
        self.commands: list[int] = []  # every command code received, in order
        self.host_frame_errors: list[FrameError] = []

    def present(self, uid_hex: str) -> None:
        uid = id_tag_to_uid(uid_hex)
        if len(uid) not in (4, 7, 10):
            raise ValueError(f"an ISO 14443A UID has 4, 7 or 10 bytes, got {len(uid)}")
        with self._lock:
            self._uid = uid

    def remove(self) -> None:
        with self._lock:
            self._uid = None

    def inject(self, *faults: Pn532Fault) -> None:
        """Spoil the next replies, one fault per reply."""
        with self._lock:
            self._faults.extend(faults)

    def take_fault(self) -> Pn532Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def receive(self, data: bytes) -> list[bytes]:
        """Feed bytes from the host; the frames to send back (ACK, reply) for each complete
        command. Wake-up bytes and preambles are skipped like the chip does."""
        self._inbox += data
        out: list[bytes] = []
        while True:
            try:
                frame, used = decode_pn532_frame(bytes(self._inbox))
            except TruncatedFrame:
                return out
            except FrameError as exc:  # the chip answers a bad frame with nothing
                self.host_frame_errors.append(exc)
                self._inbox.clear()
                return out
            del self._inbox[:used]
            if isinstance(frame, Pn532InfoFrame) and frame.tfi == HOST_TO_PN532 and frame.data:
                out.extend(self._command(frame.data[0], frame.data[1:]))

    def _command(self, code: int, params: bytes) -> list[bytes]:
        self.commands.append(code)
        fault = self.take_fault()
        if fault is Pn532Fault.NO_REPLY:
            return [ACK_FRAME]
        if fault is Pn532Fault.ERROR_FRAME:
            return [ACK_FRAME, ERROR_FRAME]
        reply = self._reply(code, params)
        if reply is None:
            return [ACK_FRAME, ERROR_FRAME]
        frame = bytearray(encode_pn532_frame(bytes([code + 1]) + reply, tfi=PN532_TO_HOST))
        if fault is Pn532Fault.BAD_DATA_CHECKSUM:
            frame[-2] ^= 0x5A
        elif fault is Pn532Fault.BAD_LENGTH_CHECKSUM:
            frame[4] ^= 0x01
        elif fault is Pn532Fault.TRUNCATED:
            del frame[len(frame) // 2:]
        if fault is Pn532Fault.SPLIT:
            cut = [0, 2, 5, 9, len(frame)]
            return [ACK_FRAME] + [bytes(frame[a:b]) for a, b in zip(cut, cut[1:], strict=False) if a < b]
        return [ACK_FRAME, bytes(frame)]

    def _reply(self, code: int, params: bytes) -> bytes | None:
        if code == CMD_GET_FIRMWARE_VERSION:
            return bytes([0x32, 0x01, 0x06, 0x07])  # PN532 v1.6, ISO 14443A/B + ISO 18092
        if code == CMD_SAM_CONFIGURATION:
            if not params or params[0] not in (0x01, 0x02, 0x03, 0x04):
                return None
            self.sam_configured = True
            return b""
        if code == CMD_RF_CONFIGURATION:
            return b"" if params else None
        if code == CMD_IN_LIST_PASSIVE_TARGET:
            if not self.sam_configured or len(params) < 2 or params[1] != 0x00:
                return None
            with self._lock:
                uid = self._uid
            if uid is None:
                return b"\x00"
            sens_res = b"\x00\x04" if len(uid) == 4 else b"\x00\x44"
            return bytes([0x01, 0x01]) + sens_res + bytes([0x08, len(uid)]) + uid
        return None


class Pn532UartSimulator(SerialDeviceSimulator):
    """A PN532 answering on a serial port, in its own thread."""

    def __init__(self, port: str, *, baudrate: int = DEFAULT_UART_BAUDRATE,
                 emulator: Pn532Emulator | None = None, split_gap_s: float = 0.01) -> None:
        super().__init__(port, baudrate=baudrate, read_timeout_s=0.02, name="pn532-sim")
        self.chip = emulator or Pn532Emulator()
        self._split_gap_s = split_gap_s

    def _serve_once(self) -> None:
        data = self._serial.read(max(1, self._serial.in_waiting))
        if not data:
            return
        pieces = self.chip.receive(data)
        for i, piece in enumerate(pieces):
            if i > 1:  # pieces after ACK + first reply piece: a split reply
                time.sleep(self._split_gap_s)
            self._serial.write(piece)
            self._serial.flush()


class Pn532I2cBusSimulator:
    """An smbus2-like bus with a PN532 at ``address``: handles ``i2c_rdwr`` with smbus2
    ``i2c_msg`` objects. After each command the chip reports busy (status 0x00) for
    ``busy_reads`` status reads before each of its frames becomes readable."""

    def __init__(self, emulator: Pn532Emulator | None = None, *,
                 address: int = DEFAULT_I2C_ADDRESS, busy_reads: int = 2) -> None:
        self.chip = emulator or Pn532Emulator()
        self.address = address
        self.busy_reads = busy_reads
        self.present_on_bus = True  # False: the chip no longer answers its address
        self.status_reads = 0  # reads that found the chip busy
        self._outbox: deque[bytes] = deque()
        self._busy_left = 0
        self.closed = False

    def __call__(self, bus_number: int) -> Pn532I2cBusSimulator:
        """Stands in for ``smbus2.SMBus(bus_number)``."""
        if not self.present_on_bus:
            raise OSError(2, "No such file or directory")
        self.closed = False
        return self

    def close(self) -> None:
        self.closed = True

    def i2c_rdwr(self, *msgs: Any) -> None:
        from smbus2.smbus2 import I2C_M_RD

        for msg in msgs:
            if not self.present_on_bus or msg.addr != self.address:
                raise OSError(121, "Remote I/O error")
            if msg.flags & I2C_M_RD:
                self._fill(msg)
            else:
                pieces = self.chip.receive(bytes(msg))
                if len(pieces) > 2:  # a split reply is one frame on I2C
                    pieces = [pieces[0], b"".join(pieces[1:])]
                self._outbox.clear()
                self._outbox.extend(pieces)
                self._busy_left = self.busy_reads

    def _fill(self, msg: Any) -> None:
        if self._busy_left > 0 or not self._outbox:
            self._busy_left = max(0, self._busy_left - 1)
            self.status_reads += 1
            data = bytes(msg.len)  # status 0x00: not ready
        else:
            data = (b"\x01" + self._outbox[0]).ljust(msg.len, b"\x00")[: msg.len]
            if msg.len > 1:  # a read past the status byte takes the frame out
                self._outbox.popleft()
                self._busy_left = self.busy_reads if self._outbox else 0
        ctypes.memmove(msg.buf, data, msg.len)
