"""The engine as the store's aggregates use it, and group commit.

Aggregates open a transaction with ``begin()`` and read with ``connect()``, as on a SQLAlchemy
``Engine``. Normally each ``begin()`` is its own database transaction. A thread that runs a
group (:meth:`StoreEngine.group`, used by ``AsyncStore``) runs many store calls in one
database transaction, so one commit (one fsync) holds them all: there ``begin()`` is a
SAVEPOINT on the group's connection and ``connect()`` reads on that connection, so a failing
call rolls back what it would roll back alone and raises only to its own caller
(:meth:`Group.run`). Nothing of a group is durable before :meth:`Group.commit` returns.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")


class Group:
    """Store calls sharing one database transaction (see :meth:`StoreEngine.group`)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # PostgreSQL aborts the whole transaction at a failed statement (a read included):
        # each call runs in a savepoint of its own there. SQLite undoes only the failed
        # statement, and every write of a call is in a savepoint already (``begin``).
        self._savepoint_per_call = connection.dialect.name != "sqlite"

    def run(self, call: Callable[[], T]) -> T:
        """Run ``call``; what it wrote is kept (until the group commits) as it would be
        were it alone: each ``begin()`` block of it that fails is rolled back. A broken
        transaction (a lost connection, an error that made the database roll back the whole
        of it) raises ``GroupBroken``: the whole group is lost."""
        if not self._savepoint_per_call:
            try:
                result = call()
            except Exception:
                self._check_open()
                raise
            self._check_open()
            return result
        try:
            savepoint = self.connection.begin_nested()
        except Exception as exc:
            raise GroupBroken(exc) from exc
        try:
            result = call()
        except BaseException:
            try:
                savepoint.rollback()
            except Exception as exc:
                raise GroupBroken(exc) from exc
            raise
        try:
            savepoint.commit()
        except Exception as exc:
            raise GroupBroken(exc) from exc
        return result

    def _check_open(self) -> None:
        dbapi_connection = self.connection.connection.dbapi_connection
        if self.connection.invalidated or not getattr(dbapi_connection, "in_transaction",
                                                      True):
            raise GroupBroken("the group's transaction ended under it")

    def commit(self) -> None:
        self.connection.commit()


class GroupBroken(Exception):
    """The group's transaction cannot go on; none of its calls was committed."""


class StoreEngine:
    """``begin()`` and ``connect()`` over an engine, joining the group running on this
    thread if there is one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    def _group_connection(self) -> Connection | None:
        return getattr(self._local, "connection", None)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction (a savepoint inside a group) committed when the block ends without
        an exception, rolled back otherwise."""
        grouped = self._group_connection()
        if grouped is None:
            with self.engine.begin() as connection:
                yield connection
        else:
            with grouped.begin_nested():
                yield grouped

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection to read with (inside a group: the group's, seeing its changes)."""
        grouped = self._group_connection()
        if grouped is None:
            with self.engine.connect() as connection:
                yield connection
        else:
            yield grouped

    @contextlib.contextmanager
    def group(self) -> Iterator[Group]:
        """One database transaction for the store calls this thread runs through the
        yielded group. The caller commits it; leaving the block without a commit rolls back
        everything the group did."""
        if self._group_connection() is not None:
            raise RuntimeError("a group is already running on this thread")
        with self.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # The write lock up front: a deferred transaction that reads, then writes,
                # fails instead of waiting when another process wrote in between.
                # (pysqlite leaves a transaction we began to us, savepoints included.)
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            self._local.connection = connection
            try:
                yield Group(connection)
            finally:
                self._local.connection = None
