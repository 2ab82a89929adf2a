"""The open-data feed: published locations with live statuses, no credentials."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from csms_doubles import add_test_charger, csms_running, ok, sim_charger

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


async def test_open_data_needs_no_credentials(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None, None, "PUB")
        await csms.db(add_test_charger, csms.store, "CP2", None, None, "HIDDEN", 1, False)
        async with httpx.AsyncClient(base_url=csms.api_url) as client, \
                sim_charger(csms, "CP1") as charger:
            await charger.status(1, "Charging")
            response = await client.get("/opendata/locations")
            locations = ok(response, list[m.Location])
            assert [loc.id for loc in locations] == ["PUB"]
            assert locations[0].evses[0].status == "CHARGING"
            assert response.headers["X-Total-Count"] == "1"
            await charger.status(1, "Available")
            again = ok(await client.get("/opendata/locations"), list[m.Location])
            assert again[0].evses[0].status == "AVAILABLE"
