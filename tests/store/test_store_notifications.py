"""The outbox's notifications (no transaction, in order with the transaction messages), the
migration that makes room for them, and the security log."""

from __future__ import annotations

import sqlite3

import pytest

from chargerfw.store import NOTIFICATION_ACTIONS, Store, StoreError
from chargerfw.store.schema import MIGRATIONS


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "state.db") as s:
        yield s


def test_notifications_queue_in_order_with_transaction_messages(store):
    store.outbox_notify("DiagnosticsStatusNotification", {"status": "Uploading"})
    tx = store.start_transaction(1, "TAG", 0, 1_700_000_000.0)
    store.outbox_notify("LogStatusNotification", {"status": "Uploaded", "requestId": 7})
    queued = store.outbox_pending()
    assert [(m.action, m.local_tx_id) for m in queued] == [
        ("DiagnosticsStatusNotification", None), ("StartTransaction", tx.local_id),
        ("LogStatusNotification", None)]
    assert queued[2].payload == {"status": "Uploaded", "requestId": 7}
    head = store.outbox_head()
    assert head.action == "DiagnosticsStatusNotification" and head.backend_tx_id is None
    store.outbox_delivered(head.seq)
    assert store.outbox_head().action == "StartTransaction"


def test_a_dead_notification_takes_nothing_else_with_it(store):
    seq = store.outbox_notify("FirmwareStatusNotification", {"status": "Downloading"})
    store.start_transaction(1, "TAG", 0, 1_700_000_000.0)
    dead = store.outbox_failed(seq, "GenericError", max_attempts=1, retry_interval_s=0)
    assert dead.state == "dead"
    assert [m.action for m in store.outbox_pending()] == ["StartTransaction"]


@pytest.mark.parametrize(("action", "payload", "message"), [
    ("StartTransaction", {"connectorId": 1}, "not a notification"),
    ("Heartbeat", {}, "not a notification"),
    ("DiagnosticsStatusNotification", {"status": object()}, "not JSON"),
])
def test_bad_notifications_change_nothing(store, action, payload, message):
    with pytest.raises(StoreError, match=message):
        store.outbox_notify(action, payload)
    assert store.outbox_all() == []


def test_every_notification_action_is_accepted(store):
    for action in NOTIFICATION_ACTIONS:
        store.outbox_notify(action, {"status": "Idle"})
    assert [m.action for m in store.outbox_pending()] == list(NOTIFICATION_ACTIONS)


def test_the_migration_keeps_the_queue_and_its_numbering(tmp_path):
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version={number}")
    conn.execute("INSERT INTO transactions (connector_id, id_tag, meter_start_wh, started_at, "
                 "state) VALUES (1, 'TAG', 0, 1.0, 'open')")
    conn.execute("INSERT INTO outbox (local_tx_id, action, payload, unique_id, state, "
                 "created_at) VALUES (1, 'StartTransaction', '{\"connectorId\": 1}', 'u1', "
                 "'pending', 1.0)")
    conn.execute("INSERT INTO outbox (local_tx_id, action, payload, unique_id, state, "
                 "created_at, attempts) VALUES (1, 'MeterValues', '{}', 'u2', 'dead', 2.0, 3)")
    conn.commit()
    conn.close()
    with Store(path) as s:
        assert s.schema_version == len(MIGRATIONS)
        kept = s.outbox_all()
        assert [(m.seq, m.action, m.state, m.unique_id, m.attempts) for m in kept] == [
            (1, "StartTransaction", "pending", "u1", 0), (2, "MeterValues", "dead", "u2", 3)]
        assert s.outbox_notify("DiagnosticsStatusNotification", {"status": "Uploading"}) == 3


def test_the_table_refuses_a_transaction_message_without_a_transaction(store):
    with store._db.tx() as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO outbox (local_tx_id, action, payload, unique_id, state, "
                     "created_at) VALUES (NULL, 'StopTransaction', '{}', 'u', 'pending', 1.0)")


def test_security_log_appends_and_reads_a_time_window(tmp_path):
    path = tmp_path / "state.db"
    with Store(path) as s:
        s.security_event_add("StartupOfTheDevice", "chargerfw 1.0", at=100.0)
        s.security_event_add("ResetOrReboot", "Hard reset by the backend", at=200.0)
        s.security_event_add("FailedToAuthenticateAtCentralSystem", "x" * 300, at=300.0)
    with Store(path) as s:
        events = s.security_events()
        assert [(e.type, e.at) for e in events] == [
            ("StartupOfTheDevice", 100.0), ("ResetOrReboot", 200.0),
            ("FailedToAuthenticateAtCentralSystem", 300.0)]
        assert len(events[2].tech_info) == 255
        assert [e.type for e in s.security_events(since=150.0, until=250.0)] == ["ResetOrReboot"]
        with pytest.raises(StoreError):
            s.security_event_add("")
        assert len(s.security_events()) == 3
