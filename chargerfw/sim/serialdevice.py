"""The device side of a simulated serial reader (for example one end of a socat pty pair),
served by its own thread so it works the same beside asyncio code, a test or the bench.
"""

from __future__ import annotations

import abc
import threading
from typing import Self

import serial


class SerialDeviceSimulator(abc.ABC):
    """Opens ``port`` at once; :meth:`start` runs :meth:`_serve_once` in a loop on a daemon
    thread until :meth:`close`. If the port goes away the loop ends and ``error`` says why."""

    def __init__(self, port: str, *, baudrate: int, read_timeout_s: float, name: str) -> None:
        self._serial = serial.Serial(port=port, baudrate=baudrate, timeout=read_timeout_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-{port}", daemon=True)
        self.error: Exception | None = None

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            self._serial.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abc.abstractmethod
    def _serve_once(self) -> None:
        """One turn of the device: answer what arrived, or send what it sends unasked. Must
        return within a short time (a read timeout or ``self._stop.wait``) so close() works."""

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._serve_once()
        except (serial.SerialException, OSError) as exc:
            self.error = exc
