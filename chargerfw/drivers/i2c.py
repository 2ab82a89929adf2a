"""I2C buses: one :class:`I2cBus` over either a real ``smbus2.SMBus`` or a
:class:`SimulatedSmbus` with pluggable simulated devices.

Both raw buses speak the smbus2 method subset used here, so the byte order rules apply to both:
an SMBus word read returns the first byte on the wire as the *low* byte, while the chips here
(ADS1115, TMP102, LM75) send their 16-bit registers MSB first; :meth:`I2cBus.read_u16` swaps.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import Protocol


class I2cError(OSError):
    """A bus transfer that failed (no ACK, bus error, closed bus), naming address and register."""

    def __init__(self, bus: str, address: int, register: int, reason: str) -> None:
        self.bus, self.address, self.register, self.reason = bus, address, register, reason
        super().__init__(f"I2C {bus} 0x{address:02x} reg 0x{register:02x}: {reason}")


class RawSmbus(Protocol):
    """The part of ``smbus2.SMBus`` this package uses."""

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def close(self) -> None: ...


def swap16(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


class I2cBus:
    """A shared bus: one transfer at a time (pilot and temperature reads come from different
    threads), errors turned into :class:`I2cError`."""

    def __init__(self, raw: RawSmbus, name: str) -> None:
        self.raw = raw
        self.name = name
        self.lock = threading.RLock()

    def read_u16(self, address: int, register: int) -> int:
        """A big-endian 16-bit register (MSB first on the wire)."""
        with self.lock:
            try:
                return swap16(self.raw.read_word_data(address, register))
            except OSError as exc:
                raise I2cError(self.name, address, register, _reason(exc)) from exc

    def write_u16(self, address: int, register: int, value: int) -> None:
        """Write a big-endian 16-bit register."""
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"16-bit register value out of range: {value}")
        with self.lock:
            try:
                self.raw.write_word_data(address, register, swap16(value))
            except OSError as exc:
                raise I2cError(self.name, address, register, _reason(exc)) from exc

    def read_block(self, address: int, register: int, length: int) -> bytes:
        with self.lock:
            try:
                return bytes(self.raw.read_i2c_block_data(address, register, length))
            except OSError as exc:
                raise I2cError(self.name, address, register, _reason(exc)) from exc

    def close(self) -> None:
        with self.lock:
            self.raw.close()


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EREMOTEIO, errno.ENXIO, errno.EIO):
        return f"no acknowledge ({exc.strerror or exc})"
    return exc.strerror or str(exc)


def open_i2c_bus(number: int) -> I2cBus:
    """The real bus ``/dev/i2c-<number>`` through smbus2."""
    import smbus2  # imported here: only the Pi needs it at run time

    try:
        raw = smbus2.SMBus(number)
    except OSError as exc:
        raise I2cError(f"/dev/i2c-{number}", 0, 0, f"cannot open bus: {_reason(exc)}") from exc
    return I2cBus(raw, f"/dev/i2c-{number}")


class SimulatedI2cDevice(Protocol):
    """A simulated chip: registers as the bytes it sends/receives on the wire, in order."""

    def read_register(self, register: int, length: int) -> bytes: ...

    def write_register(self, register: int, data: bytes) -> None: ...


class SimulatedSmbus:
    """An smbus2-compatible bus in memory. Devices plug in at an address; an address with no
    device, or one made to fail, raises ``OSError(EREMOTEIO)`` like the kernel does."""

    def __init__(self) -> None:
        self.devices: dict[int, SimulatedI2cDevice] = {}
        self.failing: set[int] = set()
        self.closed = False
        self.on_transfer: Callable[[str, int, int], None] | None = None

    def attach(self, address: int, device: SimulatedI2cDevice) -> None:
        if address in self.devices:
            raise ValueError(f"address 0x{address:02x} already has a device")
        self.devices[address] = device

    def _device(self, address: int, register: int, kind: str) -> SimulatedI2cDevice:
        if self.closed:
            raise OSError(errno.EBADF, "bus closed")
        if self.on_transfer is not None:
            self.on_transfer(kind, address, register)
        device = self.devices.get(address)
        if device is None or address in self.failing:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return device

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        data = self._device(i2c_addr, register, "read_word").read_register(register, 2)
        return data[0] | (data[1] << 8)  # SMBus words are little-endian on the wire

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        device = self._device(i2c_addr, register, "write_word")
        device.write_register(register, bytes([value & 0xFF, (value >> 8) & 0xFF]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        return list(self._device(i2c_addr, register, "read_block").read_register(register, length))

    def close(self) -> None:
        self.closed = True
