"""OCPI sessions (Sender): the list of the caller's sessions, and charging preferences (answered NOT_POSSIBLE: this
backend does no smart charging)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chargerfw.csms.ocpi.common import (
    MODULE_PREFIX,
    Context,
    OcpiError,
    Paging,
    Partner,
    json_body,
    ocpi_json,
    paginated,
)

router = APIRouter()
PATH = f"{MODULE_PREFIX}/sessions"


@router.get(PATH)
async def list_sessions(request: Request, partner: Partner, query: Paging,
                        ctx: Context) -> Response:
    """The sessions of the caller's tokens."""
    page = await ctx.db(ctx.db.store.list_sessions_json, query, partner["id"])
    return paginated(request, page, query)


@router.put(f"{PATH}/{{session_id}}/charging_preferences")
async def charging_preferences(session_id: str, request: Request, partner: Partner,
                               ctx: Context) -> JSONResponse:
    body = await json_body(request)
    if not isinstance(body, dict) or "profile_type" not in body:
        raise OcpiError(400, 2001, "invalid or missing parameters: profile_type")
    if await ctx.db(ctx.db.store.get_session, session_id, partner["id"]) is None:
        raise OcpiError(404, 2000, f"unknown session {session_id!r}")
    # This backend does no smart charging: preferences cannot be honoured.
    return ocpi_json("NOT_POSSIBLE")
