"""Locks for what only one test may use at a time on this machine, whichever xdist worker or test
run it belongs to: a lock file under /tmp, taken with flock (the kernel drops it if the holder
dies). Nested blocks in one process share the hold."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_WAIT_S = 600.0
_held: dict[str, int] = {}  # name -> how deep this process holds it


@contextlib.contextmanager
def exclusive(name: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """``name`` is ours until the block ends; waits (polling) while another holds it."""
    if _held.get(name):
        _held[name] += 1
        try:
            yield
        finally:
            _held[name] -= 1
        return
    path = Path(f"/tmp/chargerfw-tests-{name}.lock")
    with open(path, "a") as lock:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another test kept {path} for {wait_s} s") from None
                time.sleep(0.1)
        _held[name] = 1
        try:
            yield
        finally:
            _held[name] = 0
            fcntl.flock(lock, fcntl.LOCK_UN)


# A build in the source tree (build/, *.egg-info) excludes only other builds in the same tree:
# checkouts elsewhere on the machine build in their own.
SOURCE_TREE_BUILD = "source-tree-build-" + hashlib.sha256(
    str(Path(__file__).resolve().parents[1]).encode()).hexdigest()[:12]
