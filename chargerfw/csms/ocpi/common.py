"""What every OCPI module of the CPO API shares: the context the routes run in, the response
envelope, errors, the request and routing headers, the credentials-token dependencies,
request bodies, and pagination.

Routing headers (``OCPI-from-*``/``OCPI-to-*``) are checked on every functional-module request
of a registered partner: the TO party, when given, must be ours (else 4001, unknown
receiver); the FROM party must be the partner's own or, for a hub, a party the hub reports
reachable (else 2001). The party a request acts for is then ``sending_party(request)``.

Every answer, errors included, is an OCPI envelope ``{data, status_code, status_message,
timestamp}``: validation errors become 2001 (HTTP 400), unknown routes and methods keep their
HTTP status with 2000, and unexpected failures 3000 (HTTP 500).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import httpx
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import RowMapping
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.chargingprofiles import ChargingProfileHandler
from chargerfw.csms.ocpi.commands import CommandHandler
from chargerfw.csms.ocpi.limits import MAX_OFFSET, BodyRefused, RequestLimits, parse_json_body
from chargerfw.csms.store import AsyncStore, Page, PageQuery, utcnow
from chargerfw.csms.store.values import BadPageKey, JsonPage, PageKey, json_text
from chargerfw.csms.urlpolicy import UrlPolicy, UrlRefused
from chargerfw.logs import get_logger

log = get_logger(__name__)

MODULE_PREFIX = f"/ocpi/{m.VERSION}"
MAX_LIMIT = 100
DEFAULT_LIMIT = 50

ModelT = TypeVar("ModelT", bound=BaseModel)


# --- context ----------------------------------------------------------------------------------

@dataclass
class OcpiContext:
    """What the API needs from the running backend."""

    db: AsyncStore
    http: httpx.AsyncClient
    commands: CommandHandler
    base_url: str = "http://127.0.0.1"
    business_name: str = "chargerfw CSMS"
    # Called after a change that partners must hear about (wakes the push worker).
    on_change: Callable[[], None] | None = None
    # Called with a token uid after the eMSP changed it (drops cached decisions).
    on_token_change: Callable[[str], None] | None = None
    # Called with a partner's id once it registered (pulls its hub parties and tokens).
    on_partner_registered: Callable[[int], None] | None = None
    # Where partner-given URLs may lead, and how much a request may carry.
    url_policy: UrlPolicy = UrlPolicy()
    limits: RequestLimits = RequestLimits()
    # eMSPs' charging profiles on their sessions (None: the module is not served).
    charging_profiles: ChargingProfileHandler | None = None

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/ocpi/versions"

    @property
    def module_base(self) -> str:
        return f"{self.base_url}{MODULE_PREFIX}"

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def token_changed(self, uid: str) -> None:
        if self.on_token_change is not None:
            self.on_token_change(uid)

    def partner_registered(self, partner_id: int) -> None:
        if self.on_partner_registered is not None:
            self.on_partner_registered(partner_id)


def ocpi_context(request: Request) -> OcpiContext:
    context: OcpiContext = request.app.state.ocpi
    return context


async def _context_dependency(request: Request) -> OcpiContext:
    # A coroutine: FastAPI runs a plain function dependency on a worker thread, a hop per
    # request for nothing.
    return ocpi_context(request)


Context = Annotated[OcpiContext, Depends(_context_dependency)]


# --- envelopes and errors ---------------------------------------------------------------------

class OcpiError(Exception):
    """An error answered with an OCPI envelope."""

    def __init__(self, http_status: int, status_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status_code = status_code
        self.message = message


# OCPI strings are printable: control characters a caller put in a URL or body and a message
# quotes are written as escapes.
_NON_PRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    return _NON_PRINTABLE.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def envelope(data: Any = None, status_code: int = 1000, message: str | None = "Success"
             ) -> dict[str, Any]:
    if message is not None:
        message = printable(message)
    return {"data": data, "status_code": status_code, "status_message": message,
            "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}


def ocpi_json(data: Any = None, *, http_status: int = 200, status_code: int = 1000,
              message: str | None = "Success", headers: dict[str, str] | None = None
              ) -> JSONResponse:
    return JSONResponse(envelope(data, status_code, message), status_code=http_status,
                        headers=headers)


def ocpi_json_list(items: list[str], headers: dict[str, str]) -> Response:
    """A successful envelope whose data is a list of objects that are JSON text already:
    they go into the body as they are (a page of stored documents is not parsed and
    serialized again)."""
    rest = envelope()
    del rest["data"]
    body = f'{{"data":[{",".join(items)}],{json_text(rest)[1:]}'
    return Response(body.encode(), media_type="application/json", headers=headers)


def describe(errors: Iterable[Any]) -> str:
    """A 2001 status message from pydantic's errors (the first few)."""
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {error.get('msg')}")
    return "invalid or missing parameters: " + "; ".join(parts)


