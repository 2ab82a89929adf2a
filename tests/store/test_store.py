"""The SQLite store: schema, transactions, outbox rules, faults, frame log."""

from __future__ import annotations

import sqlite3

import pytest

from chargerfw.store import OUTBOX_DEAD, OUTBOX_DELIVERED, Store, StoreError
from chargerfw.store.schema import MIGRATIONS


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "state.db") as s:
        yield s


def test_schema_version_wal_and_full_sync(tmp_path):
    path = tmp_path / "state.db"
    with Store(path) as s:
        assert s.schema_version == len(MIGRATIONS)  # every migration ran
        with s._db.read() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            # 2 = FULL: every commit fsyncs the WAL.
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with Store(path) as s:  # reopening does not migrate twice
        assert s.schema_version == len(MIGRATIONS)  # every migration ran


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StoreError, match="newer than this firmware"):
        Store(path)


def test_config_keys_persist(tmp_path):
    path = tmp_path / "state.db"
    with Store(path) as s:
        s.config_set("HeartbeatInterval", "120")
    with Store(path) as s:
        assert s.config_get("HeartbeatInterval") == "120"
        assert s.config_get("Nope") is None
        with pytest.raises(StoreError):
            s.config_set("HeartbeatInterval", 5)  # type: ignore[arg-type]
        assert s.config_all() == {"HeartbeatInterval": "120"}


def test_transaction_start_queues_start_message_atomically(store):
    tx = store.start_transaction(1, "04A1B2C3", 1000, 1_700_000_000.0)
    assert tx.state == "open" and tx.backend_tx_id is None and tx.last_meter_wh == 1000
    head = store.outbox_head()
    assert head.action == "StartTransaction"
    assert head.payload == {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 1000,
                            "timestamp": "2023-11-14T22:13:20.000Z"}
    assert len(head.unique_id) <= 36


@pytest.mark.parametrize("args, message", [
    ((0, "TAG", 0, 1.0), "connector_id"),
    ((1, "", 0, 1.0), "idTag"),
    ((1, "X" * 21, 0, 1.0), "idTag"),
    ((1, "TAG", -5, 1.0), "meter_start_wh"),
    ((1, "TAG", 1.5, 1.0), "meter_start_wh"),
    ((1, "TAG", 0, "yesterday"), "started_at"),
])
def test_bad_start_changes_nothing(store, args, message):
    with pytest.raises(StoreError, match=message):
        store.start_transaction(*args)
    assert store.open_transactions() == [] and store.outbox_head() is None


def test_one_open_transaction_per_connector(store):
    store.start_transaction(1, "A", 0, 1.0)
    with pytest.raises(StoreError, match="already has open transaction"):
        store.start_transaction(1, "B", 0, 2.0)
    store.start_transaction(2, "B", 0, 2.0)
    assert [t.connector_id for t in store.open_transactions()] == [1, 2]
    assert len(store.outbox_pending()) == 2


def test_meter_is_monotonic_and_stop_happens_once(store):
    tx = store.start_transaction(1, "A", 100, 1.0)
    store.record_meter(tx.local_id, 150, 2.0)
    with pytest.raises(StoreError, match="below the last reading"):
        store.record_meter(tx.local_id, 140, 3.0)
    assert store.transaction(tx.local_id).last_meter_wh == 150
    assert store.stop_transaction(tx.local_id, 160, 4.0, "Local", id_tag="A") is True
    assert store.stop_transaction(tx.local_id, 170, 5.0, "Local") is False
    stops = [m for m in store.outbox_pending() if m.action == "StopTransaction"]
    assert len(stops) == 1
    assert stops[0].payload == {"meterStop": 160, "timestamp": "1970-01-01T00:00:04.000Z",
                                "reason": "Local", "idTag": "A"}
    with pytest.raises(StoreError, match="not open"):
        store.record_meter(tx.local_id, 200, 6.0)


def test_stop_pending_names_the_connector_whose_stop_is_queued(store):
    one = store.start_transaction(1, "A", 100, 1.0)
    store.start_transaction(2, "B", 0, 1.0)
    assert not store.outbox_stop_pending(1)  # a queued start is no stop
    store.stop_transaction(one.local_id, 160, 2.0, "EVDisconnected")
    assert store.outbox_stop_pending(1) and not store.outbox_stop_pending(2)
    for message in store.outbox_pending():
        if message.local_tx_id == one.local_id:
            store.outbox_delivered(message.seq, backend_tx_id=7 if message.action ==
                                   "StartTransaction" else None)
    assert not store.outbox_stop_pending(1)


def test_stop_carries_transaction_data(store):
    tx = store.start_transaction(1, "A", 100, 1.0)
    mv = {"timestamp": "t", "sampledValue": [{"value": "100", "context": "Transaction.Begin"}]}
    store.add_transaction_data(tx.local_id, mv)
    with pytest.raises(StoreError):
        store.add_transaction_data(tx.local_id, {"timestamp": "t"})
    store.stop_transaction(tx.local_id, 200, 2.0, "EVDisconnected")
    stop = store.outbox_pending()[-1]
    assert stop.payload["transactionData"] == [mv]


