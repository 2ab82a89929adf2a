"""OCPI commands (Receiver): answered at once with a CommandResponse; the CommandResult
follows as a push to the command's response_url."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.commands import COMMAND_MODELS
from chargerfw.csms.ocpi.common import (
    MODULE_PREFIX,
    Context,
    Partner,
    allowed_url,
    json_body,
    ocpi_json,
    parse,
)

router = APIRouter()


@router.post(f"{MODULE_PREFIX}/commands/{{command}}")
async def post_command(command: m.CommandType, request: Request, partner: Partner,
                       ctx: Context) -> JSONResponse:
    parsed = parse(COMMAND_MODELS[command], await json_body(request))
    await allowed_url(ctx, parsed.response_url, "response_url")
    response = await ctx.commands.handle(parsed, partner)
    return ocpi_json(response.model_dump(mode="json", exclude_none=True))
