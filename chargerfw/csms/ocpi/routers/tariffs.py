"""OCPI tariffs (Sender): the list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargerfw.csms.ocpi.common import MODULE_PREFIX, Context, Paging, Partner, paginated

router = APIRouter()


@router.get(f"{MODULE_PREFIX}/tariffs")
async def list_tariffs(request: Request, _p: Partner, query: Paging,
                       ctx: Context) -> Response:
    return paginated(request, await ctx.db(ctx.db.store.list_tariffs, query), query)
