"""The OCPI 2.2.1 CPO HTTP API (FastAPI) and the open-data feed.

Every answer, errors included, is an OCPI envelope ``{data, status_code, status_message,
timestamp}``: validation errors become 2001 (HTTP 400), unknown routes and methods keep their
HTTP status with 2000, and unexpected failures 3000 (HTTP 500).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.engine import RowMapping
from starlette.exceptions import HTTPException as StarletteHTTPException

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.commands import COMMAND_MODELS, CommandHandler
from chargerfw.csms.ocpi.registration import HandshakeError, credentials_for, fetch_peer_endpoints
from chargerfw.csms.store import AsyncStore, NotFound, Page, PageQuery, StoreError, utcnow
from chargerfw.logs import get_logger

log = get_logger(__name__)

VERSION = "2.2.1"
MAX_LIMIT = 100
DEFAULT_LIMIT = 50


@dataclass
class OcpiContext:
    """What the API needs from the running backend."""

    db: AsyncStore
    http: httpx.AsyncClient
    commands: CommandHandler
    base_url: str = "http://127.0.0.1"
    business_name: str = "chargerfw CSMS"
    on_change: Any = field(default=None)
    # Called with a token uid after the eMSP changed it (drops cached decisions).
    on_token_change: Any = field(default=None)

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/ocpi/versions"

    @property
    def module_base(self) -> str:
        return f"{self.base_url}/ocpi/{VERSION}"

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def token_changed(self, uid: str) -> None:
        if self.on_token_change is not None:
            self.on_token_change(uid)


class OcpiError(Exception):
    """An error answered with an OCPI envelope."""

    def __init__(self, http_status: int, status_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status_code = status_code
        self.message = message


def envelope(data: Any = None, status_code: int = 1000, message: str | None = "Success"
             ) -> dict[str, Any]:
    return {"data": data, "status_code": status_code, "status_message": message,
            "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}


def ocpi_json(data: Any = None, *, http_status: int = 200, status_code: int = 1000,
              message: str | None = "Success", headers: dict[str, str] | None = None
              ) -> JSONResponse:
    return JSONResponse(envelope(data, status_code, message), status_code=http_status,
                        headers=headers)


def _presented_tokens(request: Request) -> list[str]:
    """Candidates from ``Authorization: Token x``: x base64-decoded (2.2.1) and x as sent."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    candidates = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
        if decoded.isprintable() and decoded:
            candidates.append(decoded)
    except (binascii.Error, UnicodeDecodeError):
        pass
    candidates.append(value)
    return candidates


async def _identify(request: Request) -> tuple[RowMapping, str, str]:
    ctx: OcpiContext = request.app.state.ocpi
    for token in _presented_tokens(request):
        found = await ctx.db(ctx.db.store.partner_by_token, token)
        if found is not None:
            return found[0], found[1], token
    raise OcpiError(401, 2000, "missing or unknown Authorization token")


async def any_token(request: Request) -> tuple[RowMapping, str, str]:
    """TOKEN_A or TOKEN_C: allowed on versions and credentials only."""
    return await _identify(request)


async def registered_partner(request: Request) -> RowMapping:
    """TOKEN_C of a registered partner; TOKEN_A is refused here."""
    partner, kind, _ = await _identify(request)
    if kind != "C":
        raise OcpiError(401, 2000, "TOKEN_A may only be used for versions and credentials")
    return partner


Partner = Annotated[RowMapping, Depends(registered_partner)]
AnyToken = Annotated[tuple[RowMapping, str, str], Depends(any_token)]


def page_query(offset: Annotated[int, Query(ge=0)] = 0,
               limit: Annotated[int, Query(ge=1)] = DEFAULT_LIMIT,
               date_from: datetime | None = None,
               date_to: datetime | None = None) -> PageQuery:
    return PageQuery(offset=offset, limit=min(limit, MAX_LIMIT),
                     date_from=m.as_utc(date_from) if date_from else None,
                     date_to=m.as_utc(date_to) if date_to else None)


Paging = Annotated[PageQuery, Depends(page_query)]


