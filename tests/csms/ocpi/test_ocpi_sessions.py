"""OCPI sessions, CDRs and tariffs as served and as pushed (in order, retried), and charging
preferences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from csms_doubles import error, ocpi_env, ok, sim_charger, token_body
from fakes import wait_until

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


async def test_session_and_cdr_are_served_and_pushed(db: str) -> None:
    async with ocpi_env(db) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        emsp.fail_pushes = 2  # the first pushes meet a busy eMSP and are retried
        ok(await client.put(f"{V}/tokens/DE/EMS/TAG1", headers=env.auth,
                            json=token_body("TAG1", "ALLOWED")), Any, http=201)
        async with sim_charger(csms, "CP1") as charger:
            await charger.status(1, "Preparing")
            assert await charger.authorize("TAG1") == "Accepted"
            tx = await charger.start_tx(1, "TAG1", 50_000, T0)
            await charger.status(1, "Charging")
            await charger.meter(1, tx.transaction_id, T0 + timedelta(minutes=20), 53_000,
                                amps=16, watts=11_000)
            sessions = ok(await client.get(f"{V}/sessions", headers=env.auth),
                          list[m.Session])
            assert len(sessions) == 1 and sessions[0].status == "ACTIVE"
            assert float(sessions[0].kwh) == 3.0
            assert sessions[0].cdr_token.contract_id == "DE-EMS-TAG1"
            assert sessions[0].auth_method == "WHITELIST"
            await charger.meter(1, tx.transaction_id, T0 + timedelta(minutes=40), 57_000)
            await charger.stop_tx(tx.transaction_id, 60_000, T0 + timedelta(hours=1), "TAG1")
            await charger.status(1, "Available")
        session = ok(await client.get(f"{V}/sessions", headers=env.auth), list[m.Session])[0]
        assert session.status == "COMPLETED" and float(session.kwh) == 10.0
        cdr = ok(await client.get(f"{V}/cdrs", headers=env.auth), list[m.CDR])[0]
        assert float(cdr.total_energy) == 10.0 and float(cdr.total_time) == 1.0
        # make_tariff: 0.30/kWh, 1.20/h, 0.50 flat, 21 % VAT
        assert float(cdr.total_cost.excl_vat) == pytest.approx(10 * 0.30 + 1.20 + 0.50)
        assert float(cdr.total_cost.incl_vat) == pytest.approx((3.0 + 1.2 + 0.5) * 1.21)
        assert sum(float(d.volume) for p in cdr.charging_periods for d in p.dimensions
                   if d.type == "ENERGY") == pytest.approx(10.0)
        tariffs = ok(await client.get(f"{V}/tariffs", headers=env.auth), list[m.Tariff])
        assert [t.id for t in tariffs] == ["T1"]
        # Pushed to the eMSP, in order, despite the two failures.
        posted = await emsp.wait_for(lambda r: r.path == "/emsp/cdrs" and r.method == "POST")
        assert m.CDR.model_validate(posted[-1].body).id == cdr.id
        puts = emsp.pushes("sessions", "PUT")
        assert puts[0].path == f"/emsp/sessions/NL/CFW/{session.id}"
        assert m.Session.model_validate(puts[0].body).status == "ACTIVE"
        assert m.Session.model_validate(puts[-1].body).status == "COMPLETED"
        assert emsp.pushes("sessions", "PATCH"), "kwh updates are patched"
        headers = puts[0].headers
        assert headers["ocpi-from-country-code"] == "NL" and headers["ocpi-to-party-id"] == "EMS"
        assert headers["x-request-id"] and headers["x-correlation-id"]
        refused = [r for r in emsp.received if not r.accepted]
        retried = [r for r in emsp.received if r.accepted and r.path == refused[0].path]
        assert refused[0].headers["x-correlation-id"] == retried[0].headers["x-correlation-id"]
        assert refused[0].headers["x-request-id"] != retried[0].headers["x-request-id"]
        await emsp.wait_for(lambda r: r.method == "PATCH" and r.body.get("status") == "AVAILABLE")
        evse_patches = [r.body["status"] for r in emsp.pushes("locations", "PATCH")
                        if r.path.endswith("/LOC1/CP1-1")]
        assert evse_patches == ["CHARGING", "AVAILABLE"]  # Preparing/Charging are one status
        assert len([r for r in emsp.received if not r.accepted]) == 2
        retried = [p for p in await csms.db(csms.store.pushes) if p["attempts"] > 0]
        assert retried and all(p["status"] == "DONE" for p in retried)


async def test_charging_preferences_are_answered_not_possible(tmp_path: Path) -> None:
    from chargerfw.csms.store import AuthDecision, StartRequest

    async with ocpi_env(str(tmp_path / "c.db")) as env:
        tx, _ = await env.csms.db(env.csms.store.start_transaction,
                                  StartRequest("CP1", 1, "TAG1", 0, T0),
                                  AuthDecision("Accepted", "WHITELIST", "DE", "EMS", "RFID",
                                               "DE-EMS-TAG1"))
        theirs, _ = await env.csms.db(env.csms.store.start_transaction,
                                      StartRequest("CP1", 1, "TAG2", 0, T0),
                                      AuthDecision("Accepted", "WHITELIST", "DE", "OTH"))
        url = f"{V}/sessions/{tx['session_id']}/charging_preferences"
        answer = ok(await env.client.put(url, headers=env.auth,
                                         json={"profile_type": "REGULAR"}), str)
        assert answer == "NOT_POSSIBLE"
        error(await env.client.put(url, headers=env.auth, json={}), 400, 2001)
        for other in ("nope", theirs["session_id"]):  # another party's session is unknown
            error(await env.client.put(f"{V}/sessions/{other}/charging_preferences",
                                       headers=env.auth, json={"profile_type": "REGULAR"}),
                  404, 2000)


async def test_an_appending_emsp_holds_the_session_as_served(db: str) -> None:
    """OCPI 2.2.1: a receiver appends PATCHed charging periods. Applying what was pushed
    that way gives the session GET /sessions serves, with no period twice."""
    async with ocpi_env(db) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        ok(await client.put(f"{V}/tokens/DE/EMS/TAG1", headers=env.auth,
                            json=token_body("TAG1", "ALLOWED")), Any, http=201)
        async with sim_charger(csms, "CP1") as charger:
            tx = await charger.start_tx(1, "TAG1", 50_000, T0)
            for minutes, wh in ((10, 52_000), (20, 54_500), (30, 57_000)):
                await charger.meter(1, tx.transaction_id, T0 + timedelta(minutes=minutes), wh)
            served = ok(await client.get(f"{V}/sessions", headers=env.auth), list[m.Session])
            session = served[0].model_dump(mode="json", exclude_none=True)

            def caught_up(_r: Any) -> bool:
                return len(emsp.pushes("sessions")) == 4

            await emsp.wait_for(caught_up)
        pushes = emsp.pushes("sessions")
        assert [p.method for p in pushes] == ["PUT", "PATCH", "PATCH", "PATCH"]
        held = dict(pushes[0].body)
        for patch in pushes[1:]:
            assert set(patch.body) <= {"kwh", "charging_periods", "total_cost", "last_updated"}
            assert len(patch.body["charging_periods"]) == 1
            for key, value in patch.body.items():
                if key == "charging_periods":
                    held["charging_periods"] = held.get("charging_periods", []) + value
                else:
                    held[key] = value
        assert m.Session.model_validate(held).model_dump(mode="json",
                                                         exclude_none=True) == session
        starts = [p["start_date_time"] for p in held["charging_periods"]]
        assert len(starts) == len(set(starts)) == 3


async def test_a_refused_patch_is_not_retried_and_the_next_update_is_whole(db: str) -> None:
    """An eMSP that answers a session PATCH with a client error (it lost the session) gets
    no retries of it; the next update is a PUT of the whole session, then PATCHes again."""
    async with ocpi_env(db) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        ok(await client.put(f"{V}/tokens/DE/EMS/TAG1", headers=env.auth,
                            json=token_body("TAG1", "ALLOWED")), Any, http=201)
        emsp.refuse_patches = 1
        async with sim_charger(csms, "CP1") as charger:
            tx = await charger.start_tx(1, "TAG1", 50_000, T0)
            await charger.meter(1, tx.transaction_id, T0 + timedelta(minutes=10), 52_000)

            def refused() -> bool:
                return any(p["module"] == "sessions" and p["method"] == "PATCH"
                           and p["status"] == "FAILED" for p in csms.store.pushes())

            await wait_until(refused, timeout=5, what="the PATCH given up")
            for minutes, wh in ((20, 54_500), (30, 57_000)):
                await charger.meter(1, tx.transaction_id, T0 + timedelta(minutes=minutes), wh)
            await emsp.wait_for(lambda _r: len(emsp.pushes("sessions")) == 3)
            served = ok(await client.get(f"{V}/sessions", headers=env.auth), list[m.Session])
        refused_patch = [p for p in csms.store.pushes() if p["method"] == "PATCH"
                         and p["status"] == "FAILED"]
        assert len(refused_patch) == 1 and refused_patch[0]["attempts"] == 1
        pushes = emsp.pushes("sessions")
        assert [p.method for p in pushes] == ["PUT", "PUT", "PATCH"]
        held = dict(pushes[1].body)
        held["charging_periods"] = held["charging_periods"] + pushes[2].body["charging_periods"]
        held.update({k: v for k, v in pushes[2].body.items() if k != "charging_periods"})
        assert m.Session.model_validate(held).model_dump(mode="json", exclude_none=True) == \
            served[0].model_dump(mode="json", exclude_none=True)
