"""Database engines and schema migrations for the CSMS.

SQLite is the default (a file path), PostgreSQL is chosen by URL (psycopg 3). The schema is
brought to the newest alembic revision at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Engine

MIGRATIONS = "chargerfw.csms:migrations"
# Backends started at once on several machines migrate one after the other (PostgreSQL
# advisory lock key; "cfwsmigr" in ASCII).
MIGRATION_LOCK_KEY = 0x636677736D696772


class DatabaseUrlError(ValueError):
    """The --db value is neither a file path nor a supported database URL."""


def database_url(db: str) -> str:
    """Turn a file path or URL into a SQLAlchemy URL (``postgresql://`` uses psycopg 3)."""
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    url = sa.make_url(db)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.drivername == "sqlite":
        return db
    raise DatabaseUrlError(f"unsupported database URL scheme {url.drivername!r}: "
                           "use a SQLite file path or postgresql://")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL + FULL sync: a committed transaction survives a power cut; FKs are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_db_engine(db: str) -> Engine:
    """Create an engine for a SQLite path or a PostgreSQL URL."""
    url = database_url(db)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=4)


def upgrade_database(engine: Engine) -> None:
    """Apply every pending alembic migration (``upgrade head``)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def current_revision(engine: Engine) -> str | None:
    """The alembic revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
