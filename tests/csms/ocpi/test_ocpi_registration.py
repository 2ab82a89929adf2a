"""Registering with an eMSP that gave us its TOKEN_A (we start the handshake), from the API and
from the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from csms_doubles import add_test_charger, csms_running, make_tariff, ocpi_auth, ok, running_emsp

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.registration import HandshakeError, register_with_peer
from chargerfw.csms.store import Party
from chargerfw.csms.urlpolicy import LOOPBACK_NETWORKS, UrlPolicy

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"
DE_EMS = [Party("DE", "EMS")]
LOOPBACK = UrlPolicy.allowing(LOOPBACK_NETWORKS)


async def test_cpo_initiated_registration(db: str) -> None:
    async with running_emsp() as emsp, csms_running(db) as csms:
        await csms.db(csms.store.add_tariff, make_tariff("T1"))
        await csms.db(add_test_charger, csms.store, "CP1", None, "T1", "LOC1")
        our_versions = f"{csms.api_url}/ocpi/versions"
        async with httpx.AsyncClient() as http:
            with pytest.raises(HandshakeError) as refused:
                await register_with_peer(csms.db, http, f"{emsp.base}/emsp/versions",
                                         "not-their-token", our_versions, "eMSP", DE_EMS,
                                         policy=LOOPBACK)
            assert refused.value.status_code == 3001
            assert await csms.db(csms.store.list_partners) == []
            # The peer declares DE/EMS, which this partner was not given: refused, forgotten.
            with pytest.raises(HandshakeError) as refused:
                await register_with_peer(csms.db, http, f"{emsp.base}/emsp/versions",
                                         emsp.token_a, our_versions, "eMSP",
                                         [Party("DE", "XYZ")], policy=LOOPBACK)
            assert refused.value.status_code == 2001 and "DE/EMS/EMSP" in str(refused.value)
            assert await csms.db(csms.store.list_partners) == []
            partner_id = await register_with_peer(csms.db, http, f"{emsp.base}/emsp/versions",
                                                  emsp.token_a, our_versions, "eMSP", DE_EMS,
                                                  policy=LOOPBACK)
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
        args = ["csms", "partner", "register", "eMSP", "--party", "DE/EMS", "--db", db,
                "--allow-outbound-network", "127.0.0.0/8", "--versions-url",
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
