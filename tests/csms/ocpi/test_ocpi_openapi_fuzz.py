"""A property test over the OCPI API's own OpenAPI (schemathesis): requests generated for
every route, with request bodies drawn from the independent OCPI 2.2.1 model, sent by a
registered eMSP to a live backend. No answer is a 5xx, every answer is an OCPI envelope,
and every success carries the spec's object."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from csms_doubles import ocpi_auth, ocpi_env, served_in_thread, token_body
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from ocpi_conformance import SPEC_DIR, check_response

from chargerfw.csms.store import AuthDecision, StartRequest

pytestmark = pytest.mark.timeout(120)
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)

# What the generated requests carry, by route: the OCPI object of the body (None: no body).
BODIES = {
    ("/ocpi/2.2.1/credentials", "post"): "Credentials",
    ("/ocpi/2.2.1/credentials", "put"): "Credentials",
    ("/ocpi/2.2.1/tokens/{country_code}/{party_id}/{uid}", "put"): "Token",
    ("/ocpi/2.2.1/tokens/{country_code}/{party_id}/{uid}", "patch"): "Token",
    ("/ocpi/2.2.1/commands/{command}", "post"): [
        "StartSession", "StopSession", "ReserveNow", "CancelReservation", "UnlockConnector"],
    ("/ocpi/2.2.1/sessions/{session_id}/charging_preferences", "put"): "ChargingPreferences",
    ("/ocpi/2.2.1/hubclientinfo/{country_code}/{party_id}", "put"): "ClientInfo",
}
# Unregistering would leave the rest of the run unauthorised; it has its own tests.
LEFT_OUT = {("/ocpi/2.2.1/credentials", "delete")}
# Where a generated command's CommandResult goes: a closed loopback port, under a commands
# path so the pushed body is checked as a CommandResult.
RESPONSE_URL = "http://127.0.0.1:9/emsp/commands/RESULT"


def ocpi_components() -> dict[str, Any]:
    """The OCPI 2.2.1 model as OpenAPI components (one namespace: names are unique)."""
    schemas: dict[str, Any] = {}
    for path in sorted(SPEC_DIR.glob("*.json")):
        text = path.read_text().replace('"#/$defs/', '"#/components/schemas/')
        for other in SPEC_DIR.glob("*.json"):
            text = text.replace(f'"{other.name}#/$defs/', '"#/components/schemas/')
        schemas.update(json.loads(text)["$defs"])
    return schemas


# Path parameters naming objects that exist (and the commands): a generated request takes
# them half of the time, so requests reach past "unknown object".
KNOWN = {"country_code": "DE", "party_id": "EMS", "uid": "TAG1", "location_id": "LOC1",
         "evse_uid": "CP1-1", "connector_id": "1"}


def command_of(body: Any) -> str | None:
    """The command a generated command body is for."""
    if not isinstance(body, dict):
        return None
    if "token" in body:
        return "RESERVE_NOW" if "expiry_date" in body else "START_SESSION"
    if "session_id" in body:
        return "STOP_SESSION"
    if "reservation_id" in body:
        return "CANCEL_RESERVATION"
    return "UNLOCK_CONNECTOR"


def aimed(case: Any, known: dict[str, str]) -> None:
    """Point ``case`` at existing objects: known path parameters, a token body naming its
    URL, a command body at its command's URL."""
    params = case.path_parameters or {}
    for name in params:
        if name in known:
            params[name] = known[name]
    body = case.body
    if "/tokens/" in case.path and isinstance(body, dict) and case.method == "PUT":
        body.update(country_code=params["country_code"], party_id=params["party_id"],
                    uid=params["uid"], type=(case.query or {}).get("type", "RFID"))
    if "/commands/" in case.path and command_of(body) is not None:
        params["command"] = command_of(body)


def with_ocpi_bodies(openapi: dict[str, Any]) -> dict[str, Any]:
    """The app's OpenAPI with the request body of each route that reads one (the routes
    parse raw JSON, so the app does not declare them)."""
    openapi = json.loads(json.dumps(openapi))
    openapi.setdefault("components", {}).setdefault("schemas", {}).update(ocpi_components())
    for (path, method), kind in BODIES.items():
        kinds = kind if isinstance(kind, list) else [kind]
        schema = {"oneOf": [{"$ref": f"#/components/schemas/{k}"} for k in kinds]}
        openapi["paths"][path][method]["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": schema}}}
    for path, method in LEFT_OUT:
        del openapi["paths"][path][method]
    return openapi


schemathesis.openapi.format("ocpi-date-time", st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")))
schemathesis.openapi.format("ocpi-url", st.just(RESPONSE_URL))


@dataclass
class LiveApi:
    url: str
    token: str
    openapi: dict[str, Any]
    known: dict[str, str]  # path parameters naming objects that exist


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """A backend on SQLite with two chargers, a registered eMSP, its token and a session,
    served from its own thread (the generated requests are plain blocking calls)."""
    @contextlib.asynccontextmanager
    async def serving() -> AsyncIterator[LiveApi]:
        db = str(tmp_path_factory.mktemp("fuzz") / "csms.sqlite3")
        async with ocpi_env(db, chargers=2, command_timeout_s=1.0) as env:
            await env.client.put("/ocpi/2.2.1/tokens/DE/EMS/TAG1", headers=env.auth,
                                 json=token_body("TAG1", "ALLOWED"))
            await env.csms.db(env.csms.store.start_transaction,
                              StartRequest("CP1", 1, "TAG1", 0, T0),
                              AuthDecision("Accepted", "WHITELIST", "DE", "EMS", "RFID",
                                           "DE-EMS-TAG1"))
            sessions = await env.client.get("/ocpi/2.2.1/sessions", headers=env.auth)
            yield LiveApi(env.csms.api_url, env.token_c,
                          env.csms.api_server.config.app.openapi(),
                          KNOWN | {"session_id": sessions.json()["data"][0]["id"]})

    with served_in_thread(serving) as api:
        yield api


def test_the_openapi_names_every_route(live_api: LiveApi) -> None:
    routes = {(p, m) for p, ops in live_api.openapi["paths"].items() for m in ops}
    assert set(BODIES) | LEFT_OUT <= routes
    assert len(routes) >= 20


def test_no_request_gets_a_server_error(live_api: LiveApi) -> None:
    schema = schemathesis.openapi.from_dict(with_ocpi_bodies(live_api.openapi))
    auth = ocpi_auth(live_api.token)
    answered: dict[int, int] = {}

    @settings(max_examples=400, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(), aim=st.booleans())
    def property_(case: Any, aim: bool) -> None:
        if aim:
            aimed(case, live_api.known)
        response = case.call(base_url=live_api.url, headers=auth, timeout=10)
        answered[response.status_code] = answered.get(response.status_code, 0) + 1
        path = urlsplit(response.request.url).path

        assert response.status_code < 500, (
            f"{case.method} {response.request.url} {case.body!r} -> {response.status_code} "
            f"{response.content[:300]!r}")
        check_response(case.method, path, response.status_code, response.content)

    property_()
    # Both successes and refusals were reached, not only one kind of answer.
    assert any(200 <= s < 300 for s in answered) and any(400 <= s < 500 for s in answered), \
        answered
