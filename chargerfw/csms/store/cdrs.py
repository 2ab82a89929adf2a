"""CDRs: written once when a session on an EVSE completes, priced by its tariff, served to
partners and posted to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms.store import ocpi_objects, owner_counts
from chargerfw.csms.store.push_queue import enqueue_to_receivers
from chargerfw.csms.store.sessions import (
    first_connector,
    freeze_session,
    listing_scope,
    pricing,
    samples,
    token_owner,
)
from chargerfw.csms.store.sql import select_page
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import CpoIdentity, JsonPage, Page, PageQuery
from chargerfw.csms.tables import cdrs, evses, locations


def record_cdr(c: Connection, cpo: CpoIdentity, tx: RowMapping, now: datetime) -> None:
    """Write the CDR of a completed transaction on an EVSE, and keep its final Session,
    and queue the CDR to the partner of the party that issued its token (when it receives
    CDRs)."""
    freeze_session(c, cpo, tx)
    evse = c.execute(sa.select(evses).where(evses.c.uid == tx["evse_uid"])).mappings().one()
    location = c.execute(sa.select(locations).where(locations.c.id == evse["location_id"])
                         ).mappings().one()
    priced_by = pricing(c, tx)
    cdr = ocpi_objects.cdr_object(cpo, tx, evse, location, first_connector(c, evse["uid"]),
                                  samples(c, [tx["id"]])[tx["id"]], priced_by.tariff,
                                  priced_by.reservation)
    # The token's party is kept with the CDR (it never changes): partners' listings
    # are scoped by it through an index.
    c.execute(cdrs.insert().values(id=cdr["id"], transaction_id=tx["id"], data=cdr,
                                   token_country_code=tx["token_country_code"],
                                   token_party_id=tx["token_party_id"], last_updated=now))
    enqueue_to_receivers(c, "cdrs", "POST", lambda base: base, cdr, owner=token_owner(tx))


@dataclass(frozen=True)
class Cdrs:
    engine: StoreEngine

    def list_cdrs(self, query: PageQuery, partner_id: int | None = None) -> Page:
        """A page of CDRs: those of ``partner_id``'s tokens, or all for None."""
        return self.list_cdrs_json(query, partner_id).parsed()

    def list_cdrs_json(self, query: PageQuery, partner_id: int | None = None) -> JsonPage:
        """:meth:`list_cdrs`, each CDR the JSON text it was stored as."""
        with self.engine.connect() as c:
            page = select_page(c, cdrs, query, owners=listing_scope(c, cdrs, partner_id),
                               counted_as=owner_counts.CDRS,
                               columns=[cdrs.c.id, cdrs.c.last_updated, cdrs.c.data],
                               as_text=["data"])
            return JsonPage([r["data"] for r in page.rows], page.total, page.next_key)
