"""CDRs built after the stop (``build_due_cdrs``): the stop only marks its transaction due, in
its own commit; the final Session and the CDR are built later, in small batches, exactly once
(also across a crash, a failed build, and processes sharing a PostgreSQL database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from csms_doubles import ACCEPTED, add_registered_partner, add_test_charger, make_tariff
from sqlalchemy.engine import Engine, RowMapping

from chargerfw.csms import billing
from chargerfw.csms.db import create_db_engine
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import AuthDecision, PageQuery, StartRequest, Store, ocpi_objects
from chargerfw.csms.tables import cdrs, session_objects, transactions

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _stopped(store: Store, connector_id: int = 1, wh: int = 5_000) -> RowMapping:
    tx, _ = store.start_transaction(StartRequest("CP1", connector_id, "TAG1", 0, T0), ACCEPTED)
    store.add_meter_values("CP1", connector_id, tx["id"], [billing.Sample(
        T0 + timedelta(minutes=10), billing.ENERGY_REGISTER, "", wh / 2)])
    row, stopped = store.stop_transaction("CP1", tx["id"], wh, T0 + timedelta(minutes=20),
                                          "Local")
    assert stopped and row is not None
    return row


def _due_ids(engine: Engine) -> list[int]:
    with engine.connect() as c:
        return list(c.execute(sa.select(transactions.c.id).where(
            transactions.c.cdr_due.is_(True)).order_by(transactions.c.id)).scalars())


def _pushes(store: Store) -> list[tuple[str, str, str]]:
    """(module, method, session id) of every queued session or CDR push, in queue order (a
    PATCH names its session in its URL only)."""
    return [(p["module"], p["method"], p["body"].get("id") or p["url"].rsplit("/", 1)[-1])
            for p in store.pushes() if p["module"] in ("sessions", "cdrs")]


def test_a_stop_leaves_its_cdr_due_and_the_build_completes_the_session(store: Store) -> None:
    store.add_tariff(make_tariff("T1", energy=0.30, time_h=0, flat=0, vat=0))
    add_test_charger(store, tariff_id="T1")
    partner = add_registered_partner(store)
    other = add_registered_partner(store, "http://other.invalid/ocpi", party_id="OTH")
    row = _stopped(store)
    # The stop's commit holds the mark, and nothing of the CDR yet.
    assert row["cdr_due"] and _due_ids(store.engine) == [row["id"]]
    assert store.list_cdrs(PageQuery()).total == 0
    assert _pushes(store) == [("sessions", "PUT", row["session_id"]),
                              ("sessions", "PATCH", row["session_id"])]
    assert store.build_due_cdrs() == 1
    assert _due_ids(store.engine) == [] and store.build_due_cdrs() == 0
    [cdr] = store.list_cdrs(PageQuery()).items
    assert m.CDR.model_validate(cdr).total_cost.excl_vat == Decimal("1.5")  # 5 kWh at 0.30
    # The final Session, then the CDR, to the token's partner only.
    final_pushes = store.pushes()[-2:]
    assert [(p["partner_id"], p["module"], p["method"]) for p in final_pushes] == [
        (partner, "sessions", "PUT"), (partner, "cdrs", "POST")]
    assert all(p["partner_id"] != other for p in store.pushes())
    assert final_pushes[0]["body"] == store.get_session(row["session_id"])
    assert final_pushes[0]["body"]["status"] == "COMPLETED"
    assert final_pushes[1]["body"] == cdr
    with store.engine.connect() as c:  # the kept Session is the one pushed
        kept = c.execute(sa.select(session_objects.c.data)).scalar_one()
    assert kept == final_pushes[0]["body"]


def test_the_session_is_rendered_once_for_the_push_and_the_kept_copy(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_test_charger(store)
    add_registered_partner(store)
    _stopped(store)
    renders: list[str] = []
    render = ocpi_objects.session_object

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        session = render(*args, **kwargs)
        renders.append(session["id"])
        return session

    monkeypatch.setattr(ocpi_objects, "session_object", counted)
    assert store.build_due_cdrs() == 1
    assert len(renders) == 1


def test_a_due_cdr_survives_a_crash_and_is_built_once(db: str) -> None:
    engine = create_db_engine(db)
    try:
        store = Store(engine)
        add_test_charger(store)
        add_registered_partner(store)
        row = _stopped(store)
    finally:
        engine.dispose()  # the process ends before any worker ran
    engine = create_db_engine(db)
    try:
        store = Store(engine)
        assert _due_ids(engine) == [row["id"]]
        assert store.build_due_cdrs() == 1
        assert store.build_due_cdrs() == 0
        with engine.connect() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(cdrs)).scalar() == 1
        assert [p for p in _pushes(store) if p[0] == "cdrs"] == [
            ("cdrs", "POST", row["session_id"])]
    finally:
        engine.dispose()


def test_a_failed_build_writes_nothing_and_is_built_later(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_test_charger(store, connectors=2)
    add_registered_partner(store)
    first, second = _stopped(store, 1), _stopped(store, 2)
    pushes_before = _pushes(store)
    cdr_object = ocpi_objects.cdr_object
    calls: list[int] = []

    def second_fails(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("pricing broke")
        return cdr_object(*args, **kwargs)

    monkeypatch.setattr(ocpi_objects, "cdr_object", second_fails)
    with pytest.raises(RuntimeError, match="pricing broke"):
        store.build_due_cdrs()
    assert _due_ids(store.engine) == [first["id"], second["id"]]
    assert store.list_cdrs(PageQuery()).total == 0 and _pushes(store) == pushes_before
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(session_objects)).scalar() == 0
    monkeypatch.setattr(ocpi_objects, "cdr_object", cdr_object)
    assert store.build_due_cdrs() == 2
    assert store.list_cdrs(PageQuery()).total == 2
    assert [p for p in _pushes(store) if p[0] == "cdrs"] == [
        ("cdrs", "POST", first["session_id"]), ("cdrs", "POST", second["session_id"])]


def test_due_cdrs_are_built_in_batches_oldest_first(store: Store) -> None:
    add_test_charger(store, connectors=3)
    stopped = [_stopped(store, n) for n in (1, 2, 3)]
    assert store.build_due_cdrs(limit=2) == 2
    assert _due_ids(store.engine) == [stopped[2]["id"]]
    assert store.build_due_cdrs(limit=2) == 1 and store.build_due_cdrs(limit=2) == 0
    assert store.list_cdrs(PageQuery()).total == 3


def test_only_a_session_completed_on_an_evse_gets_a_cdr(store: Store) -> None:
    add_test_charger(store)
    refused, _ = store.start_transaction(StartRequest("CP1", 1, "BAD", 0, T0),
                                         AuthDecision("Invalid", "AUTH_REQUEST"))
    # A charger without EVSE (not attached to a location): no OCPI session, no CDR.
    store.auto_register("LOOSE", None)
    loose, _ = store.start_transaction(StartRequest("LOOSE", 1, "TAG1", 0, T0), ACCEPTED)
    row, stopped = store.stop_transaction("LOOSE", loose["id"], 100, T0 + timedelta(hours=1),
                                          None)
    assert stopped and row is not None and row["evse_uid"] is None
    assert not refused["cdr_due"] and not row["cdr_due"]
    assert store.build_due_cdrs() == 0 and store.list_cdrs(PageQuery()).total == 0


# Row claims are PostgreSQL's: a SQLite database has one backend process.
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_cdr_claimed_by_another_process_is_skipped(store: Store) -> None:
    add_test_charger(store, connectors=2)
    first, second = _stopped(store, 1), _stopped(store, 2)
    with store.engine.connect() as other_process:
        # Another process is building the first one (its claim held until it commits).
        other_process.execute(sa.select(transactions.c.id).where(
            transactions.c.id == first["id"]).with_for_update())
        assert store.build_due_cdrs() == 1
        assert _due_ids(store.engine) == [first["id"]]
        other_process.rollback()
    assert store.build_due_cdrs() == 1
    assert {c["session_id"] for c in store.list_cdrs(PageQuery()).items} == {
        first["session_id"], second["session_id"]}
