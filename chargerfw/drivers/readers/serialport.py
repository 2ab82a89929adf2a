"""Serial port helpers shared by the UART readers (pyserial, blocking; callers run them in a
worker thread)."""

from __future__ import annotations

import serial

from chargerfw.drivers.readers.base import ReaderUnavailable


def open_serial(port: str, baudrate: int, timeout_s: float) -> serial.Serial:
    """Open ``port`` 8N1 without flow control; :class:`ReaderUnavailable` if it is not there."""
    try:
        return serial.Serial(port=port, baudrate=baudrate, bytesize=8, parity="N", stopbits=1,
                             timeout=timeout_s, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise ReaderUnavailable(f"cannot open {port}: {exc}") from exc


def read_some(port: serial.Serial, max_bytes: int = 256) -> bytes:
    """Wait up to the port timeout for input and return what arrived (maybe nothing)."""
    try:
        data = port.read(1)
        if data and port.in_waiting:
            data += port.read(min(port.in_waiting, max_bytes))
        return data
    except (serial.SerialException, OSError) as exc:
        raise ReaderUnavailable(f"{port.port}: {exc}") from exc


def write_all(port: serial.Serial, data: bytes) -> None:
    try:
        port.write(data)
        port.flush()
    except (serial.SerialException, OSError) as exc:
        raise ReaderUnavailable(f"{port.port}: {exc}") from exc


def close_quietly(port: serial.Serial | None) -> None:
    if port is not None:
        try:
            port.close()
        except (serial.SerialException, OSError):
            pass  # the device is already gone
