"""systemd notification protocol (sd_notify) over $NOTIFY_SOCKET, without a dependency.

The station's watchdog is fed from the asyncio loop on purpose, and only while the safety monitor
is current: if either stalls, systemd restarts the service. Safety does not depend on this
(interlocks run on their own threads, or in the safety process).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable


class SystemdNotifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd; does nothing outside systemd."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = env.get("NOTIFY_SOCKET") or None
        if self._address and self._address.startswith("@"):
            self._address = "\0" + self._address[1:]  # abstract namespace socket
        watchdog_usec = env.get("WATCHDOG_USEC")
        watchdog_pid = env.get("WATCHDOG_PID")
        self.watchdog_interval_s: float | None = None
        if watchdog_usec and (not watchdog_pid or int(watchdog_pid) == os.getpid()):
            self.watchdog_interval_s = int(watchdog_usec) / 1e6

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str) -> bool:
        """Send one notification; return whether it went out."""
        if not self._address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(message.encode(), self._address)
            except OSError:
                return False
        return True

    def ready(self, status: str = "running") -> None:
        self.notify(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    async def feed_watchdog_forever(self, healthy: Callable[[], bool] = lambda: True) -> None:
        """Ping the watchdog at half its interval for as long as the loop runs and
        ``healthy()`` says the rest of the process is too (a ping it skips is left to
        systemd)."""
        import asyncio  # here: the safety process uses this module without an event loop

        if self.watchdog_interval_s is None or not self.enabled:
            return
        while True:
            if healthy():
                self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval_s / 2)
