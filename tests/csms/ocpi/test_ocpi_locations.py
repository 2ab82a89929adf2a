"""OCPI locations: pagination, lookup of a location, EVSE or connector, and the EVSE statuses
that connector 0 decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
