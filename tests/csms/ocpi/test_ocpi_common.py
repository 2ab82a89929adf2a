"""What every OCPI module shares: error envelopes (2001, 2000, 3000) and the request and
routing headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from csms_doubles import error, ocpi_env

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


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
