"""The store's part of a firmware update: its state and the notifications queued with it, and
migration 5, which lets the outbox carry notifications that belong to no transaction."""

from __future__ import annotations

import sqlite3

import pytest

from chargerfw.station.firmware import FirmwareRequest, FirmwareState, FirmwareStatus, Phase
from chargerfw.store import Store, StoreError
from chargerfw.store.database import Database
from chargerfw.store.outbox import enqueue_notification
from chargerfw.store.schema import MIGRATIONS

STATE = FirmwareState(Phase.DOWNLOADING, FirmwareRequest("http://b/fw.tar", 10.0), attempts=1,
                      status=FirmwareStatus.DOWNLOADING)


def test_state_and_notifications_survive_a_reopen_in_order_with_transaction_messages(tmp_path):
    with Store(tmp_path / "state.db") as store:
        assert store.firmware_state() == FirmwareState()
        store.start_transaction(1, "TAG", 0, 1.0)
        store.firmware_save(STATE, [FirmwareStatus.DOWNLOADING], now=2.0)
    with Store(tmp_path / "state.db") as store:
        assert store.firmware_state() == STATE
        pending = store.outbox_pending()
        assert [(m.action, m.local_tx_id, m.payload) for m in pending] == [
            ("StartTransaction", 1, pending[0].payload),
            ("FirmwareStatusNotification", None, {"status": "Downloading"})]
        store.outbox_delivered(pending[1].seq)
        assert store.outbox_all()[-1].state == "delivered"


def test_a_notification_the_outbox_does_not_carry_changes_nothing(tmp_path):
    with Store(tmp_path / "state.db") as store:
        with pytest.raises(StoreError, match="not a notification the outbox carries"):
            with store._db.tx() as conn:
                enqueue_notification(conn, "Heartbeat", {}, 0.0)
        assert store.outbox_all() == []


def test_migration_5_keeps_the_queued_transaction_messages(tmp_path):
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:4]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version=4")
    conn.execute("INSERT INTO transactions (connector_id, id_tag, meter_start_wh, started_at, "
                 "state) VALUES (1, 'TAG', 5, 1.0, 'open')")
    conn.execute("INSERT INTO outbox (local_tx_id, action, payload, unique_id, state, "
                 "created_at) VALUES (1, 'StartTransaction', '{}', 'u1', 'pending', 1.0)")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        (message,) = store.outbox_pending()
        assert (message.seq, message.action, message.unique_id) == (1, "StartTransaction", "u1")
        store.firmware_save(STATE, [FirmwareStatus.DOWNLOADING])
        assert [m.seq for m in store.outbox_pending()] == [1, 2]


def test_a_transaction_message_needs_its_transaction(tmp_path):
    db = Database(tmp_path / "state.db")
    with pytest.raises(sqlite3.IntegrityError):
        with db.tx() as conn:
            conn.execute("INSERT INTO outbox (local_tx_id, action, payload, unique_id, state, "
                         "created_at) VALUES (NULL, 'StopTransaction', '{}', 'u', 'pending', 0)")
    db.close()
