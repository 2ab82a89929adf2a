"""Transactions in the store, and the sessions and CDRs they make: repeated and simultaneous
deliveries, meter values, pricing, listing pages."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from csms_doubles import ACCEPTED, add_test_charger, make_tariff

from chargerfw.csms import billing
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import AuthDecision, PageQuery, StartRequest, Store

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_repeated_start_returns_the_same_transaction(store: Store) -> None:
    add_test_charger(store)
    request = StartRequest("CP1", 1, "TAG1", 1000, T0)
    first, created = store.start_transaction(request, ACCEPTED)
    again, created_again = store.start_transaction(request, ACCEPTED)
    assert created and not created_again
    assert again["id"] == first["id"] and again["session_id"] == first["session_id"]
    other, created_other = store.start_transaction(
        StartRequest("CP1", 1, "TAG1", 1001, T0), ACCEPTED)
    assert created_other and other["id"] != first["id"]
    assert store.list_sessions(PageQuery()).total == 2


def test_simultaneous_duplicate_starts_make_one_session(store: Store) -> None:
    add_test_charger(store)
    request = StartRequest("CP1", 1, "TAG1", 7, T0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: store.start_transaction(request, ACCEPTED), range(4)))
    assert len({row["id"] for row, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert store.list_sessions(PageQuery()).total == 1


def test_meter_values_repeat_is_ignored_and_kwh_follows(store: Store) -> None:
    add_test_charger(store)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 1000, T0), ACCEPTED)
    samples = [billing.Sample(T0 + timedelta(minutes=1), billing.ENERGY_REGISTER, "", 1500.0)]
    assert store.add_meter_values("CP1", 1, tx["id"], samples)["meter_last"] == 1500
    assert store.add_meter_values("CP1", 1, tx["id"], samples) is None  # repeat: nothing moves
    with store.engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM meter_values")).scalar_one()
    assert count == 1
    session = m.Session.model_validate(store.get_session(tx["session_id"]))
    assert session.kwh == Decimal("0.5") and session.status == "ACTIVE"
    assert session.charging_periods is not None
    assert billing.sum_energy(store.get_session(tx["session_id"])["charging_periods"]) \
        == Decimal("0.5")


def test_meter_values_partly_repeated_add_only_the_new_samples(store: Store) -> None:
    add_test_charger(store)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 1000, T0), ACCEPTED)

    def energy(minute: int, wh: float) -> billing.Sample:
        return billing.Sample(T0 + timedelta(minutes=minute), billing.ENERGY_REGISTER, "", wh)

    current = billing.Sample(T0 + timedelta(minutes=1), billing.CURRENT_IMPORT, "L1", 16.0)
    store.add_meter_values("CP1", 1, tx["id"], [energy(1, 1500.0), current])
    # Sent again with one new reading, which the message itself carries twice.
    moved = store.add_meter_values("CP1", 1, tx["id"], [
        energy(1, 1500.0), current, energy(2, 1800.0), energy(2, 1800.0)])
    assert moved is not None and moved["meter_last"] == 1800
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text(
            "SELECT measurand, value FROM meter_values ORDER BY timestamp, measurand")).all()
    assert [tuple(row) for row in stored] == [
        (billing.CURRENT_IMPORT, 16.0), (billing.ENERGY_REGISTER, 1500.0),
        (billing.ENERGY_REGISTER, 1800.0)]


def test_stop_writes_one_cdr_priced_by_the_tariff(store: Store) -> None:
    store.add_tariff(make_tariff("T1", energy=0.30, time_h=1.20, flat=0.50, vat=21))
    add_test_charger(store, tariff_id="T1")
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 10_000, T0), ACCEPTED)
    store.add_meter_values("CP1", 1, tx["id"], [
        billing.Sample(T0 + timedelta(minutes=15), billing.ENERGY_REGISTER, "", 12_500.0),
        billing.Sample(T0 + timedelta(minutes=15), "Current.Import", "L1", 16.0)])
    end = T0 + timedelta(minutes=30)
    row, stopped = store.stop_transaction("CP1", tx["id"], 15_250, end, "Local")
    assert stopped and row["status"] == "COMPLETED"
    _, stopped_again = store.stop_transaction("CP1", tx["id"], 99_999, end, "Local")
    assert not stopped_again
    assert store.build_due_cdrs() == 1 and store.build_due_cdrs() == 0
    page = store.list_cdrs(PageQuery())
    assert page.total == 1
    cdr = m.CDR.model_validate(page.items[0])
    assert cdr.total_energy == Decimal("5.25")  # (15250 - 10000) Wh
    assert cdr.total_time == Decimal("0.5")
    # 5.25 kWh * 0.30 + 0.5 h * 1.20 + 0.50 flat = 1.575 + 0.60 + 0.50 = 2.675 excl. VAT
    assert cdr.total_cost.excl_vat == Decimal("2.675")
    assert cdr.total_cost.incl_vat == Decimal("3.2368")  # 1.9058 + 0.726 + 0.605
    assert cdr.total_energy_cost is not None and cdr.total_energy_cost.excl_vat == Decimal("1.575")
    assert billing.sum_energy(page.items[0]["charging_periods"]) == Decimal("5.25")
    assert cdr.cdr_token.contract_id == "DE-EMS-C001"
    assert cdr.cdr_location.evse_uid == "CP1-1" and cdr.cdr_location.connector_standard \
        == "IEC_62196_T2"
    dims = {d.type for d in cdr.charging_periods[0].dimensions}
    assert {"ENERGY", "TIME", "MAX_CURRENT"} <= dims


def test_rejected_start_is_kept_but_not_charged(store: Store) -> None:
    add_test_charger(store)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "BAD", 0, T0),
                                    AuthDecision("Invalid", "AUTH_REQUEST"))
    assert tx["id_tag_status"] == "Invalid" and tx["status"] == "INVALID"
    store.stop_transaction("CP1", tx["id"], 10, T0 + timedelta(minutes=1), "DeAuthorized")
    assert store.build_due_cdrs() == 0 and store.list_cdrs(PageQuery()).total == 0


def test_pagination_and_date_filters(store: Store) -> None:
    add_test_charger(store)
    for n in range(5):
        store.start_transaction(StartRequest("CP1", 1, f"TAG{n}", n, T0), ACCEPTED)
    assert [len(store.list_sessions(PageQuery(offset=o, limit=2)).items) for o in (0, 2, 4)] \
        == [2, 2, 1]
    now = datetime.now(UTC)
    assert store.list_sessions(PageQuery(date_from=now + timedelta(hours=1))).total == 0
    assert store.list_sessions(PageQuery(date_to=now - timedelta(hours=1))).total == 0
    assert store.list_sessions(PageQuery(date_from=now - timedelta(hours=1))).total == 5
