"""A roaming hub as a partner: its party list (hubclientinfo, pushed and pulled), routing
headers checked inbound and set outbound."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from csms_doubles import (
    EmspDouble,
    add_test_charger,
    csms_running,
    error,
    make_tariff,
    ocpi_auth,
    ok,
    register_emsp,
    running_emsp,
    sim_charger,
    token_body,
)

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.server import RunningCsms

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


def client_info(country_code: str, party_id: str, status: str,
                updated: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"country_code": country_code, "party_id": party_id, "role": "EMSP",
            "status": status, "last_updated": updated}


def hub_double() -> EmspDouble:
    """A hub NL*HUB reporting DE*AAA connected, DE*BBB suspended, DE*CCC planned."""
    return EmspDouble(role="HUB", country_code="NL", party_id="HUB", token_b="hub-token-b",
                      client_infos=[client_info("DE", "AAA", "CONNECTED"),
                                    client_info("DE", "BBB", "SUSPENDED"),
                                    client_info("DE", "CCC", "PLANNED")])


async def registered_hub(csms: RunningCsms, hub: EmspDouble) -> tuple[int, str]:
    """Register the hub; returns its partner id and TOKEN_C once its parties are pulled."""
    token_c = await register_emsp(csms, hub)
    partner = next(p for p in await csms.db(csms.store.list_partners) if p["role"] == "HUB")
    for _ in range(200):
        if len(await csms.db(csms.store.list_hub_parties, partner["id"])) == 3:
            return partner["id"], token_c
        await asyncio.sleep(0.02)
    raise AssertionError("the hub's parties were not pulled at registration")


def routed(token: str, sender: tuple[str, str] | None = None,
           receiver: tuple[str, str] | None = None) -> dict[str, str]:
    headers = ocpi_auth(token)
    if sender is not None:
        headers |= {"OCPI-from-country-code": sender[0], "OCPI-from-party-id": sender[1]}
    if receiver is not None:
        headers |= {"OCPI-to-country-code": receiver[0], "OCPI-to-party-id": receiver[1]}
    return headers


async def test_hub_client_info_pulled_and_pushed(db: str) -> None:
    hub = hub_double()
    async with running_emsp(hub), running_emsp() as emsp, csms_running(db) as csms:
        hub_id, hub_token = await registered_hub(csms, hub)
        partner = await csms.db(csms.store.get_partner, hub_id)
        assert (partner["role"], partner["country_code"], partner["party_id"]) == (
            "HUB", "NL", "HUB")
        emsp_token = await register_emsp(csms, emsp)
        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            details = ok(await client.get(V, headers=ocpi_auth(hub_token)), m.VersionDetails)
            assert ("hubclientinfo", "RECEIVER") in {(e.identifier, e.role)
                                                     for e in details.endpoints}
            url = f"{V}/hubclientinfo/DE/DDD"
            auth = ocpi_auth(hub_token)
            ok(await client.put(url, headers=auth, json=client_info("DE", "DDD", "CONNECTED")),
               Any, http=201)
            ok(await client.put(url, headers=auth, json=client_info("de", "ddd", "OFFLINE",
                                                                    "2026-02-01T00:00:00Z")),
               Any, http=200)
            info = ok(await client.get(url, headers=auth), m.ClientInfo)
            assert (info.status, info.last_updated.month) == ("OFFLINE", 2)
            error(await client.get(f"{V}/hubclientinfo/DE/ZZZ", headers=auth), 404, 2000)
            # Bad input changes nothing.
            error(await client.put(url, headers=auth,
                                   json=client_info("DE", "EEE", "CONNECTED")), 400, 2001)
            error(await client.put(url, headers=auth,
                                   json=client_info("DE", "DDD", "ASLEEP")), 400, 2001)
            error(await client.put(f"{V}/hubclientinfo/DEU/DDD", headers=auth,
                                   json=client_info("DE", "DDD", "CONNECTED")), 400, 2001)
            # Only a hub reports parties.
            error(await client.put(url, headers=ocpi_auth(emsp_token),
                                   json=client_info("DE", "DDD", "SUSPENDED")), 403, 2000)
            assert ok(await client.get(url, headers=auth), m.ClientInfo).status == "OFFLINE"
        parties = await csms.db(csms.store.list_hub_parties, hub_id)
        assert [(p["party_id"], p["status"]) for p in parties] == [
            ("AAA", "CONNECTED"), ("BBB", "SUSPENDED"), ("CCC", "PLANNED"), ("DDD", "OFFLINE")]
        assert await csms.db(csms.store.list_hub_parties, hub_id + 1) == []


async def test_routing_headers_checked_inbound(db: str) -> None:
    hub = hub_double()
    async with running_emsp(hub), running_emsp() as emsp, csms_running(db) as csms:
        _, hub_token = await registered_hub(csms, hub)
        emsp_token = await register_emsp(csms, emsp)
        us = ("NL", "CFW")
        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            def put_token(uid: str, headers: dict[str, str], party: str = "AAA") -> Any:
                return client.put(f"{V}/tokens/DE/{party}/{uid}", headers=headers,
                                  json=token_body(uid, party_id=party))

            answer = await put_token("OK1", routed(hub_token, ("DE", "AAA"), us))
            ok(answer, Any, http=201)
            assert (answer.headers["OCPI-to-country-code"], answer.headers["OCPI-to-party-id"],
                    answer.headers["OCPI-from-party-id"]) == ("DE", "AAA", "CFW")
            refused = [
                (routed(hub_token, ("DE", "BBB"), us), 2001, "BBB"),  # suspended at the hub
                (routed(hub_token, ("DE", "CCC"), us), 2001, "CCC"),  # planned, never connected
                (routed(hub_token, ("FR", "ZZZ"), us), 2001, "AAA"),  # unknown to the hub
                (routed(hub_token, ("DE", "AAA"), ("BE", "OTH")), 4001, "AAA"),  # not us
                (routed(hub_token, None, ("BE", "OTH")), 4001, "AAA"),
                (routed(emsp_token, ("DE", "AAA"), us), 2001, "AAA"),  # a direct eMSP
                (routed(hub_token, ("DE", "AA"), us), 2001, "AAA"),  # malformed
                (ocpi_auth(hub_token) | {"OCPI-from-country-code": "DE"}, 2001, "AAA"),
            ]
            for n, (headers, code, party) in enumerate(refused):
                error(await put_token(f"BAD{n}", headers, party), 400, code)
                assert await csms.db(csms.store.get_token, "DE", party, f"BAD{n}") is None
            # The eMSP naming itself, and the hub speaking for itself, are fine.
            ok(await client.get(f"{V}/locations", headers=routed(emsp_token, ("DE", "EMS"), us)),
               list[m.Location])
            ok(await client.get(f"{V}/locations", headers=ocpi_auth(hub_token)),
               list[m.Location])
            # Configuration modules are not routed: the headers are ignored there.
            ok(await client.get(V, headers=routed(hub_token, ("FR", "ZZZ"), ("BE", "OTH"))),
               m.VersionDetails)


async def test_routing_headers_set_outbound(db: str) -> None:
    hub = hub_double()
    async with running_emsp(hub), csms_running(db) as csms:
        await csms.db(csms.store.add_tariff, make_tariff("T1"))
        await csms.db(add_test_charger, csms.store, "CP1", None, "T1", "LOC1")
        hub_id, _ = await registered_hub(csms, hub)
        # Locations are for everyone behind the hub: addressed to the hub (a broadcast push).
        location = (await hub.wait_for(lambda r: r.path == "/emsp/locations/NL/CFW/LOC1"))[0]
        assert (location.headers["ocpi-to-country-code"], location.headers["ocpi-to-party-id"],
                location.headers["ocpi-from-country-code"],
                location.headers["ocpi-from-party-id"]) == ("NL", "HUB", "NL", "CFW")
        # A CDR is for the eMSP of its token only; one for a party the hub reports suspended
        # is not sent (nor does it hold up the next).
        def cdr(party: str) -> dict[str, Any]:
            when = "2026-01-01T10:00:00Z"
            return {"country_code": "NL", "party_id": "CFW", "id": f"CDR-{party}",
                    "start_date_time": when, "end_date_time": when, "cdr_token": {
                        "country_code": "DE", "party_id": party, "uid": "X", "type": "RFID",
                        "contract_id": f"DE-{party}-X"},
                    "auth_method": "WHITELIST", "cdr_location": {
                        "id": "LOC1", "address": "Stationsplein 1", "city": "Utrecht",
                        "country": "NLD",
                        "coordinates": {"latitude": "52.08917", "longitude": "5.11028"},
                        "evse_uid": "CP1-1", "evse_id": "NL*CFW*ECP11", "connector_id": "1",
                        "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET",
                        "connector_power_type": "AC_3_PHASE"},
                    "currency": "EUR", "charging_periods": [{
                        "start_date_time": when,
                        "dimensions": [{"type": "ENERGY", "volume": 0}]}],
                    "total_cost": {"excl_vat": 0}, "total_energy": 0, "total_time": 0,
                    "last_updated": when}

        for party in ("BBB", "AAA"):
            await csms.db(csms.store.enqueue_push, hub_id, "cdrs", "POST",
                          f"{hub.base}/emsp/cdrs", cdr(party))
        csms.pusher.wake()
        pushed = await hub.wait_for(lambda r: r.path == "/emsp/cdrs")
        assert [p.body["id"] for p in pushed] == ["CDR-AAA"]
        assert (pushed[0].headers["ocpi-to-country-code"],
                pushed[0].headers["ocpi-to-party-id"]) == ("DE", "AAA")
        failed = await csms.db(csms.store.pushes, "FAILED")
        assert [(f["body"]["id"], f["attempts"]) for f in failed] == [("CDR-BBB", 1)]
        assert "DE/BBB is SUSPENDED at the hub" in failed[0]["last_error"]
        # Real-time authorization through the hub asks the token's eMSP.
        token = m.Token.model_validate(token_body("RT1", "NEVER", party_id="AAA"))
        await csms.db(csms.store.put_token, token, hub_id)
        async with sim_charger(csms, "CP1") as charger:
            assert await charger.authorize("RT1") == "Invalid"  # the eMSP does not know it
        asked = (await hub.wait_for(lambda r: r.path == "/emsp/tokens/RT1/authorize"))[0]
        assert (asked.headers["ocpi-to-country-code"],
                asked.headers["ocpi-to-party-id"]) == ("DE", "AAA")
        # The party list is a configuration module: requested without routing headers.
        listing = next(r for r in hub.received if r.path == "/emsp/hubclientinfo")
        assert not any(h.startswith("ocpi-") for h in listing.headers)


async def test_cli_hub_partner_and_its_parties(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from chargerfw.cli import main
    from chargerfw.csms.db import create_db_engine
    from chargerfw.csms.store import CpoIdentity, Party, Store

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["csms", *args])
        return result.exit_code, result.output

    db = str(tmp_path / "c.db")
    code, out = run("partner", "add", "Hub Co", "--party", "NL/HUB/HUB", "--db", db)
    assert code == 0 and "NL/HUB/HUB" in out, out
    assert run("partner", "add", "X", "--party", "DE/XXX/NOPE", "--db", db)[0] == 2
    engine = create_db_engine(db)
    store = Store(engine, CpoIdentity())
    assert [p["role"] for p in store.list_partners()] == ["HUB"]
    hub = hub_double()
    async with running_emsp(hub):
        store.register_partner(1, hub.token_b, f"{hub.base}/emsp/versions", "2.2.1", [
            {"identifier": "hubclientinfo", "role": "SENDER",
             "url": f"{hub.base}/emsp/hubclientinfo"}], [Party("NL", "HUB", "HUB")])
        code, out = await asyncio.to_thread(run, "partner", "hub-parties", "1", "--db", db,
                                            "--pull")
        assert code == 2 and "unreachable" in out  # the hub is on loopback: not allowed
        assert store.list_hub_parties(1) == []
        code, out = await asyncio.to_thread(run, "partner", "hub-parties", "1", "--db", db,
                                            "--pull", "--allow-outbound-network", "127.0.0.1/32")
        assert code == 0, out
        assert "AAA" in out and "SUSPENDED" in out and "PLANNED" in out
    code, out = run("partner", "hub-parties", "1", "--db", db, "--json")
    assert [p["status"] for p in json.loads(out)] == ["CONNECTED", "SUSPENDED", "PLANNED"]
    assert run("partner", "hub-parties", "1", "--db", db, "--pull",
               "--allow-outbound-network", "nonsense")[0] == 2
    engine.dispose()


async def test_we_register_with_a_hub(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from chargerfw.cli import main

    hub = hub_double()
    db = str(tmp_path / "c.db")
    async with running_emsp(hub), csms_running(db) as csms:
        args = ["csms", "partner", "register", "Hub Co", "--db", db, "--party", "NL/HUB/HUB",
                "--allow-outbound-network", "127.0.0.1/32", "--versions-url",
                f"{hub.base}/emsp/versions", "--token-a", hub.token_a,
                "--public-url", csms.api_url]
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert result.exit_code == 0, result.output
        partner = (await csms.db(csms.store.list_partners))[0]
        assert (partner["role"], partner["country_code"], partner["party_id"]) == (
            "HUB", "NL", "HUB")
        parties = await csms.db(csms.store.list_hub_parties, partner["id"])
        assert [p["party_id"] for p in parties] == ["AAA", "BBB", "CCC"]
