"""Three eMSPs registered with one backend on loopback: each registers only as the party the
operator gave it, sees and receives only its own tokens' sessions and CDRs, commands only for
its own, and real-time authorization asks only the party that issued a card."""

from __future__ import annotations

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
    error,
    make_tariff,
    ocpi_auth,
    ok,
    register_emsp,
    running_emsp,
    sim_charger,
)
from ocpp.v16 import call

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.server import RunningCsms
from chargerfw.csms.store import Party, StoreError

pytestmark = pytest.mark.timeout(90)
V = "/ocpi/2.2.1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def token_of(party_id: str, uid: str, whitelist: str = "ALWAYS", **extra: Any) -> dict[str, Any]:
    """An OCPI Token of the eMSP DE*<party_id>, as JSON."""
    return {"country_code": "DE", "party_id": party_id, "uid": uid, "type": "RFID",
            "contract_id": f"DE-{party_id}-{uid}", "issuer": f"eMSP {party_id}", "valid": True,
            "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z", **extra}


def role(country_code: str, party_id: str, kind: str = "EMSP") -> dict[str, Any]:
    return {"role": kind, "country_code": country_code, "party_id": party_id,
            "business_details": {"name": f"{country_code}/{party_id}"}}


@dataclass
class Emsp:
    """One of the registered eMSPs: its double, its TOKEN_C header and its partner id."""

    double: EmspDouble
    auth: dict[str, str]
    partner_id: int

    @property
    def party_id(self) -> str:
        return self.double.party_id

    def command_url(self, name: str) -> str:
        return f"{self.double.base}/emsp/commands/{name}"


@dataclass
class Roaming:
    csms: RunningCsms
    client: httpx.AsyncClient
    a: Emsp
    b: Emsp
    c: Emsp

    async def command(self, emsp: Emsp, name: str, **body: Any) -> m.CommandResponse:
        response = await self.client.post(f"{V}/commands/{name}", headers=emsp.auth, json=body)
        return ok(response, m.CommandResponse)

    async def pushed_to(self, module: str) -> set[tuple[int, str]]:
        """(partner id, URL) of every push queued in ``module``."""
        return {(p["partner_id"], p["url"]) for p in await self.csms.db(self.csms.store.pushes)
                if p["module"] == module}


@contextlib.asynccontextmanager
async def roaming(db: str, connectors: int = 2, **overrides: Any) -> AsyncIterator[Roaming]:
    """A backend with charger CP1 (``connectors`` EVSEs at LOC1, priced by T1) and the eMSPs
    DE*AAA, DE*BBB and DE*CCC, each registered as its own party."""
    doubles = [EmspDouble(token_b=f"emsp-{p.lower()}-token-b-0123456789",
                          token_a=f"emsp-{p.lower()}-token-a", country_code="DE", party_id=p)
               for p in ("AAA", "BBB", "CCC")]
    async with contextlib.AsyncExitStack() as stack:
        for double in doubles:
            await stack.enter_async_context(running_emsp(double))
        csms = await stack.enter_async_context(csms_running(db, **overrides))
        await csms.db(csms.store.add_tariff, make_tariff("T1"))
        await csms.db(add_test_charger, csms.store, "CP1", None, "T1", "LOC1", connectors)
        emsps = []
        for double in doubles:
            token_c = await register_emsp(csms, double)
            found = await csms.db(csms.store.partner_by_token, token_c)
            emsps.append(Emsp(double, ocpi_auth(token_c), found[0]["id"]))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=csms.api_url))
        yield Roaming(csms, client, *emsps)


