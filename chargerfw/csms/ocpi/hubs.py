"""Hub partners as the CPO sees them: the parties reachable through a hub come from the hub
(hubclientinfo). The hub pushes each change to our Receiver (``routers.hubclientinfo``); we
pull its whole list (``pull_hub_parties``) when a hub registers, at start-up and on the sync
schedule, since the hub is the owner of that list and we may have missed pushes.

A party's status decides what it may do through the hub: CONNECTED and OFFLINE parties may
send us requests; PLANNED and SUSPENDED ones may not.
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from chargerfw.csms.authorization import ocpi_request_headers
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.pull import PullError, fetch_pages
from chargerfw.csms.store import AsyncStore, NotFound, sender_url
from chargerfw.logs import get_logger

log = get_logger(__name__)


async def pull_hub_parties(db: AsyncStore, http: httpx.AsyncClient, hub_id: int) -> int:
    """Replace what we know of the hub's parties with its full list; returns how many it
    lists. Raises NotFound (not a registered hub) or PullError (nothing is changed)."""
    store = db.store
    hub = await db(store.get_partner, hub_id)
    if hub is None or hub["role"] != "HUB" or not hub["registered"] or not hub["their_token"]:
        raise NotFound(f"no registered hub {hub_id}")
    url = sender_url(hub["their_endpoints"], "hubclientinfo")
    if url is None:
        raise PullError(f"hub {hub_id} offers no hubclientinfo Sender endpoint")
    infos: list[m.ClientInfo] = []
    invalid = 0
    # A configuration module: no routing headers.
    async for page in fetch_pages(http, url, {"limit": "100"}, ocpi_request_headers(
            hub["their_token"])):
        for item in page:
            try:
                infos.append(m.ClientInfo.model_validate(item))
            except ValidationError:
                invalid += 1
    count = await db(store.replace_hub_parties, hub_id, infos)
    log.info("ocpi.hub_parties_pulled", hub=hub_id, parties=count, invalid=invalid)
    return count
