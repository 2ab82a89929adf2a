"""Migration 0011_charger_files on a database with chargers: the tables come, are used, and
go again on downgrade (and come back)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from migration_steps import old_schema_charger

from chargerfw.csms.db import MIGRATIONS, create_db_engine, current_revision, upgrade_database
from chargerfw.csms.store import CpoIdentity, Store

TABLES = {"charger_file_statuses", "firmware_releases", "file_tokens", "received_files"}


def test_the_charger_files_tables_come_and_go(empty_db: str) -> None:
    engine = create_db_engine(empty_db)
    try:
        config = Config()
        config.set_main_option("script_location", MIGRATIONS)

        def migrate(step: str, revision: str) -> None:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                getattr(command, step)(config, revision)

        migrate("upgrade", "0010_operator_commands")
        store = Store(engine, CpoIdentity())
        old_schema_charger(engine, "CP1")
        assert not TABLES & set(sa.inspect(engine).get_table_names())
        migrate("upgrade", "0011_charger_files")
        assert current_revision(engine) == "0011_charger_files"
        store.record_file_status("CP1", "firmware", "Downloading")
        store.add_release("1.0", "chargerfw-1.0-release.tar", "firmware/x.tar", "0" * 64, 1)
        issued = store.issue_file_token("CP1", "firmware", timedelta(hours=1), "1.0")
        assert store.usable_file_token(issued.token, ("firmware",))["release_version"] == "1.0"

        migrate("downgrade", "0010_operator_commands")
        assert not TABLES & set(sa.inspect(engine).get_table_names())
        with engine.connect() as c:  # the old schema: not through today's Store
            assert c.execute(sa.text("SELECT id FROM charge_points")).scalars().all() == ["CP1"]
        upgrade_database(engine)
        assert TABLES <= set(sa.inspect(engine).get_table_names())
        assert store.file_statuses("CP1") == []
    finally:
        engine.dispose()

