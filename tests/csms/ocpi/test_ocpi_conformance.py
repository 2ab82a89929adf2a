"""OCPI 2.2.1 conformance against the independent model of tests/ocpi_spec: the model itself
(the spec's own examples pass, each kind of deviation is named by its JSON path), the check
on every exchange is active, and the whole chain conforms on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import copy
import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from csms_doubles import (
    EmspDouble,
    csms_running,
    ocpi_auth,
    ocpi_env,
    ok,
    register_emsp,
    running_emsp,
    serving,
    sim_charger,
    token_body,
)
from fakes import wait_until
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from ocpi_conformance import SPEC_DIR, Nonconforming, OcpiTraffic, violations

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
WHEN = "2026-03-01T10:00:00Z"

# --- the model ---------------------------------------------------------------------------------

# The examples shipped with the specification (examples/ of the 2.2.1 release), each with the
# object it shows; True where it is a PATCH body.
SPEC_EXAMPLES: dict[str, tuple[str, bool]] = {
    "location_example.json": ("Location", False),
    "location_example_parking_garage_opening_hours.json": ("Location", False),
    "location_example_uc4_limited_visibility.json": ("Location", False),
    "location_hours_opening_hours_with_exceptional_opening.json": ("Hours", False),
    "location_patch_example_status.json": ("EVSE", True),
    "session_patch_example_charging_period.json": ("Session", True),
    "tariff_4_complex.json": ("Tariff", False),
    "tariff_12_025kwh_min_price.json": ("Tariff", False),
    "tariff_14_step_size.json": ("Tariff", False),
    "tariff_17_reservation_with_expire_fee.json": ("Tariff", False),
    "token_example_2_full_rfid.json": ("Token", False),
    "token_patch_example.json": ("Token", True),
    "credentials_example.json": ("Credentials", False),
    "version_details_example.json": ("VersionDetails", False),
    "transport_and_format_get_token_list_example.json": ("Response", False),
}


def test_every_shipped_example_is_named() -> None:
    assert sorted(p.name for p in (SPEC_DIR / "examples").glob("*.json")) == sorted(SPEC_EXAMPLES)


@pytest.mark.parametrize("name", sorted(SPEC_EXAMPLES))
def test_the_specification_examples_conform(name: str) -> None:
    kind, partial = SPEC_EXAMPLES[name]
    body = json.loads((SPEC_DIR / "examples" / name).read_text())
    assert violations(kind, body, partial=partial) == []


def session() -> dict[str, Any]:
    return {"country_code": "NL", "party_id": "CFW", "id": "S1", "start_date_time": WHEN,
            "kwh": 3.5, "cdr_token": {"country_code": "DE", "party_id": "EMS", "uid": "TAG1",
                                      "type": "RFID", "contract_id": "DE-EMS-TAG1"},
            "auth_method": "WHITELIST", "location_id": "LOC1", "evse_uid": "CP1-1",
            "connector_id": "1", "currency": "EUR", "status": "ACTIVE",
            "charging_periods": [{"start_date_time": WHEN,
                                  "dimensions": [{"type": "ENERGY", "volume": 3.5}]}],
            "last_updated": WHEN}


def active_profile() -> dict[str, Any]:
    return {"result": "ACCEPTED", "profile": {
        "start_date_time": WHEN, "charging_profile": {
            "charging_rate_unit": "A", "min_charging_rate": 6.0,
            "charging_profile_period": [{"start_period": 0, "limit": 16.5},
                                        {"start_period": 900, "limit": 8}]}}}


def location() -> dict[str, Any]:
    return json.loads((SPEC_DIR / "examples" / "location_example.json").read_text())


def with_change(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with the value at ``path`` ("a.0.b") replaced (or removed when ``...``)."""
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return changed


