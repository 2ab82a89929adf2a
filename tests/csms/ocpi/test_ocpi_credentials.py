"""OCPI credentials: an eMSP registers with its TOKEN_A, renews and unregisters; bad input
registers nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from csms_doubles import csms_running, error, ocpi_auth, ocpi_env, ok, running_emsp

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import Party

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


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
        malformed = {**body, "roles": [{**body["roles"][0], "country_code": ";&"}]}
        assert "roles" in error(await client.put(f"{V}/credentials", headers=new_auth,
                                                 json=malformed), 400, 2001)
        ok(await client.get(f"{V}/locations", headers=new_auth), Any)  # still registered
        ok(await client.delete(f"{V}/credentials", headers=new_auth), Any)
        error(await client.get(f"{V}/locations", headers=new_auth), 401, 2000)


async def test_registration_with_bad_input_changes_nothing(tmp_path: Path) -> None:
    async with running_emsp() as emsp, csms_running(str(tmp_path / "c.db")) as csms:
        _, token_a = await csms.db(csms.store.add_partner, "eMSP", [Party("DE", "EMS")])
        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            msg = error(await client.post(f"{V}/credentials", headers=ocpi_auth(token_a),
                                          json={"token": "x", "roles": []}), 400, 2001)
            assert "url" in msg and "roles" in msg
            error(await client.post(f"{V}/credentials", headers=ocpi_auth(token_a),
                                    content=b"{not json"), 400, 2001)
            # A malformed party in the roles is invalid, before anything is fetched.
            for cc, pid in ((";&", "EMS"), ("DE", "E/S")):
                msg = error(await client.post(f"{V}/credentials", headers=ocpi_auth(token_a),
                                              json={"token": emsp.token_b,
                                                    "url": f"{emsp.base}/emsp/versions",
                                                    "roles": [{"role": "EMSP", "party_id": pid,
                                                               "country_code": cc,
                                                               "business_details": {
                                                                   "name": "x"}}]}),
                            400, 2001)
                assert "roles" in msg
            # Wrong token for their versions endpoint: we cannot use their API (3001).
            error(await client.post(f"{V}/credentials", headers=ocpi_auth(token_a), json={
                "token": "wrong", "url": f"{emsp.base}/emsp/versions",
                "roles": [{"role": "EMSP", "party_id": "EMS", "country_code": "DE",
                           "business_details": {"name": "x"}}]}), 400, 3001)
            # TOKEN_A still works: nothing was registered.
            ok(await client.get("/ocpi/versions", headers=ocpi_auth(token_a)), list[m.Version])
        partner = (await csms.db(csms.store.list_partners))[0]
        assert partner["registered"] is False and partner["their_token"] is None