def test_outbox_fills_in_backend_transaction_id(store):
    tx = store.start_transaction(1, "A", 0, 1.0)
    store.enqueue_meter_values(tx.local_id, 1, [{"timestamp": "t", "sampledValue": [{"value": "5"}]}])
    store.stop_transaction(tx.local_id, 10, 3.0, "Local")
    pending = store.outbox_pending()
    assert [m.action for m in pending] == ["StartTransaction", "MeterValues", "StopTransaction"]
    assert all(m.backend_tx_id is None for m in pending)
    store.outbox_delivered(pending[0].seq, backend_tx_id=4711, start_status="Accepted")
    rest = store.outbox_pending()
    assert [m.action for m in rest] == ["MeterValues", "StopTransaction"]
    assert {m.backend_tx_id for m in rest} == {4711}
    assert store.transaction(tx.local_id).backend_tx_id == 4711
    with pytest.raises(StoreError, match="only a StartTransaction"):
        store.outbox_delivered(rest[0].seq, backend_tx_id=1)
    assert store.outbox_head().seq == rest[0].seq  # the refused call changed nothing


def test_call_error_retry_interval_grows_then_dead_letters_dependants(store):
    tx = store.start_transaction(1, "A", 0, 1.0)
    store.stop_transaction(tx.local_id, 10, 3.0, "Local")
    start = store.outbox_head()
    m = store.outbox_failed(start.seq, "InternalError", max_attempts=3, retry_interval_s=60, now=1000)
    assert (m.attempts, m.next_attempt_at, m.state) == (1, 1060, "pending")
    m = store.outbox_failed(start.seq, "InternalError", max_attempts=3, retry_interval_s=60, now=2000)
    assert (m.attempts, m.next_attempt_at) == (2, 2120)  # interval x attempts so far
    m = store.outbox_failed(start.seq, "InternalError", max_attempts=3, retry_interval_s=60, now=3000)
    assert m.state == OUTBOX_DEAD
    # The StopTransaction of a transaction the backend never accepted cannot carry a real id.
    assert store.outbox_head() is None
    assert [x.state for x in store.outbox_all()] == [OUTBOX_DEAD, OUTBOX_DEAD]
    assert store.transaction(tx.local_id).start_status == "Refused"


def test_dead_meter_values_do_not_block_the_stop(store):
    tx = store.start_transaction(1, "A", 0, 1.0)
    store.outbox_delivered(store.outbox_head().seq, backend_tx_id=7)
    store.enqueue_meter_values(tx.local_id, 1, [{"timestamp": "t", "sampledValue": [{"value": "5"}]}])
    store.stop_transaction(tx.local_id, 10, 3.0, "Local")
    mv = store.outbox_head()
    store.outbox_failed(mv.seq, "FormationViolation", max_attempts=1, retry_interval_s=1)
    assert store.outbox_head().action == "StopTransaction"
    store.outbox_delivered(store.outbox_head().seq)
    assert [m.state for m in store.outbox_all()] == [OUTBOX_DELIVERED, OUTBOX_DEAD, OUTBOX_DELIVERED]


def test_recovery_closes_open_transactions_once_with_last_reading(tmp_path):
    path = tmp_path / "state.db"
    with Store(path) as s:
        a = s.start_transaction(1, "A", 100, 10.0)
        s.record_meter(a.local_id, 180, 20.0)
        b = s.start_transaction(2, "B", 50, 11.0)  # no reading since start
        done = s.start_transaction(1 + 2, "C", 0, 12.0)
        s.stop_transaction(done.local_id, 5, 13.0, "Local")
    with Store(path) as s:
        closed = s.recover_interrupted()
        assert [(t.local_id, t.meter_stop_wh, t.stopped_at, t.stop_reason) for t in closed] == [
            (a.local_id, 180, 20.0, "PowerLoss"), (b.local_id, 50, 11.0, "PowerLoss")]
        assert s.recover_interrupted() == []
        stops = [m for m in s.outbox_pending() if m.action == "StopTransaction"]
        assert [(m.local_tx_id, m.payload["meterStop"], m.payload["reason"]) for m in stops] == [
            (done.local_id, 5, "Local"), (a.local_id, 180, "PowerLoss"), (b.local_id, 50, "PowerLoss")]


