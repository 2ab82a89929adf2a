"""The hardware lock: one process at a time drives the station's pins, buses and meter.

An advisory ``fcntl.flock`` on ``$CHARGERFW_RUNTIME_DIR/hardware.lock`` (default
``/run/chargerfw/hardware.lock``). The service takes it for its whole life; a CLI command that
drives hardware directly (``chargerfw test contactor`` with the service stopped, for example)
takes it for the length of the command. The holder writes ``pid owner`` into the file so a
refused caller can say who has the hardware.

flock, not a pid file: the kernel drops the lock when the holder dies (even by SIGKILL or a
power cut of the process), so a stale file never blocks anyone. flock conflicts between open
file descriptions, so two locks in one process also exclude each other (tests rely on it).
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

RUNTIME_DIR_ENV = "CHARGERFW_RUNTIME_DIR"
DEFAULT_RUNTIME_DIR = Path("/run/chargerfw")
LOCK_FILE_NAME = "hardware.lock"


def runtime_dir() -> Path:
    """The runtime directory: ``$CHARGERFW_RUNTIME_DIR`` or ``/run/chargerfw``."""
    return Path(os.environ.get(RUNTIME_DIR_ENV) or DEFAULT_RUNTIME_DIR)


def lock_path(directory: Path | None = None) -> Path:
    return (directory or runtime_dir()) / LOCK_FILE_NAME


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the lock, as the holder wrote it (pid None if unreadable)."""

    pid: int | None
    owner: str

    def describe(self) -> str:
        who = self.owner or "another process"
        return f"{who} (pid {self.pid})" if self.pid else who


class HardwareLockError(RuntimeError):
    """The lock cannot be taken at all (runtime directory missing and not creatable)."""


class HardwareBusy(HardwareLockError):
    """Another process holds the hardware lock."""

    def __init__(self, path: Path, holder: LockHolder | None) -> None:
        self.path = path
        self.holder = holder
        who = holder.describe() if holder else "another process"
        super().__init__(f"the hardware is in use by {who} (lock {path})")


def read_holder(path: Path | None = None) -> LockHolder | None:
    """What the current (or last) holder wrote; None if the file is missing or empty."""
    try:
        text = (path or lock_path()).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not text:
        return None
    pid_text, _, owner = text.partition(" ")
    return LockHolder(int(pid_text) if pid_text.isdigit() else None, owner.strip())


class OwnerLock:
    """An exclusive ``flock`` on ``path`` that records ``pid owner`` for whoever is refused.
    :meth:`acquire` raises at once (no waiting) if another holder has it; re-entrant use of one
    object is an error. Subclasses say what a refusal means (:meth:`busy_error`)."""

    what = "lock"  # for messages

    def __init__(self, owner: str, path: Path) -> None:
        self.owner = owner
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def busy_error(self, holder: LockHolder | None) -> Exception:
        who = holder.describe() if holder else "another process"
        return HardwareLockError(f"{self.path} is held by {who}")

    def acquire(self) -> None:
        if self._fd is not None:
            raise HardwareLockError(f"{self.path} is already held by this object")
        try:
            # 0o770: the service's group (technicians) may take it too; umask may narrow it.
            self.path.parent.mkdir(mode=0o770, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
        except OSError as exc:
            raise HardwareLockError(
                f"cannot open the {self.what} {self.path}: {exc.strerror} "
                f"(set {RUNTIME_DIR_ENV} or run as a user of the chargerfw group)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self.busy_error(read_holder(self.path)) from None
            raise HardwareLockError(f"cannot lock {self.path}: {exc.strerror}") from None
        # Ours now: say who we are for whoever is refused next.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.owner}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty file = nobody (the flock is what counts)
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> OwnerLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class HardwareLock(OwnerLock):
    """``with HardwareLock("chargerfw test contactor"):`` — raises :class:`HardwareBusy` at once
    (no waiting) if another process holds it. Re-entrant use of one object is an error."""

    what = "hardware lock"

    def __init__(self, owner: str, directory: Path | None = None) -> None:
        super().__init__(owner, lock_path(directory))

    def busy_error(self, holder: LockHolder | None) -> Exception:
        return HardwareBusy(self.path, holder)

    def __enter__(self) -> HardwareLock:
        self.acquire()
        return self


def is_locked(directory: Path | None = None) -> LockHolder | None:
    """If some process holds the lock now, who (without taking it); else None."""
    path = lock_path(directory)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return read_holder(path) or LockHolder(None, "")
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
