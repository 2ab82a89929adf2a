"""Bounds on requests: body size, JSON depth, pagination numbers. Past them a request gets
a client error in an OCPI envelope, never a 5xx, and stores nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from csms_doubles import error, ocpi_env, ok, token_body

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.limits import RequestLimits, json_depth_exceeds

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


def test_json_depth() -> None:
    assert not json_depth_exceeds(b'{"a": [1, {"b": []}]}', 4)
    assert json_depth_exceeds(b'{"a": [1, {"b": []}]}', 3)
    # Brackets inside strings, escaped quotes included, do not nest.
    assert not json_depth_exceeds(b'{"a": "[[[[{{{{\\"[[[["}', 1)
    assert json_depth_exceeds(b"[" * 100_000 + b"]" * 100_000, 32)
    assert not json_depth_exceeds(b"[]" * 100_000, 1)


async def test_body_size_and_depth(tmp_path: Path) -> None:
    limits = RequestLimits(max_body_bytes=4096, max_json_depth=8)
    async with ocpi_env(str(tmp_path / "c.db"), request_limits=limits) as env:
        client, url = env.client, f"{V}/tokens/DE/EMS/BIG"

        async def stored() -> bool:
            return await env.csms.db(env.csms.store.get_token, "DE", "EMS", "BIG") is not None

        big = token_body("BIG", visual_number="x" * 5000)
        message = error(await client.put(url, headers=env.auth, json=big), 413, 2001)
        assert "4096 bytes" in message

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
            body = json.dumps(big).encode()
            for start in range(0, len(body), 1000):
                yield body[start:start + 1000]

        error(await client.put(url, headers=env.auth, content=chunks()), 413, 2001)
        deep = "[" * 1000 + "]" * 1000
        assert "deeper than 8" in error(await client.put(
            url, headers=env.auth | {"Content-Type": "application/json"}, content=deep),
            400, 2001)
        nested: object = "leaf"
        for _ in range(10):
            nested = {"n": nested}
        error(await client.put(url, headers=env.auth,
                               json=token_body("BIG", energy_contract=nested)), 400, 2001)
        error(await client.put(url, headers=env.auth, content=b"{not json"), 400, 2001)
        error(await client.put(url, headers=env.auth, content=b"\xff\xfe{"), 400, 2001)
        assert not await stored()
        # Within the limits (brackets in strings do not count as depth) it is stored.
        ok(await client.put(url, headers=env.auth,
                            json=token_body("BIG", issuer="[" * 40)), object, http=201)
        assert await stored()


async def test_default_limits_and_pagination_numbers(db: str) -> None:
    async with ocpi_env(db) as env:
        client = env.client
        deep = "[" * 100_000 + "]" * 100_000  # within the default size, far too deep
        assert "deeper than 32" in error(await client.put(
            f"{V}/tokens/DE/EMS/DEEP", headers=env.auth | {"Content-Type": "application/json"},
            content=deep), 400, 2001)
        assert await env.csms.db(env.csms.store.get_token, "DE", "EMS", "DEEP") is None
        for path in (f"{V}/sessions", f"{V}/cdrs", f"{V}/tariffs", f"{V}/locations"):
            for params in ({"offset": "99999999999999999999"}, {"offset": 2**31},
                           {"offset": -1}, {"limit": -5}, {"limit": "9" * 5000},
                           {"date_from": "0001-01-01T00:00:00+14:00"},
                           {"date_to": "9999-12-31T23:59:59-14:00"}):
                error(await client.get(path, params=params, headers=env.auth), 400, 2001)
        error(await client.get("/opendata/locations", params={"offset": 10**20}), 400, 2001)
        last = await client.get(f"{V}/locations", params={"offset": 2**31 - 1},
                                headers=env.auth)
        assert ok(last, list[m.Location]) == [] and last.headers["X-Total-Count"] == "1"
        huge = await client.get(f"{V}/locations", params={"limit": 10**30}, headers=env.auth)
        assert len(ok(huge, list[m.Location])) == 1 and huge.headers["X-Limit"] == "100"
