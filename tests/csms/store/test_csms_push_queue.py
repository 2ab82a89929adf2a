"""The durable push queue: each partner's pushes in order, a failed head waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms_doubles import add_registered_partner, add_test_charger

from chargerfw.csms.store import Store

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_push_queue_keeps_each_partners_order(store: Store) -> None:
    add_registered_partner(store)
    add_test_charger(store)  # PUT location
    store.record_status("CP1", 1, "Available", "NoError", T0)  # PATCH evse
    due = store.due_pushes()
    assert len(due) == 1 and due[0].method == "PUT" and due[0].module == "locations"
    assert due[0].url == "http://emsp.invalid/ocpi/locations/NL/CFW/LOC1"
    store.push_failed(due[0].id, "boom", datetime.now(UTC) + timedelta(hours=1))
    assert store.due_pushes() == []  # the head waits, and nothing overtakes it
    store.push_failed(due[0].id, "boom", datetime.now(UTC) - timedelta(seconds=1))
    store.push_done(store.due_pushes()[0].id)
    nxt = store.due_pushes()
    assert len(nxt) == 1 and nxt[0].method == "PATCH"
    assert nxt[0].url.endswith("/locations/NL/CFW/LOC1/CP1-1")
    assert nxt[0].body["status"] == "AVAILABLE"
