"""OCPI tariffs as served and as pushed: an update is PUT and a deletion DELETEd at the eMSP,
and the running cost of an ACTIVE session reaches it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from csms_doubles import make_tariff, ocpi_env, ok, sim_charger, token_body

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


async def test_update_and_delete_reach_the_emsp(db: str) -> None:
    async with ocpi_env(db) as env:
        store, emsp = env.csms.store, env.emsp
        await emsp.wait_for(lambda r: r.path == "/emsp/tariffs/NL/CFW/T1")
        await env.csms.db(store.update_tariff, make_tariff("T1", energy=0.45))
        put = await emsp.wait_for(lambda r: r.path == "/emsp/tariffs/NL/CFW/T1"
                                  and r.method == "PUT"
                                  and r.body["elements"][0]["price_components"][0]["price"]
                                  == 0.45)
        served = ok(await env.client.get(f"{V}/tariffs", headers=env.auth), list[m.Tariff])
        assert [t.model_dump(mode="json", exclude_none=True) for t in served] == [put[-1].body]
        await env.csms.db(store.add_tariff, make_tariff("T2"))
        await env.csms.db(store.set_connector_tariff, "T2")
        await env.csms.db(store.delete_tariff, "T1")
        deleted = await emsp.wait_for(lambda r: r.method == "DELETE")
        assert deleted[0].path == "/emsp/tariffs/NL/CFW/T1" and deleted[0].body is None
        served = ok(await env.client.get(f"{V}/tariffs", headers=env.auth), list[m.Tariff])
        assert [t.id for t in served] == ["T2"]


async def test_an_active_session_carries_its_running_cost(db: str) -> None:
    async with ocpi_env(db) as env:
        ok(await env.client.put(f"{V}/tokens/DE/EMS/TAG1", headers=env.auth,
                                json=token_body("TAG1", "ALLOWED")), Any, http=201)
        async with sim_charger(env.csms, "CP1") as charger:
            await charger.status(1, "Preparing")
            tx = await charger.start_tx(1, "TAG1", 50_000, T0)
            await charger.meter(1, tx.transaction_id, T0 + timedelta(minutes=30), 55_000)
            [session] = ok(await env.client.get(f"{V}/sessions", headers=env.auth),
                           list[m.Session])
            # make_tariff: 0.30/kWh, 1.20/h, 0.50 flat: 5 kWh and half an hour so far
            assert session.status == "ACTIVE" and session.total_cost is not None
            assert float(session.total_cost.excl_vat) == pytest.approx(1.50 + 0.60 + 0.50)
            patched = await env.emsp.wait_for(lambda r: r.method == "PATCH"
                                              and r.path.startswith("/emsp/sessions/"))
            assert patched[-1].body["total_cost"]["excl_vat"] == pytest.approx(2.60)
