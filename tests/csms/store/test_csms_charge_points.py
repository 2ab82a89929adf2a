"""Charge points, their EVSEs and locations in the store: registration, attaching, passwords,
reported statuses and the location pushes they cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from csms_doubles import ACCEPTED, add_registered_partner, add_test_charger, make_tariff

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import (
    AlreadyExists,
    ConnectorSpec,
    EvseSpec,
    LocationSpec,
    NotFound,
    PageQuery,
    StartRequest,
    Store,
    StoreError,
    hash_password,
    verify_password,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_password_is_stored_hashed_and_verified(store: Store) -> None:
    add_test_charger(store, "CP1", password="s3cret")
    row = store.get_charge_point("CP1")
    assert row is not None and "s3cret" not in row["password_hash"]
    assert row["password_hash"].startswith("scrypt$")
    assert verify_password("s3cret", row["password_hash"])
    assert not verify_password("wrong", row["password_hash"])
    assert not verify_password("s3cret", hash_password("other"))


def test_duplicate_charge_point_is_refused_without_changes(store: Store) -> None:
    add_test_charger(store, "CP1")
    with pytest.raises(AlreadyExists):
        add_test_charger(store, "CP1", location_id="LOC2")
    assert store.get_location("LOC2") is None
    with pytest.raises(NotFound, match="tariff"):
        add_test_charger(store, "CP9", tariff_id="NOPE", location_id="LOC9")
    assert store.get_charge_point("CP9") is None and store.get_location("LOC9") is None


def test_location_object_validates_and_status_maps_from_ocpp(store: Store) -> None:
    add_test_charger(store, "CP1", connectors=2)
    location = store.get_location("LOC1")
    assert location is not None
    parsed = m.Location.model_validate(location)
    assert [e.uid for e in parsed.evses or []] == ["CP1-1", "CP1-2"]
    assert all(e.status == "UNKNOWN" for e in parsed.evses or [])
    [change] = store.record_status("CP1", 2, "Charging", "NoError", T0)
    assert (change.location_id, change.evse_uid, change.status) == ("LOC1", "CP1-2", "CHARGING")
    assert store.record_status("CP1", 2, "SuspendedEV", "NoError", T0) == []  # still CHARGING
    statuses = {e["uid"]: e["status"] for e in store.get_location("LOC1")["evses"]}
    assert statuses == {"CP1-1": "UNKNOWN", "CP1-2": "CHARGING"}
    assert store.connector_statuses("CP1")[2]["status"] == "SuspendedEV"


def _location_patches(store: Store) -> list[tuple[str, str]]:
    return [(p["url"].rsplit("/", 1)[1], p["body"]["status"]) for p in store.pushes()
            if p["module"] == "locations" and p["method"] == "PATCH"]


def test_connector_zero_status_reaches_every_evse_and_is_pushed(store: Store) -> None:
    add_registered_partner(store)
    add_test_charger(store, "CP1", connectors=2)
    add_test_charger(store, "CP2", location_id="LOC2")
    store.record_status("CP2", 1, "Available", "NoError", T0)
    store.record_status("CP1", 1, "Available", "NoError", T0)
    store.record_status("CP1", 2, "Charging", "NoError", T0)

    changes = store.record_status("CP1", 0, "Unavailable", "NoError", T0)
    assert [(c.evse_uid, c.status) for c in changes] == [("CP1-1", "INOPERATIVE"),
                                                          ("CP1-2", "INOPERATIVE")]
    served = store.get_location("LOC1")
    assert {e["uid"]: e["status"] for e in served["evses"]} == {
        "CP1-1": "INOPERATIVE", "CP1-2": "INOPERATIVE"}
    published = {loc["id"]: loc for loc in store.list_locations(PageQuery(), True).items}
    assert [e["status"] for e in published["LOC1"]["evses"]] == ["INOPERATIVE", "INOPERATIVE"]
    assert [e["status"] for e in published["LOC2"]["evses"]] == ["AVAILABLE"]  # other charger
    assert store.evse_for_connector("CP1", 1)["status"] == "INOPERATIVE"

    # While connector 0 is down, an EVSE's own news is stored but does not show (or push),
    # except that a faulted EVSE is reported faulted.
    assert store.record_status("CP1", 2, "Available", "NoError", T0) == []
    assert store.connector_statuses("CP1")[2]["status"] == "Available"
    [faulted] = store.record_status("CP1", 1, "Faulted", "GroundFailure", T0)
    assert (faulted.evse_uid, faulted.status) == ("CP1-1", "OUTOFORDER")
    [whole_fault] = store.record_status("CP1", 0, "Faulted", "OtherError", T0)
    assert (whole_fault.evse_uid, whole_fault.status) == ("CP1-2", "OUTOFORDER")

    # Back in service: each EVSE shows its own latest status again.
    back = store.record_status("CP1", 0, "Available", "NoError", T0)
    assert [(c.evse_uid, c.status) for c in back] == [("CP1-2", "AVAILABLE")]
    assert {e["uid"]: e["status"] for e in store.get_location("LOC1")["evses"]} == {
        "CP1-1": "OUTOFORDER", "CP1-2": "AVAILABLE"}
    assert _location_patches(store) == [
        ("CP2-1", "AVAILABLE"), ("CP1-1", "AVAILABLE"), ("CP1-2", "CHARGING"),
        ("CP1-1", "INOPERATIVE"), ("CP1-2", "INOPERATIVE"), ("CP1-1", "OUTOFORDER"),
        ("CP1-2", "OUTOFORDER"), ("CP1-2", "AVAILABLE")]
    patch_urls = {p["url"] for p in store.pushes() if p["method"] == "PATCH"}
    assert "http://emsp.invalid/ocpi/locations/NL/CFW/LOC1/CP1-2" in patch_urls


def test_connector_zero_of_a_charge_point_without_evses_is_only_stored(store: Store) -> None:
    store.auto_register("NEW1", None)
    assert store.record_status("NEW1", 0, "Unavailable", "NoError", T0) == []
    assert store.connector_statuses("NEW1")[0]["status"] == "Unavailable"


def _location(location_id: str = "LOC7") -> LocationSpec:
    return LocationSpec(id=location_id, address="Kade 7", city="Utrecht", country="NLD",
                        latitude="52.09000", longitude="5.12000", time_zone="Europe/Amsterdam")


def _evses(charge_point_id: str, count: int = 1) -> list[EvseSpec]:
    return [EvseSpec(uid=f"{charge_point_id}-{n}", ocpp_connector_id=n, connectors=[
        ConnectorSpec("1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE", 400, 32)])
        for n in range(1, count + 1)]


def test_attach_gives_an_auto_registered_charge_point_its_location(store: Store) -> None:
    add_registered_partner(store)
    store.add_tariff(make_tariff("T1"))
    store.auto_register("NEW1", "pw")
    # It charged and reported before it had EVSEs: nothing for OCPI yet.
    assert store.record_status("NEW1", 1, "Charging", "NoError", T0) == []
    early, _ = store.start_transaction(StartRequest("NEW1", 1, "TAG1", 100, T0), ACCEPTED)
    assert early["evse_uid"] is None
    pushes_before = len(store.pushes())

    with pytest.raises(NotFound, match="tariff"):
        store.attach_charge_point("NEW1", _location(), _evses("NEW1", 2), "NOPE")
    assert store.get_charge_point("NEW1")["location_id"] is None
    assert store.get_location("LOC7") is None and store.evses_of_location("LOC7") == []

    store.attach_charge_point("NEW1", _location(), _evses("NEW1", 2), "T1")
    row = store.get_charge_point("NEW1")
    assert row["location_id"] == "LOC7" and row["auto_registered"] is True
    assert verify_password("pw", row["password_hash"])  # kept: none given
    location = m.Location.model_validate(store.get_location("LOC7"))
    assert [(e.uid, e.status) for e in location.evses] == [("NEW1-1", "CHARGING"),
                                                           ("NEW1-2", "UNKNOWN")]
    assert location.evses[0].connectors[0].tariff_ids == ["T1"]
    [put] = [p for p in store.pushes()[pushes_before:] if p["module"] == "locations"]
    assert put["method"] == "PUT" and put["url"].endswith("/locations/NL/CFW/LOC7")
    assert [e["uid"] for e in put["body"]["evses"]] == ["NEW1-1", "NEW1-2"]

    # The session that began before still ends; the next one is an OCPI session, priced.
    stopped, now_stopped = store.stop_transaction("NEW1", early["id"], 2100,
                                                  T0 + timedelta(minutes=30), "Local")
    assert now_stopped and stopped["meter_stop"] == 2100
    later, _ = store.start_transaction(
        StartRequest("NEW1", 2, "TAG1", 0, T0 + timedelta(hours=1)), ACCEPTED)
    assert (later["evse_uid"], later["location_id"], later["tariff_id"]) == (
        "NEW1-2", "LOC7", "T1")
    assert [s["id"] for s in store.list_sessions(PageQuery()).items] == [later["session_id"]]

    with pytest.raises(AlreadyExists, match=r"has EVSE\(s\) already \(NEW1-1, NEW1-2"):
        store.attach_charge_point("NEW1", _location("LOC8"), _evses("NEW1"))
    assert store.get_location("LOC8") is None
    assert store.get_charge_point("NEW1")["location_id"] == "LOC7"
    with pytest.raises(NotFound, match="unknown charge point"):
        store.attach_charge_point("GHOST", _location("LOC8"), _evses("GHOST"))


def test_attach_sets_or_clears_the_password(store: Store) -> None:
    store.auto_register("A1", "old")
    store.attach_charge_point("A1", _location(), _evses("A1"), password="new")
    assert verify_password("new", store.get_charge_point("A1")["password_hash"])
    store.auto_register("A2", "old")
    store.attach_charge_point("A2", _location(), _evses("A2"), clear_password=True)
    assert store.get_charge_point("A2")["password_hash"] is None
    store.auto_register("A3", "old")
    with pytest.raises(StoreError, match="not both"):
        store.attach_charge_point("A3", _location(), _evses("A3"), password="x",
                                  clear_password=True)
    with pytest.raises(AlreadyExists, match="conflicting"):  # EVSE uid of another charger
        store.attach_charge_point("A3", _location(), [
            EvseSpec("A1-1", 1, _evses("A3")[0].connectors)])
    assert store.get_charge_point("A3")["location_id"] is None
    assert verify_password("old", store.get_charge_point("A3")["password_hash"])
