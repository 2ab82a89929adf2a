"""OCPI hubclientinfo (Receiver): a hub puts and reads the ClientInfo of each party reachable
through it. Only a partner registered with role HUB may use it; routing headers are not used
(a configuration module)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.common import (
    MODULE_PREFIX,
    Context,
    Hub,
    OcpiError,
    json_body,
    ocpi_json,
    parse,
)

router = APIRouter()
PATH = f"{MODULE_PREFIX}/hubclientinfo/{{country_code}}/{{party_id}}"


def _party(country_code: str, party_id: str) -> tuple[str, str]:
    if len(country_code) != 2 or len(party_id) != 3 or not (country_code + party_id).isalnum():
        raise OcpiError(400, 2001, "invalid or missing parameters: country_code/party_id")
    return country_code.upper(), party_id.upper()


@router.get(PATH)
async def get_client_info(country_code: str, party_id: str, hub: Hub,
                          ctx: Context) -> JSONResponse:
    party = _party(country_code, party_id)
    info = await ctx.db(ctx.db.store.get_hub_party, hub["id"], *party)
    if info is None:
        raise OcpiError(404, 2000, f"unknown party {party[0]}/{party[1]}")
    return ocpi_json(info)


@router.put(PATH)
async def put_client_info(country_code: str, party_id: str, request: Request, hub: Hub,
                          ctx: Context) -> JSONResponse:
    party = _party(country_code, party_id)
    info = parse(m.ClientInfo, await json_body(request))
    if (info.country_code, info.party_id) != party:
        raise OcpiError(400, 2001, "party in the body differs from the URL")
    created = await ctx.db(ctx.db.store.put_hub_party, hub["id"], info)
    return ocpi_json(None, http_status=201 if created else 200)
