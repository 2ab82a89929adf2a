"""The store's migrations run forward from every earlier schema a released firmware left behind:
the data of the older version survives, the result is the schema a fresh store gets, and a
migration that fails half-way leaves the older version as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chargerfw.store import Store
from chargerfw.store import database as store_database
from chargerfw.store.schema import MIGRATIONS


def _schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())
    finally:
        conn.close()


def _store_at(path: Path, version: int) -> None:
    """A store as a firmware with ``version`` migrations left it, holding a session whose
    StartTransaction is still queued and a changed configuration key (schema 1's tables)."""
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version={version}")
    conn.execute("INSERT INTO config_keys (key, value) VALUES ('HeartbeatInterval', '120')")
    conn.execute(
        "INSERT INTO transactions (connector_id, id_tag, meter_start_wh, started_at, state, "
        "last_meter_wh, last_meter_at) VALUES (1, '04A1B2C3', 1500, 1700000000.0, 'open', "
        "1500, 1700000000.0)")
    conn.execute(
        "INSERT INTO outbox (local_tx_id, action, payload, unique_id, state, created_at) "
        "VALUES (1, 'StartTransaction', '{\"connectorId\":1,\"idTag\":\"04A1B2C3\","
        "\"meterStart\":1500,\"timestamp\":\"2023-11-14T22:13:20.000Z\"}', 'u-1', 'pending', "
        "1700000000.0)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
def test_an_older_store_migrates_forward_keeping_its_data(tmp_path: Path, version: int) -> None:
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    old = tmp_path / "old.db"
    _store_at(old, version)

    with Store(old) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.config_get("HeartbeatInterval") == "120"
        (tx,) = store.open_transactions()
        assert (tx.connector_id, tx.id_tag, tx.meter_start_wh) == (1, "04A1B2C3", 1500)
        head = store.outbox_head()
        assert head is not None
        assert (head.action, head.unique_id, head.local_tx_id) == ("StartTransaction", "u-1", 1)
        assert head.payload["meterStart"] == 1500
    # Migrated or made fresh: the same tables, columns, indexes and constraints.
    assert _schema(old) == _schema(fresh)


def test_a_migration_that_fails_leaves_the_older_version_intact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    _store_at(path, len(MIGRATIONS))
    before = _schema(path)
    # A next version whose migration breaks after its first statement took effect.
    broken = [*MIGRATIONS, "CREATE TABLE half_made (x INTEGER); INSERT INTO no_such_table "
                           "VALUES (1)"]
    monkeypatch.setattr(store_database, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        Store(path)
    monkeypatch.undo()

    assert _schema(path) == before  # the half-made table went with the rollback
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert len(store.open_transactions()) == 1
