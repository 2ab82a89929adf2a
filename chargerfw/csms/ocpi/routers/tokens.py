"""OCPI tokens (Receiver): an eMSP puts, patches and reads its own tokens; a hub may hold
tokens of any party."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.engine import RowMapping

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.common import (
    MODULE_PREFIX,
    Context,
    OcpiError,
    Partner,
    json_body,
    ocpi_json,
    parse,
)
from chargerfw.csms.store import NotFound, StoreError

router = APIRouter()
PATH = f"{MODULE_PREFIX}/tokens/{{country_code}}/{{party_id}}/{{uid}}"


def _check_owner(partner: RowMapping, country_code: str, party_id: str) -> None:
    if len(country_code) != 2 or len(party_id) != 3:
        raise OcpiError(400, 2001, "invalid or missing parameters: country_code/party_id")
    if partner["role"] != "HUB" and partner["country_code"] and (
            partner["country_code"], partner["party_id"]) != (country_code.upper(),
                                                             party_id.upper()):
        raise OcpiError(400, 2001, "token belongs to another party")


@router.get(PATH)
async def get_token(country_code: str, party_id: str, uid: str, partner: Partner,
                    ctx: Context, type: m.TokenType = m.TokenType.RFID) -> JSONResponse:
    _check_owner(partner, country_code, party_id)
    token = await ctx.db(ctx.db.store.get_token, country_code.upper(), party_id.upper(), uid,
                         type)
    if token is None:
        raise OcpiError(404, 2004, f"unknown token {uid!r}")
    return ocpi_json(token)


@router.put(PATH)
async def put_token(country_code: str, party_id: str, uid: str, request: Request,
                    partner: Partner, ctx: Context,
                    type: m.TokenType = m.TokenType.RFID) -> JSONResponse:
    _check_owner(partner, country_code, party_id)
    token = parse(m.Token, await json_body(request))
    if (token.country_code, token.party_id, token.uid, token.type) != (
            country_code.upper(), party_id.upper(), uid, type):
        raise OcpiError(400, 2001, "token identity in the body differs from the URL")
    created = await ctx.db(ctx.db.store.put_token, token, partner["id"])
    ctx.token_changed(uid)
    return ocpi_json(None, http_status=201 if created else 200)


@router.patch(PATH)
async def patch_token(country_code: str, party_id: str, uid: str, request: Request,
                      partner: Partner, ctx: Context,
                      type: m.TokenType = m.TokenType.RFID) -> JSONResponse:
    _check_owner(partner, country_code, party_id)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise OcpiError(400, 2001, "invalid or missing parameters: body must be an object")
    if {"country_code", "party_id", "uid", "type"} & body.keys():
        raise OcpiError(400, 2001, "a PATCH may not change the token's identity")
    patch = parse(m.TokenPatch, body)
    try:
        await ctx.db(ctx.db.store.patch_token, country_code.upper(), party_id.upper(), uid,
                     type, patch)
    except NotFound as exc:
        raise OcpiError(404, 2004, str(exc)) from None
    except (StoreError, ValidationError) as exc:
        raise OcpiError(400, 2001, str(exc)) from None
    ctx.token_changed(uid)
    return ocpi_json(None)