# (kind, valid body, changed path, new value (... removes it), the one violation's JSON path)
DEVIATIONS = [
    ("Session", session, "kwh", "3.5", "$.kwh"),  # number as a string
    ("Session", session, "status", "RUNNING", "$.status"),  # not in the enum
    ("Session", session, "cdr_token", ..., "$"),  # a required field missing
    ("Session", session, "country_code", "NLD", "$.country_code"),  # CiString(2)
    ("Session", session, "id", "séance", "$.id"),  # CiString is printable ASCII
    ("Session", session, "meter_id", None, "$.meter_id"),  # optional is absent, not null
    ("Session", session, "meter_id", "M\n1", "$.meter_id"),  # string has no control chars
    ("Session", session, "tariff_id", "T1", "$"),  # a field the spec does not define
    ("Session", session, "start_date_time", "2026-03-01T10:00:00+00:00",
     "$.start_date_time"),  # +00:00 is not UTC's form
    ("Session", session, "start_date_time", "2026-02-30T10:00:00Z", "$.start_date_time"),
    ("Session", session, "charging_periods.0.dimensions", [], "$.charging_periods[0].dimensions"),
    ("Session", session, "charging_periods.0.dimensions.0.type", "KWH",
     "$.charging_periods[0].dimensions[0].type"),
    ("Location", location, "coordinates.latitude", "51.04", "$.coordinates.latitude"),
    ("Location", location, "evses.0.connectors", [], "$.evses[0].connectors"),
    ("Location", location, "evses.0.connectors.0.max_voltage", 230.5,
     "$.evses[0].connectors[0].max_voltage"),
    ("Location", location, "evses.0.status", "Available", "$.evses[0].status"),
    ("Location", location, "address", "x" * 46, "$.address"),
    ("Location", location, "publish", "true", "$.publish"),
    ("ActiveChargingProfileResult", active_profile, "result", "NOT_FOUND", "$.result"),
    ("ActiveChargingProfileResult", active_profile,
     "profile.charging_profile.charging_rate_unit", "kW",
     "$.profile.charging_profile.charging_rate_unit"),
    ("ActiveChargingProfileResult", active_profile,
     "profile.charging_profile.charging_profile_period.0.limit", 16.25,
     "$.profile.charging_profile.charging_profile_period[0].limit"),  # one digit fraction
    ("ActiveChargingProfileResult", active_profile, "profile.start_date_time", ...,
     "$.profile"),
]


@pytest.mark.parametrize(("kind", "valid", "path", "value", "where"), DEVIATIONS,
                         ids=[f"{d[0]}.{d[2]}={d[3]!r:.20}" for d in DEVIATIONS])
def test_each_deviation_is_named_by_its_path(kind: str, valid: Any, path: str, value: Any,
                                             where: str) -> None:
    assert violations(kind, valid()) == []
    found = violations(kind, with_change(valid(), path, value))
    assert [v.split(": ", 1)[0] for v in found] == [where], found


def test_a_patch_carries_only_what_changed_and_last_updated() -> None:
    assert violations("Session", {"kwh": 4.0, "last_updated": WHEN}, partial=True) == []
    assert violations("Session", {"kwh": 4.0}, partial=True) == [
        "$: 'last_updated' is a required property of a PATCH"]
    assert [v.split(":")[0] for v in violations(
        "Session", {"kwh": "4", "last_updated": WHEN}, partial=True)] == ["$.kwh"]
    assert violations("Session", {"kwh": 4.0, "last_updated": WHEN}) != []  # not a whole one


def test_the_envelope() -> None:
    good = {"data": [], "status_code": 1000, "status_message": "Success", "timestamp": WHEN}
    assert violations("Response", good) == []
    assert violations("Response", {k: v for k, v in good.items() if k != "data"}) == []
    for key, value in (("status_code", "1000"), ("status_code", 200), ("timestamp", "now"),
                       ("status_message", 3)):
        assert [v.split(":")[0] for v in violations("Response", good | {key: value})] == [
            f"$.{key}"]


# --- the check on every exchange is active --------------------------------------------------------

