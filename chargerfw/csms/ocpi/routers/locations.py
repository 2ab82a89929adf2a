"""OCPI locations (Sender): the list, and one location, EVSE or connector."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chargerfw.csms.ocpi.common import (
    MODULE_PREFIX,
    Context,
    OcpiContext,
    OcpiError,
    Paging,
    Partner,
    ocpi_json,
    paginated,
)

router = APIRouter()
PATH = f"{MODULE_PREFIX}/locations"


async def _location(ctx: OcpiContext, location_id: str) -> dict[str, Any]:
    location = await ctx.db(ctx.db.store.get_location, location_id)
    if location is None:
        raise OcpiError(404, 2003, f"unknown location {location_id!r}")
    return location


def _evse_of(location: dict[str, Any], evse_uid: str) -> dict[str, Any]:
    for evse in location.get("evses", []):
        if evse["uid"] == evse_uid:
            return evse
    raise OcpiError(404, 2003, f"unknown EVSE {evse_uid!r}")


@router.get(PATH)
async def list_locations(request: Request, _p: Partner, query: Paging,
                         ctx: Context) -> Response:
    return paginated(request, await ctx.db(ctx.db.store.list_locations, query), query)


@router.get(f"{PATH}/{{location_id}}")
async def get_location(location_id: str, _p: Partner, ctx: Context) -> JSONResponse:
    return ocpi_json(await _location(ctx, location_id))


@router.get(f"{PATH}/{{location_id}}/{{evse_uid}}")
async def get_evse(location_id: str, evse_uid: str, _p: Partner, ctx: Context) -> JSONResponse:
    return ocpi_json(_evse_of(await _location(ctx, location_id), evse_uid))


@router.get(f"{PATH}/{{location_id}}/{{evse_uid}}/{{connector_id}}")
async def get_connector(location_id: str, evse_uid: str, connector_id: str, _p: Partner,
                        ctx: Context) -> JSONResponse:
    evse = _evse_of(await _location(ctx, location_id), evse_uid)
    for connector in evse["connectors"]:
        if connector["id"] == connector_id:
            return ocpi_json(connector)
    raise OcpiError(404, 2003, f"unknown connector {connector_id!r}")