def test_faults_history(store):
    f = store.fault_raise("ContactorWelded", 1, needs_technician=True, detail="mirror closed", at=5.0)
    again = store.fault_raise("ContactorWelded", 1, needs_technician=True, at=6.0)
    assert again.id == f.id
    assert [x.code for x in store.faults(active_only=True)] == ["ContactorWelded"]
    assert store.fault_clear("ContactorWelded", 1, at=9.0) == 1
    assert store.fault_clear("ContactorWelded", 1, at=9.0) == 0
    assert store.faults(active_only=True) == []
    (hist,) = store.faults()
    assert (hist.needs_technician, hist.raised_at, hist.cleared_at, hist.detail) == (
        True, 5.0, 9.0, "mirror closed")
    with pytest.raises(StoreError):
        store.fault_raise("", 1, False)


def test_frame_log_is_a_ring(tmp_path):
    with Store(tmp_path / "s.db", frame_log_size=3) as s:
        for n in range(5):
            s.frame_log_add("out" if n % 2 else "in", f"[{n}]")
        assert [f.frame for f in s.frame_log()] == ["[2]", "[3]", "[4]"]
        with pytest.raises(StoreError):
            s.frame_log_add("sideways", "x")
        assert len(s.frame_log()) == 3


def test_auth_cache_round_trip_and_clear(tmp_path):
    from datetime import UTC, datetime

    from chargerfw.station.auth import IdTagInfo

    path = tmp_path / "state.db"
    info = IdTagInfo("Accepted", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), "PARENT1")
    with Store(path) as s:
        assert s.cache_get("04AA") is None
        s.cache_put("04AA", info)
        s.cache_put("04BB", IdTagInfo("Blocked"))
    with Store(path) as s:  # survives a restart
        assert s.cache_get("04AA") == info
        assert s.cache_get("04BB").status == "Blocked"
        with pytest.raises(StoreError):
            s.cache_put("04CC", {"status": "Accepted"})  # not an IdTagInfo
        with pytest.raises(StoreError):
            s.cache_put("X" * 21, info)
        assert s.cache_get("04CC") is None
        s.cache_clear()
        assert s.cache_get("04AA") is None


def test_local_list_full_and_differential_updates_are_all_or_nothing(store):
    from chargerfw.station.auth import IdTagInfo

    assert store.local_list_version() == 0
    store.local_list_apply(3, {"A": IdTagInfo("Accepted"), "B": IdTagInfo("Blocked")}, full=True)
    assert store.local_list_version() == 3 and store.local_list_size() == 2
    store.local_list_apply(4, {"B": None, "C": IdTagInfo("Accepted")}, full=False)
    assert store.local_list_get("B") is None and store.local_list_get("C").status == "Accepted"
    with pytest.raises(StoreError):
        store.local_list_apply(5, {"D": IdTagInfo("Accepted"), "": IdTagInfo("Accepted")}, full=False)
    with pytest.raises(StoreError):
        store.local_list_apply(5, {"D": None}, full=True)
    assert store.local_list_version() == 4 and store.local_list_get("D") is None
    store.local_list_apply(6, {"Z": IdTagInfo("Accepted")}, full=True)
    assert store.local_list_get("A") is None and store.local_list_size() == 1


def test_outbox_prune_keeps_pending_dead_and_newest_delivered(store):
    for connector in (1, 2, 3):
        tx = store.start_transaction(connector, "T", 0, float(connector))
        store.add_transaction_data(tx.local_id, {"timestamp": "t", "sampledValue": [{"value": "0"}]})
        store.outbox_delivered(store.outbox_head().seq, backend_tx_id=connector)
    store.stop_transaction(1, 5, 9.0, "Local")
    store.outbox_delivered(store.outbox_head().seq)
    store.stop_transaction(2, 5, 9.0, "Local")  # still pending: its data must stay
    stop2 = store.outbox_head()
    assert store.outbox_prune(keep_delivered=2) == 2
    states = [(m.local_tx_id, m.action, m.state) for m in store.outbox_all()]
    assert states == [(3, "StartTransaction", "delivered"), (1, "StopTransaction", "delivered"),
                      (2, "StopTransaction", "pending")]
    assert store.outbox_head().seq == stop2.seq
    assert store.transaction_data(1) == [] and store.transaction_data(2) != []
    assert store.transaction_data(3) != []  # still open


def test_reservations_are_replaced_as_a_set_and_survive_reopening(tmp_path):
    from chargerfw.station.connector import Reservation

    held = [(1, Reservation(7, "AA", "PARENT", 1_000_060.0)), (2, Reservation(8, "BB"))]
    with Store(tmp_path / "s.db") as store:
        assert store.reservations_all() == []
        store.reservations_replace(held)
        store.reservations_replace(held)  # the same set again: no duplicate
    with Store(tmp_path / "s.db") as store:
        assert store.reservations_all() == held
        # Bad input changes nothing.
        with pytest.raises(StoreError):
            store.reservations_replace([(1, Reservation(9, ""))])
        with pytest.raises(StoreError):
            store.reservations_replace([(-1, Reservation(9, "CC"))])
        assert store.reservations_all() == held
        store.reservations_replace([])
        assert store.reservations_all() == []