def rogue_api(_sock: socket.socket) -> FastAPI:
    """Answers the locations list with a Location whose latitude is not the spec's form."""
    app = FastAPI()

    @app.get("/ocpi/2.2.1/locations")
    async def locations() -> JSONResponse:
        return JSONResponse({"data": [with_change(location(), "coordinates.latitude", "51")],
                             "status_code": 1000, "timestamp": WHEN})

    return app


async def test_a_nonconforming_answer_fails_where_it_is_received(
        ocpi_traffic: OcpiTraffic) -> None:
    import httpx

    async with serving(rogue_api) as port, httpx.AsyncClient() as client:
        with pytest.raises(Nonconforming, match=r"\$\[0\]\.coordinates\.latitude"):
            await client.get(f"http://127.0.0.1:{port}/ocpi/2.2.1/locations")
    assert len(ocpi_traffic.found) == 1
    ocpi_traffic.found.clear()  # seen: this test's own deviation must not fail it


async def test_a_nonconforming_push_is_caught(db: str, ocpi_traffic: OcpiTraffic) -> None:
    async with running_emsp() as emsp, csms_running(db) as csms:
        await register_emsp(csms, emsp)
        partner = await csms.db(csms.store.partner_of_party, "DE", "EMS")
        assert partner is not None
        bad = with_change(session(), "kwh", "3.5")
        await csms.db(csms.store.enqueue_push, partner["id"], "sessions", "PUT",
                      f"{emsp.base}/emsp/sessions/NL/CFW/S1", bad)
        csms.pusher.wake()
        await emsp.wait_for(lambda r: r.path == "/emsp/sessions/NL/CFW/S1", 15)
    assert len(ocpi_traffic.found) == 1
    assert "is not an OCPI 2.2.1 Session" in ocpi_traffic.found[0]
    assert "$.kwh: '3.5' is not of type 'number'" in ocpi_traffic.found[0]
    ocpi_traffic.found.clear()


# --- the whole chain, on SQLite and PostgreSQL -------------------------------------------------------

CHAIN_KINDS = {
    # answers of our API
    "Response/Version[]", "Response/VersionDetails", "Response/Credentials",
    "Response/Location[]", "Response/Location", "Response/EVSE", "Response/Connector",
    "Response/Tariff[]", "Response/Token", "Response/CommandResponse", "Response/Session[]",
    "Response/CDR[]", "Response/ClientInfo", "Response/ChargingPreferencesResponse",
    # pushes to the eMSP
    "Location", "EVSE PATCH", "Tariff", "Session", "Session PATCH", "CDR", "CommandResult",
}


