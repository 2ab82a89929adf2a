"""OCPI tokens (Receiver): an eMSP puts, patches and reads the tokens of its own parties only.

A token URL under a party the caller does not hold is answered 404 (the spec's answer to a
client addressing objects that are not its own), so a partner learns nothing of others'
tokens: 2004 (unknown token) on GET and PATCH, 2001 on PUT.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.engine import RowMapping

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.common import (
    MODULE_PREFIX,
    Context,
    OcpiContext,
    OcpiError,
    Partner,
    json_body,
    ocpi_json,
    parse,
)
from chargerfw.csms.store import NotFound, StoreError

router = APIRouter()
PATH = f"{MODULE_PREFIX}/tokens/{{country_code}}/{{party_id}}/{{uid}}"


async def _own_party(ctx: OcpiContext, partner: RowMapping, country_code: str, party_id: str,
                     status_code: int) -> tuple[str, str]:
    """The party of a token URL, upper-cased, when the caller holds it; else 404."""
    if len(country_code) != 2 or len(party_id) != 3:
        raise OcpiError(400, 2001, "invalid or missing parameters: country_code/party_id")
    cc, pid = country_code.upper(), party_id.upper()
    if not await ctx.db(ctx.db.store.holds_party, partner["id"], cc, pid):
        raise OcpiError(404, status_code, f"{cc}/{pid} is not one of your parties")
    return cc, pid


@router.get(PATH)
async def get_token(country_code: str, party_id: str, uid: str, partner: Partner,
                    ctx: Context, type: m.TokenType = m.TokenType.RFID) -> JSONResponse:
    cc, pid = await _own_party(ctx, partner, country_code, party_id, 2004)
    token = await ctx.db(ctx.db.store.get_token, cc, pid, uid, type)
    if token is None:
        raise OcpiError(404, 2004, f"unknown token {uid!r}")
    return ocpi_json(token)


@router.put(PATH)
async def put_token(country_code: str, party_id: str, uid: str, request: Request,
                    partner: Partner, ctx: Context,
                    type: m.TokenType = m.TokenType.RFID) -> JSONResponse:
    cc, pid = await _own_party(ctx, partner, country_code, party_id, 2001)
    token = parse(m.Token, await json_body(request))
    if (token.country_code, token.party_id, token.uid, token.type) != (cc, pid, uid, type):
        raise OcpiError(400, 2001, "token identity in the body differs from the URL")
    created = await ctx.db(ctx.db.store.put_token, token, partner["id"])
    ctx.token_changed(uid)
    return ocpi_json(None, http_status=201 if created else 200)


@router.patch(PATH)
async def patch_token(country_code: str, party_id: str, uid: str, request: Request,
                      partner: Partner, ctx: Context,
                      type: m.TokenType = m.TokenType.RFID) -> JSONResponse:
    cc, pid = await _own_party(ctx, partner, country_code, party_id, 2004)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise OcpiError(400, 2001, "invalid or missing parameters: body must be an object")
    if {"country_code", "party_id", "uid", "type"} & body.keys():
        raise OcpiError(400, 2001, "a PATCH may not change the token's identity")
    patch = parse(m.TokenPatch, body)
    try:
        await ctx.db(ctx.db.store.patch_token, cc, pid, uid, type, patch)
    except NotFound as exc:
        raise OcpiError(404, 2004, str(exc)) from None
    except (StoreError, ValidationError) as exc:
        raise OcpiError(400, 2001, str(exc)) from None
    ctx.token_changed(uid)
    return ocpi_json(None)
