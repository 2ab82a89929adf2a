"""Helpers that start real external parts for tests (socat pty pairs, ...).

Each helper starts its own process, waits until it is ready, and stops only that process
(by its pid) when the test is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PtyPair:
    """Two linked pseudo-terminals: bytes written to ``a`` come out of ``b`` and back."""

    a: str
    b: str
    pid: int


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Only the process this helper started, by its pid.
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


@contextlib.contextmanager
def socat_pty_pair(directory: str | os.PathLike[str] | None = None,
                   ready_timeout_s: float = 5.0) -> Iterator[PtyPair]:
    """Start ``socat`` with two raw ptys linked as ``<dir>/pty-a`` and ``<dir>/pty-b``.

    Yields once both links exist; stops the socat process (only that pid) on exit.
    Without ``directory`` a fresh temporary folder holds the links.
    """
    socat = shutil.which("socat")
    if socat is None:
        raise RuntimeError("socat is not installed (apt-get install socat)")
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="ptypair-"))
        link_a = Path(directory) / "pty-a"
        link_b = Path(directory) / "pty-b"
        # socat's -d -d notices go to a file, never a pipe nobody drains (a full or closed
        # pipe would block or kill it mid-test).
        log = stack.enter_context(tempfile.TemporaryFile(prefix="socat-log-"))
        proc = subprocess.Popen(
            [socat, "-d", "-d",
             f"pty,raw,echo=0,link={link_a}", f"pty,raw,echo=0,link={link_b}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        )
        stack.callback(_stop, proc)
        deadline = time.monotonic() + ready_timeout_s
        while not (link_a.exists() and link_b.exists()):
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise RuntimeError(f"socat exited with {proc.returncode}: {err.strip()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"socat did not create {link_a} and {link_b} in time")
            time.sleep(0.01)
        yield PtyPair(a=str(link_a), b=str(link_b), pid=proc.pid)
