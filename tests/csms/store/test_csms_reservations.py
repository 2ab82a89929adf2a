"""Reservations in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms_doubles import add_test_charger

from chargerfw.csms.store import Store

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_reservations_expire(store: Store) -> None:
    add_test_charger(store)
    rid = store.create_reservation("CP1", 1, "TAG1", T0, None, "R1")
    store.set_reservation_status(rid, "ACCEPTED")
    assert store.expire_reservations(T0 - timedelta(seconds=1)) == 0
    assert store.expire_reservations(T0) == 1
    assert store.get_reservation(rid)["status"] == "EXPIRED"
