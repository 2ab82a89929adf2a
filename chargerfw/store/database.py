"""The one SQLite connection every part of the store shares, its transactions and its migrations.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so every commit is fsynced
to the WAL before :mod:`sqlite3` returns. Writes that are cheap to lose (cache entries, the frame
log) run with ``synchronous=NORMAL`` for that one commit (``tx(durable=False)``): they survive a
process crash, and after a power cut they are at worst rolled back, never torn. The next FULL
commit fsyncs them too.

Every change runs in one SQLite transaction (:meth:`Database.tx`), so bad input raises before or
rolls back with nothing stored.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from chargerfw.logs import get_logger
from chargerfw.store.records import StoreError
from chargerfw.store.schema import MIGRATIONS

log = get_logger(__name__)


class Database:
    """One connection behind a lock: thread-safe, and every call is short and synchronous (a
    FULL commit costs one fsync of the WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # isolation_level=None: we issue BEGIN ourselves so a `with tx()` block is exactly one
        # SQLite transaction (BEGIN IMMEDIATE takes the write lock up front).
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads, held by this thread until the block ends."""
        with self._lock:
            yield self._conn

    @contextlib.contextmanager
    def tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction: committed on success, rolled back on any exception."""
        with self._lock:
            if not durable:
                self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # also a COMMIT that failed (disk full, I/O)
                        self._conn.execute("ROLLBACK")
                    raise
            finally:
                if not durable:
                    self._conn.execute("PRAGMA synchronous=FULL")

    def backup(self, target: str | Path) -> None:
        """A consistent copy of the whole database at ``target`` (SQLite's online backup),
        fsynced before it is renamed into place."""
        target = Path(target)
        temporary = target.with_name(target.name + ".tmp")
        temporary.unlink(missing_ok=True)
        copy = sqlite3.connect(str(temporary))
        try:
            with self._lock:
                self._conn.backup(copy)
        finally:
            copy.close()
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this firmware "
                    f"({len(MIGRATIONS)}); refusing to touch it"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                # executescript commits first; run the statements inside one transaction so a
                # crash mid-migration leaves the old version intact.
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in script.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version={number}")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                log.info("store.migrated", path=str(self.path), version=number)
