"""OCPI credentials: registration by an eMSP that holds our TOKEN_A (POST), renewal (PUT),
reading (GET) and unregistering (DELETE). A partner registers only as the parties the
operator gave it (``partner add``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import RowMapping

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.common import (
    MODULE_PREFIX,
    AnyToken,
    Context,
    OcpiContext,
    OcpiError,
    json_body,
    ocpi_json,
    parse,
)
from chargerfw.csms.ocpi.registration import (
    HandshakeError,
    credentials_for,
    declared_parties,
    fetch_peer_endpoints,
)
from chargerfw.csms.store import PartyNotAllowed
from chargerfw.logs import get_logger

log = get_logger(__name__)

router = APIRouter()
PATH = f"{MODULE_PREFIX}/credentials"


def _our_credentials(ctx: OcpiContext, token: str) -> dict[str, Any]:
    cpo = ctx.db.store.cpo
    return credentials_for(token, ctx.versions_url, ctx.business_name, cpo.country_code,
                           cpo.party_id)


async def _exchange(ctx: OcpiContext, partner: RowMapping, credentials: m.Credentials) -> str:
    """Check the declared roles, fetch the peer's versions and endpoints with their token,
    store them and issue TOKEN_C. Roles the operator did not give the partner are refused
    (2001) before anything is fetched or stored."""
    db = ctx.db
    try:
        declared = declared_parties(credentials)
        await db(db.store.check_declared_roles, partner["id"], declared)
        peer = await fetch_peer_endpoints(ctx.http, credentials.url, credentials.token,
                                          ctx.url_policy)
        token_c = await db(db.store.register_partner, partner["id"], credentials.token,
                           credentials.url, m.VERSION, peer.endpoints, declared)
    except PartyNotAllowed as exc:
        log.warning("ocpi.credentials.party_refused", partner=partner["id"], error=str(exc))
        raise OcpiError(400, 2001, str(exc)) from None
    except HandshakeError as exc:
        raise OcpiError(400, exc.status_code, str(exc)) from None
    # A new partner gets everything it may not have yet; pushes keep it current after.
    await db(db.store.queue_full_sync, partner["id"])
    ctx.changed()
    ctx.partner_registered(partner["id"])
    return token_c


@router.get(PATH)
async def get_credentials(auth: AnyToken, ctx: Context) -> JSONResponse:
    return ocpi_json(_our_credentials(ctx, auth[2]))


@router.post(PATH)
async def post_credentials(request: Request, auth: AnyToken, ctx: Context) -> JSONResponse:
    partner, kind, _ = auth
    if kind != "A":
        raise OcpiError(405, 2000, "already registered: use PUT to update credentials")
    credentials = parse(m.Credentials, await json_body(request))
    token_c = await _exchange(ctx, partner, credentials)
    log.info("ocpi.partner_registered", partner=partner["id"])
    return ocpi_json(_our_credentials(ctx, token_c))


@router.put(PATH)
async def put_credentials(request: Request, auth: AnyToken, ctx: Context) -> JSONResponse:
    partner, kind, _ = auth
    if kind != "C":
        raise OcpiError(405, 2000, "not registered: use POST to register")
    credentials = parse(m.Credentials, await json_body(request))
    token_c = await _exchange(ctx, partner, credentials)
    return ocpi_json(_our_credentials(ctx, token_c))


@router.delete(PATH)
async def delete_credentials(auth: AnyToken, ctx: Context) -> JSONResponse:
    partner, kind, _ = auth
    if kind != "C":
        raise OcpiError(405, 2000, "not registered")
    await ctx.db(ctx.db.store.unregister_partner, partner["id"])
    return ocpi_json(None)
