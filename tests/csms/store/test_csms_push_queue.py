"""The durable push queue: each partner's pushes in order, a failed head waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from csms_doubles import add_registered_partner, add_test_charger
from sqlalchemy.engine import Engine

from chargerfw.csms.store import Party, Store
from chargerfw.csms.store.push_queue import receivers

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


def test_receivers_are_remembered_until_a_partner_or_party_changes(store: Store,
                                                                   engine: Engine) -> None:
    def receivers_of_ems() -> list[tuple[int, str]]:
        with store.engine.connect() as c:
            return receivers(c, "sessions", ("DE", "EMS"))

    assert receivers_of_ems() == []
    partner_id = add_registered_partner(store)
    assert receivers_of_ems() == [(partner_id, "http://emsp.invalid/ocpi/sessions")]
    store.take_party(partner_id, Party("DE", "EMS"))
    assert receivers_of_ems() == []
    store.give_party(partner_id, Party("DE", "EMS"))
    assert receivers_of_ems() == [(partner_id, "http://emsp.invalid/ocpi/sessions")]
    # A change made by another process (another engine, plain SQL) counts as well.
    other = sa.create_engine(engine.url)
    with other.begin() as c:
        c.execute(sa.text("UPDATE partners SET registered = false"))
    other.dispose()
    assert receivers_of_ems() == []