def answer_errors_in_envelopes(app: FastAPI) -> None:
    """Make every error ``app`` answers an OCPI envelope."""

    @app.exception_handler(OcpiError)
    async def on_ocpi_error(_request: Request, exc: OcpiError) -> JSONResponse:
        return ocpi_json(None, http_status=exc.http_status, status_code=exc.status_code,
                         message=exc.message)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError
                                  ) -> JSONResponse:
        return ocpi_json(None, http_status=400, status_code=2001,
                         message=describe(exc.errors()))

    @app.exception_handler(BadPageKey)
    async def on_bad_page_key(_request: Request, exc: BadPageKey) -> JSONResponse:
        return ocpi_json(None, http_status=400, status_code=2001,
                         message=f"invalid or missing parameters: cursor: {exc}")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ocpi_json(None, http_status=exc.status_code, status_code=2000,
                         message=str(exc.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("ocpi.internal_error", error=type(exc).__name__)
        return ocpi_json(None, http_status=500, status_code=3000, message="internal error")


# --- headers ----------------------------------------------------------------------------------

class OcpiHeaders:
    """ASGI middleware: X-Request-ID and X-Correlation-ID on every answer (the caller's, or
    new ones) and, when the caller named itself, the routing headers back to it. (Plain
    ASGI: starlette's ``BaseHTTPMiddleware`` runs every request in a task of its own with
    streams between, a fixed cost per request.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = Headers(scope=scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add_headers(scope, asked, MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _add_headers(scope: Scope, asked: Headers, answer: MutableHeaders) -> None:
        answer["X-Request-ID"] = asked.get("X-Request-ID", str(uuid.uuid4()))
        answer["X-Correlation-ID"] = asked.get("X-Correlation-ID", str(uuid.uuid4()))
        # Routing headers: the answer goes back to whoever asked (configuration modules are
        # not routed).
        from_cc = asked.get("OCPI-from-country-code")
        from_pid = asked.get("OCPI-from-party-id")
        if from_cc and from_pid and not _configuration_path(scope["path"]):
            context: OcpiContext = scope["app"].state.ocpi
            cpo = context.db.store.cpo
            answer["OCPI-to-country-code"] = from_cc
            answer["OCPI-to-party-id"] = from_pid
            answer["OCPI-from-country-code"] = cpo.country_code
            answer["OCPI-from-party-id"] = cpo.party_id


CONFIGURATION_MODULES = ("credentials", "hubclientinfo")


def _configuration_path(path: str) -> bool:
    if not path.startswith(MODULE_PREFIX + "/"):
        return True  # versions, open data: not OCPI functional modules
    return path[len(MODULE_PREFIX) + 1:].split("/", 1)[0] in CONFIGURATION_MODULES


# --- routing ----------------------------------------------------------------------------------

def routing_party(request: Request, direction: str) -> tuple[str, str] | None:
    """The party named by the ``OCPI-{direction}-*`` headers (upper case), None when both
    are absent; 2001 when only one is given or either is malformed."""
    country_code = request.headers.get(f"OCPI-{direction}-country-code")
    party_id = request.headers.get(f"OCPI-{direction}-party-id")
    if country_code is None and party_id is None:
        return None
    if (country_code is None or party_id is None or len(country_code) != 2
            or len(party_id) != 3 or not (country_code + party_id).isalnum()
            or not (country_code + party_id).isascii()):
        raise OcpiError(400, 2001, f"invalid OCPI-{direction}-country-code/party-id headers")
    return country_code.upper(), party_id.upper()


def partner_party(partner: RowMapping) -> tuple[str, str] | None:
    """The party a partner registered as (for a hub: the hub's own)."""
    if partner["country_code"] and partner["party_id"]:
        return str(partner["country_code"]).upper(), str(partner["party_id"]).upper()
    return None


async def _check_routing(request: Request, partner: RowMapping) -> tuple[str, str] | None:
    """Check the routing headers of a functional-module request; returns the party the
    request is sent from."""
    ctx = ocpi_context(request)
    cpo = ctx.db.store.cpo
    to_party = routing_party(request, "to")
    if to_party is not None and to_party != (cpo.country_code, cpo.party_id):
        raise OcpiError(400, 4001, f"unknown receiver {to_party[0]}/{to_party[1]}: this "
                                   f"platform is {cpo.country_code}/{cpo.party_id}")
    from_party = routing_party(request, "from")
    own = partner_party(partner)
    if from_party is None or from_party == own:
        return own
    if await ctx.db(ctx.db.store.holds_party, partner["id"], *from_party):
        return from_party
    if partner["role"] == "HUB":
        raise OcpiError(400, 2001, f"party {from_party[0]}/{from_party[1]} is not reachable "
                                   f"through this hub")
    raise OcpiError(400, 2001, f"OCPI-from party {from_party[0]}/{from_party[1]} is not one "
                               f"of the parties of these credentials")


def sending_party(request: Request) -> tuple[str, str] | None:
    """The party a functional-module request acts for (after ``registered_partner``): the
    partner's own, or the one a hub names in ``OCPI-from-*``."""
    party: tuple[str, str] | None = getattr(request.state, "ocpi_from", None)
    return party


# --- credentials tokens -----------------------------------------------------------------------

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
    ctx = ocpi_context(request)
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
    if not _configuration_path(request.url.path):
        request.state.ocpi_from = await _check_routing(request, partner)
    return partner


async def hub_partner(request: Request) -> RowMapping:
    """TOKEN_C of a registered partner with role HUB (the hubclientinfo module)."""
    partner, kind, _ = await _identify(request)
    if kind != "C":
        raise OcpiError(401, 2000, "TOKEN_A may only be used for versions and credentials")
    if partner["role"] != "HUB":
        raise OcpiError(403, 2000, "only a hub may use hubclientinfo")
    return partner


Partner = Annotated[RowMapping, Depends(registered_partner)]
Hub = Annotated[RowMapping, Depends(hub_partner)]
# (partner, "A" or "C", the token as presented)
AnyToken = Annotated[tuple[RowMapping, str, str], Depends(any_token)]


# --- request bodies ---------------------------------------------------------------------------

async def json_body(request: Request) -> Any:
    """The request's JSON body, read no further than the size limit; 2001 (HTTP 413 for
    size, 400 otherwise) when it is too large, nests too deep or is not JSON."""
    limits = ocpi_context(request).limits
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise OcpiError(413, 2001, f"request body exceeds {limits.max_body_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_body_bytes:
            raise OcpiError(413, 2001, f"request body exceeds {limits.max_body_bytes} bytes")
    try:
        return parse_json_body(bytes(body), limits)
    except BodyRefused as exc:
        raise OcpiError(exc.http_status, 2001, str(exc)) from None


async def allowed_url(ctx: OcpiContext, url: str, what: str) -> None:
    """2001 unless the URL policy lets the backend call ``url`` (named ``what``)."""
    try:
        await ctx.url_policy.check(url)
    except UrlRefused as exc:
        raise OcpiError(400, 2001, f"{what} refused: {exc}") from None


def parse(model: type[ModelT], body: Any) -> ModelT:
    """``body`` as ``model``; a 2001 error naming what is wrong otherwise."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise OcpiError(400, 2001, describe(exc.errors())) from None


# --- pagination -------------------------------------------------------------------------------

async def page_query(offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                     limit: Annotated[int, Query(ge=1)] = DEFAULT_LIMIT,
                     date_from: datetime | None = None,
                     date_to: datetime | None = None,
                     cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)] = None
                     ) -> PageQuery:
    """Pagination parameters; a limit above MAX_LIMIT is lowered to it (X-Limit says so).
    ``cursor`` is what our own next-page links carry beside ``offset``: see
    :func:`cursor_key`."""
    query = PageQuery(offset=offset, limit=min(limit, MAX_LIMIT),
                      date_from=_utc_parameter("date_from", date_from),
                      date_to=_utc_parameter("date_to", date_to))
    if cursor is None:
        return query
    return dataclasses.replace(query, after=cursor_key(cursor, query))


def _utc_parameter(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return m.as_utc(value)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00
        raise OcpiError(400, 2001, f"invalid or missing parameters: {name} out of range"
                        ) from None


Paging = Annotated[PageQuery, Depends(page_query)]

# A cursor is opaque to clients: base64url (unpadded) of the JSON list
# [offset, date_from, date_to, last_updated, id] -- the page it was made for, and the key
# of the last row before it.
MAX_CURSOR_LENGTH = 512
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")


def _cursor_context(offset: int, query: PageQuery) -> list[Any]:
    return [offset, *(None if d is None else d.isoformat()
                      for d in (query.date_from, query.date_to))]


def page_cursor(offset: int, query: PageQuery, key: PageKey) -> str:
    """The cursor of the page at ``offset`` of ``query``'s listing that starts after
    ``key``."""
    payload = [*_cursor_context(offset, query), key.last_updated.isoformat(), key.id]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_key(cursor: str, query: PageQuery) -> PageKey | None:
    """The key a page starts after, from the cursor our next-page link carried: following
    the link reads the page by key, at the cost of one page wherever it is. A cursor made
    for another offset or date range (a client that edited the link) is not used: the page
    is then read by offset, as asked. 2001 when the cursor is not one of ours."""
    bad = OcpiError(400, 2001, "invalid or missing parameters: cursor is not a page cursor "
                               "(follow the Link header, or leave it out to page by offset)")
    if not _CURSOR_TEXT.fullmatch(cursor):
        raise bad
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSON errors included
        raise bad from None
    if not (isinstance(payload, list) and len(payload) == 5
            and isinstance(payload[3], str) and type(payload[4]) in (int, str)):
        raise bad
    try:
        last_updated = datetime.fromisoformat(payload[3])
    except ValueError:
        raise bad from None
    if last_updated.tzinfo is None or last_updated.utcoffset() != timedelta(0):
        raise bad
    if payload[:3] != _cursor_context(query.offset, query):
        return None
    return PageKey(last_updated, payload[4])


def paginated(request: Request, page: Page | JsonPage, query: PageQuery) -> Response:
    """The page's items, X-Total-Count, X-Limit and, unless it is the last, the Link to the
    next page (with its cursor, so following it costs one page)."""
    if isinstance(page, Page):
        page = JsonPage.of(page)
    headers = {"X-Total-Count": str(page.total), "X-Limit": str(query.limit)}
    if page.next_key is not None:
        next_offset = query.offset + len(page.items)
        params = dict(request.query_params)
        params.update(offset=str(next_offset), limit=str(query.limit),
                      cursor=page_cursor(next_offset, query, page.next_key))
        # Built on the public base URL: behind a proxy, request.url is not what peers reach.
        base = ocpi_context(request).base_url
        headers["Link"] = f'<{base}{request.url.path}?{urlencode(params)}>; rel="next"'
    return ocpi_json_list(page.items, headers=headers)
