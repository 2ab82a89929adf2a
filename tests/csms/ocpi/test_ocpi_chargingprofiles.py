"""OCPI chargingprofiles (Receiver): an eMSP's profile on its session reaches the charger,
never above the site's share; other parties' sessions are unknown to it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from csms_doubles import (
    EmspDouble,
    ocpi_auth,
    ocpi_env,
    ok,
    register_emsp,
    running_emsp,
    sim_charger,
    token_body,
)
from fakes import wait_until

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def amps(limit: float) -> dict[str, Any]:
    return {"charging_rate_unit": "A",
            "charging_profile_period": [{"start_period": 0, "limit": limit}]}


async def _session(env: Any, charger: Any, uid: str = "EMS1") -> str:
    put = await env.client.put(f"{V}/tokens/DE/EMS/{uid}", headers=env.auth,
                               json=token_body(uid))
    assert put.status_code in (200, 201), put.text
    await charger.boot()
    await charger.start_tx(1, uid, 0, T0)
    sessions = ok(await env.client.get(f"{V}/sessions", headers=env.auth), list[m.Session])
    return sessions[-1].id


async def test_owner_sets_reads_and_clears_within_the_site_share(db: str) -> None:
    other = EmspDouble(country_code="DE", party_id="OTH",
                       token_b="other-emsp-token-b-0123456789")
    async with ocpi_env(db, profile_min_interval_s=0) as env, running_emsp(other):
        csms, emsp, client = env.csms, env.emsp, env.client
        other_auth = ocpi_auth(await register_emsp(csms, other))
        await csms.db(csms.store.add_site, "S", "Car park", 32)
        await csms.db(csms.store.assign_site, "CP1", "S")
        async with sim_charger(csms, "CP1") as charger:
            session_id = await _session(env, charger)
            url = f"{V}/chargingprofiles/{session_id}"
            await wait_until(lambda: charger.limit(1) == 32.0, what="the site's share")

            # Another party's session is unknown to it, whatever it asks.
            body = {"charging_profile": amps(10), "response_url": f"{other.base}/emsp/cp/0"}
            for response in [await client.put(url, headers=other_auth, json=body),
                             await client.get(url, headers=other_auth, params={
                                 "duration": 900, "response_url": f"{other.base}/emsp/x"}),
                             await client.delete(url, headers=other_auth, params={
                                 "response_url": f"{other.base}/emsp/x"})]:
                assert ok(response, m.ChargingProfileResponse).result == "UNKNOWN_SESSION"
            assert charger.limit(1) == 32.0

            put = await client.put(url, headers=env.auth, json={
                "charging_profile": amps(10), "response_url": f"{emsp.base}/emsp/cp/1"})
            assert ok(put, m.ChargingProfileResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/cp/1")
            assert result[0].method == "POST" and result[0].body == {"result": "ACCEPTED"}
            assert charger.limit(1) == 10.0

            # Above the site's share: the share wins.
            put = await client.put(url, headers=env.auth, json={
                "charging_profile": amps(50), "response_url": f"{emsp.base}/emsp/cp/3"})
            assert ok(put, m.ChargingProfileResponse).result == "ACCEPTED"
            assert (await emsp.wait_for(lambda r: r.path == "/emsp/cp/3"))[0].body == {
                "result": "ACCEPTED"}
            assert charger.limit(1) == 32.0

            get = await client.get(url, headers=env.auth, params={
                "duration": 900, "response_url": f"{emsp.base}/emsp/cp/4"})
            assert ok(get, m.ChargingProfileResponse).result == "ACCEPTED"
            active = m.ActiveChargingProfileResult.model_validate(
                (await emsp.wait_for(lambda r: r.path == "/emsp/cp/4"))[0].body)
            assert active.result == "ACCEPTED" and active.profile is not None
            assert [float(p.limit) for p in active.profile.charging_profile.charging_profile_period
                    ] == [32.0]
            assert charger.received[-1] == ("GetCompositeSchedule", {
                "connector_id": 1, "duration": 900, "charging_rate_unit": "A"})

            await client.put(url, headers=env.auth, json={
                "charging_profile": amps(8), "response_url": f"{emsp.base}/emsp/cp/5"})
            await emsp.wait_for(lambda r: r.path == "/emsp/cp/5")
            assert charger.limit(1) == 8.0
            delete = await client.delete(url, headers=env.auth,
                                         params={"response_url": f"{emsp.base}/emsp/cp/6"})
            assert ok(delete, m.ChargingProfileResponse).result == "ACCEPTED"
            assert (await emsp.wait_for(lambda r: r.path == "/emsp/cp/6"))[0].body == {
                "result": "ACCEPTED"}
            assert charger.limit(1) == 32.0  # the site's share alone again
            assert "ClearChargingProfile" not in [a for a, _ in charger.received]
            await client.delete(url, headers=env.auth,
                                params={"response_url": f"{emsp.base}/emsp/cp/7"})
            assert (await emsp.wait_for(lambda r: r.path == "/emsp/cp/7"))[0].body == {
                "result": "UNKNOWN"}


async def test_changes_closer_together_than_the_interval_are_too_often(tmp_path: Any) -> None:
    async with ocpi_env(str(tmp_path / "c.db"), profile_min_interval_s=3600) as env:
        async with sim_charger(env.csms, "CP1") as charger:
            url = f"{V}/chargingprofiles/{await _session(env, charger)}"
            body = {"charging_profile": amps(10), "response_url": f"{env.emsp.base}/emsp/cp"}
            first = await env.client.put(url, headers=env.auth, json=body)
            assert ok(first, m.ChargingProfileResponse).result == "ACCEPTED"
            for again in [await env.client.put(url, headers=env.auth, json=body),
                          await env.client.delete(url, headers=env.auth, params={
                              "response_url": f"{env.emsp.base}/emsp/cp"})]:
                assert ok(again, m.ChargingProfileResponse).result == "TOO_OFTEN"
            # Reading is not a change.
            get = await env.client.get(url, headers=env.auth, params={
                "duration": 60, "response_url": f"{env.emsp.base}/emsp/cp"})
            assert ok(get, m.ChargingProfileResponse).result == "ACCEPTED"


async def test_without_a_site_the_profile_is_sent_as_it_is(tmp_path: Any) -> None:
    async with ocpi_env(str(tmp_path / "c.db"), profile_min_interval_s=0) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        async with sim_charger(csms, "CP1") as charger:
            session_id = await _session(env, charger)
            url = f"{V}/chargingprofiles/{session_id}"
            put = await client.put(url, headers=env.auth, json={
                "charging_profile": {**amps(10), "min_charging_rate": 6},
                "response_url": f"{emsp.base}/emsp/cp/1"})
            assert ok(put, m.ChargingProfileResponse).result == "ACCEPTED"
            await emsp.wait_for(lambda r: r.path == "/emsp/cp/1")
            sent = charger.received[-1][1]["cs_charging_profiles"]
            assert sent["charging_profile_purpose"] == "TxProfile"
            assert sent["charging_schedule"]["charging_schedule_period"] == [
                {"start_period": 0, "limit": 10}]
            assert sent["charging_schedule"]["min_charging_rate"] == 6

            charger.answers["SetChargingProfile"] = "Rejected"
            await client.put(url, headers=env.auth, json={
                "charging_profile": amps(12), "response_url": f"{emsp.base}/emsp/cp/2"})
            assert (await emsp.wait_for(lambda r: r.path == "/emsp/cp/2"))[0].body == {
                "result": "REJECTED"}
            assert charger.limit(1) == 10.0

            await client.delete(url, headers=env.auth,
                                params={"response_url": f"{emsp.base}/emsp/cp/3"})
            assert (await emsp.wait_for(lambda r: r.path == "/emsp/cp/3"))[0].body == {
                "result": "ACCEPTED"}
            assert charger.received[-1] == ("ClearChargingProfile", {
                "id": 9101, "connector_id": 1, "charging_profile_purpose": "TxProfile"})
            assert charger.limit(1) is None


async def test_bad_requests_and_chargers_without_smart_charging(tmp_path: Any) -> None:
    async with ocpi_env(str(tmp_path / "c.db"), profile_min_interval_s=0) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        details = ok(await client.get(V, headers=env.auth), dict)
        assert {"identifier": "chargingprofiles", "role": "RECEIVER",
                "url": f"{csms.api_url}{V}/chargingprofiles"} in details["endpoints"]
        async with sim_charger(csms, "CP1") as charger:
            charger.feature_profiles = "Core,Reservation"
            session_id = await _session(env, charger)


            async def profiles_known() -> bool:
                row = await csms.db(csms.store.get_charge_point, "CP1")
                return row["feature_profiles"] is not None

            await wait_until(profiles_known, what="the charger's feature profiles stored")
            url = f"{V}/chargingprofiles/{session_id}"
            good = {"charging_profile": amps(10), "response_url": f"{emsp.base}/emsp/cp/1"}
            assert ok(await client.put(url, headers=env.auth, json=good),
                      m.ChargingProfileResponse).result == "NOT_SUPPORTED"
            for bad in [{**good, "charging_profile": {"charging_rate_unit": "A",
                                                      "charging_profile_period": []}},
                        {**good, "charging_profile": {**amps(10), "charging_rate_unit": "V"}},
                        {**good, "charging_profile": {"charging_rate_unit": "A",
                                                      "charging_profile_period": [
                                                          {"start_period": 60, "limit": 1}]}},
                        {**good, "response_url": "http://10.1.2.3/emsp/cp"}]:
                response = await client.put(url, headers=env.auth, json=bad)
                assert response.status_code == 400 and response.json()["status_code"] == 2001
            missing = await client.get(url, headers=env.auth,
                                       params={"response_url": f"{emsp.base}/x"})
            assert missing.status_code == 400
            unknown = await client.put(f"{V}/chargingprofiles/nope", headers=env.auth,
                                       json=good)
            assert ok(unknown, m.ChargingProfileResponse).result == "UNKNOWN_SESSION"
        assert not [a for a, _ in charger.received if a == "SetChargingProfile"]
