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


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def create_db_engine(db: str, *, background_checkpoints: bool = False) -> Engine:
    """Create an engine for a SQLite path or a PostgreSQL URL.

    ``background_checkpoints``: SQLite's commits never copy the WAL back into the database
    themselves (the commit that crosses the WAL's threshold would otherwise pay for the copy
    and its fsync, a stall every few hundred requests); the caller runs
    :func:`checkpoint_wal` on its own thread instead.
    """
    url = database_url(db)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        if background_checkpoints:
            sa.event.listen(engine, "connect", _no_autocheckpoint)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=4)


def checkpoint_wal(engine: Engine) -> tuple[int, int]:
    """Copy what the SQLite WAL holds back into the database without waiting for readers
    or blocking writers (a PASSIVE checkpoint); returns (frames in the WAL, frames copied)."""
    with engine.connect() as connection:
        _busy, in_wal, copied = connection.exec_driver_sql(
            "PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(in_wal), int(copied)


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
