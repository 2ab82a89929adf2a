"""CDRs: written once for each session completed on an EVSE, priced by its tariff, served to
partners and posted to them.

A stop only marks its transaction ``cdr_due`` (in the stop's own database transaction, so it
cannot be lost) and answers the charger; :meth:`Cdrs.build_due_cdrs` then writes the final
Session and the CDR and queues their pushes, a few transactions at a time, off the charger's
request path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms.store import ocpi_objects, owner_counts
from chargerfw.csms.store.push_queue import enqueue_to_receivers
from chargerfw.csms.store.sessions import (
    first_connector,
    keep_final_session,
    listing_scope,
    pricing,
    push_session,
    samples,
    token_owner,
)
from chargerfw.csms.store.sql import select_page
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import CpoIdentity, JsonPage, Page, PageQuery, utcnow
from chargerfw.csms.tables import cdrs, evses, locations, transactions

# Due CDRs built per call: each costs a few milliseconds of the database thread that every
# charger's request also waits for, so a call stays short and requests get their turn
# between calls.
CDR_BATCH = 2

_DUE = (sa.select(transactions).where(transactions.c.cdr_due.is_(True))
        .order_by(transactions.c.id))


def gets_cdr(status: str, evse_uid: str | None) -> bool:
    """Whether a transaction that ends with ``status`` gets a final Session and a CDR: it
    completed on an EVSE (an OCPI session)."""
    return status == "COMPLETED" and evse_uid is not None


def record_cdr(c: Connection, cpo: CpoIdentity, tx: RowMapping, now: datetime) -> None:
    """Complete the OCPI session of a transaction that completed on an EVSE: keep its final
    Session, queue that (whole) to the partner of the party that issued its token, write
    the CDR and queue it to that partner (each when it receives them). The session is
    rendered once, from one read of the samples and the tariff, for all of that."""
    tx_samples = samples(c, [tx["id"]])[tx["id"]]
    priced_by = pricing(c, tx)
    evse = c.execute(sa.select(evses).where(evses.c.uid == tx["evse_uid"])).mappings().one()
    location = c.execute(sa.select(locations).where(locations.c.id == evse["location_id"])
                         ).mappings().one()
    connector = first_connector(c, evse["uid"])
    session = ocpi_objects.session_object(cpo, tx, tx_samples, connector, priced_by.tariff,
                                          priced_by.time_zone, priced_by.reservation)
    keep_final_session(c, tx, session)
    push_session(c, cpo, tx, "PUT", session)
    cdr = ocpi_objects.cdr_object(cpo, tx, evse, location, connector, tx_samples,
                                  priced_by.tariff, priced_by.reservation)
    # The token's party is kept with the CDR (it never changes): partners' listings
    # are scoped by it through an index.
    c.execute(cdrs.insert().values(id=cdr["id"], transaction_id=tx["id"], data=cdr,
                                   token_country_code=tx["token_country_code"],
                                   token_party_id=tx["token_party_id"], last_updated=now))
    enqueue_to_receivers(c, "cdrs", "POST", lambda base: base, cdr, owner=token_owner(tx))


@dataclass(frozen=True)
class Cdrs:
    engine: StoreEngine
    cpo: CpoIdentity

    def build_due_cdrs(self, limit: int = CDR_BATCH) -> int:
        """Complete (:func:`record_cdr`) up to ``limit`` of the transactions whose CDR is
        due, oldest first, in one database transaction that also clears their mark: each
        gets its CDR exactly once, also after a crash. Rows another process is completing
        are skipped (PostgreSQL), so this may run in any process. Returns how many."""
        with self.engine.begin() as c:
            due = c.execute(_DUE.limit(limit).with_for_update(skip_locked=True)
                            ).mappings().all()
            if not due:
                return 0
            now = utcnow()
            for tx in due:
                record_cdr(c, self.cpo, tx, now)
            c.execute(transactions.update()
                      .where(transactions.c.id.in_([tx["id"] for tx in due]))
                      .values(cdr_due=False))
            return len(due)

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
