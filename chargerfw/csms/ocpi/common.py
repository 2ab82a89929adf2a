"""What every OCPI module of the CPO API shares: the context the routes run in, the response
envelope, errors, the request and routing headers, the credentials-token dependencies,
request bodies, and pagination.

Every answer, errors included, is an OCPI envelope ``{data, status_code, status_message,
timestamp}``: validation errors become 2001 (HTTP 400), unknown routes and methods keep their
HTTP status with 2000, and unexpected failures 3000 (HTTP 500).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import httpx
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import RowMapping
from starlette.exceptions import HTTPException as StarletteHTTPException

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.commands import CommandHandler
from chargerfw.csms.store import AsyncStore, Page, PageQuery, utcnow
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


def ocpi_context(request: Request) -> OcpiContext:
    context: OcpiContext = request.app.state.ocpi
    return context


Context = Annotated[OcpiContext, Depends(ocpi_context)]


# --- envelopes and errors ---------------------------------------------------------------------

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

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ocpi_json(None, http_status=exc.status_code, status_code=2000,
                         message=str(exc.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("ocpi.internal_error", error=type(exc).__name__)
        return ocpi_json(None, http_status=500, status_code=3000, message="internal error")


# --- headers ----------------------------------------------------------------------------------

async def ocpi_headers(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: X-Request-ID and X-Correlation-ID on every answer (the caller's, or
    new ones) and, when the caller named itself, the routing headers back to it."""
    response = await call_next(request)
    response.headers["X-Request-ID"] = request.headers.get("X-Request-ID", str(uuid.uuid4()))
    response.headers["X-Correlation-ID"] = request.headers.get("X-Correlation-ID",
                                                               str(uuid.uuid4()))
    # Routing headers: the answer goes back to whoever asked.
    from_cc = request.headers.get("OCPI-from-country-code")
    from_pid = request.headers.get("OCPI-from-party-id")
    if from_cc and from_pid:
        cpo = ocpi_context(request).db.store.cpo
        response.headers["OCPI-to-country-code"] = from_cc
        response.headers["OCPI-to-party-id"] = from_pid
        response.headers["OCPI-from-country-code"] = cpo.country_code
        response.headers["OCPI-from-party-id"] = cpo.party_id
    return response


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
    return partner


Partner = Annotated[RowMapping, Depends(registered_partner)]
# (partner, "A" or "C", the token as presented)
AnyToken = Annotated[tuple[RowMapping, str, str], Depends(any_token)]


# --- request bodies ---------------------------------------------------------------------------

async def json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise OcpiError(400, 2001, "request body is not valid JSON") from None


def parse(model: type[ModelT], body: Any) -> ModelT:
    """``body`` as ``model``; a 2001 error naming what is wrong otherwise."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise OcpiError(400, 2001, describe(exc.errors())) from None


# --- pagination -------------------------------------------------------------------------------

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
        base = ocpi_context(request).base_url
        headers["Link"] = f'<{base}{request.url.path}?{urlencode(params)}>; rel="next"'
    return ocpi_json(page.items, headers=headers)
