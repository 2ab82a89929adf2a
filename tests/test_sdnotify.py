"""sd_notify over a real Unix datagram socket, as systemd listens."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from chargerfw.sdnotify import SystemdNotifier


def listening_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    return sock


def test_ready_and_stopping_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with listening_socket(path) as sock:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
        notifier.ready("booted")
        assert sock.recv(256) == b"READY=1\nSTATUS=booted"
        notifier.stopping()
        assert sock.recv(256) == b"STOPPING=1"


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_watchdog_is_only_for_our_pid(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "2000000"}
    assert SystemdNotifier(env).watchdog_interval_s == 2.0
    assert SystemdNotifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval_s is None


async def test_watchdog_fed_from_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with listening_socket(path) as sock:
        sock.setblocking(False)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"})
        feeder = asyncio.create_task(notifier.feed_watchdog_forever())
        await asyncio.sleep(0.18)
        feeder.cancel()
        pings = []
        while True:
            try:
                pings.append(sock.recv(64))
            except BlockingIOError:
                break
        # Interval 100 ms, fed every 50 ms: about four pings in 180 ms.
        assert pings and set(pings) == {b"WATCHDOG=1"} and 3 <= len(pings) <= 5
