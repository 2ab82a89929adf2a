"""OCPI Sessions: transactions on an EVSE, with their meter values as charging periods,
served to partners and pushed to them as they start, progress and end.

Each partner gets what it lacks: the store remembers, per partner and running session, what
the pushes queued to it carry (``session_pushes``), so a PATCH sends only changed fields and
new charging periods, which an OCPI 2.2.1 receiver appends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms import billing, tariff_engine
from chargerfw.csms.store import ocpi_objects, owner_counts
from chargerfw.csms.store.endpoints import object_url
from chargerfw.csms.store.parties import held_parties, holds
from chargerfw.csms.store.push_queue import enqueue, receivers
from chargerfw.csms.store.sql import Owners, select_page, stored_json
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.tariffs import tariffs_data
from chargerfw.csms.store.values import (
    CpoIdentity,
    JsonPage,
    Page,
    PageQuery,
    StoreError,
    json_text,
    utcnow,
)
from chargerfw.csms.tables import (
    connectors,
    locations,
    meter_values,
    push_queue,
    reservations,
    session_objects,
    session_pushes,
    transactions,
)


def samples(c: Connection, tx_ids: Iterable[int]) -> dict[int, list[billing.Sample]]:
    """The meter values of each transaction, oldest first."""
    ids = list(tx_ids)
    result: dict[int, list[billing.Sample]] = {i: [] for i in ids}
    if not ids:
        return result
    for r in c.execute(sa.select(meter_values.c.transaction_id, meter_values.c.timestamp,
                                 meter_values.c.measurand, meter_values.c.phase,
                                 meter_values.c.value)
                       .where(meter_values.c.transaction_id.in_(ids))
                       .order_by(meter_values.c.timestamp)):
        result[r.transaction_id].append(
            billing.Sample(r.timestamp, r.measurand, r.phase, r.value))
    return result


def first_connector(c: Connection, evse_uid: str) -> RowMapping:
    """The connector a session on an EVSE is reported on (an EVSE has at least one)."""
    row = c.execute(sa.select(connectors).where(connectors.c.evse_uid == evse_uid)
                    .order_by(connectors.c.id)).mappings().first()
    if row is None:
        raise StoreError(f"EVSE {evse_uid!r} has no connector")
    return row


@dataclass(frozen=True)
class Pricing:
    """What a transaction is priced by: the tariff it started under, its location's time
    zone, and the reservation it was started on."""

    tariff: dict[str, Any] | None
    time_zone: str | None
    reservation: tariff_engine.Reservation | None


def pricing(c: Connection, tx: RowMapping) -> Pricing:
    return pricings(c, [tx])[tx["id"]]


def pricings(c: Connection, txs: Sequence[RowMapping]) -> dict[int, Pricing]:
    """What each of ``txs`` is priced by (one query per kind, whatever their number)."""
    # Sessions started before tariffs were kept with them are priced by the stored one.
    stored = tariffs_data(c, (tx["tariff_id"] for tx in txs if tx["tariff"] is None))
    location_ids = sorted({tx["location_id"] for tx in txs if tx["location_id"] is not None})
    zones = {r.id: r.time_zone for r in c.execute(
        sa.select(locations.c.id, locations.c.time_zone)
        .where(locations.c.id.in_(location_ids)))} if location_ids else {}
    reservation_ids = sorted({tx["reservation_id"] for tx in txs
                              if tx["reservation_id"] is not None})
    made = {(r.id, r.charge_point_id): r.created_at for r in c.execute(
        sa.select(reservations.c.id, reservations.c.charge_point_id,
                  reservations.c.created_at).where(reservations.c.id.in_(reservation_ids)))
            } if reservation_ids else {}
    result = {}
    for tx in txs:
        tariff = tx["tariff"] if tx["tariff"] is not None else stored.get(tx["tariff_id"])
        created = made.get((tx["reservation_id"], tx["charge_point_id"]))
        reservation = None
        if created is not None and created <= tx["start_time"]:
            reservation = tariff_engine.Reservation(created, tx["start_time"])
        result[tx["id"]] = Pricing(tariff, zones.get(tx["location_id"]), reservation)
    return result


def session_object(c: Connection, cpo: CpoIdentity, tx: RowMapping,
                   tx_samples: list[billing.Sample],
                   connector: RowMapping | None = None,
                   priced_by: Pricing | None = None) -> dict[str, Any]:
    """The OCPI Session of a transaction on an EVSE."""
    priced_by = priced_by or pricing(c, tx)
    return ocpi_objects.session_object(cpo, tx, tx_samples,
                                       connector or first_connector(c, tx["evse_uid"]),
                                       priced_by.tariff, priced_by.time_zone,
                                       priced_by.reservation)


def keep_final_session(c: Connection, tx: RowMapping, session: dict[str, Any]) -> None:
    """Keep ``session``, the OCPI Session of a transaction that completed on an EVSE, as it
    is now: its listings serve that (while the transaction is not changed again) and do not
    price it anew."""
    c.execute(session_objects.delete().where(session_objects.c.transaction_id == tx["id"]))
    c.execute(session_objects.insert().values(transaction_id=tx["id"], data=session,
                                              last_updated=tx["last_updated"]))


def push_session(c: Connection, cpo: CpoIdentity, tx: RowMapping, method: str,
                 session: dict[str, Any] | None = None) -> None:
    """Queue the session to the partner of the party that issued its token (when it
    receives sessions); ``session`` is the transaction's Session when rendered already.

    "PUT" sends each the whole session (at its start, and at its end, so whatever pushes
    were lost on the way, each partner ends up with the session as it is); "PATCH" sends
    each what it lacks (:func:`queue_session_update`).
    """
    partners_base = receivers(c, "sessions", token_owner(tx))
    if not partners_base:
        return
    if session is None:
        session = session_object(c, cpo, tx, samples(c, [tx["id"]])[tx["id"]])
    for partner_id, base in partners_base:
        url = object_url(base.rstrip("/"), cpo.country_code, cpo.party_id, tx["session_id"])
        queue_session_update(c, partner_id, url, tx["id"], session, whole=method == "PUT")


def queue_session_update(c: Connection, partner_id: int, url: str, transaction_id: int,
                         session: dict[str, Any], whole: bool = False) -> None:
    """Queue to one partner (at ``url``) what it lacks of ``session``: a PATCH with the
    changed fields and the charging periods not sent yet, or a PUT of the whole session
    when ``whole``, when we sent it nothing yet, or when its copy is unknown because a push
    of this session to it failed for good (or was dropped)."""
    row = c.execute(sa.select(session_pushes).where(
        session_pushes.c.partner_id == partner_id,
        session_pushes.c.transaction_id == transaction_id)).mappings().first()
    sent = None
    if row is not None and not whole and not _failed_since(c, partner_id, url,
                                                          row["base_push_id"]):
        sent = ocpi_objects.SentSession(row["fields"], row["period_digests"])
    push = ocpi_objects.session_update(sent, session)
    if push is None:
        return
    push_id = enqueue(c, partner_id, "sessions", push.method, url, push.body)
    where = (session_pushes.c.partner_id == partner_id,
             session_pushes.c.transaction_id == transaction_id)
    if session["status"] != "ACTIVE":  # it changes no more: nothing to remember
        c.execute(session_pushes.delete().where(*where))
        return
    held = ocpi_objects.SentSession.of(session)
    values: dict[str, Any] = dict(fields=held.fields, period_digests=held.period_digests,
                                  updated_at=utcnow())
    if push.method == "PUT":
        values["base_push_id"] = push_id
    if row is None:
        c.execute(session_pushes.insert().values(partner_id=partner_id,
                                                 transaction_id=transaction_id, **values))
    else:
        c.execute(session_pushes.update().where(*where).values(**values))


def _failed_since(c: Connection, partner_id: int, url: str, push_id: int) -> bool:
    """Whether a push to ``url`` queued from ``push_id`` on was given up or dropped."""
    return c.execute(sa.select(push_queue.c.id).where(
        push_queue.c.status == "FAILED", push_queue.c.id >= push_id,
        push_queue.c.partner_id == partner_id, push_queue.c.url == url).limit(1)
    ).first() is not None


def forget_session_pushes(c: Connection, partner_id: int) -> None:
    """A partner (re-)registered or left: what it holds is unknown, so each running
    session's next push to it is a PUT of the whole session."""
    c.execute(session_pushes.delete().where(session_pushes.c.partner_id == partner_id))