async def test_a_partner_registers_only_as_its_given_parties(tmp_path: Path) -> None:
    emsp = EmspDouble(country_code="DE", party_id="AAA")
    async with running_emsp(emsp), csms_running(str(tmp_path / "c.db")) as csms:
        store = csms.store
        partner_id, token_a = await csms.db(store.add_partner, "A", [Party("DE", "AAA")])
        for claimed in (Party("NL", "CFW"), Party("nl", "cfw", "CPO"), Party("DE", "AAA")):
            with pytest.raises(StoreError):  # ours, and one held by another partner
                await csms.db(store.add_partner, "X", [claimed])
        credentials = f"{V}/credentials"

        def body(*roles: dict[str, Any], token: str = emsp.token_b) -> dict[str, Any]:
            return {"token": token, "url": f"{emsp.base}/emsp/versions", "roles": list(roles)}

        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            auth_a = ocpi_auth(token_a)
            for roles in ([role("DE", "BBB")], [role("NL", "CFW")], [role("DE", "AAA", "CPO")],
                          [role("DE", "AAA"), role("NL", "CFW")]):
                message = error(await client.post(credentials, headers=auth_a,
                                                  json=body(*roles)), 400, 2001)
                assert "not given to this partner" in message and "DE/AAA/EMSP" in message
            partner = await csms.db(store.get_partner, partner_id)
            assert not partner["registered"] and partner["their_token"] is None
            ok(await client.get("/ocpi/versions", headers=auth_a), list[m.Version])

            creds = ok(await client.post(credentials, headers=auth_a,
                                         json=body(role("de", "aaa"))), m.Credentials)
            auth_c = ocpi_auth(creds.token)
            # An update declaring another party is refused and changes nothing.
            error(await client.put(credentials, headers=auth_c,
                                   json=body(role("DE", "BBB"), token="other-token")), 400, 2001)
            ok(await client.get(f"{V}/locations", headers=auth_c), list[m.Location])
            partner = await csms.db(store.get_partner, partner_id)
            assert partner["their_token"] == emsp.token_b
            assert (partner["country_code"], partner["party_id"]) == ("DE", "AAA")
            assert await csms.db(store.partner_parties, partner_id) == [Party("DE", "AAA")]
            renewed = ok(await client.put(credentials, headers=auth_c, json=body(role("DE", "AAA"))),
                         m.Credentials)
            assert renewed.token != creds.token


async def test_each_partner_sees_and_receives_only_its_own(db: str) -> None:
    async with roaming(db) as env:
        csms, client, a, b, c = env.csms, env.client, env.a, env.b, env.c
        for emsp, uid in ((a, "TAGA"), (b, "TAGB")):
            url = f"{V}/tokens/DE/{emsp.party_id}/{uid}"
            ok(await client.put(url, headers=emsp.auth, json=token_of(emsp.party_id, uid)),
               Any, http=201)
        # Another party's tokens: not to be read, created or changed (404), nothing changes.
        b_token = f"{V}/tokens/DE/BBB/TAGB"
        error(await client.get(b_token, headers=a.auth), 404, 2004)
        error(await client.patch(b_token, headers=a.auth, json={
            "valid": False, "last_updated": "2026-02-01T00:00:00Z"}), 404, 2004)
        error(await client.put(b_token, headers=a.auth,
                               json=token_of("BBB", "TAGB", valid=False)), 404, 2001)
        error(await client.put(f"{V}/tokens/NL/CFW/TAGB", headers=a.auth,
                               json=token_of("BBB", "TAGB") | {"country_code": "NL",
                                                               "party_id": "CFW"}), 404, 2001)
        assert ok(await client.get(b_token, headers=b.auth), m.Token).valid is True
        assert await csms.db(csms.store.get_token, "NL", "CFW", "TAGB") is None

        async with sim_charger(csms, "CP1") as charger:
            assert await charger.authorize("TAGA") == "Accepted"
            tx_a = await charger.start_tx(1, "TAGA", 0, T0)
            tx_b = await charger.start_tx(2, "TAGB", 0, T0)
            await charger.meter(1, tx_a.transaction_id, T0 + timedelta(minutes=10), 2_000)
            await charger.meter(2, tx_b.transaction_id, T0 + timedelta(minutes=10), 3_000)
            await charger.stop_tx(tx_a.transaction_id, 4_000, T0 + timedelta(minutes=30))

        def uids(items: list[Any]) -> set[str]:
            return {item.cdr_token.uid for item in items}

        sessions = {e.party_id: ok(await client.get(f"{V}/sessions", headers=e.auth),
                                   list[m.Session]) for e in (a, b, c)}
        assert {k: uids(v) for k, v in sessions.items()} == {
            "AAA": {"TAGA"}, "BBB": {"TAGB"}, "CCC": set()}
        cdrs = {e.party_id: ok(await client.get(f"{V}/cdrs", headers=e.auth), list[m.CDR])
                for e in (a, b, c)}
        assert {k: uids(v) for k, v in cdrs.items()} == {
            "AAA": {"TAGA"}, "BBB": set(), "CCC": set()}
        session_a = sessions["AAA"][0]
        listed = await client.get(f"{V}/sessions", headers=c.auth)
        assert listed.headers["X-Total-Count"] == "0"

        # Pushes: each session and CDR to the partner of its token only.
        pushed = await env.pushed_to("sessions")
        assert {partner for partner, _ in pushed} == {a.partner_id, b.partner_id}
        assert all(url.endswith(session_a.id) for partner, url in pushed
                   if partner == a.partner_id)
        assert {partner for partner, _ in await env.pushed_to("cdrs")} == {a.partner_id}
        cdr = await a.double.wait_for(lambda r: r.path == "/emsp/cdrs")
        assert m.CDR.model_validate(cdr[0].body).cdr_token.uid == "TAGA"
        await b.double.wait_for(lambda r: r.path.startswith("/emsp/sessions/NL/CFW/"))
        # Locations go to every partner.
        for emsp in (a, b, c):
            await emsp.double.wait_for(lambda r: r.path == "/emsp/locations/NL/CFW/LOC1")
        for emsp in (b, c):
            assert not emsp.double.pushes("cdrs")
            assert not [r for r in emsp.double.pushes("sessions") if session_a.id in r.path]


