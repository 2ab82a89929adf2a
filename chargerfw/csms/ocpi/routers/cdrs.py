"""OCPI CDRs (Sender): the list of the caller's CDRs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargerfw.csms.ocpi.common import MODULE_PREFIX, Context, Paging, Partner, paginated

router = APIRouter()


@router.get(f"{MODULE_PREFIX}/cdrs")
async def list_cdrs(request: Request, partner: Partner, query: Paging,
                    ctx: Context) -> Response:
    """The CDRs of the caller's tokens."""
    return paginated(request, await ctx.db(ctx.db.store.list_cdrs_json, query, partner["id"]),
                     query)