def token_owner(tx: RowMapping) -> tuple[str | None, str | None]:
    """The party that issued the token of a transaction: it alone sees its session and CDR."""
    return tx["token_country_code"], tx["token_party_id"]


def visible_to(partner_id: int | None) -> list[Any]:
    """SQL conditions on ``transactions``: the sessions ``partner_id`` may see (all for
    None, the operator's own listings)."""
    if partner_id is None:
        return []
    return [holds(partner_id, transactions.c.token_country_code,
                  transactions.c.token_party_id)]


def _frozen_sessions(c: Connection, txs: Sequence[RowMapping]) -> dict[int, str]:
    """The kept Session objects of ``txs`` that are still current (as the JSON text they
    were stored as), by transaction id."""
    changed_at = {tx["id"]: tx["last_updated"] for tx in txs}
    if not changed_at:
        return {}
    return {r.transaction_id: r.data for r in c.execute(
        sa.select(session_objects.c.transaction_id, session_objects.c.last_updated,
                  stored_json(session_objects.c.data))
        .where(session_objects.c.transaction_id.in_(changed_at)))
        if r.last_updated == changed_at[r.transaction_id]}


def listing_scope(c: Connection, table: sa.Table, partner_id: int | None) -> Owners | None:
    """The scope of ``partner_id``'s listing of ``table`` (None for all): the rows whose
    token party it holds (``visible_to``, resolved to the parties)."""
    if partner_id is None:
        return None
    return Owners(table.c.token_country_code, table.c.token_party_id,
                  held_parties(c, partner_id))