async def test_commands_act_only_for_the_callers_own(db: str) -> None:
    async with roaming(db) as env:
        csms, client, a, b = env.csms, env.client, env.a, env.b
        ok(await client.put(f"{V}/tokens/DE/AAA/TAGA", headers=a.auth,
                            json=token_of("AAA", "TAGA")), Any, http=201)
        async with sim_charger(csms, "CP1") as charger:
            await charger.status(1, "Available")
            await charger.status(2, "Available")
            tx = await charger.start_tx(1, "TAGA", 0, T0)
            session = ok(await client.get(f"{V}/sessions", headers=a.auth), list[m.Session])[0]

            async def rejected(emsp: Emsp, name: str, **body: Any) -> str:
                answer = await env.command(emsp, name, response_url=emsp.command_url(name),
                                           **body)
                assert answer.result == "REJECTED", answer
                return answer.message[0].text if answer.message else ""

            # STOP_SESSION of another's session: unknown to the caller; nothing sent.
            stop = await env.command(b, "STOP_SESSION", response_url=b.command_url("STOP"),
                                     session_id=session.id)
            assert stop.result == "UNKNOWN_SESSION"
            # UNLOCK_CONNECTOR where the caller has no session.
            unlock = dict(location_id="LOC1", evse_uid="CP1-1", connector_id="1")
            assert "no session of yours" in await rejected(b, "UNLOCK_CONNECTOR", **unlock)
            assert "no session of yours" in await rejected(
                a, "UNLOCK_CONNECTOR", **unlock | {"evse_uid": "CP1-2"})
            # START_SESSION and RESERVE_NOW with another party's token.
            a_token = token_of("AAA", "TAGA")
            assert "DE/AAA is not one of yours" in await rejected(
                b, "START_SESSION", token=a_token, location_id="LOC1", evse_uid="CP1-2")
            soon = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
            await rejected(b, "RESERVE_NOW", token=a_token, reservation_id="R-B",
                           expiry_date=soon, location_id="LOC1", evse_uid="CP1-2")
            # A reservation's expiry is bounded (2 h by default) and in the future.
            for expiry, why in ((datetime.now(UTC) + timedelta(hours=3), "120 minutes"),
                                (datetime.now(UTC) - timedelta(minutes=1), "passed")):
                assert why in await rejected(
                    a, "RESERVE_NOW", token=a_token, reservation_id="R-LATE",
                    expiry_date=expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), location_id="LOC1",
                    evse_uid="CP1-2")
            assert charger.received == []

            # The owner's commands go through.
            assert (await env.command(a, "UNLOCK_CONNECTOR", response_url=a.command_url("U"),
                                      **unlock)).result == "ACCEPTED"
            await a.double.wait_for(lambda r: r.path == "/emsp/commands/U")
            reserve = await env.command(a, "RESERVE_NOW", response_url=a.command_url("R"),
                                        token=a_token, reservation_id="R-1", expiry_date=soon,
                                        location_id="LOC1", evse_uid="CP1-2")
            assert reserve.result == "ACCEPTED"
            await a.double.wait_for(lambda r: r.path == "/emsp/commands/R")
            # CANCEL_RESERVATION of another's reservation: unknown to the caller.
            assert (await env.command(b, "CANCEL_RESERVATION", response_url=b.command_url("C"),
                                      reservation_id="R-1")).result == "ACCEPTED"
            result = await b.double.wait_for(lambda r: r.path == "/emsp/commands/C")
            assert result[0].body == {"result": "UNKNOWN_RESERVATION"}
            reservation = await csms.db(csms.store.reservation_by_ocpi_id, a.partner_id, "R-1")
            assert reservation["status"] == "ACCEPTED"
            assert (await env.command(a, "STOP_SESSION", response_url=a.command_url("S"),
                                      session_id=session.id)).result == "ACCEPTED"
            await a.double.wait_for(lambda r: r.path == "/emsp/commands/S")
            assert [action for action, _ in charger.received] == [
                "UnlockConnector", "ReserveNow", "RemoteStopTransaction"]
            assert charger.received[-1][1] == {"transaction_id": tx.transaction_id}


