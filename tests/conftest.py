"""Fixtures shared by the CSMS and whole-chain tests: the databases they run on.

The helpers are imported inside the fixtures so test modules that need no database do not
load the backend's libraries at collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pg import PostgresServer


@pytest.fixture(scope="module")
def pg(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's PostgreSQL server (started on first use, stopped when the session ends)."""
    from pg import session_postgres

    return session_postgres(request)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path, pg: PostgresServer) -> str:
    """A fresh database URL: each test runs once on a SQLite file and once on PostgreSQL."""
    from csms_doubles import db_url_for

    return db_url_for(request.param, tmp_path, pg)
