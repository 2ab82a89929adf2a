"""Sites, their members and what each connector was given, in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from csms_doubles import ACCEPTED, add_test_charger

from chargerfw.csms import billing
from chargerfw.csms.store import AlreadyExists, NotFound, StartRequest, Store, StoreError

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_sites_members_and_snapshot(store: Store) -> None:
    add_test_charger(store, "CP1", None, connectors=2)
    add_test_charger(store, "CP2", None, location_id="LOC2")
    add_test_charger(store, "CP3", None, location_id="LOC3")
    store.add_site("S", "Car park", 100)
    store.add_site("F", "Level -1", 40, parent_id="S", fallback_a=10)
    store.assign_site("CP1", "S")
    store.assign_site("CP2", "F")
    assert store.top_site_of("CP2") == "S" and store.top_site_of("CP1") == "S"
    assert store.top_site_of("CP3") is None
    assert [(r["id"], r["members"]) for r in store.list_sites()] == [("F", 1), ("S", 1)]

    store.record_status("CP1", 2, "Charging", "NoError", T0, None, None, None)
    tx, _ = store.start_transaction(StartRequest("CP1", 2, "TAG1", 0, T0), ACCEPTED)
    store.add_meter_values("CP1", 2, tx["id"], [
        billing.Sample(T0 + timedelta(minutes=1), "Current.Import", "L1", 30.0),
        billing.Sample(T0 + timedelta(minutes=2), "Current.Import", "L1", 12.5),
        billing.Sample(T0 + timedelta(minutes=2), "Current.Import", "L2", 13.0)])
    store.record_allocation("CP1", 2, 16.0, "share", 9102, tx["id"], {"x": 1})
    store.record_allocation("CP1", 2, 14.0, "share", 9102, tx["id"], {"x": 2})  # replaces
    store.record_allocation("CP2", 0, 6.0, "idle", 9100, None, {"x": 3})

    snap = store.site_snapshot("F")  # any site of the tree gives the whole tree
    assert snap.site["id"] == "S" and snap.feeder_limits == {"F": 40.0}
    assert snap.members == ["CP1", "CP2"] and set(snap.defaults) == {"CP2"}
    by_key = {(c.charge_point_id, c.connector_id): c for c in snap.connectors}
    assert set(by_key) == {("CP1", 1), ("CP1", 2), ("CP2", 1)}
    charging = by_key[("CP1", 2)]
    assert charging.transaction_id == tx["id"] and charging.started_at == T0
    assert charging.drawn_a == 13.0 and charging.status == "Charging"
    assert charging.allocation is not None and charging.allocation["limit_a"] == 14.0
    assert charging.feeders == frozenset() and charging.max_a == 32.0
    assert by_key[("CP2", 1)].feeders == frozenset({"F"})
    assert by_key[("CP2", 1)].fallback_a == 10.0 and by_key[("CP1", 1)].fallback_a == 6.0

    store.forget_allocations("CP1")
    assert all(c.allocation is None for c in store.site_snapshot("S").connectors
               if c.charge_point_id == "CP1")
    store.assign_site("CP1", None)
    assert store.top_site_of("CP1") is None


def test_bad_sites_are_refused_and_change_nothing(store: Store) -> None:
    add_test_charger(store, "CP1", None)
    store.add_site("S", "Car park", 100)
    with pytest.raises(AlreadyExists):
        store.add_site("S", "again", 50)
    for bad in [dict(max_current_a=0), dict(max_current_a=float("nan")),
                dict(fallback_a=-1), dict(stack_level=101)]:
        with pytest.raises(StoreError):
            store.add_site("T", "T", **{"max_current_a": 10, **bad})  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="site id"):
        store.add_site("a/b", "T", 10)
    with pytest.raises(NotFound):
        store.add_site("T", "T", 10, parent_id="nope")
    with pytest.raises(NotFound):
        store.assign_site("CP1", "nope")
    with pytest.raises(NotFound):
        store.assign_site("CPX", "S")
    assert [r["id"] for r in store.list_sites()] == ["S"]
    assert store.top_site_of("CP1") is None
    with pytest.raises(NotFound):
        store.site_snapshot("nope")


def test_session_profiles(store: Store) -> None:
    add_test_charger(store, "CP1", None)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), ACCEPTED)
    profile = {"charging_rate_unit": "A", "charging_profile_period": [
        {"start_period": 0, "limit": 10}]}
    store.set_session_profile(tx["id"], None, profile)
    store.set_session_profile(tx["id"], None, {**profile, "min_charging_rate": 6})
    assert store.session_profiles([tx["id"]]) == {tx["id"]: {**profile, "min_charging_rate": 6}}
    assert store.clear_session_profile(tx["id"]) and not store.clear_session_profile(tx["id"])
    assert store.session_profile(tx["id"]) is None
