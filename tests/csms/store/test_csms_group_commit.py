"""Group commit: ``AsyncStore`` runs the calls queued together in one database transaction
and answers each only after it committed; a call that fails gets its own outcome, as if it
had run alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from csms_doubles import ACCEPTED, add_test_charger
from sqlalchemy.engine import Engine

from chargerfw.csms.store import (
    AlreadyExists,
    AsyncStore,
    ConnectorSpec,
    EvseSpec,
    StartRequest,
    Store,
    StoreError,
)
from chargerfw.csms.store.store_engine import Group
from chargerfw.csms.tables import charge_point_events, transactions

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


class _Commits:
    def __init__(self, engine: Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "commit", self._commit)

    def _commit(self, _connection: Any) -> None:
        self.count += 1


async def _queued_together(db: AsyncStore, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` as one group: the worker is held busy until all of them are queued."""
    gate = threading.Event()
    held = asyncio.ensure_future(db(gate.wait, 10))
    await asyncio.sleep(0.05)  # the worker took the gate call and waits in it
    results = [asyncio.ensure_future(db(call)) for call in calls]
    await asyncio.sleep(0.05)  # all queued
    gate.set()
    await held
    return list(await asyncio.gather(*results, return_exceptions=True))


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


async def test_calls_queued_together_commit_once_each_with_its_own_outcome(
        store: Store) -> None:
    for n in range(3):
        add_test_charger(store, f"CP{n}", None, location_id=f"LOC{n}")
    db = AsyncStore(store)
    commits = _Commits(store.engine)
    try:
        starts = [lambda n=n: store.start_transaction(
            StartRequest(f"CP{n}", 1, "TAG1", 100 * n, T0), ACCEPTED) for n in range(3)]
        evse = EvseSpec("X-1", 1, [ConnectorSpec("1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE",
                                                 400, 32)])
        refused = lambda: store.add_charge_point("CPX", None, None, [evse])  # noqa: E731
        before = commits.count
        results = await _queued_together(db, [starts[0], refused, starts[1], starts[2]])
        # The four calls' group and the gate's (on SQLite; nothing to commit on
        # PostgreSQL): not one commit per call.
        assert commits.count - before <= 2
    finally:
        db.close()
    assert isinstance(results[1], StoreError) and "need a location" in str(results[1])
    opened = [results[0], results[2], results[3]]
    assert all(created for _, created in opened)
    assert [row["meter_start"] for row, _ in opened] == [0, 100, 200]
    # Answered after the commit: another connection sees every started transaction.
    assert _count(store.engine, transactions) == 3


async def test_a_refused_write_fails_its_call_alone(store: Store) -> None:
    add_test_charger(store, "CP1", None)
    db = AsyncStore(store)
    try:
        results = await _queued_together(db, [
            lambda: store.start_transaction(StartRequest("CP1", 1, "TAG1", 5, T0), ACCEPTED),
            lambda: add_test_charger(store, "CP1", None),  # exists: refused in its transaction
            lambda: store.record_charge_point_event("CP1", "Kept", {})])
    finally:
        db.close()
    assert results[0][1] is True and isinstance(results[1], AlreadyExists)
    assert isinstance(results[2], int)
    assert _count(store.engine, transactions) == 1
    assert _count(store.engine, charge_point_events) == 1


async def test_a_failing_call_rolls_back_only_its_own_failed_writes(store: Store) -> None:
    add_test_charger(store, "CP1", None)
    db = AsyncStore(store)

    def event(kind: str) -> None:
        store.record_charge_point_event("CP1", kind, {})

    def writes_then_fails() -> None:
        with store.store_engine.begin() as c:
            c.execute(charge_point_events.insert().values(
                charge_point_id="CP1", at=T0, kind="Lost", data={}))
            raise RuntimeError("half way")

    def fails_to_read() -> None:
        # PostgreSQL aborts the whole transaction at a failed statement: not the others'.
        with store.store_engine.connect() as c:
            c.execute(sa.text("SELECT * FROM no_such_table"))

    try:
        results = await _queued_together(db, [lambda: event("Kept1"), writes_then_fails,
                                              fails_to_read, lambda: event("Kept2")])
    finally:
        db.close()
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], RuntimeError) and str(results[1]) == "half way"
    assert isinstance(results[2], sa.exc.ProgrammingError | sa.exc.OperationalError)
    with store.engine.connect() as c:
        kinds = c.execute(sa.select(charge_point_events.c.kind).order_by(
            charge_point_events.c.id)).scalars().all()
    assert kinds == ["Kept1", "Kept2"]


