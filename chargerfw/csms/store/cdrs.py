"""CDRs: written once when a session on an EVSE completes, priced by its tariff, served to
partners and posted to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms.store import ocpi_objects
from chargerfw.csms.store.push_queue import enqueue_to_receivers
from chargerfw.csms.store.sessions import (
    first_connector,
    pricing,
    samples,
    token_owner,
    visible_to,
)
from chargerfw.csms.store.sql import select_page
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import CpoIdentity, Page, PageQuery
from chargerfw.csms.tables import cdrs, evses, locations, transactions


def record_cdr(c: Connection, cpo: CpoIdentity, tx: RowMapping, now: datetime) -> None:
    """Write the CDR of a completed transaction on an EVSE and queue it to the partner of
    the party that issued its token (when it receives CDRs)."""
    evse = c.execute(sa.select(evses).where(evses.c.uid == tx["evse_uid"])).mappings().one()
    location = c.execute(sa.select(locations).where(locations.c.id == evse["location_id"])
                         ).mappings().one()
    priced_by = pricing(c, tx)
    cdr = ocpi_objects.cdr_object(cpo, tx, evse, location, first_connector(c, evse["uid"]),
                                  samples(c, [tx["id"]])[tx["id"]], priced_by.tariff,
                                  priced_by.reservation)
    c.execute(cdrs.insert().values(id=cdr["id"], transaction_id=tx["id"], data=cdr,
                                   last_updated=now))
    enqueue_to_receivers(c, "cdrs", "POST", lambda base: base, cdr, owner=token_owner(tx))


@dataclass(frozen=True)
class Cdrs:
    engine: StoreEngine

    def list_cdrs(self, query: PageQuery, partner_id: int | None = None) -> Page:
        """A page of CDRs: those of ``partner_id``'s tokens, or all for None."""
        conditions = []
        if partner_id is not None:
            conditions.append(cdrs.c.transaction_id.in_(
                sa.select(transactions.c.id).where(*visible_to(partner_id))))
        with self.engine.connect() as c:
            total, rows = select_page(c, cdrs, query, *conditions, columns=(cdrs.c.data,))
            return Page(list(rows.scalars().all()), total)
