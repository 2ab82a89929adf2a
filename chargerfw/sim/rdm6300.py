"""Device-side RDM6300 simulator on a serial port (for example one end of a socat pty pair):
while a tag is present it writes the tag's frame every ``repeat_interval_s``, like the module.

Runs in its own thread so it works the same beside asyncio code, a test or the bench.
"""

from __future__ import annotations

import threading
import time

from chargerfw.drivers.readers.base import id_tag_to_uid
from chargerfw.drivers.readers.rdm6300 import DEFAULT_BAUDRATE, encode_rdm6300_frame
from chargerfw.sim.serialdevice import SerialDeviceSimulator


class Rdm6300Simulator(SerialDeviceSimulator):
    def __init__(self, port: str, *, baudrate: int = DEFAULT_BAUDRATE,
                 repeat_interval_s: float = 0.1) -> None:
        super().__init__(port, baudrate=baudrate, read_timeout_s=0.05, name="rdm6300-sim")
        self._repeat_interval_s = repeat_interval_s
        self._lock = threading.Lock()
        self._frame: bytes | None = None

    def present(self, uid_hex: str) -> None:
        """Put a tag (5 bytes as 10 hex digits) in the field."""
        frame = encode_rdm6300_frame(id_tag_to_uid(uid_hex))
        with self._lock:
            self._frame = frame

    def remove(self) -> None:
        with self._lock:
            self._frame = None

    def write_raw(self, data: bytes, *, pieces: int = 1, gap_s: float = 0.0) -> None:
        """Write bytes as given (corrupted or truncated frames), optionally split into
        ``pieces`` writes ``gap_s`` apart."""
        with self._lock:
            size = max(1, -(-len(data) // pieces))
            for offset in range(0, len(data), size):
                self._serial.write(data[offset:offset + size])
                self._serial.flush()
                if gap_s and offset + size < len(data):
                    time.sleep(gap_s)

    def _serve_once(self) -> None:
        with self._lock:
            if self._frame is not None:
                self._serial.write(self._frame)
                self._serial.flush()
        self._stop.wait(self._repeat_interval_s)
