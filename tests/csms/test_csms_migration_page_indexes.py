"""Migration 0018_page_indexes: each CDR gets its transaction's token party (partners'
listings are scoped by it), the page indexes exist, and it downgrades cleanly."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from migration_steps import migrate, revision_before

from chargerfw.csms.db import create_db_engine

REVISION = "0018_page_indexes"


def test_cdrs_get_their_token_party_and_the_page_indexes_exist(empty_db: str) -> None:
    engine = create_db_engine(empty_db)
    try:
        before = revision_before(REVISION)

        migrate(engine, "upgrade", before)
        when = datetime(2026, 3, 1, 10, 0, tzinfo=UTC).replace(tzinfo=None)
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO charge_points (id, auto_registered, created_at, "
                              "rfid_reader) VALUES ('CP1', false, :t, true)"), {"t": when})
            for n, (cc, pid) in ((1, ("DE", "EMS")), (2, (None, None))):
                c.execute(sa.text(
                    "INSERT INTO transactions (id, session_id, idempotency_key, "
                    "charge_point_id, connector_id, id_tag, id_tag_status, auth_method, "
                    "meter_start, meter_last, start_time, status, currency, last_updated, "
                    "token_country_code, token_party_id) "
                    "VALUES (:n, :s, :k, 'CP1', 1, 'TAG', 'Accepted', 'WHITELIST', 0, 0, :t, "
                    "'COMPLETED', 'EUR', :t, :cc, :pid)"),
                    {"n": n, "s": f"session-{n}", "k": f"key-{n}", "t": when, "cc": cc,
                     "pid": pid})
                c.execute(sa.text("INSERT INTO cdrs (id, transaction_id, data, last_updated) "
                                  "VALUES (:id, :n, '{}', :t)"),
                          {"id": f"cdr-{n}", "n": n, "t": when})
        migrate(engine, "upgrade", REVISION)
        with engine.connect() as c:
            owners = {r.id: (r.token_country_code, r.token_party_id) for r in c.execute(
                sa.text("SELECT id, token_country_code, token_party_id FROM cdrs"))}
            inspector = sa.inspect(c)
            indexes = {i["name"] for table in ("transactions", "cdrs")
                       for i in inspector.get_indexes(table)}
            tables = set(inspector.get_table_names())
        assert owners == {"cdr-1": ("DE", "EMS"), "cdr-2": (None, None)}
        assert {"ix_transactions_owner_page", "ix_cdrs_owner_page"} <= indexes
        assert "session_objects" in tables
        migrate(engine, "downgrade", before)
        with engine.connect() as c:
            inspector = sa.inspect(c)
            columns = {col["name"] for col in inspector.get_columns("cdrs")}
            indexes = {i["name"] for i in inspector.get_indexes("transactions")}
            tables = set(inspector.get_table_names())
        assert "token_country_code" not in columns and "session_objects" not in tables
        assert "ix_transactions_owner_page" not in indexes
    finally:
        engine.dispose()