def paginated(request: Request, page: Page, query: PageQuery) -> JSONResponse:
    headers = {"X-Total-Count": str(page.total), "X-Limit": str(query.limit)}
    next_offset = query.offset + len(page.items)
    if page.items and next_offset < page.total:
        params = dict(request.query_params)
        params.update(offset=str(next_offset), limit=str(query.limit))
        # Built on the public base URL: behind a proxy, request.url is not what peers reach.
        base = request.app.state.ocpi.base_url
        headers["Link"] = f'<{base}{request.url.path}?{urlencode(params)}>; rel="next"'
    return ocpi_json(page.items, headers=headers)


def _parse(model: type[Any], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise OcpiError(400, 2001, _describe(exc.errors())) from None


def _describe(errors: Any) -> str:
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {error.get('msg')}")
    return "invalid or missing parameters: " + "; ".join(parts)


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise OcpiError(400, 2001, "request body is not valid JSON") from None


def create_app(ctx: OcpiContext) -> FastAPI:
    """The FastAPI application serving OCPI under /ocpi and the open feed under /opendata."""
    app = FastAPI(title="chargerfw CSMS (OCPI 2.2.1 CPO)", openapi_url=None, docs_url=None,
                  redoc_url=None)
    app.state.ocpi = ctx

    @app.middleware("http")
    async def ocpi_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.headers.get("X-Request-ID",
                                                               str(uuid.uuid4()))
        response.headers["X-Correlation-ID"] = request.headers.get("X-Correlation-ID",
                                                                   str(uuid.uuid4()))
        # Routing headers: the answer goes back to whoever asked.
        from_cc = request.headers.get("OCPI-from-country-code")
        from_pid = request.headers.get("OCPI-from-party-id")
        if from_cc and from_pid:
            cpo = ctx.db.store.cpo
            response.headers["OCPI-to-country-code"] = from_cc
            response.headers["OCPI-to-party-id"] = from_pid
            response.headers["OCPI-from-country-code"] = cpo.country_code
            response.headers["OCPI-from-party-id"] = cpo.party_id
        return response

    @app.exception_handler(OcpiError)
    async def on_ocpi_error(_request: Request, exc: OcpiError) -> JSONResponse:
        return ocpi_json(None, http_status=exc.http_status, status_code=exc.status_code,
                         message=exc.message)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError
                                  ) -> JSONResponse:
        return ocpi_json(None, http_status=400, status_code=2001,
                         message=_describe(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ocpi_json(None, http_status=exc.status_code, status_code=2000,
                         message=str(exc.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("ocpi.internal_error", error=type(exc).__name__)
        return ocpi_json(None, http_status=500, status_code=3000, message="internal error")

    store = ctx.db.store
    db = ctx.db
    cpo = store.cpo

    # -- versions --

    @app.get("/ocpi/versions")
    async def versions(_auth: AnyToken) -> JSONResponse:
        return ocpi_json([{"version": VERSION, "url": ctx.module_base}])

    @app.get(f"/ocpi/{VERSION}")
    async def version_details(_auth: AnyToken) -> JSONResponse:
        base = ctx.module_base
        endpoints = [
            {"identifier": "credentials", "role": "SENDER", "url": f"{base}/credentials"},
            {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials"},
            {"identifier": "locations", "role": "SENDER", "url": f"{base}/locations"},
            {"identifier": "sessions", "role": "SENDER", "url": f"{base}/sessions"},
            {"identifier": "cdrs", "role": "SENDER", "url": f"{base}/cdrs"},
            {"identifier": "tariffs", "role": "SENDER", "url": f"{base}/tariffs"},
            {"identifier": "tokens", "role": "RECEIVER", "url": f"{base}/tokens"},
            {"identifier": "commands", "role": "RECEIVER", "url": f"{base}/commands"},
        ]
        return ocpi_json({"version": VERSION, "endpoints": endpoints})

    # -- credentials --

    def our_credentials(token: str) -> dict[str, Any]:
        return credentials_for(token, ctx.versions_url, ctx.business_name, cpo.country_code,
                               cpo.party_id)

    async def exchange(partner: RowMapping, credentials: m.Credentials) -> str:
        """Fetch the peer's versions and endpoints with their token; store; issue TOKEN_C."""
        try:
            peer = await fetch_peer_endpoints(ctx.http, credentials.url, credentials.token)
        except HandshakeError as exc:
            raise OcpiError(400, exc.status_code, str(exc)) from None
        role = next((r for r in credentials.roles if r.role == "EMSP"), credentials.roles[0])
        token_c = await db(store.register_partner, partner["id"], credentials.token,
                           credentials.url, VERSION, peer.endpoints, role.country_code,
                           role.party_id, role.business_details.name)
        # A new partner gets everything it may not have yet; pushes keep it current after.
        await db(store.queue_full_sync, partner["id"])
        ctx.changed()
        return token_c

    @app.get(f"/ocpi/{VERSION}/credentials")
    async def get_credentials(auth: AnyToken) -> JSONResponse:
        return ocpi_json(our_credentials(auth[2]))

    @app.post(f"/ocpi/{VERSION}/credentials")
    async def post_credentials(request: Request, auth: AnyToken) -> JSONResponse:
        partner, kind, _ = auth
        if kind != "A":
            raise OcpiError(405, 2000, "already registered: use PUT to update credentials")
        credentials = _parse(m.Credentials, await _json_body(request))
        token_c = await exchange(partner, credentials)
        log.info("ocpi.partner_registered", partner=partner["id"])
        return ocpi_json(our_credentials(token_c))

    @app.put(f"/ocpi/{VERSION}/credentials")
    async def put_credentials(request: Request, auth: AnyToken) -> JSONResponse:
        partner, kind, _ = auth
        if kind != "C":
            raise OcpiError(405, 2000, "not registered: use POST to register")
        credentials = _parse(m.Credentials, await _json_body(request))
        token_c = await exchange(partner, credentials)
        return ocpi_json(our_credentials(token_c))

    @app.delete(f"/ocpi/{VERSION}/credentials")
    async def delete_credentials(auth: AnyToken) -> JSONResponse:
        partner, kind, _ = auth
        if kind != "C":
            raise OcpiError(405, 2000, "not registered")
        await db(store.unregister_partner, partner["id"])
        return ocpi_json(None)

    # -- locations --

    @app.get(f"/ocpi/{VERSION}/locations")
    async def list_locations(request: Request, _p: Partner, query: Paging) -> JSONResponse:
        return paginated(request, await db(store.list_locations, query), query)

    @app.get(f"/ocpi/{VERSION}/locations/{{location_id}}")
    async def get_location(location_id: str, _p: Partner) -> JSONResponse:
        return ocpi_json(await _location(location_id))

    @app.get(f"/ocpi/{VERSION}/locations/{{location_id}}/{{evse_uid}}")
    async def get_evse(location_id: str, evse_uid: str, _p: Partner) -> JSONResponse:
        return ocpi_json(_evse_of(await _location(location_id), evse_uid))

    @app.get(f"/ocpi/{VERSION}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}")
    async def get_connector(location_id: str, evse_uid: str, connector_id: str,
                            _p: Partner) -> JSONResponse:
        evse = _evse_of(await _location(location_id), evse_uid)
        for connector in evse["connectors"]:
            if connector["id"] == connector_id:
                return ocpi_json(connector)
        raise OcpiError(404, 2003, f"unknown connector {connector_id!r}")

    async def _location(location_id: str) -> dict[str, Any]:
        location = await db(store.get_location, location_id)
        if location is None:
            raise OcpiError(404, 2003, f"unknown location {location_id!r}")
        return location

    def _evse_of(location: dict[str, Any], evse_uid: str) -> dict[str, Any]:
        for evse in location.get("evses", []):
            if evse["uid"] == evse_uid:
                return evse
        raise OcpiError(404, 2003, f"unknown EVSE {evse_uid!r}")

    # -- sessions, CDRs, tariffs --

    @app.get(f"/ocpi/{VERSION}/sessions")
    async def list_sessions(request: Request, _p: Partner, query: Paging) -> JSONResponse:
        return paginated(request, await db(store.list_sessions, query), query)

    @app.put(f"/ocpi/{VERSION}/sessions/{{session_id}}/charging_preferences")
    async def charging_preferences(session_id: str, request: Request,
                                   _p: Partner) -> JSONResponse:
        body = await _json_body(request)
        if not isinstance(body, dict) or "profile_type" not in body:
            raise OcpiError(400, 2001, "invalid or missing parameters: profile_type")
        if await db(store.get_session, session_id) is None:
            raise OcpiError(404, 2000, f"unknown session {session_id!r}")
        # This backend does no smart charging: preferences cannot be honoured.
        return ocpi_json("NOT_POSSIBLE")

    @app.get(f"/ocpi/{VERSION}/cdrs")
    async def list_cdrs(request: Request, _p: Partner, query: Paging) -> JSONResponse:
        return paginated(request, await db(store.list_cdrs, query), query)

    @app.get(f"/ocpi/{VERSION}/tariffs")
    async def list_tariffs(request: Request, _p: Partner, query: Paging) -> JSONResponse:
        return paginated(request, await db(store.list_tariffs, query), query)

    # -- tokens (Receiver) --

    def _token_path(partner: RowMapping, country_code: str, party_id: str) -> None:
        if len(country_code) != 2 or len(party_id) != 3:
            raise OcpiError(400, 2001, "invalid or missing parameters: country_code/party_id")
        if partner["role"] != "HUB" and partner["country_code"] and (
                partner["country_code"], partner["party_id"]) != (country_code.upper(),
                                                                 party_id.upper()):
            raise OcpiError(400, 2001, "token belongs to another party")

    @app.get(f"/ocpi/{VERSION}/tokens/{{country_code}}/{{party_id}}/{{uid}}")
    async def get_token(country_code: str, party_id: str, uid: str, partner: Partner,
                        type: m.TokenType = m.TokenType.RFID) -> JSONResponse:
        _token_path(partner, country_code, party_id)
        token = await db(store.get_token, country_code.upper(), party_id.upper(), uid, type)
        if token is None:
            raise OcpiError(404, 2004, f"unknown token {uid!r}")
        return ocpi_json(token)

    @app.put(f"/ocpi/{VERSION}/tokens/{{country_code}}/{{party_id}}/{{uid}}")
    async def put_token(country_code: str, party_id: str, uid: str, request: Request,
                        partner: Partner, type: m.TokenType = m.TokenType.RFID) -> JSONResponse:
        _token_path(partner, country_code, party_id)
        token = _parse(m.Token, await _json_body(request))
        if (token.country_code, token.party_id, token.uid, token.type) != (
                country_code.upper(), party_id.upper(), uid, type):
            raise OcpiError(400, 2001, "token identity in the body differs from the URL")
        created = await db(store.put_token, token, partner["id"])
        ctx.token_changed(uid)
        return ocpi_json(None, http_status=201 if created else 200)

    @app.patch(f"/ocpi/{VERSION}/tokens/{{country_code}}/{{party_id}}/{{uid}}")
    async def patch_token(country_code: str, party_id: str, uid: str, request: Request,
                          partner: Partner, type: m.TokenType = m.TokenType.RFID
                          ) -> JSONResponse:
        _token_path(partner, country_code, party_id)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise OcpiError(400, 2001, "invalid or missing parameters: body must be an object")
        if {"country_code", "party_id", "uid", "type"} & body.keys():
            raise OcpiError(400, 2001, "a PATCH may not change the token's identity")
        patch = _parse(m.TokenPatch, body)
        try:
            await db(store.patch_token, country_code.upper(), party_id.upper(), uid, type,
                     patch)
        except NotFound as exc:
            raise OcpiError(404, 2004, str(exc)) from None
        except (StoreError, ValidationError) as exc:
            raise OcpiError(400, 2001, str(exc)) from None
        ctx.token_changed(uid)
        return ocpi_json(None)

    # -- commands (Receiver) --

    @app.post(f"/ocpi/{VERSION}/commands/{{command}}")
    async def post_command(command: m.CommandType, request: Request,
                           partner: Partner) -> JSONResponse:
        parsed = _parse(COMMAND_MODELS[command], await _json_body(request))
        response = await ctx.commands.handle(command, parsed, partner)
        return ocpi_json(response.model_dump(mode="json", exclude_none=True))

    # -- open data --

    @app.get("/opendata/locations")
    async def open_locations(request: Request, query: Paging) -> JSONResponse:
        page = await db(store.list_locations, query, True)
        return paginated(request, page, query)

    return app
