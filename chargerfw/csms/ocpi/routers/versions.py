"""OCPI versions: the versions we speak and, for 2.2.1, our endpoints (TOKEN_A or TOKEN_C)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.common import MODULE_PREFIX, AnyToken, Context, ocpi_json

router = APIRouter()

# (module, our role in it)
ENDPOINTS = [("credentials", "SENDER"), ("credentials", "RECEIVER"), ("locations", "SENDER"),
             ("sessions", "SENDER"), ("cdrs", "SENDER"), ("tariffs", "SENDER"),
             ("tokens", "RECEIVER"), ("commands", "RECEIVER"), ("chargingprofiles", "RECEIVER"),
             ("hubclientinfo", "RECEIVER")]


@router.get("/ocpi/versions")
async def versions(_auth: AnyToken, ctx: Context) -> JSONResponse:
    return ocpi_json([{"version": m.VERSION, "url": ctx.module_base}])


@router.get(MODULE_PREFIX)
async def version_details(_auth: AnyToken, ctx: Context) -> JSONResponse:
    base = ctx.module_base
    endpoints = [{"identifier": module, "role": role, "url": f"{base}/{module}"}
                 for module, role in ENDPOINTS]
    return ocpi_json({"version": m.VERSION, "endpoints": endpoints})