async def test_realtime_authorization_asks_only_the_issuer(db: str) -> None:
    async with roaming(db, connectors=1) as env:
        csms, client, a, b, c = env.csms, env.client, env.a, env.b, env.c
        for emsp in (a, b, c):  # each would allow any card it is asked about
            for uid in ("ANEVER", "04AA01", "04BB01", "0CC001"):
                emsp.double.authorize_answers[uid] = {
                    "allowed": "ALLOWED", "token": token_of(emsp.party_id, uid)}
        b.double.authorize_answers["04BB01"]["token"] = token_of("AAA", "04BB01")
        ok(await client.put(f"{V}/tokens/DE/AAA/ANEVER", headers=a.auth,
                            json=token_of("AAA", "ANEVER", "NEVER")), Any, http=201)
        await csms.db(csms.store.set_token_route, "04AA", "DE", "AAA")
        await csms.db(csms.store.set_token_route, "04BB", "de", "bbb")

        def asked() -> dict[str, list[str]]:
            found = {e.party_id: [r.path.split("/")[3] for r in e.double.received
                                  if r.path.endswith("/authorize")] for e in (a, b, c)}
            return {k: v for k, v in found.items() if v}

        async with sim_charger(csms, "CP1") as charger:
            assert await charger.authorize("ANEVER") == "Accepted"  # its issuer, A
            assert asked() == {"AAA": ["ANEVER"]}
            assert await charger.authorize("0CC001") == "Invalid"  # no rule: nobody asked
            assert asked() == {"AAA": ["ANEVER"]}
            assert await charger.authorize("04AA01") == "Accepted"  # routed to A
            assert asked() == {"AAA": ["ANEVER", "04AA01"]}
            # B answers for a token of A's party: that counts as no answer.
            assert await charger.authorize("04BB01") == "Invalid"
            assert asked() == {"AAA": ["ANEVER", "04AA01"], "BBB": ["04BB01"]}
        headers = [r.headers for r in a.double.received if r.path.endswith("/authorize")]
        assert headers[0]["ocpi-to-party-id"] == "AAA"


async def test_every_pending_token_command_vouches_at_its_charger_only(tmp_path: Path) -> None:
    async with roaming(str(tmp_path / "c.db"), connectors=1, command_timeout_s=5.0) as env:
        csms, a = env.csms, env.a
        await csms.db(add_test_charger, csms.store, "CP2", None, "T1", "LOC2")
        expiry = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
        async with sim_charger(csms, "CP1") as charger, sim_charger(csms, "CP2") as other:
            # A charger that authorizes the idTag of a command before accepting it.
            charger.authorize_first |= {"ReserveNow", "RemoteStartTransaction"}
            answer = await env.command(
                a, "RESERVE_NOW", response_url=a.command_url("R"),
                token=token_of("AAA", "RESV1"), reservation_id="R-1",
                expiry_date=expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), location_id="LOC1",
                evse_uid="CP1-1")
            assert answer.result == "ACCEPTED"
            result = await a.double.wait_for(lambda r: r.path == "/emsp/commands/R")
            assert result[0].body == {"result": "ACCEPTED"}
            id_tag, info = charger.authorized[0]
            assert (id_tag, info["status"]) == ("RESV1", "Accepted")
            # While pending, the voucher lasts no longer than the command's deadline.
            pending_until = datetime.fromisoformat(info["expiry_date"])
            assert pending_until <= datetime.now(UTC) + timedelta(seconds=6)
            # Accepted: the reservation vouches for it there until it expires, elsewhere not.
            answer = await charger.call(call.Authorize(id_tag="RESV1"))
            assert answer.id_tag_info == {"status": "Accepted",
                                          "expiry_date": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}
            assert await other.authorize("RESV1") == "Invalid"
            cancel = await env.command(a, "CANCEL_RESERVATION", response_url=a.command_url("C"),
                                       reservation_id="R-1")
            assert cancel.result == "ACCEPTED"
            await a.double.wait_for(lambda r: r.path == "/emsp/commands/C")
            assert await charger.authorize("RESV1") == "Invalid"

            answer = await env.command(a, "START_SESSION", response_url=a.command_url("S"),
                                       token=token_of("AAA", "APP1"), location_id="LOC1",
                                       evse_uid="CP1-1")
            result = await a.double.wait_for(lambda r: r.path == "/emsp/commands/S")
            assert result[0].body == {"result": "ACCEPTED"}
            assert charger.authorized[-1][0] == "APP1"
            assert await other.authorize("APP1") == "Invalid"

