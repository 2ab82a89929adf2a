"""Steps of the backend's alembic chain for the tests of one migration: the revision before
it, a step up or down on a given engine, and rows written as an older schema holds them."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from chargerfw.csms.db import MIGRATIONS
from chargerfw.csms.tables import UtcDateTime


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def revision_before(revision: str) -> str:
    """The revision ``revision`` follows."""
    before = ScriptDirectory.from_config(_config()).get_revision(revision).down_revision
    assert isinstance(before, str)
    return before


def migrate(engine: Engine, step: str, revision: str) -> None:
    """``step`` ("upgrade" or "downgrade") the database to ``revision``."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, step)(config, revision)


def old_schema_charger(engine: Engine, charge_point_id: str) -> None:
    """A charge point as the old schema holds it (today's Store writes tables it lacks)."""
    table = sa.table("charge_points", sa.column("id"), sa.column("auto_registered"),
                     sa.column("created_at", UtcDateTime()))
    with engine.begin() as c:
        c.execute(table.insert().values(id=charge_point_id, auto_registered=False,
                                        created_at=datetime(2026, 1, 1, tzinfo=UTC)))