@dataclass(frozen=True)
class Sessions:
    engine: StoreEngine
    cpo: CpoIdentity

    def list_sessions(self, query: PageQuery, partner_id: int | None = None) -> Page:
        """A page of sessions: those of ``partner_id``'s tokens, or all for None."""
        return self.list_sessions_json(query, partner_id).parsed()

    def list_sessions_json(self, query: PageQuery, partner_id: int | None = None
                           ) -> JsonPage:
        """:meth:`list_sessions`, each session as JSON text: a completed one as it was kept,
        the others rendered now."""
        with self.engine.connect() as c:
            # The owner counts' sessions are these: transactions on an EVSE.
            on_evse = transactions.c.evse_uid.is_not(None)
            # The page's keys only (from the page index alone); whole rows are read for
            # the sessions that have no kept object, with the same scope.
            page = select_page(c, transactions, query, on_evse,
                               owners=listing_scope(c, transactions, partner_id),
                               counted_as=owner_counts.SESSIONS,
                               columns=[transactions.c.id, transactions.c.last_updated])
            frozen = _frozen_sessions(c, page.rows)
            missing = [r["id"] for r in page.rows if r["id"] not in frozen]
            rows = c.execute(sa.select(transactions).where(
                transactions.c.id.in_(missing), on_evse, *visible_to(partner_id))
            ).mappings().all() if missing else []
            tx_samples = samples(c, [r["id"] for r in rows])
            priced = pricings(c, rows)
            uids = {r["evse_uid"] for r in rows}
            first_conn: dict[str, RowMapping] = {}
            for conn in c.execute(sa.select(connectors).where(connectors.c.evse_uid.in_(uids))
                                  .order_by(connectors.c.id.desc())).mappings() if uids else ():
                first_conn[conn["evse_uid"]] = conn
            made = {r["id"]: json_text(session_object(c, self.cpo, r, tx_samples[r["id"]],
                                                      first_conn.get(r["evse_uid"]),
                                                      priced[r["id"]]))
                    for r in rows}
        # A row changed out of the scope since the page was read is left out.
        items = [frozen.get(r["id"]) or made.get(r["id"]) for r in page.rows]
        return JsonPage([item for item in items if item is not None], page.total,
                        page.next_key)

    def get_session(self, session_id: str, partner_id: int | None = None
                    ) -> dict[str, Any] | None:
        """A session (of ``partner_id``'s tokens, unless None)."""
        with self.engine.connect() as c:
            tx = c.execute(sa.select(transactions).where(
                transactions.c.session_id == session_id,
                transactions.c.evse_uid.is_not(None), *visible_to(partner_id))
            ).mappings().first()
            if tx is None:
                return None
            return session_object(c, self.cpo, tx, samples(c, [tx["id"]])[tx["id"]])
