"""Database engines and schema migrations (``chargerfw.csms.db``) on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from chargerfw.csms.db import DatabaseUrlError, current_revision, database_url, upgrade_database
from chargerfw.csms.tables import metadata


def test_migrations_build_exactly_the_declared_schema(engine: Engine) -> None:
    assert current_revision(engine) == "0003"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    upgrade_database(engine)  # a second start applies nothing and does not fail
    assert current_revision(engine) == "0003"


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
