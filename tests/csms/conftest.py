"""The backend's database for the data-layer tests: each test runs once on a SQLite file and
once on PostgreSQL (the ``db`` fixture), migrated to the newest schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.store import CpoIdentity, Store


@pytest.fixture
def engine(db: str) -> Iterator[Engine]:
    engine = create_db_engine(db)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine, CpoIdentity("NL", "CFW", "Test CPO", "EUR"))
