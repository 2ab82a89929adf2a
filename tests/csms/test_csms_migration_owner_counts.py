"""Migration 0021_owner_counts: the counts start from the rows already stored, its triggers
keep them from then on, and it downgrades cleanly (triggers and all)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from migration_steps import migrate, old_schema_charger, revision_before
from sqlalchemy.engine import Connection

from chargerfw.csms.db import create_db_engine

REVISION = "0021_owner_counts"
WHEN = datetime(2026, 3, 1, 10, 0, tzinfo=UTC).replace(tzinfo=None)


def add_session(c: Connection, n: int, owner: tuple[str | None, str | None],
                evse_uid: str | None) -> None:
    c.execute(sa.text(
        "INSERT INTO transactions (id, session_id, idempotency_key, charge_point_id, "
        "connector_id, evse_uid, id_tag, id_tag_status, auth_method, meter_start, meter_last, "
        "start_time, status, currency, last_updated, token_country_code, token_party_id) "
        "VALUES (:n, :s, :k, 'CP1', 1, :evse, 'TAG', 'Accepted', 'WHITELIST', 0, 0, :t, "
        "'COMPLETED', 'EUR', :t, :cc, :pid)"),
        {"n": n, "s": f"session-{n}", "k": f"key-{n}", "t": WHEN, "cc": owner[0],
         "pid": owner[1], "evse": evse_uid})
    c.execute(sa.text("INSERT INTO cdrs (id, transaction_id, data, last_updated, "
                      "token_country_code, token_party_id) VALUES (:id, :n, '{}', :t, :cc, :pid)"),
              {"id": f"cdr-{n}", "n": n, "t": WHEN, "cc": owner[0], "pid": owner[1]})


def totals(c: Connection) -> dict[tuple[str, str, str], int]:
    return {(r[0], r[1], r[2]): int(r[3]) for r in c.execute(sa.text(
        "SELECT listing, country_code, party_id, sum(delta) FROM owner_counts "
        "GROUP BY listing, country_code, party_id")) if r[3]}


def test_counts_start_from_the_stored_rows_and_triggers_keep_them(empty_db: str) -> None:
    engine = create_db_engine(empty_db)
    try:
        before = revision_before(REVISION)
        migrate(engine, "upgrade", before)
        old_schema_charger(engine, "CP1")
        with engine.begin() as c:
            add_session(c, 1, ("DE", "EMS"), "CP1-1")
            add_session(c, 2, ("DE", "EMS"), "CP1-1")
            add_session(c, 3, ("DE", "EMS"), None)  # not on an EVSE: no OCPI session
            add_session(c, 4, (None, None), "CP1-1")
        migrate(engine, "upgrade", REVISION)
        with engine.begin() as c:
            assert totals(c) == {("sessions", "DE", "EMS"): 2, ("sessions", "", ""): 1,
                                 ("cdrs", "DE", "EMS"): 3, ("cdrs", "", ""): 1}
            add_session(c, 5, ("NL", "OTH"), "CP1-1")
            c.execute(sa.text("DELETE FROM cdrs WHERE transaction_id = 1"))
            c.execute(sa.text("UPDATE transactions SET evse_uid = 'CP1-1' WHERE id = 3"))
            assert totals(c) == {("sessions", "DE", "EMS"): 3, ("sessions", "", ""): 1,
                                 ("sessions", "NL", "OTH"): 1, ("cdrs", "DE", "EMS"): 2,
                                 ("cdrs", "", ""): 1, ("cdrs", "NL", "OTH"): 1}
        migrate(engine, "downgrade", before)
        with engine.begin() as c:
            assert "owner_counts" not in sa.inspect(c).get_table_names()
            # no trigger left behind: it would fail on the table that went
            add_session(c, 6, ("DE", "EMS"), "CP1-1")
            c.execute(sa.text("UPDATE transactions SET token_party_id = 'EMX' WHERE id = 6"))
            c.execute(sa.text("DELETE FROM cdrs WHERE transaction_id = 6"))
        migrate(engine, "upgrade", REVISION)  # and up again, from what is there now
        with engine.connect() as c:
            assert totals(c)[("sessions", "DE", "EMX")] == 1
    finally:
        engine.dispose()
