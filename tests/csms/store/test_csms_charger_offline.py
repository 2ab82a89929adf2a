"""Chargers that drop off (``store.charge_points``): their EVSEs show UNKNOWN once the grace
period is over, and their real statuses again when they return, each change PATCHed to
partners."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms_doubles import add_registered_partner, add_test_charger

from chargerfw.csms.store import Store, utcnow

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
HEARTBEAT = timedelta(minutes=10)


def evse_patches(store: Store) -> list[str]:
    return [p["body"]["status"] for p in store.pushes()
            if p["method"] == "PATCH" and p["url"].endswith("/locations/NL/CFW/LOC1/CP1-1")]


def statuses(store: Store) -> dict[str, str]:
    location = store.get_location("LOC1")
    assert location is not None
    return {evse["uid"]: evse["status"] for evse in location["evses"]}


def test_a_disconnected_charger_goes_unknown_after_the_grace_period_and_back(store: Store
                                                                             ) -> None:
    add_registered_partner(store)
    add_test_charger(store, "CP1", None, connectors=2)
    store.charger_connected("CP1")
    store.record_status("CP1", 1, "Available", "NoError", T0)
    store.record_status("CP1", 2, "Charging", "NoError", T0)
    store.charger_disconnected("CP1")
    gone = utcnow()
    assert store.sweep_offline(GRACE, HEARTBEAT, gone + GRACE) == []  # still within grace
    assert statuses(store) == {"CP1-1": "AVAILABLE", "CP1-2": "CHARGING"}
    changes = store.sweep_offline(GRACE, HEARTBEAT, gone + GRACE + timedelta(seconds=1))
    assert {(c.evse_uid, c.status) for c in changes} == {("CP1-1", "UNKNOWN"),
                                                          ("CP1-2", "UNKNOWN")}
    assert statuses(store) == {"CP1-1": "UNKNOWN", "CP1-2": "UNKNOWN"}
    assert evse_patches(store) == ["AVAILABLE", "UNKNOWN"]
    assert store.sweep_offline(GRACE, HEARTBEAT, gone + 2 * GRACE) == []  # once only
    back = store.charger_connected("CP1")
    assert {(c.evse_uid, c.status) for c in back} == {("CP1-1", "AVAILABLE"),
                                                       ("CP1-2", "CHARGING")}
    assert statuses(store) == {"CP1-1": "AVAILABLE", "CP1-2": "CHARGING"}
    assert evse_patches(store) == ["AVAILABLE", "UNKNOWN", "AVAILABLE"]


def test_a_connected_charger_that_misses_its_heartbeat_goes_unknown(store: Store) -> None:
    add_registered_partner(store)
    add_test_charger(store, "CP1", None)
    store.charger_connected("CP1")
    store.record_status("CP1", 1, "Available", "NoError", T0)
    store.record_heartbeat("CP1")
    beat = utcnow()
    assert store.sweep_offline(GRACE, HEARTBEAT, beat + HEARTBEAT + GRACE) == []
    assert [c.status for c in store.sweep_offline(
        GRACE, HEARTBEAT, beat + HEARTBEAT + GRACE + timedelta(seconds=1))] == ["UNKNOWN"]
    # Whatever it sends next brings the EVSE back; a status it reports counts.
    store.record_status("CP1", 1, "Faulted", "GroundFailure", T0 + timedelta(hours=1))
    assert statuses(store) == {"CP1-1": "OUTOFORDER"}
    assert evse_patches(store) == ["AVAILABLE", "UNKNOWN", "OUTOFORDER"]


def test_a_charger_never_seen_or_restarted_under_is_given_the_grace_period(store: Store
                                                                           ) -> None:
    add_test_charger(store, "CP1", None)
    add_test_charger(store, "CP2", None, location_id="LOC2")
    store.record_status("CP1", 1, "Available", "NoError", T0)  # seen, then the backend stops
    store.charger_connected("CP1")
    far = utcnow() + timedelta(days=1)
    restarted = utcnow()
    assert store.reset_connections(restarted) == 1
    assert store.get_charge_point("CP1")["connected"] is False
    assert store.sweep_offline(GRACE, HEARTBEAT, restarted + GRACE) == []
    # CP2 never connected: nothing to time out (its EVSE is UNKNOWN from the start).
    changes = store.sweep_offline(GRACE, HEARTBEAT, far)
    assert [(c.evse_uid, c.status) for c in changes] == [("CP1-1", "UNKNOWN")]
