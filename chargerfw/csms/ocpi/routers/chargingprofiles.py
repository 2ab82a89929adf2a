"""OCPI chargingprofiles (Receiver): an eMSP sets, reads or clears the charging profile of
one of its sessions; answered at once with a ChargingProfileResponse, the result follows as
a POST to the request's response_url."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.chargingprofiles import ChargingProfileHandler
from chargerfw.csms.ocpi.common import (
    MODULE_PREFIX,
    Context,
    OcpiContext,
    OcpiError,
    Partner,
    allowed_url,
    json_body,
    ocpi_json,
    parse,
)

router = APIRouter()
PATH = f"{MODULE_PREFIX}/chargingprofiles/{{session_id}}"


def _handler(ctx: OcpiContext) -> ChargingProfileHandler:
    if ctx.charging_profiles is None:
        raise OcpiError(501, 2000, "chargingprofiles is not served here")
    return ctx.charging_profiles


def _answer(response: m.ChargingProfileResponse) -> JSONResponse:
    return ocpi_json(response.model_dump(mode="json", exclude_none=True))


@router.put(PATH)
async def put_profile(session_id: str, request: Request, partner: Partner,
                      ctx: Context) -> JSONResponse:
    handler = _handler(ctx)
    parsed = parse(m.SetChargingProfile, await json_body(request))
    await allowed_url(ctx, parsed.response_url, "response_url")
    return _answer(await handler.set_profile(partner, session_id, parsed))


@router.get(PATH)
async def get_active_profile(session_id: str, partner: Partner, ctx: Context,
                             duration: Annotated[int, Query(gt=0, le=m.MAX_PROFILE_SECONDS)],
                             response_url: Annotated[str, Query(min_length=1)]
                             ) -> JSONResponse:
    handler = _handler(ctx)
    await allowed_url(ctx, response_url, "response_url")
    return _answer(await handler.active_profile(partner, session_id, duration, response_url))


@router.delete(PATH)
async def delete_profile(session_id: str, partner: Partner, ctx: Context,
                         response_url: Annotated[str, Query(min_length=1)]) -> JSONResponse:
    handler = _handler(ctx)
    await allowed_url(ctx, response_url, "response_url")
    return _answer(await handler.clear_profile(partner, session_id, response_url))
