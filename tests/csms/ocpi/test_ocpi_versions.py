"""OCPI versions and version details, and which credentials token opens which module."""

from __future__ import annotations

import pytest
from csms_doubles import error, ocpi_auth, ocpi_env, ok

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


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
