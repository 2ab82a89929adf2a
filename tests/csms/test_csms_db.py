"""Database engines and schema migrations (``chargerfw.csms.db``) on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from chargerfw.csms.db import (
    DatabaseUrlError,
    create_db_engine,
    current_revision,
    database_url,
    upgrade_database,
)
from chargerfw.csms.tables import metadata


def _head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from chargerfw.csms.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return ScriptDirectory.from_config(config).get_current_head()


def test_migrations_build_exactly_the_declared_schema(empty_db: str) -> None:
    """From an empty database (every other test's database is a copy of one migrated so)."""
    engine = create_db_engine(empty_db)
    try:
        assert current_revision(engine) is None
        upgrade_database(engine)
        assert current_revision(engine) == _head() is not None
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        upgrade_database(engine)  # a second start applies nothing and does not fail
        assert current_revision(engine) == _head()
    finally:
        engine.dispose()


def test_a_test_database_is_a_copy_at_the_newest_schema(engine: Engine) -> None:
    """The ``db`` fixture's copies of the migrated template: at the head, the declared schema,
    and the template is named after the head so an older one is never copied."""
    from csms_doubles import schema_key

    assert current_revision(engine) == _head() is not None
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert schema_key().startswith(f"{_head()}_".lower())


def test_database_url_forms(tmp_path: Path) -> None:
    assert database_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"
    assert database_url("postgresql://u@h:5/d").startswith("postgresql+psycopg://u@h:5/d")
    with pytest.raises(DatabaseUrlError, match="mysql"):
        database_url("mysql://u@h/d")


def test_migrations_ship_as_package_data() -> None:
    import configparser
    from fnmatch import fnmatch

    root = Path(__file__).resolve().parents[2]
    parser = configparser.ConfigParser()
    parser.read(root / "setup.cfg")
    patterns = [p.strip() for p in parser["options.package_data"]["chargerfw.csms"].split(",")]
    package = root / "chargerfw" / "csms"
    files = [f.relative_to(package).as_posix() for f in (package / "migrations").rglob("*")
             if f.is_file() and "__pycache__" not in f.parts]
    assert "migrations/env.py" in files and "migrations/versions/0001_initial_schema.py" in files
    assert all(any(fnmatch(name, pattern) for pattern in patterns) for name in files), files
    assert "chargerfw.csms.ocpi" in parser["options"]["packages"].split()


def test_the_locations_migration_names_evses_in_emi3_form(empty_db: str) -> None:
    """Upgrading a database with chargers in it: every EVSE gets an eMI3 evse_id."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from chargerfw.csms.db import MIGRATIONS

    engine = create_db_engine(empty_db)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(sa.text(
            "INSERT INTO locations (id, country_code, party_id, publish, address, city, "
            "country, latitude, longitude, time_zone, last_updated) VALUES ('LOC1', 'DE', "
            "'ABC', true, 'Main 1', 'Berlin', 'DEU', '52.52000', '13.40500', 'Europe/Berlin', "
            "'2026-01-01 00:00:00')"))
        conn.execute(sa.text(
            "INSERT INTO charge_points (id, location_id, auto_registered, created_at) VALUES "
            "('CP1', 'LOC1', false, '2026-01-01 00:00:00')"))
        for uid, evse_id in (("cp1-1", None), ("CP1-2", "DE*ABC*E7")):
            conn.execute(sa.text(
                "INSERT INTO evses (uid, location_id, evse_id, charge_point_id, "
                "ocpp_connector_id, status, last_updated) VALUES (:uid, 'LOC1', :evse_id, "
                "'CP1', :n, 'UNKNOWN', '2026-01-01 00:00:00')"),
                {"uid": uid, "evse_id": evse_id, "n": 1 if evse_id is None else 2})
    upgrade_database(engine)
    with engine.connect() as conn:
        named = dict(conn.execute(sa.text("SELECT uid, evse_id FROM evses")).all())
        point = conn.execute(sa.text("SELECT rfid_reader, connected, offline FROM "
                                     "charge_points")).one()
    engine.dispose()
    assert named == {"cp1-1": "DE*ABC*ECP1*1", "CP1-2": "DE*ABC*E7"}
    assert tuple(map(bool, point)) == (True, False, False)  # the charger kept its rows

