"""The engine as the store's aggregates use it, and group commit.

Aggregates open a transaction with ``begin()`` and read with ``connect()``, as on a SQLAlchemy
``Engine``. Normally each ``begin()`` is its own database transaction. A thread that runs a
group (:meth:`StoreEngine.group`, used by ``AsyncStore``) runs many store calls in one
database transaction, so one commit (one fsync) holds them all: there ``begin()`` and
``connect()`` use the group's connection. Nothing of a group is durable before
:meth:`Group.commit` returns.

A call that fails before it touches the database fails alone. An exception that leaves a
``begin()`` or ``connect()`` block inside a group (a refused write, a failed statement, which
PostgreSQL answers by aborting the whole transaction) breaks the group instead: what the
block did cannot be undone alone without a savepoint per block, which would cost more
statements than the commits the group saves. Its caller then rolls the group back and runs
each call again on its own (see ``AsyncStore``), where each gets the outcome it would have
had anyway. Failures are rare on the hot path, so a group is seldom run twice.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")


class GroupBroken(Exception):
    """The group's transaction cannot be committed as it is; none of its calls was."""


class Group:
    """Store calls sharing one database transaction (see :meth:`StoreEngine.group`)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.broken: BaseException | None = None

    def run(self, call: Callable[[], T]) -> T:
        """Run ``call`` in the group's transaction. Raises ``GroupBroken`` when the call
        left it in a state that cannot be committed (see the module's notes)."""
        try:
            result = call()
        except Exception:
            self._check()
            raise
        self._check()
        return result

    def _check(self) -> None:
        dbapi_connection = self.connection.connection.dbapi_connection
        if self.broken is None and (self.connection.invalidated or not getattr(
                dbapi_connection, "in_transaction", True)):
            self.broken = RuntimeError("the group's transaction ended under it")
        if self.broken is not None:
            raise GroupBroken(self.broken) from self.broken

    def commit(self) -> None:
        self.connection.commit()


class StoreEngine:
    """``begin()`` and ``connect()`` over an engine, joining the group running on this
    thread if there is one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    def _group(self) -> Group | None:
        return getattr(self._local, "group", None)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, committed when the block ends without an exception and rolled back
        otherwise (inside a group: part of the group's, which an exception breaks)."""
        group = self._group()
        if group is None:
            with self.engine.begin() as connection:
                yield connection
        else:
            with self._breaking(group):
                yield group.connection

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection to read with (inside a group: the group's, seeing its changes)."""
        group = self._group()
        if group is None:
            with self.engine.connect() as connection:
                yield connection
        else:
            with self._breaking(group):
                yield group.connection

    @staticmethod
    @contextlib.contextmanager
    def _breaking(group: Group) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            if group.broken is None:
                group.broken = exc
            raise

    @contextlib.contextmanager
    def group(self) -> Iterator[Group]:
        """One database transaction for the store calls this thread runs through the
        yielded group. The caller commits it; leaving the block without a commit rolls back
        everything the group did."""
        if self._group() is not None:
            raise RuntimeError("a group is already running on this thread")
        with self.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # The write lock up front: a deferred transaction that reads, then writes,
                # fails instead of waiting when another process wrote in between.
                # (pysqlite leaves a transaction we began to us.)
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            group = Group(connection)
            self._local.group = group
            try:
                yield group
            finally:
                self._local.group = None
