"""Fixtures of the CLI tests: a station config written for the service-down (direct) path, its
store, and a test backend in a thread of its own (the command runs in this thread)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from diag_support import csms_in_thread, write_station
from ocpp_testcsms import TestCsms

from chargerfw.store import Store


@pytest.fixture
def station(tmp_path: Path, runtime_dir: Path) -> str:
    """A station config file (simulated hardware, its store under ``tmp_path``)."""
    return str(write_station(tmp_path))


@pytest.fixture
def store(tmp_path: Path, station: str) -> Iterator[Store]:
    with Store(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def csms() -> Iterator[TestCsms]:
    with csms_in_thread() as server:
        yield server
