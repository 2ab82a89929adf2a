"""The operator's authenticated HTTP admin API (FastAPI), on its own port and apart from the
OCPI API: the charge points (as `chargerfw csms cp list|show`), one endpoint per operator
command kind in ``operator_commands.KINDS`` (so a new kind appears here by itself), and each
charger's events (command outcomes, status notifications) by long-poll.

Every request but the OpenAPI document and its page carries ``Authorization: Bearer <token>``
of an unrevoked admin token (`chargerfw csms admin token create`); OCPI partners' tokens are
not admin tokens. Errors are ``{"error": "<what is wrong>"}``. A command answers the outcome
(see ``operator_commands``) with HTTP 200 when the charger answered, whatever it answered
(``ok`` says whether it did what was asked); 409 when the charger is not connected, 504 when
it did not answer in time, 502 when it answered with a CALLERROR.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from chargerfw.csms.charge_point_view import charge_points_view, event_json
from chargerfw.csms.ocpi.limits import BodyRefused, RequestLimits, parse_json_body
from chargerfw.csms.operator_commands import (
    KINDS,
    InvalidCommand,
    OperatorCommandRunner,
    check_params,
)
from chargerfw.csms.store import AsyncStore
from chargerfw.logs import get_logger

log = get_logger(__name__)

MAX_WAIT_S = 60.0
MAX_EVENTS = 100
EVENT_POLL_S = 0.2

# The HTTP status of an outcome whose charger gave no answer of its own.
HTTP_STATUS_OF_OUTCOME = {"NotConnected": 409, "NoAnswer": 504, "CallError": 502}


@dataclass
class AdminContext:
    """What the admin API needs from the running backend."""

    db: AsyncStore
    runner: OperatorCommandRunner
    limits: RequestLimits = RequestLimits()
    # True once the server shuts down: a long-poll answers at once.
    stopping: Callable[[], bool] = lambda: False


class AdminError(Exception):
    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message


def _error(http_status: int, message: str, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=http_status, headers=headers)


_bearer = HTTPBearer(auto_error=False, description="an admin token from "
                     "`chargerfw csms admin token create`")


async def operator(request: Request,
                   credentials: Annotated[HTTPAuthorizationCredentials | None,
                                          Depends(_bearer)]) -> str:
    """The name of the admin token the request carries; 401 otherwise."""
    ctx: AdminContext = request.app.state.admin
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AdminError(401, "missing Authorization: Bearer <admin token>")
    name = await ctx.db(ctx.db.store.admin_token_name, credentials.credentials)
    if name is None:
        log.warning("csms.admin_unauthorized", client=request.client.host
                    if request.client else None, path=request.url.path)
        raise AdminError(401, "unknown or revoked admin token")
    return str(name)


Operator = Annotated[str, Depends(operator)]


def _context(request: Request) -> AdminContext:
    ctx: AdminContext = request.app.state.admin
    return ctx


async def _known(ctx: AdminContext, charge_point_id: str) -> None:
    if await ctx.db(ctx.db.store.get_charge_point, charge_point_id) is None:
        raise AdminError(404, f"unknown charge point {charge_point_id!r}")


async def _body_params(ctx: AdminContext, request: Request) -> Any:
    """The JSON body (an empty body is no parameters); parsed after the token is checked."""
    body = await request.body()
    if not body.strip():
        return {}
    try:
        return parse_json_body(body, ctx.limits)
    except BodyRefused as exc:
        raise AdminError(exc.http_status, str(exc)) from None


def _command_route(kind_name: str) -> Callable[[str, Request, str], Awaitable[JSONResponse]]:
    async def send_command(charge_point_id: str, request: Request,
                           token_name: Operator) -> JSONResponse:
        ctx = _context(request)
        await _known(ctx, charge_point_id)
        try:
            checked = check_params(kind_name, await _body_params(ctx, request))
        except InvalidCommand as exc:
            raise AdminError(400, str(exc)) from None
        request_id = await ctx.db(ctx.db.store.request_operator_command, charge_point_id,
                                  kind_name, checked, requested_by=token_name, claimed=True)
        log.info("csms.admin_command", operator=token_name, charge_point=charge_point_id,
                 command=kind_name, params=checked)
        result = await ctx.runner.run(charge_point_id, kind_name, checked)
        await ctx.db(ctx.db.store.finish_operator_command, request_id, result)
        log.info("csms.admin_command_answered", operator=token_name,
                 charge_point=charge_point_id, command=kind_name, status=result["status"],
                 ok=result["ok"])
        return JSONResponse(result, status_code=HTTP_STATUS_OF_OUTCOME.get(result["status"],
                                                                           200))

    send_command.__name__ = f"command_{kind_name}"
    return send_command


def _answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {200: "the charger's answer (``ok``: it did what was asked)",
                 400: "bad parameters or query; nothing was sent",
                 401: "missing, unknown or revoked admin token; nothing was done",
                 404: "unknown charge point",
                 409: "the charger is not connected; nothing was sent",
                 502: "the charger answered with a CALLERROR",
                 504: "the charger did not answer in time"}
    return {status: {"description": described[status]} for status in statuses}


def create_admin_app(ctx: AdminContext) -> FastAPI:
    """The admin API application; its OpenAPI document is /openapi.json, its page /docs."""
    app = FastAPI(title="chargerfw CSMS admin API",
                  description="The operator's commands to the charge points and their events. "
                              "Authenticate with `Authorization: Bearer <admin token>`.",
                  redoc_url=None)
    app.state.admin = ctx

    @app.exception_handler(AdminError)
    async def on_admin_error(_request: Request, exc: AdminError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return _error(exc.http_status, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError
                                  ) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: "
                    f"{e.get('msg')}" for e in exc.errors()[:5]]
        return _error(400, "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.get("/chargepoints", summary="List the charge points", responses=_answers(401))
    async def list_charge_points(request: Request, token_name: Operator
                                 ) -> list[dict[str, Any]]:
        ctx = _context(request)
        return await ctx.db(charge_points_view, ctx.db.store)

    @app.get("/chargepoints/{charge_point_id}",
             summary="One charge point with its latest events", responses=_answers(401, 404))
    async def show_charge_point(charge_point_id: str, request: Request,
                                token_name: Operator) -> dict[str, Any]:
        ctx = _context(request)
        points = await ctx.db(charge_points_view, ctx.db.store, charge_point_id)
        if not points:
            raise AdminError(404, f"unknown charge point {charge_point_id!r}")
        return points[0]

    @app.get("/chargepoints/{charge_point_id}/events",
             summary="The charger's events after a cursor, waiting for one up to `wait` s",
             description="Command outcomes (kind `command`), status notifications and "
                         "security events (kind: the OCPP action, e.g. "
                         "FirmwareStatusNotification, SecurityEventNotification; `SecurityEvent` "
                         "for one the backend saw itself), certificates signed "
                         "(`CertificateSigned`), oldest first. `type` keeps one kind or security "
                         "event type. Pass the answer's `next` as `after` to get only newer "
                         "ones.",
             responses=_answers(400, 401, 404))
    async def charge_point_events(
            charge_point_id: str, request: Request, token_name: Operator,
            after: Annotated[int, Query(ge=0, description="the last event id seen")] = 0,
            wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S,
                                         description="seconds to wait for an event")] = 0.0,
            type: Annotated[str | None, Query(
                max_length=60, description="only events of this kind or security event "
                                           "type")] = None,
    ) -> dict[str, Any]:
        ctx = _context(request)
        await _known(ctx, charge_point_id)
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            rows = await ctx.db(ctx.db.store.charge_point_events, charge_point_id, after,
                                MAX_EVENTS, type)
            if rows or ctx.stopping() or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(EVENT_POLL_S)
        events = [event_json(row) for row in rows]
        return {"events": events, "next": events[-1]["id"] if events else after}

    for kind_name, kind in KINDS.items():
        app.post(f"/chargepoints/{{charge_point_id}}/commands/{kind_name}",
                 summary=kind.summary, responses=_answers(200, 400, 401, 404, 409, 502, 504),
                 openapi_extra={"requestBody": {"required": False, "content": {
                     "application/json": {"schema": {"type": "object"},
                                          "example": kind.example}}}},
                 )(_command_route(kind_name))
    return app
