"""Fixtures shared across test modules: the databases the CSMS and whole-chain tests run on,
and short directories for Unix sockets; and the rule that keeps the real pcscd tests on one
xdist worker.

The helpers are imported inside the fixtures so test modules that need no database do not
load the backend's libraries at collection.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
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


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: Unix socket paths are limited to ~107 bytes, so control
    sockets and locks stay out of pytest's long tmp paths."""
    path = Path(tempfile.mkdtemp(prefix="cfw-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runtime_dir(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$CHARGERFW_RUNTIME_DIR (control socket, hardware lock) in a short directory."""
    monkeypatch.setenv("CHARGERFW_RUNTIME_DIR", str(short_dir))
    monkeypatch.delenv("CHARGERFW_CONTROL_SOCKET", raising=False)
    return short_dir


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pcsc-lite has one client socket per machine, so only one pcscd can run at a time: every
    test of a module that starts one goes to the same xdist worker (``--dist loadgroup``)."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "pcscd_with_vpcd"):
            item.add_marker(pytest.mark.xdist_group("pcscd"))