async def test_a_group_that_cannot_commit_runs_each_call_again_alone(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_test_charger(store, "CP1", None)
    db = AsyncStore(store)
    real_commit = Group.commit
    failures = []

    def commit_fails_once(group: Group) -> None:
        if not failures:
            failures.append(1)
            raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))
        real_commit(group)

    monkeypatch.setattr(Group, "commit", commit_fails_once)
    try:
        results = await _queued_together(db, [
            lambda: store.start_transaction(StartRequest("CP1", 1, "TAG1", 5, T0), ACCEPTED),
            lambda: store.record_charge_point_event("CP1", "Kept", {})])
    finally:
        db.close()
    assert failures
    row, created = results[0]
    assert created and row["meter_start"] == 5
    # Nothing of the failed group stayed, nothing was stored twice.
    assert _count(store.engine, transactions) == 1
    assert _count(store.engine, charge_point_events) == 1


async def test_close_finishes_the_queued_calls(store: Store) -> None:
    add_test_charger(store, "CP1", None)
    db = AsyncStore(store)
    pending = [asyncio.ensure_future(db(store.record_charge_point_event, "CP1", f"E{n}", {}))
               for n in range(20)]
    await asyncio.sleep(0)  # each call is queued
    db.close()
    assert _count(store.engine, charge_point_events) == 20
    event_ids = await asyncio.gather(*pending)
    assert len(set(event_ids)) == 20


async def test_background_work_runs_after_the_queued_requests_in_its_own_commit(
        store: Store) -> None:
    db = AsyncStore(store, workers=1)  # the one that the gate holds
    commits = _Commits(store.engine)
    ran: list[str] = []

    def noting(name: str) -> Callable[[], str]:
        def call() -> str:
            with store.store_engine.begin() as c:  # a write: its group has to commit
                c.execute(sa.text("SELECT 1"))
            ran.append(name)
            return name
        return call

    try:
        gate = threading.Event()
        held = asyncio.ensure_future(db(gate.wait, 10))
        await asyncio.sleep(0.05)  # the worker waits in the gate call
        background = asyncio.ensure_future(db.background(noting("background")))
        requests = [asyncio.ensure_future(db(noting(f"request {n}"))) for n in (1, 2)]
        await asyncio.sleep(0.05)  # all queued, the background work first
        before = commits.count
        gate.set()
        await held
        assert await asyncio.gather(*requests) == ["request 1", "request 2"]
        assert await background == "background"
    finally:
        db.close()
    assert ran == ["request 1", "request 2", "background"]
    if store.engine.dialect.name == "sqlite":  # PostgreSQL commits nothing for a read
        assert commits.count - before >= 2  # the requests' group, then the background's


async def test_background_work_that_waited_too_long_runs_before_the_next_requests(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chargerfw.csms.store.facade.BACKGROUND_PATIENCE_S", 0.1)
    db = AsyncStore(store, workers=1)  # another worker would take "later" at once
    ran: list[str] = []
    try:
        first_gate, second_gate = threading.Event(), threading.Event()
        held = asyncio.ensure_future(db(first_gate.wait, 10))
        await asyncio.sleep(0.05)  # the worker waits in the first gate call
        background = asyncio.ensure_future(db.background(lambda: ran.append("background")))
        busy = asyncio.ensure_future(db(lambda: ran.append("busy") or second_gate.wait(10)))
        await asyncio.sleep(0.05)
        first_gate.set()
        await held
        await asyncio.sleep(0.05)  # the worker waits in the busy call; the background waits
        later = asyncio.ensure_future(db(lambda: ran.append("later")))
        await asyncio.sleep(0.15)  # more than the patience: it goes first now
        second_gate.set()
        await asyncio.gather(busy, background, later)
    finally:
        db.close()
    assert ran == ["busy", "background", "later"]


async def test_a_group_that_holds_the_database_long_is_logged_with_its_slowest_call(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from chargerfw.csms.store import facade
    from chargerfw.logs import capture_logs

    monkeypatch.setattr(facade, "SLOW_GROUP_S", 0.5)
    db = AsyncStore(store)
    try:
        with capture_logs() as logs:
            await db(lambda: None)
            assert [e for e in logs if e["event"] == "csms.db_group_slow"] == []

            def slow_read() -> None:
                store.list_charge_points()
                threading.Event().wait(0.6)

            await db(slow_read)
        slow = [e for e in logs if e["event"] == "csms.db_group_slow"]
        assert len(slow) == 1 and slow[0]["calls"] == 1
        assert slow[0]["slowest_call"].endswith("slow_read") and slow[0]["slowest_ms"] >= 600
    finally:
        db.close()
