"""URLs partners hand the API (credentials and versions URLs, their endpoints, a command's
response_url) are held to the URL policy before the backend calls or keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from csms_doubles import (
    EmspDouble,
    csms_running,
    error,
    ocpi_auth,
    ocpi_env,
    ok,
    running_emsp,
    sim_charger,
    token_body,
)

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import Party

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"
# The eMSP double listens on 127.0.0.1; every other private address stays refused.
ONLY_THE_DOUBLE = ("127.0.0.1/32",)


def credentials(url: str, token: str = "their-token") -> dict[str, Any]:
    return {"token": token, "url": url, "roles": [{
        "role": "EMSP", "party_id": "EMS", "country_code": "DE",
        "business_details": {"name": "eMSP"}}]}


async def test_registration_refuses_private_urls(db: str) -> None:
    inside = EmspDouble(endpoints_base="http://10.9.9.9/emsp")
    async with running_emsp(inside), running_emsp() as emsp, csms_running(
            db, outbound_allowed_networks=ONLY_THE_DOUBLE) as csms:
        partner_id, token_a = await csms.db(csms.store.add_partner, "eMSP",
                                            [Party("DE", "EMS")])
        port = emsp.port
        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            post = f"{V}/credentials"
            for url in ("http://169.254.169.254/latest/meta-data/", "file:///etc/passwd",
                        "http://10.0.0.1/versions", f"http://127.0.0.2:{port}/emsp/versions",
                        f"http://[::1]:{port}/emsp/versions",
                        "gopher://127.0.0.1:25/", f"http://user:pw@127.0.0.1:{port}/"):
                message = error(await client.post(post, headers=ocpi_auth(token_a),
                                                  json=credentials(url)), 400, 2001)
                assert "refused" in message
            # Endpoints the peer lists are held to the same rule before anything is kept.
            message = error(await client.post(post, headers=ocpi_auth(token_a), json=credentials(
                f"{inside.base}/emsp/versions", inside.token_b)), 400, 2001)
            assert "endpoint url refused" in message
            partner = await csms.db(csms.store.get_partner, partner_id)
            assert not partner["registered"] and partner["their_endpoints"] is None
            # The token still only opens versions and credentials; the real eMSP registers.
            ok(await client.post(post, headers=ocpi_auth(token_a),
                                 json=credentials(f"{emsp.base}/emsp/versions", emsp.token_b)),
               m.Credentials)


async def test_command_response_url_refused(db: str) -> None:
    async with ocpi_env(db, outbound_allowed_networks=ONLY_THE_DOUBLE) as env:
        async with sim_charger(env.csms, "CP1") as charger:
            await charger.status(1, "Available")
            for url in ("http://169.254.169.254/x", "ftp://127.0.0.1/x", "http://10.0.0.1/x"):
                answer = await env.client.post(f"{V}/commands/START_SESSION", headers=env.auth,
                                               json={"response_url": url,
                                                     "token": token_body("APP1"),
                                                     "location_id": "LOC1"})
                assert "response_url refused" in error(answer, 400, 2001)
            assert charger.received == []
            assert await env.csms.db(env.csms.store.get_command, 1) is None


def test_serve_refuses_a_bad_allowed_network(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from chargerfw.cli import main

    result = CliRunner().invoke(main, ["csms", "serve", "--db", str(tmp_path / "c.db"),
                                       "--allow-outbound-network", "127.0.0.0/33"])
    assert result.exit_code == 2 and "not an IP network" in result.output
    assert not (tmp_path / "c.db").exists()  # refused before anything started
