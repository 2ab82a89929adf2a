"""A property test over the admin API's own OpenAPI (schemathesis): requests generated for
every route, with and without the example bodies of the command kinds, sent with an admin
token to a live backend whose charger is not connected. No answer is a 5xx and every answer
is JSON: an error or a command's outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from csms_doubles import add_test_charger, csms_running, served_in_thread
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chargerfw.csms.operator_commands import KINDS

pytestmark = pytest.mark.timeout(120)


@dataclass
class LiveAdminApi:
    url: str
    token: str
    openapi: dict[str, Any]


@pytest.fixture(scope="module")
def live_admin_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAdminApi]:
    """A backend on SQLite with charger CP1 (never connected) and an admin token, served from
    its own thread (the generated requests are plain blocking calls)."""
    @contextlib.asynccontextmanager
    async def serving() -> AsyncIterator[LiveAdminApi]:
        db = str(tmp_path_factory.mktemp("fuzz") / "csms.sqlite3")
        async with csms_running(db, admin_port=0) as csms:
            await csms.db(add_test_charger, csms.store, "CP1", None)
            _, token = await csms.db(csms.store.create_admin_token, "fuzz")
            openapi = (await asyncio.to_thread(
                httpx.get, f"{csms.admin_url}/openapi.json")).json()
            yield LiveAdminApi(str(csms.admin_url), token, openapi)

    with served_in_thread(serving) as api:
        yield api


def test_no_request_gets_a_server_error(live_admin_api: LiveAdminApi) -> None:
    schema = schemathesis.openapi.from_dict(live_admin_api.openapi)
    auth = {"Authorization": f"Bearer {live_admin_api.token}"}
    answered: dict[int, int] = {}

    @settings(max_examples=200, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(), aim=st.booleans())
    def property_(case: Any, aim: bool) -> None:
        kind = case.path.rsplit("/", 1)[-1]
        if aim and case.path_parameters:
            case.path_parameters["charge_point_id"] = "CP1"
            if kind in KINDS:
                case.body = dict(KINDS[kind].example)
        wait = (case.query or {}).get("wait")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 1:
            # A valid long-poll may last a minute (tested on its own); here it stays short.
            case.query["wait"] = 1
        response = case.call(base_url=live_admin_api.url, headers=auth, timeout=10)
        answered[response.status_code] = answered.get(response.status_code, 0) + 1
        assert response.status_code < 500, (
            f"{case.method} {response.request.url} {case.body!r} -> {response.status_code} "
            f"{response.content[:300]!r}")
        body = response.json()
        if response.status_code >= 400 and response.status_code != 409:
            assert set(body) == {"error"}, body
        if response.status_code == 409:
            assert body["status"] == "NotConnected"

    property_()
    # Commands reached the (absent) charger and refusals happened, not only one kind.
    assert answered.get(409) and any(400 <= s < 409 for s in answered), answered
