"""Fixtures of the CLI tests: a station config written for the service-down (direct) path, and
its store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from diag_support import write_station

from chargerfw.store import Store


@pytest.fixture
def station(tmp_path: Path, runtime_dir: Path) -> str:
    """A station config file (simulated hardware, its store under ``tmp_path``)."""
    return str(write_station(tmp_path))


@pytest.fixture
def store(tmp_path: Path, station: str) -> Iterator[Store]:
    with Store(tmp_path / "state.db") as opened:
        yield opened
