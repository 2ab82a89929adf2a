"""The OCPI 2.2.1 CPO API: every answer is parsed with the typed spec models."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from csms_doubles import (
    EmspDouble,
    add_test_charger,
    csms_running,
    make_tariff,
    ocpi_auth,
    ok,
    register_emsp,
    running_emsp,
    sim_charger,
)

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.registration import HandshakeError, register_with_peer
from chargerfw.csms.server import RunningCsms

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@dataclass
class Env:
    csms: RunningCsms
    emsp: EmspDouble
    token_c: str
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return ocpi_auth(self.token_c)


@contextlib.asynccontextmanager
async def ocpi_env(db: str, chargers: int = 1, **overrides: Any) -> AsyncIterator[Env]:
    async with running_emsp() as emsp, csms_running(db, **overrides) as csms:
        await csms.db(csms.store.add_tariff, make_tariff("T1"))
        for n in range(1, chargers + 1):
            await csms.db(add_test_charger, csms.store, f"CP{n}", None, "T1", f"LOC{n}")
        token_c = await register_emsp(csms, emsp)
        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            yield Env(csms, emsp, token_c, client)


def error(response: httpx.Response, http: int, code: int) -> str:
    assert response.status_code == http, response.text
    parsed = m.Envelope[Any].model_validate(response.json())
    assert parsed.status_code == code and parsed.data is None
    assert set(response.json()) == {"data", "status_code", "status_message", "timestamp"}
    return str(parsed.status_message)


def token_body(uid: str, whitelist: str = "ALWAYS", **extra: Any) -> dict[str, Any]:
    return {"country_code": "DE", "party_id": "EMS", "uid": uid, "type": "RFID",
            "contract_id": f"DE-EMS-{uid}", "issuer": "Test eMSP", "valid": True,
            "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z", **extra}


async def test_versions_and_token_rules(db: str) -> None:
    async with ocpi_env(db) as env:
        client = env.client
        versions = ok(await client.get("/ocpi/versions", headers=env.auth), list[m.Version])
        assert versions[0].version == "2.2.1"
        details = ok(await client.get(V, headers=env.auth), m.VersionDetails)
        roles = {(e.identifier, e.role) for e in details.endpoints}
        assert {("locations", "SENDER"), ("tokens", "RECEIVER"),
                ("commands", "RECEIVER")} <= roles
        # Raw (un-encoded) token, as 2.1.1/2.2 peers send it.
        ok(await client.get(f"{V}/locations", headers=ocpi_auth(env.token_c, encode=False)),
           list[m.Location])
        error(await client.get(f"{V}/locations"), 401, 2000)
        error(await client.get(f"{V}/locations", headers=ocpi_auth("nope")), 401, 2000)
        _, token_a = await env.csms.db(env.csms.store.add_partner, "Other")
        ok(await client.get("/ocpi/versions", headers=ocpi_auth(token_a)), list[m.Version])
        assert "TOKEN_A" in error(await client.get(f"{V}/locations",
                                                   headers=ocpi_auth(token_a)), 401, 2000)


async def test_credentials_update_and_delete(db: str) -> None:
    async with ocpi_env(db) as env:
        client = env.client
        creds = ok(await client.get(f"{V}/credentials", headers=env.auth), m.Credentials)
        assert creds.token == env.token_c and creds.roles[0].role == "CPO"
        body = {"token": env.emsp.token_b, "url": f"{env.emsp.base}/emsp/versions",
                "roles": [{"role": "EMSP", "party_id": "EMS", "country_code": "DE",
                           "business_details": {"name": "Test eMSP"}}]}
        error(await client.post(f"{V}/credentials", headers=env.auth, json=body), 405, 2000)
        renewed = ok(await client.put(f"{V}/credentials", headers=env.auth, json=body),
                     m.Credentials)
        assert renewed.token != env.token_c
        error(await client.get(f"{V}/locations", headers=env.auth), 401, 2000)
        new_auth = ocpi_auth(renewed.token)
        ok(await client.delete(f"{V}/credentials", headers=new_auth), Any)
        error(await client.get(f"{V}/locations", headers=new_auth), 401, 2000)


async def test_registration_with_bad_input_changes_nothing(tmp_path: Path) -> None:
    async with running_emsp() as emsp, csms_running(str(tmp_path / "c.db")) as csms:
        _, token_a = await csms.db(csms.store.add_partner, "eMSP")
        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            msg = error(await client.post(f"{V}/credentials", headers=ocpi_auth(token_a),
                                          json={"token": "x", "roles": []}), 400, 2001)
            assert "url" in msg and "roles" in msg
            error(await client.post(f"{V}/credentials", headers=ocpi_auth(token_a),
                                    content=b"{not json"), 400, 2001)
            # Wrong token for their versions endpoint: we cannot use their API (3001).
            error(await client.post(f"{V}/credentials", headers=ocpi_auth(token_a), json={
                "token": "wrong", "url": f"{emsp.base}/emsp/versions",
                "roles": [{"role": "EMSP", "party_id": "EMS", "country_code": "DE",
                           "business_details": {"name": "x"}}]}), 400, 3001)
            # TOKEN_A still works: nothing was registered.
            ok(await client.get("/ocpi/versions", headers=ocpi_auth(token_a)), list[m.Version])
        partner = (await csms.db(csms.store.list_partners))[0]
        assert partner["registered"] is False and partner["their_token"] is None


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


async def test_bad_requests_get_2001_envelopes(tmp_path: Path) -> None:
    async with ocpi_env(str(tmp_path / "c.db")) as env:
        client = env.client
        for params in ({"limit": "abc"}, {"limit": 0}, {"offset": -1},
                       {"date_from": "yesterday"}):
            error(await client.get(f"{V}/sessions", params=params, headers=env.auth), 400, 2001)
        error(await client.post(f"{V}/commands/FLY_TO_MOON", headers=env.auth, json={}),
              400, 2001)
        error(await client.post(f"{V}/commands/START_SESSION", headers=env.auth,
                                json={"response_url": "http://x"}), 400, 2001)
        error(await client.get(f"{V}/nothing-here", headers=env.auth), 404, 2000)
        error(await client.delete(f"{V}/locations", headers=env.auth), 405, 2000)


async def test_request_and_routing_headers(tmp_path: Path) -> None:
    async with ocpi_env(str(tmp_path / "c.db")) as env:
        response = await env.client.get(f"{V}/locations", headers={
            **env.auth, "X-Request-ID": "req-1", "X-Correlation-ID": "corr-1",
            "OCPI-from-country-code": "DE", "OCPI-from-party-id": "EMS",
            "OCPI-to-country-code": "NL", "OCPI-to-party-id": "CFW"})
        assert response.headers["X-Request-ID"] == "req-1"
        assert response.headers["X-Correlation-ID"] == "corr-1"
        assert response.headers["OCPI-to-country-code"] == "DE"
        assert response.headers["OCPI-to-party-id"] == "EMS"
        assert response.headers["OCPI-from-country-code"] == "NL"
        assert response.headers["OCPI-from-party-id"] == "CFW"
        error_response = await env.client.get(f"{V}/locations", headers={"X-Request-ID": "r2"})
        assert error_response.headers["X-Request-ID"] == "r2"


async def test_tokens_receiver(db: str) -> None:
    async with ocpi_env(db) as env:
        client, url = env.client, f"{V}/tokens/DE/EMS/04A1"
        created = await client.put(url, headers=env.auth, json=token_body("04A1"))
        ok(created, Any, http=201)
        ok(await client.put(url, headers=env.auth, json=token_body("04A1")), Any, http=200)
        token = ok(await client.get(url, headers=env.auth), m.Token)
        assert token.whitelist == "ALWAYS" and token.valid
        ok(await client.patch(url, headers=env.auth,
                              json={"valid": False, "last_updated": "2026-02-01T00:00:00Z"}), Any)
        assert ok(await client.get(url, headers=env.auth), m.Token).valid is False
        error(await client.get(f"{V}/tokens/DE/EMS/NOPE", headers=env.auth), 404, 2004)
        error(await client.get(url, params={"type": "APP_USER"}, headers=env.auth), 404, 2004)
        # Bad input changes nothing.
        error(await client.put(f"{V}/tokens/DE/EMS/OTHER", headers=env.auth,
                               json=token_body("04A1", valid=True)), 400, 2001)
        error(await client.put(url, headers=env.auth,
                               json=token_body("04A1", whitelist="SOMETIMES")), 400, 2001)
        error(await client.patch(url, headers=env.auth, json={"uid": "X",
                                                              "last_updated": "2026-02-01T00:00:00Z"}),
              400, 2001)
        error(await client.patch(url, headers=env.auth, json={"valid": "perhaps",
                                                              "last_updated": "2026-02-01T00:00:00Z"}),
              400, 2001)
        error(await client.put(f"{V}/tokens/FR/XYZ/04A1", headers=env.auth,
                               json=token_body("04A1") | {"country_code": "FR",
                                                          "party_id": "XYZ"}), 400, 2001)
        assert ok(await client.get(url, headers=env.auth), m.Token).valid is False


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


async def test_commands_drive_the_charger(db: str) -> None:
    async with ocpi_env(db, command_timeout_s=2.0) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        cmd = f"{V}/commands"
        async with sim_charger(csms, "CP1") as charger:
            await charger.status(1, "Available")
            start = await client.post(f"{cmd}/START_SESSION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/START_SESSION/1",
                "token": token_body("APP1") | {"type": "APP_USER"},
                "location_id": "LOC1", "evse_uid": "CP1-1",
                "authorization_reference": "AUTHREF1"})
            response = ok(start, m.CommandResponse)
            assert response.result == "ACCEPTED" and response.timeout > 0
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/START_SESSION/1")
            assert m.CommandResult.model_validate(result[0].body).result == "ACCEPTED"
            assert charger.received[0] == ("RemoteStartTransaction",
                                           {"id_tag": "APP1", "connector_id": 1})
            # The charger starts with that idTag: it is accepted and tied to the command.
            assert await charger.authorize("APP1") == "Accepted"
            tx = await charger.start_tx(1, "APP1", 0, T0)
            session = ok(await client.get(f"{V}/sessions", headers=env.auth),
                         list[m.Session])[0]
            assert session.auth_method == "COMMAND"
            assert session.authorization_reference == "AUTHREF1"
            assert session.cdr_token.type == "APP_USER"

            stop = await client.post(f"{cmd}/STOP_SESSION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/STOP_SESSION/2",
                "session_id": session.id})
            assert ok(stop, m.CommandResponse).result == "ACCEPTED"
            await emsp.wait_for(lambda r: r.path == "/emsp/commands/STOP_SESSION/2")
            assert charger.received[-1] == ("RemoteStopTransaction",
                                            {"transaction_id": tx.transaction_id})
            unknown = await client.post(f"{cmd}/STOP_SESSION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/x", "session_id": "nope"})
            assert ok(unknown, m.CommandResponse).result == "UNKNOWN_SESSION"

            charger.answers["UnlockConnector"] = "UnlockFailed"
            unlock = await client.post(f"{cmd}/UNLOCK_CONNECTOR", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/UNLOCK/3", "location_id": "LOC1",
                "evse_uid": "CP1-1", "connector_id": "1"})
            assert ok(unlock, m.CommandResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/UNLOCK/3")
            assert result[0].body == {"result": "FAILED"}

            charger.silent.add("UnlockConnector")
            await client.post(f"{cmd}/UNLOCK_CONNECTOR", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/UNLOCK/4", "location_id": "LOC1",
                "evse_uid": "CP1-1", "connector_id": "1"})
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/UNLOCK/4")
            assert result[0].body == {"result": "TIMEOUT"}

        offline = await client.post(f"{cmd}/UNLOCK_CONNECTOR", headers=env.auth, json={
            "response_url": f"{emsp.base}/emsp/x", "location_id": "LOC1",
            "evse_uid": "CP1-1", "connector_id": "1"})
        assert ok(offline, m.CommandResponse).result == "REJECTED"


async def test_reservation_honoured_cancelled_and_expired(db: str) -> None:
    async with ocpi_env(db) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        cmd = f"{V}/commands"
        expiry = datetime.now(UTC) + timedelta(minutes=30)
        async with sim_charger(csms, "CP1") as charger:
            reserve = await client.post(f"{cmd}/RESERVE_NOW", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/RESERVE/1",
                "token": token_body("RES1"), "reservation_id": "R-1",
                "expiry_date": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "location_id": "LOC1", "evse_uid": "CP1-1"})
            assert ok(reserve, m.CommandResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/RESERVE/1")
            assert result[0].body == {"result": "ACCEPTED"}
            action, payload = charger.received[-1]
            assert action == "ReserveNow" and payload["id_tag"] == "RES1"
            reservation_id = payload["reservation_id"]
            await charger.status(1, "Reserved")
            location = ok(await client.get(f"{V}/locations/LOC1", headers=env.auth),
                          m.Location)
            assert location.evses[0].status == "RESERVED"
            # Honoured: the holder starts on the reserved connector.
            tx = await charger.start_tx(1, "RES1", 0, T0, reservation_id=reservation_id)
            assert tx.id_tag_info["status"] == "Accepted"
            reservation = await csms.db(csms.store.get_reservation, reservation_id)
            assert reservation["status"] == "USED"

            # A second reservation is cancelled, a third expires.
            for rid, path in (("R-2", "RESERVE/2"), ("R-3", "RESERVE/3")):
                exp = datetime.now(UTC) + (timedelta(minutes=30) if rid == "R-2"
                                           else timedelta(seconds=1))
                await client.post(f"{cmd}/RESERVE_NOW", headers=env.auth, json={
                    "response_url": f"{emsp.base}/emsp/commands/{path}",
                    "token": token_body("RES2"), "reservation_id": rid,
                    "expiry_date": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "location_id": "LOC1", "evse_uid": "CP1-1"})
                await emsp.wait_for(lambda r, p=path: r.path == f"/emsp/commands/{p}")
            cancel = await client.post(f"{cmd}/CANCEL_RESERVATION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/CANCEL/1", "reservation_id": "R-2"})
            assert ok(cancel, m.CommandResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/CANCEL/1")
            assert result[0].body == {"result": "ACCEPTED"}
            assert charger.received[-1][0] == "CancelReservation"
            unknown = await client.post(f"{cmd}/CANCEL_RESERVATION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/CANCEL/2", "reservation_id": "R-9"})
            assert ok(unknown, m.CommandResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/CANCEL/2")
            assert result[0].body == {"result": "UNKNOWN_RESERVATION"}
        r2 = await csms.db(csms.store.reservation_by_ocpi_id, 1, "R-2")
        assert r2["status"] == "CANCELLED"
        for _ in range(50):
            r3 = await csms.db(csms.store.reservation_by_ocpi_id, 1, "R-3")
            if r3["status"] == "EXPIRED":
                break
            await asyncio.sleep(0.1)
        assert r3["status"] == "EXPIRED"


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


async def test_cpo_initiated_registration(db: str) -> None:
    async with running_emsp() as emsp, csms_running(db) as csms:
        await csms.db(csms.store.add_tariff, make_tariff("T1"))
        await csms.db(add_test_charger, csms.store, "CP1", None, "T1", "LOC1")
        our_versions = f"{csms.api_url}/ocpi/versions"
        async with httpx.AsyncClient() as http:
            with pytest.raises(HandshakeError) as refused:
                await register_with_peer(csms.db, http, f"{emsp.base}/emsp/versions",
                                         "not-their-token", our_versions, "eMSP")
            assert refused.value.status_code == 3001
            assert await csms.db(csms.store.list_partners) == []
            partner_id = await register_with_peer(csms.db, http, f"{emsp.base}/emsp/versions",
                                                  emsp.token_a, our_versions, "eMSP")
        partner = await csms.db(csms.store.get_partner, partner_id)
        assert partner["registered"] and partner["their_token"] == emsp.token_b
        assert (partner["country_code"], partner["party_id"]) == ("DE", "EMS")
        # The eMSP can use the token we gave it; it receives our locations and tariffs.
        assert emsp.cpo_token is not None
        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            ok(await client.get(f"{V}/locations", headers=ocpi_auth(emsp.cpo_token)),
               list[m.Location])
        pushed = await emsp.wait_for(lambda r: r.path == "/emsp/locations/NL/CFW/LOC1")
        assert m.Location.model_validate(pushed[0].body).evses[0].uid == "CP1-1"
        await emsp.wait_for(lambda r: r.path == "/emsp/tariffs/NL/CFW/T1")


async def test_cli_partner_register_against_a_running_backend(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from chargerfw.cli import main

    db = str(tmp_path / "c.db")
    async with running_emsp() as emsp, csms_running(db) as csms:
        args = ["csms", "partner", "register", "eMSP", "--db", db, "--versions-url",
                f"{emsp.base}/emsp/versions", "--token-a", emsp.token_a,
                "--public-url", csms.api_url]
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert result.exit_code == 0, result.output
        assert "registered with eMSP" in result.output
        bad = await asyncio.to_thread(CliRunner().invoke, main,
                                      [*args[:-3], "nope", "--public-url", csms.api_url])
        assert bad.exit_code == 2 and "3001" in bad.output
        partners = await csms.db(csms.store.list_partners)
        assert [p["registered"] for p in partners] == [True]


async def test_internal_errors_answer_3000_without_details(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    async with ocpi_env(str(tmp_path / "c.db")) as env:
        def broken(*_args: Any) -> None:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(env.csms.store, "list_tariffs", broken)
        response = await env.client.get(f"{V}/tariffs", headers=env.auth)
        message = error(response, 500, 3000)
        assert "secret" not in message


async def test_charging_preferences_are_answered_not_possible(tmp_path: Path) -> None:
    from chargerfw.csms.store import AuthDecision, StartRequest

    async with ocpi_env(str(tmp_path / "c.db")) as env:
        tx, _ = await env.csms.db(env.csms.store.start_transaction,
                                  StartRequest("CP1", 1, "TAG1", 0, T0),
                                  AuthDecision("Accepted", "WHITELIST"))
        url = f"{V}/sessions/{tx['session_id']}/charging_preferences"
        answer = ok(await env.client.put(url, headers=env.auth,
                                         json={"profile_type": "REGULAR"}), str)
        assert answer == "NOT_POSSIBLE"
        error(await env.client.put(url, headers=env.auth, json={}), 400, 2001)
        error(await env.client.put(f"{V}/sessions/nope/charging_preferences",
                                   headers=env.auth, json={"profile_type": "REGULAR"}), 404, 2000)
