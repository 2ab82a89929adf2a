"""The open-data feed: published locations with their live EVSE statuses, no credentials."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargerfw.csms.ocpi.common import Context, Paging, paginated

router = APIRouter()


@router.get("/opendata/locations")
async def open_locations(request: Request, query: Paging, ctx: Context) -> Response:
    page = await ctx.db(ctx.db.store.list_locations, query, True)
    return paginated(request, page, query)
