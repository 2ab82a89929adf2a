"""Pulling an eMSP's token list (the tokens module's Sender interface on the eMSP side).

``pull_tokens`` GETs the partner's token list page by page, asking only for tokens changed
since the start of the last successful pull (``date_from``), and stores each valid token it
may hold under the same rule as a pushed one (the store's ``holds_party``). A token already
stored with a newer ``last_updated`` (a push that overtook the pull) is kept. The pull is recorded
as successful only when every page was read, so a broken pull is retried from where the
last good one left off. Invalid objects are skipped and counted (the spec: process the
correct ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from chargerfw.csms.authorization import ocpi_request_headers
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.pull import PullError, fetch_pages
from chargerfw.csms.store import AsyncStore, NotFound, sender_url, utcnow
from chargerfw.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class TokenPullResult:
    stored: int  # created or replaced
    unchanged: int  # held already with the same or a newer last_updated
    refused: int  # of a party this partner may not speak for
    invalid: int  # not a valid OCPI Token


async def pull_tokens(db: AsyncStore, http: httpx.AsyncClient, partner_id: int, *,
                      full: bool = False,
                      on_token_change: Callable[[str], None] | None = None) -> TokenPullResult:
    """Pull the partner's tokens changed since its last successful pull (all of them when
    ``full``); raises NotFound for an unknown or unregistered partner and PullError when the
    list cannot be read (the failure is recorded)."""
    store = db.store
    partner = await db(store.get_partner, partner_id)
    if partner is None or not partner["registered"] or not partner["their_token"]:
        raise NotFound(f"no registered partner {partner_id}")
    url = sender_url(partner["their_endpoints"], "tokens")
    if url is None:
        raise PullError(f"partner {partner_id} offers no tokens Sender endpoint")
    started = utcnow()
    params = {"limit": "100"}
    previous = await db(store.last_token_pull, partner_id)
    if not full and previous is not None and previous["last_success_from"] is not None:
        params["date_from"] = previous["last_success_from"].strftime("%Y-%m-%dT%H:%M:%SZ")
    cpo = store.cpo
    headers = ocpi_request_headers(partner["their_token"], (cpo.country_code, cpo.party_id),
                                   (partner["country_code"], partner["party_id"]))
    stored = unchanged = refused = invalid = 0
    try:
        async for page in fetch_pages(http, url, params, headers):
            for item in page:
                try:
                    token = m.Token.model_validate(item)
                except ValidationError:
                    invalid += 1
                    continue
                if not await db(store.holds_party, partner_id, token.country_code,
                                token.party_id):
                    refused += 1
                    continue
                held = await db(store.get_token, token.country_code, token.party_id,
                                token.uid, token.type)
                if held is not None and m.as_utc(m.Token.model_validate(held).last_updated
                                                 ) >= token.last_updated:
                    unchanged += 1
                    continue
                await db(store.put_token, token, partner_id)
                stored += 1
                if on_token_change is not None:
                    on_token_change(token.uid)
    except PullError as exc:
        await db(store.record_token_pull, partner_id, started, str(exc))
        log.warning("ocpi.token_pull.failed", partner=partner_id, error=str(exc))
        raise
    await db(store.record_token_pull, partner_id, started, None)
    result = TokenPullResult(stored, unchanged, refused, invalid)
    log.info("ocpi.token_pull.done", partner=partner_id, stored=stored, unchanged=unchanged,
             refused=refused, invalid=invalid)
    return result
