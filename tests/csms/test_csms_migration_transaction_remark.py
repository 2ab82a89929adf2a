"""Migration 0016_transaction_remark: starts the backend refused, left open by earlier
versions, are closed where they began; accepted ones stay as they are."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from migration_steps import migrate, revision_before

from chargerfw.csms.db import create_db_engine

REVISION = "0016_transaction_remark"


def test_refused_starts_left_open_are_closed_and_accepted_ones_kept(empty_db: str) -> None:
    engine = create_db_engine(empty_db)
    try:
        before = revision_before(REVISION)

        migrate(engine, "upgrade", before)
        started = datetime(2026, 3, 1, 10, 0, tzinfo=UTC).replace(tzinfo=None)
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO charge_points (id, auto_registered, created_at, "
                              "rfid_reader) VALUES ('CP1', false, :t, true)"), {"t": started})
            for n, status in ((1, "INVALID"), (2, "ACTIVE")):
                c.execute(sa.text(
                    "INSERT INTO transactions (id, session_id, idempotency_key, "
                    "charge_point_id, connector_id, id_tag, id_tag_status, auth_method, "
                    "meter_start, meter_last, start_time, status, currency, last_updated) "
                    "VALUES (:n, :s, :k, 'CP1', 1, 'TAG', :tag_status, 'AUTH_REQUEST', 500, "
                    "500, :t, :status, 'EUR', :t)"),
                    {"n": n, "s": f"session-{n}", "k": f"key-{n}", "status": status,
                     "tag_status": "Invalid" if status == "INVALID" else "Accepted",
                     "t": started})
        migrate(engine, "upgrade", REVISION)
        with engine.connect() as c:
            rows = {r.id: r for r in c.execute(sa.text(
                "SELECT id, stop_time, meter_stop, stop_reason, remark, open_at_boot "
                "FROM transactions"))}
        assert rows[1].stop_time is not None and rows[1].meter_stop == 500
        assert (rows[1].stop_reason, rows[1].remark) == ("DeAuthorized", "refused at start")
        assert rows[2].stop_time is None and rows[2].remark is None
        assert not rows[2].open_at_boot
        migrate(engine, "downgrade", before)
        with engine.connect() as c:
            columns = {col["name"] for col in sa.inspect(c).get_columns("transactions")}
        assert "remark" not in columns and "open_at_boot" not in columns
    finally:
        engine.dispose()
