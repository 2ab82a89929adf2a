"""Migration 0010_operator_commands on a database with local-list push requests: they move
into the operator-command queue (and back on downgrade)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from migration_steps import old_schema_charger

from chargerfw.csms.db import MIGRATIONS, create_db_engine, upgrade_database
from chargerfw.csms.store import CpoIdentity, Store


def test_local_list_push_requests_move_into_the_queue(empty_db: str) -> None:
    engine = create_db_engine(empty_db)
    try:
        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0009_local_lists")
        store = Store(engine, CpoIdentity())
        old_schema_charger(engine, "CP1")
        requests = sa.table("local_list_requests", sa.column("id"), sa.column("charge_point_id"),
                            sa.column("full"), sa.column("requested_at"),
                            sa.column("claimed_at"), sa.column("finished_at"),
                            sa.column("outcome", sa.JSON()))
        at = datetime(2026, 1, 1, tzinfo=UTC)
        with engine.begin() as c:
            c.execute(requests.insert(), [
                dict(charge_point_id="CP1", full=True, requested_at=at, claimed_at=at,
                     finished_at=at, outcome={"status": "Accepted"}),
                dict(charge_point_id="CP1", full=False, requested_at=at, claimed_at=None,
                     finished_at=None, outcome=None)])
        upgrade_database(engine)
        last = store.last_operator_command("CP1", "local_list_push")
        assert (last["params"], last["outcome"]) == ({"full": True}, {"status": "Accepted"})
        pending = store.claim_operator_commands()
        assert [(row["command"], row["params"]) for row in pending] == [
            ("local_list_push", {"full": False})]

        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0009_local_lists")
        with engine.connect() as c:
            rows = c.execute(sa.select(requests.c.full, requests.c.finished_at)
                             .order_by(requests.c.id)).all()
        assert [(bool(full), done is not None) for full, done in rows] == [
            (True, True), (False, False)]
    finally:
        engine.dispose()

