"""Fixtures of the OCPP tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chargerfw.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh station store."""
    with Store(tmp_path / "s.db") as opened:
        yield opened
