"""Migration 0020_cdr_due: transactions stored before it are not due (their stop built their
CDR); a downgrade that would lose a due CDR is refused and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from migration_steps import migrate, old_schema_charger, revision_before

from chargerfw.csms.db import create_db_engine

REVISION = "0020_cdr_due"


def _columns(engine: sa.Engine) -> set[str]:
    with engine.connect() as c:
        return {col["name"] for col in sa.inspect(c).get_columns("transactions")}


def test_stored_transactions_are_not_due_and_a_due_cdr_blocks_the_downgrade(
        empty_db: str) -> None:
    engine = create_db_engine(empty_db)
    try:
        before = revision_before(REVISION)
        migrate(engine, "upgrade", before)
        old_schema_charger(engine, "CP1")
        when = datetime(2026, 3, 1, 10, 0, tzinfo=UTC).replace(tzinfo=None)
        with engine.begin() as c:
            c.execute(sa.text(
                "INSERT INTO transactions (id, session_id, idempotency_key, charge_point_id, "
                "connector_id, id_tag, id_tag_status, auth_method, meter_start, meter_last, "
                "meter_stop, start_time, stop_time, status, currency, last_updated) "
                "VALUES (1, 's-1', 'k-1', 'CP1', 1, 'TAG', 'Accepted', 'WHITELIST', 0, 10, 10, "
                ":t, :t, 'COMPLETED', 'EUR', :t)"), {"t": when})
        migrate(engine, "upgrade", REVISION)
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT cdr_due FROM transactions")).scalars().all() \
                == [False]
        with engine.begin() as c:
            c.execute(sa.text("UPDATE transactions SET cdr_due = true"))
        with pytest.raises(RuntimeError, match="1 transactions still wait for their CDR"):
            migrate(engine, "downgrade", before)
        assert "cdr_due" in _columns(engine)
        with engine.begin() as c:
            c.execute(sa.text("UPDATE transactions SET cdr_due = false"))
        migrate(engine, "downgrade", before)
        assert "cdr_due" not in _columns(engine)
    finally:
        engine.dispose()
