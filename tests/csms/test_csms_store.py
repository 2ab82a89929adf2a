"""The CSMS data layer on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from csms_doubles import add_test_charger, db_url_for, make_tariff
from pg import PostgresServer

from chargerfw.csms import billing
from chargerfw.csms.db import (
    DatabaseUrlError,
    create_db_engine,
    current_revision,
    database_url,
    upgrade_database,
)
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import (
    AlreadyExists,
    AuthDecision,
    ConnectorSpec,
    CpoIdentity,
    EvseSpec,
    LocationSpec,
    NotFound,
    PageQuery,
    StartRequest,
    Store,
    StoreError,
    evse_status,
    evse_status_from_ocpp,
    hash_password,
    verify_password,
)
from chargerfw.csms.tables import metadata

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
ACCEPTED = AuthDecision("Accepted", "WHITELIST", "DE", "EMS", "RFID", "DE-EMS-C001")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, pg: PostgresServer) -> Iterator[Store]:
    engine = create_db_engine(db_url_for(request.param, tmp_path, pg))
    upgrade_database(engine)
    yield Store(engine, CpoIdentity("NL", "CFW", "Test CPO", "EUR"))
    engine.dispose()


def test_migrations_build_exactly_the_declared_schema(store: Store) -> None:
    assert current_revision(store.engine) == "0001"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    upgrade_database(store.engine)  # a second start applies nothing and does not fail
    assert current_revision(store.engine) == "0001"


def test_database_url_forms(tmp_path: Path) -> None:
    assert database_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"
    assert database_url("postgresql://u@h:5/d").startswith("postgresql+psycopg://u@h:5/d")
    with pytest.raises(DatabaseUrlError, match="mysql"):
        database_url("mysql://u@h/d")


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


@pytest.mark.parametrize(("ocpp", "ocpi"), [
    ("Available", "AVAILABLE"), ("Preparing", "CHARGING"), ("Charging", "CHARGING"),
    ("SuspendedEV", "CHARGING"), ("SuspendedEVSE", "CHARGING"), ("Finishing", "CHARGING"),
    ("Reserved", "RESERVED"), ("Unavailable", "INOPERATIVE"), ("Faulted", "OUTOFORDER"),
    ("Bogus", "UNKNOWN")])
def test_evse_status_mapping(ocpp: str, ocpi: str) -> None:
    assert evse_status_from_ocpp(ocpp) == ocpi


@pytest.mark.parametrize(("own", "whole", "ocpi"), [
    (None, None, "UNKNOWN"), ("Charging", None, "CHARGING"), ("Charging", "Available", "CHARGING"),
    ("Available", "Unavailable", "INOPERATIVE"), (None, "Unavailable", "INOPERATIVE"),
    ("Charging", "Faulted", "OUTOFORDER"), ("Reserved", "Faulted", "OUTOFORDER"),
    ("Faulted", "Unavailable", "OUTOFORDER")])
def test_connector_zero_overrides_each_evse_status(own: str | None, whole: str | None,
                                                   ocpi: str) -> None:
    assert evse_status(own, whole) == ocpi


def _location_patches(store: Store) -> list[tuple[str, str]]:
    return [(p["url"].rsplit("/", 1)[1], p["body"]["status"]) for p in store.pushes()
            if p["module"] == "locations" and p["method"] == "PATCH"]


def test_connector_zero_status_reaches_every_evse_and_is_pushed(store: Store) -> None:
    _registered_partner(store)
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
    _registered_partner(store)
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
    assert store.list_cdrs(PageQuery()).total == 0


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


def test_tokens_put_patch_get(store: Store) -> None:
    token = m.Token.model_validate({
        "country_code": "DE", "party_id": "EMS", "uid": "04A1B2", "type": "RFID",
        "contract_id": "DE-EMS-C001", "issuer": "eMSP", "valid": True,
        "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"})
    assert store.put_token(token, None) is True
    assert store.put_token(token, None) is False
    patched = store.patch_token("DE", "EMS", "04A1B2", "RFID", m.TokenPatch.model_validate(
        {"valid": False, "last_updated": "2026-01-02T00:00:00Z"}))
    assert patched["valid"] is False and patched["whitelist"] == "ALLOWED"
    assert store.get_token("DE", "EMS", "04A1B2")["valid"] is False
    assert store.get_token("DE", "EMS", "04A1B2", "APP_USER") is None
    app_token = m.Token.model_validate({**token.model_dump(), "type": "APP_USER",
                                        "valid": True})
    assert store.put_token(app_token, None) is True  # uid + type is the identity
    assert store.get_token("DE", "EMS", "04A1B2", "APP_USER")["valid"] is True
    assert store.get_token("DE", "EMS", "04A1B2")["valid"] is False
    with pytest.raises(NotFound):
        store.patch_token("DE", "EMS", "NOPE", "RFID", m.TokenPatch.model_validate(
            {"valid": False, "last_updated": "2026-01-02T00:00:00Z"}))


def _registered_partner(store: Store, url: str = "http://emsp.invalid/ocpi") -> int:
    partner_id, _ = store.add_partner("eMSP")
    store.register_partner(partner_id, "their-token", f"{url}/versions", "2.2.1", [
        {"identifier": "sessions", "role": "RECEIVER", "url": f"{url}/sessions"},
        {"identifier": "cdrs", "role": "RECEIVER", "url": f"{url}/cdrs"},
        {"identifier": "locations", "role": "RECEIVER", "url": f"{url}/locations"}],
        "DE", "EMS", "eMSP")
    return partner_id


def test_push_queue_keeps_each_partners_order(store: Store) -> None:
    _registered_partner(store)
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


def test_partner_tokens_are_stored_as_digests(store: Store) -> None:
    partner_id, token_a = store.add_partner("eMSP")
    found = store.partner_by_token(token_a)
    assert found is not None and found[1] == "A"
    with store.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM partners"))
                        for v in row)
    assert token_a not in dump
    token_c = store.register_partner(partner_id, "b", "http://x/versions", "2.2.1", [], "DE",
                                     "EMS", "eMSP")
    assert store.partner_by_token(token_a) is None  # TOKEN_A is spent
    assert store.partner_by_token(token_c)[1] == "C"


def test_reservations_expire(store: Store) -> None:
    add_test_charger(store)
    rid = store.create_reservation("CP1", 1, "TAG1", T0, None, "R1")
    store.set_reservation_status(rid, "ACCEPTED")
    assert store.expire_reservations(T0 - timedelta(seconds=1)) == 0
    assert store.expire_reservations(T0) == 1
    assert store.get_reservation(rid)["status"] == "EXPIRED"


def test_cost_step_sizes_round_up() -> None:
    tariff: dict[str, Any] = {"elements": [{"price_components": [
        {"type": "ENERGY", "price": 1.0, "step_size": 500},
        {"type": "TIME", "price": 3.6, "step_size": 60}]}]}
    cost = billing.compute_cost(tariff, 1001, T0, T0 + timedelta(seconds=61))
    assert cost.energy == (Decimal("1.5"), Decimal("1.5"))  # 1500 Wh billed, no VAT
    assert cost.time == (Decimal("0.12"), Decimal("0.12"))  # 120 s at 3.6/h


def test_migrations_ship_as_package_data() -> None:
    import configparser
    from fnmatch import fnmatch

    root = Path(__file__).resolve().parents[2]
    parser = configparser.ConfigParser()
    parser.read(root / "setup.cfg")
    patterns = [p.strip() for p in parser["options.package_data"]["chargerfw.csms"].split(",")]
    package = root / "chargerfw" / "csms"
    files = [f.relative_to(package).as_posix() for f in (package / "migrations").rglob("*")
             if f.is_file() and "__pycache__" not in f.parts]
    assert "migrations/env.py" in files and "migrations/versions/0001_initial_schema.py" in files
    assert all(any(fnmatch(name, pattern) for pattern in patterns) for name in files), files
    assert "chargerfw.csms.ocpi" in parser["options"]["packages"].split()


def test_charging_periods_stay_monotonic() -> None:
    samples = [billing.Sample(T0 + timedelta(minutes=n), billing.ENERGY_REGISTER, "", wh)
               for n, wh in ((1, 1500.0), (2, 1400.0), (3, 2500.0), (4, 9000.0))]
    periods = billing.charging_periods(T0, 1000, samples, T0 + timedelta(minutes=5), 3000)
    energies = [d["volume"] for p in periods for d in p["dimensions"] if d["type"] == "ENERGY"]
    assert energies == [0.5, 1.0, 0.5]  # 1400 went backwards and 9000 overshot: skipped
    assert billing.sum_energy(periods) == Decimal("2")
    assert [p["start_date_time"] for p in periods] == [T0, T0 + timedelta(minutes=1),
                                                       T0 + timedelta(minutes=3)]
