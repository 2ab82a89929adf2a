"""OCPI locations: pagination, lookup of a location, EVSE or connector, the EVSE statuses
that connector 0 decides, capabilities, dropped chargers, and what an app shows of a
location."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from csms_doubles import add_test_charger, error, ocpi_env, ok, sim_charger, token_body

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


async def test_locations_pagination_and_lookup(db: str) -> None:
    async with ocpi_env(db, chargers=3) as env:
        client = env.client
        first = await client.get(f"{V}/locations", params={"limit": 2}, headers=env.auth)
        items = ok(first, list[m.Location])
        assert len(items) == 2
        assert first.headers["X-Total-Count"] == "3" and first.headers["X-Limit"] == "2"
        link = first.headers["Link"]
        assert 'rel="next"' in link and "offset=2" in link and "limit=2" in link
        next_url = link[link.index("<") + 1:link.index(">")]
        last = await client.get(next_url, headers=env.auth)
        assert [loc.id for loc in ok(last, list[m.Location])] != [loc.id for loc in items]
        assert "Link" not in last.headers
        capped = await client.get(f"{V}/locations", params={"limit": 1000}, headers=env.auth)
        assert capped.headers["X-Limit"] == "100"
        future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        empty = await client.get(f"{V}/locations", params={"date_from": future},
                                 headers=env.auth)
        assert ok(empty, list[m.Location]) == [] and empty.headers["X-Total-Count"] == "0"
        loc = ok(await client.get(f"{V}/locations/LOC2", headers=env.auth), m.Location)
        assert loc.evses and loc.evses[0].uid == "CP2-1"
        evse = ok(await client.get(f"{V}/locations/LOC2/CP2-1", headers=env.auth), m.EVSE)
        assert evse.connectors[0].tariff_ids == ["T1"]
        conn = ok(await client.get(f"{V}/locations/LOC2/CP2-1/1", headers=env.auth),
                  m.Connector)
        assert conn.standard == "IEC_62196_T2" and conn.max_amperage == 32
        error(await client.get(f"{V}/locations/NOPE", headers=env.auth), 404, 2003)
        error(await client.get(f"{V}/locations/LOC2/NOPE", headers=env.auth), 404, 2003)
        error(await client.get(f"{V}/locations/LOC2/CP2-1/9", headers=env.auth), 404, 2003)


async def test_connector_zero_takes_the_whole_charge_point_out_of_service(db: str) -> None:
    async with ocpi_env(db) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        await csms.db(add_test_charger, csms.store, "CP9", None, "T1", "LOC9", 2)

        async def seen(path: str) -> dict[str, str]:
            headers = env.auth if path.startswith(V) else {}
            location = ok(await client.get(path, headers=headers), m.Location)
            return {e.uid: e.status for e in location.evses or []}

        async def open_data() -> dict[str, str]:
            locations = ok(await client.get("/opendata/locations"), list[m.Location])
            return {e.uid: e.status for loc in locations if loc.id == "LOC9"
                    for e in loc.evses or []}

        async def start_anywhere(n: int) -> m.CommandResponse:
            return ok(await client.post(f"{V}/commands/START_SESSION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/START_SESSION/{n}",
                "token": token_body("APP1") | {"type": "APP_USER"}, "location_id": "LOC9"}),
                m.CommandResponse)

        async with sim_charger(csms, "CP9") as charger:
            await charger.status(1, "Available")
            await charger.status(2, "Charging")
            await charger.status(0, "Unavailable")
            assert await seen(f"{V}/locations/LOC9") == {"CP9-1": "INOPERATIVE",
                                                         "CP9-2": "INOPERATIVE"}
            evse = ok(await client.get(f"{V}/locations/LOC9/CP9-1", headers=env.auth), m.EVSE)
            assert evse.status == "INOPERATIVE"
            assert await open_data() == {"CP9-1": "INOPERATIVE", "CP9-2": "INOPERATIVE"}
            # No EVSE is available to start on while the charge point is out of service.
            refused = await start_anywhere(1)
            assert refused.result == "REJECTED"
            await charger.status(2, "Available")  # stored, still hidden by connector 0
            await charger.status(0, "Faulted", "OtherError")
            assert await open_data() == {"CP9-1": "OUTOFORDER", "CP9-2": "OUTOFORDER"}
            await charger.status(0, "Available")
            assert await seen(f"{V}/locations/LOC9") == {"CP9-1": "AVAILABLE",
                                                         "CP9-2": "AVAILABLE"}
            assert await open_data() == {"CP9-1": "AVAILABLE", "CP9-2": "AVAILABLE"}
            assert (await start_anywhere(2)).result == "ACCEPTED"
        patched = await emsp.wait_for(lambda r: r.method == "PATCH" and r.path.endswith(
            "/LOC9/CP9-2") and r.body["status"] == "AVAILABLE")
        assert patched
        statuses = {uid: [r.body["status"] for r in emsp.pushes("locations", "PATCH")
                          if r.path == f"/emsp/locations/NL/CFW/LOC9/{uid}"]
                    for uid in ("CP9-1", "CP9-2")}
        assert statuses == {
            "CP9-1": ["AVAILABLE", "INOPERATIVE", "OUTOFORDER", "AVAILABLE"],
            "CP9-2": ["CHARGING", "INOPERATIVE", "OUTOFORDER", "AVAILABLE"]}


async def _evse(env: Any, uid: str = "CP1-1", location_id: str = "LOC1") -> m.EVSE:
    return ok(await env.client.get(f"{V}/locations/{location_id}/{uid}", headers=env.auth),
              m.EVSE)


async def _until(check: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_capabilities_follow_the_boot_and_dropped_chargers_go_unknown(db: str) -> None:
    async with ocpi_env(db) as env:
        csms, emsp = env.csms, env.emsp
        evse = await _evse(env)
        assert evse.evse_id == "NL*CFW*ECP11"
        assert evse.capabilities == ["REMOTE_START_STOP_CAPABLE", "RFID_READER",
                                     "UNLOCK_CAPABLE"]
        async with sim_charger(csms, "CP1") as charger:
            charger.feature_profiles = "Core,FirmwareManagement,Reservation,RemoteTrigger"
            await charger.boot()

            async def reservable() -> bool:
                return "RESERVABLE" in ((await _evse(env)).capabilities or [])

            await _until(reservable)
            pushed = await emsp.wait_for(lambda r: r.method == "PUT" and r.path.endswith(
                "/locations/NL/CFW/LOC1") and "RESERVABLE" in r.body["evses"][0].get(
                "capabilities", []))
            assert m.Location.model_validate(pushed[-1].body).evses
            await charger.status(1, "Available")
        # The connection is gone; once the grace period is over the EVSE shows UNKNOWN.

        async def disconnected() -> bool:
            point = await csms.db(csms.store.get_charge_point, "CP1")
            return point is not None and not point["connected"]

        await _until(disconnected)
        grace, heartbeat = timedelta(minutes=5), timedelta(minutes=5)
        assert await csms.db(csms.store.sweep_offline, grace, heartbeat) == []
        later = datetime.now(UTC) + grace + timedelta(seconds=2)
        changes = await csms.db(csms.store.sweep_offline, grace, heartbeat, later)
        assert [(c.evse_uid, c.status) for c in changes] == [("CP1-1", "UNKNOWN")]
        assert (await _evse(env)).status == "UNKNOWN"
        csms.pusher.wake()
        await emsp.wait_for(lambda r: r.method == "PATCH" and r.body.get("status") == "UNKNOWN")
        async with sim_charger(csms, "CP1"):
            async def available() -> bool:
                return (await _evse(env)).status == "AVAILABLE"

            await _until(available)

        def evse_statuses() -> list[str]:
            return [r.body["status"] for r in emsp.pushes("locations", "PATCH")
                    if r.path.endswith("/LOC1/CP1-1")]

        # The AVAILABLE pushed after UNKNOWN (the first one, before it, is there already).
        await emsp.wait_for(lambda _r: evse_statuses()[-2:] == ["UNKNOWN", "AVAILABLE"])
        assert evse_statuses() == ["AVAILABLE", "UNKNOWN", "AVAILABLE"]


# The spec's Hours example "Operating on weekdays from 8am till 8pm with one exceptional
# opening on 22/6/2014 and one exceptional closing the Monday after" (locations module).
SPEC_OPENING_TIMES: dict[str, Any] = {
    "twentyfourseven": False,
    "regular_hours": [{"weekday": day, "period_begin": "08:00", "period_end": "20:00"}
                      for day in range(1, 6)],
    "exceptional_openings": [{"period_begin": "2014-06-21T09:00:00Z",
                              "period_end": "2014-06-21T12:00:00Z"}],
    "exceptional_closings": [{"period_begin": "2014-06-24T00:00:00Z",
                              "period_end": "2014-06-25T00:00:00Z"}]}


async def test_what_an_app_shows_of_a_location_is_served_and_pushed(db: str) -> None:
    from chargerfw.csms.store import LocationDetails, StoreError

    async with ocpi_env(db) as env:
        csms, emsp = env.csms, env.emsp
        details = LocationDetails(opening_times=SPEC_OPENING_TIMES, charging_when_closed=True,
                                  operator={"name": "BeCharged"},
                                  facilities=["WIFI", "CAFE"], parking_type="ON_STREET")
        await csms.db(csms.store.set_location_details, "LOC1", details)
        location = ok(await env.client.get(f"{V}/locations/LOC1", headers=env.auth),
                      m.Location)
        served = location.model_dump(mode="json", exclude_none=True)
        assert served["opening_times"] == SPEC_OPENING_TIMES
        assert served["operator"] == {"name": "BeCharged"}
        assert served["facilities"] == ["CAFE", "WIFI"]
        assert served["parking_type"] == "ON_STREET" and served["charging_when_closed"]
        csms.pusher.wake()
        pushed = await emsp.wait_for(lambda r: r.method == "PUT" and r.path.endswith(
            "/locations/NL/CFW/LOC1") and "opening_times" in r.body)
        assert pushed[-1].body["opening_times"] == SPEC_OPENING_TIMES
        opendata = ok(await env.client.get("/opendata/locations"), list[m.Location])
        assert opendata[0].operator is not None and opendata[0].operator.name == "BeCharged"
        backwards = {"period_begin": "2026-12-26T00:00:00Z",
                     "period_end": "2026-12-25T00:00:00Z"}
        for bad, field in (
                (LocationDetails(opening_times={"twentyfourseven": False}), "opening_times"),
                (LocationDetails(opening_times={"twentyfourseven": True,
                                                "exceptional_closings": [backwards]}),
                 "opening_times.exceptional_closings.0"),
                (LocationDetails(operator={"website": "https://x"}), "operator.name"),
                (LocationDetails(facilities=["CASINO"]), "facilities"),
                (LocationDetails(parking_type="ROOFTOP"), "parking_type")):
            with pytest.raises(StoreError, match=field.replace(".", r"\.")):
                await csms.db(csms.store.set_location_details, "LOC1", bad)
        after = ok(await env.client.get(f"{V}/locations/LOC1", headers=env.auth), m.Location)
        assert after == location  # nothing changed, not even last_updated
        cleared = await csms.db(csms.store.set_location_details, "LOC1", LocationDetails(
            opening_times={}, operator={}, facilities=[], parking_type=""))
        assert not {"opening_times", "operator", "facilities", "parking_type"} & set(cleared)
