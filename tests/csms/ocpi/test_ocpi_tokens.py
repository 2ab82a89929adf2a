"""OCPI tokens (Receiver): put, patch, get; bad input changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from csms_doubles import error, ocpi_env, ok, token_body

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


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
        # Another party's URL: 404, as the spec allows for objects that are not the caller's.
        error(await client.put(f"{V}/tokens/FR/XYZ/04A1", headers=env.auth,
                               json=token_body("04A1") | {"country_code": "FR",
                                                          "party_id": "XYZ"}), 404, 2001)
        assert ok(await client.get(url, headers=env.auth), m.Token).valid is False
