"""Tariffs in the store: checked before they are stored, updated and deleted with pushes, and
sessions priced by the tariff they started under, with parking time and a running cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from csms_doubles import ACCEPTED, add_test_charger, make_tariff

from chargerfw.csms import billing
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import (
    NotFound,
    PageQuery,
    Party,
    StartRequest,
    Store,
    StoreError,
    utcnow,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Amsterdam


def add_tariff_receiver(store: Store) -> int:
    """A registered eMSP that receives tariffs (nothing listens: pushes stay queued)."""
    url = "http://emsp.invalid/ocpi"
    party = [Party("DE", "EMS")]
    partner_id, _ = store.add_partner("eMSP", party)
    store.register_partner(partner_id, "their-token", f"{url}/versions", "2.2.1", [
        {"identifier": "tariffs", "role": "RECEIVER", "url": f"{url}/tariffs"}], party)
    return partner_id


def tariff(tariff_id: str = "T1", **fields: Any) -> m.Tariff:
    data: dict[str, Any] = {
        "country_code": "NL", "party_id": "CFW", "id": tariff_id, "currency": "EUR",
        "elements": [{"price_components": [
            {"type": "ENERGY", "price": 0.25, "vat": 21, "step_size": 1},
            {"type": "PARKING_TIME", "price": 2.00, "vat": 21, "step_size": 900}]}],
        "last_updated": "2026-01-01T00:00:00Z", **fields}
    return m.Tariff.model_validate(data)


def tariff_pushes(store: Store) -> list[tuple[str, str, Any]]:
    return [(p["method"], p["url"], p["body"]) for p in store.pushes()
            if p["module"] == "tariffs"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"elements": [{"price_components": [{"type": "TIME", "price": 1, "step_size": 1}],
                    "restrictions": {"start_time": "8:00"}}]}, "start_time"),
    ({"elements": [{"price_components": [{"type": "ENERGY", "price": 1, "step_size": 1}],
                    "restrictions": {"min_kwh": 10, "max_kwh": 5}}]}, "min_kwh"),
    ({"min_price": {"excl_vat": 5}, "max_price": {"excl_vat": 1}}, "min_price"),
    ({"party_id": "EMS"}, "not ours"),
])
def test_a_bad_tariff_is_refused_and_nothing_changes(store: Store, fields: dict[str, Any],
                                                     message: str) -> None:
    add_tariff_receiver(store)
    with pytest.raises(StoreError, match=message):
        store.add_tariff(tariff(**fields))
    assert store.list_tariffs(PageQuery()).total == 0 and tariff_pushes(store) == []
    store.add_tariff(tariff())
    before = store.get_tariff("T1")
    with pytest.raises(StoreError, match=message):
        store.update_tariff(tariff(**fields))
    assert store.get_tariff("T1") == before and len(tariff_pushes(store)) == 1


def test_update_and_delete_are_pushed(store: Store) -> None:
    add_tariff_receiver(store)
    store.add_tariff(tariff())
    with pytest.raises(NotFound):
        store.update_tariff(tariff("T9"))
    updated = store.update_tariff(tariff(max_price={"excl_vat": 20, "incl_vat": 24.2}))
    assert store.get_tariff("T1") == updated and updated["max_price"]["excl_vat"] == 20
    assert updated["last_updated"] != "2026-01-01T00:00:00Z"  # stamped when stored
    add_test_charger(store, tariff_id="T1")
    with pytest.raises(StoreError, match="CP1-1"):
        store.delete_tariff("T1")  # a connector still prices with it
    store.add_tariff(tariff("T2"))
    store.set_connector_tariff("T2")
    store.delete_tariff("T1")
    with pytest.raises(NotFound):
        store.delete_tariff("T1")
    assert [t["id"] for t in store.list_tariffs(PageQuery()).items] == ["T2"]
    url = "http://emsp.invalid/ocpi/tariffs/NL/CFW"
    assert [(method, link) for method, link, _ in tariff_pushes(store)] == [
        ("PUT", f"{url}/T1"), ("PUT", f"{url}/T1"), ("PUT", f"{url}/T2"),
        ("DELETE", f"{url}/T1")]
    assert tariff_pushes(store)[1][2] == updated and tariff_pushes(store)[-1][2] is None


def energy(minutes: float, wh: float) -> billing.Sample:
    return billing.Sample(T0 + timedelta(minutes=minutes), billing.ENERGY_REGISTER, "", wh)


def test_parking_time_is_priced_and_a_session_keeps_its_tariff(store: Store) -> None:
    store.add_tariff(tariff())  # 0.25/kWh, parking 2.00/h per 15 min, 21 % VAT
    add_test_charger(store, tariff_id="T1")
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 1_000, T0), ACCEPTED)
    store.add_meter_values("CP1", 1, tx["id"], [energy(60, 11_000)])
    running = m.Session.model_validate(store.get_session(tx["session_id"]))
    assert running.status == "ACTIVE" and running.total_cost is not None
    assert running.total_cost.excl_vat == Decimal("2.5")  # 10 kWh so far
    # A price change does not reach the running session.
    store.update_tariff(tariff(elements=[{"price_components": [
        {"type": "ENERGY", "price": 9.99, "step_size": 1}]}]))
    store.add_meter_values("CP1", 1, tx["id"], [energy(90, 11_020)])  # the car is full
    store.stop_transaction("CP1", tx["id"], 11_020, T0 + timedelta(minutes=100), "EVDisconnected")
    assert store.build_due_cdrs() == 1
    cdr = m.CDR.model_validate(store.list_cdrs(PageQuery()).items[0])
    assert [[d.type for d in p.dimensions] for p in cdr.charging_periods] == [
        ["ENERGY", "TIME"], ["ENERGY", "PARKING_TIME"]]
    assert cdr.charging_periods[1].start_date_time == T0 + timedelta(minutes=60)
    assert cdr.total_parking_time == Decimal("0.666667")  # 40 minutes
    # 10.02 kWh * 0.25 = 2.505; parking 40 -> 45 min at 2.00/h = 1.50
    assert cdr.total_energy_cost is not None and cdr.total_parking_cost is not None
    assert (cdr.total_energy_cost.excl_vat, cdr.total_parking_cost.excl_vat) == (
        Decimal("2.505"), Decimal("1.5"))
    assert cdr.total_cost.excl_vat == Decimal("4.005")
    assert cdr.total_cost.incl_vat == Decimal("4.8461")  # 3.0311 + 1.815
    assert cdr.tariffs is not None and cdr.tariffs[0].elements[0].price_components[0].price \
        == Decimal("0.25")


def test_a_session_keeps_its_tariff_when_the_tariff_is_deleted(store: Store) -> None:
    store.add_tariff(make_tariff("T1", energy=0.30, time_h=0, flat=0, vat=0))
    store.add_tariff(make_tariff("T2", energy=1.00, time_h=0, flat=0, vat=0))
    add_test_charger(store, tariff_id="T1")
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), ACCEPTED)
    store.set_connector_tariff("T2")
    store.delete_tariff("T1")
    store.stop_transaction("CP1", tx["id"], 10_000, T0 + timedelta(hours=1), "Local")
    assert store.build_due_cdrs() == 1
    cdr = m.CDR.model_validate(store.list_cdrs(PageQuery()).items[0])
    assert cdr.total_cost.excl_vat == Decimal("3")


def test_time_of_day_is_judged_in_the_locations_time_zone(store: Store) -> None:
    # 09:00 UTC is 10:00 in Amsterdam: the morning element (before 10:00 local) is over.
    store.add_tariff(tariff(elements=[
        {"price_components": [{"type": "ENERGY", "price": 0.10, "step_size": 1}],
         "restrictions": {"end_time": "10:00"}},
        {"price_components": [{"type": "ENERGY", "price": 0.40, "step_size": 1}]}]))
    add_test_charger(store, tariff_id="T1")
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), ACCEPTED)
    store.stop_transaction("CP1", tx["id"], 10_000, T0 + timedelta(hours=1), "Local")
    assert store.build_due_cdrs() == 1
    cdr = m.CDR.model_validate(store.list_cdrs(PageQuery()).items[0])
    assert cdr.total_cost.excl_vat == Decimal("4")


def test_a_session_started_on_a_reservation_pays_its_reservation_time(store: Store) -> None:
    store.add_tariff(tariff(elements=[
        {"price_components": [{"type": "TIME", "price": 5.00, "vat": 20, "step_size": 60}],
         "restrictions": {"reservation": "RESERVATION"}},
        {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 10, "step_size": 1}]}]))
    add_test_charger(store, tariff_id="T1")
    reservation_id = store.create_reservation("CP1", 1, "TAG1", utcnow() + timedelta(hours=1),
                                              None, None)
    store.set_reservation_status(reservation_id, "ACCEPTED")
    reservation = store.get_reservation(reservation_id)
    assert reservation is not None
    start = reservation["created_at"] + timedelta(minutes=15)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, start, reservation_id),
                                    ACCEPTED)
    store.stop_transaction("CP1", tx["id"], 20_000, start + timedelta(hours=1), "Local")
    assert store.build_due_cdrs() == 1
    cdr = m.CDR.model_validate(store.list_cdrs(PageQuery()).items[0])
    # The spec's reservation example: 15 min at 5.00/h + 20 kWh at 0.25 (its start fee aside)
    assert cdr.total_reservation_cost is not None
    assert (cdr.total_reservation_cost.excl_vat, cdr.total_reservation_cost.incl_vat) == (
        Decimal("1.25"), Decimal("1.5"))
    assert (cdr.total_cost.excl_vat, cdr.total_cost.incl_vat) == (Decimal("6.25"),
                                                                  Decimal("7"))
    assert cdr.total_time_cost is not None and cdr.total_time_cost.excl_vat == 0