async def test_the_whole_chain_conforms(db: str, ocpi_traffic: OcpiTraffic) -> None:
    async with ocpi_env(db, command_timeout_s=2.0) as env:
        csms, emsp, client, auth = env.csms, env.emsp, env.client, env.auth
        ok(await client.get("/ocpi/versions", headers=auth), Any)
        ok(await client.get(V, headers=auth), Any)
        ok(await client.get(f"{V}/credentials", headers=auth), Any)
        ok(await client.get(f"{V}/tariffs", headers=auth), Any)
        for path in ("locations", "locations/LOC1", "locations/LOC1/CP1-1",
                     "locations/LOC1/CP1-1/1"):
            ok(await client.get(f"{V}/{path}", headers=auth), Any)
        token_url = f"{V}/tokens/DE/EMS/APP1?type=APP_USER"
        ok(await client.put(token_url, headers=auth,
                            json=token_body("APP1", "ALLOWED", type="APP_USER")), Any, http=201)
        ok(await client.patch(token_url, headers=auth,
                              json={"valid": True, "last_updated": WHEN}), Any)
        ok(await client.get(token_url, headers=auth), Any)

        async with sim_charger(csms, "CP1") as charger:
            await charger.status(1, "Available")
            start = ok(await client.post(f"{V}/commands/START_SESSION", headers=auth, json={
                "response_url": f"{emsp.base}/emsp/commands/START_SESSION/1",
                "token": token_body("APP1", "ALLOWED", type="APP_USER"),
                "location_id": "LOC1", "evse_uid": "CP1-1"}), m.CommandResponse)
            assert start.result == "ACCEPTED"
            await emsp.wait_for(lambda r: r.path == "/emsp/commands/START_SESSION/1", 15)
            tx = await charger.start_tx(1, "APP1", 10_000, T0)
            await charger.status(1, "Charging")
            for minutes, wh in ((15, 12_000), (30, 14_500)):
                await charger.meter(1, tx.transaction_id, T0 + timedelta(minutes=minutes), wh,
                                    amps=16, watts=11_000)
            [active] = ok(await client.get(f"{V}/sessions", headers=auth), list[m.Session])
            assert active.status == "ACTIVE"
            ok(await client.put(f"{V}/sessions/{active.id}/charging_preferences", headers=auth,
                                json={"profile_type": "REGULAR"}), str)
            stop = ok(await client.post(f"{V}/commands/STOP_SESSION", headers=auth, json={
                "response_url": f"{emsp.base}/emsp/commands/STOP_SESSION/2",
                "session_id": active.id}), m.CommandResponse)
            assert stop.result == "ACCEPTED"
            await charger.stop_tx(tx.transaction_id, 16_000, T0 + timedelta(minutes=45))
            await charger.status(1, "Available")
        [done] = ok(await client.get(f"{V}/sessions", headers=auth), list[m.Session])
        assert done.status == "COMPLETED"
        [cdr] = ok(await client.get(f"{V}/cdrs", headers=auth), list[m.CDR])
        assert float(cdr.total_energy) == 6.0
        # Generous waits: a loaded machine (parallel workers) delays the push queue.
        await emsp.wait_for(lambda r: r.path == "/emsp/cdrs", 15)
        await emsp.wait_for(lambda r: r.method == "PATCH" and r.body.get("status") == "AVAILABLE",
                            15)

        # A hub tells which parties are reachable through it.
        listed = {"party_id": "ABC", "country_code": "DE", "role": "EMSP",
                  "status": "CONNECTED", "last_updated": WHEN}
        hub = EmspDouble(role="HUB", country_code="NL", party_id="HUB", token_b="hub-token-b",
                         client_infos=[listed])
        async with running_emsp(hub):
            hub_token = await register_emsp(csms, hub)
            # Registering pulls the hub's full list, which replaces what it holds: the PUT
            # below comes after that pull, as it would from a real hub.
            hub_id = next(p["id"] for p in await csms.db(csms.store.list_partners)
                          if p["role"] == "HUB")
            await wait_until(lambda: csms.db(csms.store.list_hub_parties, hub_id), 15,
                             "the hub's list pulled")
            info = {"party_id": "XYZ", "country_code": "DE", "role": "EMSP",
                    "status": "CONNECTED", "last_updated": WHEN}
            ok(await client.put(f"{V}/hubclientinfo/DE/XYZ", headers=ocpi_auth(hub_token),
                                json=info), Any, http=201)
            ok(await client.get(f"{V}/hubclientinfo/DE/XYZ", headers=ocpi_auth(hub_token)), Any)

        def unchecked() -> set[str]:
            return CHAIN_KINDS - set(ocpi_traffic.checked)

        with contextlib.suppress(AssertionError):
            await wait_until(lambda: not unchecked(), 15, "every kind checked")
        assert unchecked() == set()
    assert ocpi_traffic.found == []


async def test_a_message_quoting_control_characters_stays_printable(tmp_path: Any) -> None:
    async with ocpi_env(str(tmp_path / "c.db")) as env:
        answer = await env.client.get(f"{V}/tokens/D%7F/E%C2%9CS/TAG1", headers=env.auth)
        assert answer.status_code == 404
        message = answer.json()["status_message"]
        assert "D\\x7f/E\\x9cS" in message and violations("Response", answer.json()) == []
