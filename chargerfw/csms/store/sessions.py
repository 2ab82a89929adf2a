"""OCPI Sessions: transactions on an EVSE, with their meter values as charging periods,
served to partners and pushed to them as they start, progress and end."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from chargerfw.csms import billing, tariff_engine
from chargerfw.csms.store import ocpi_objects
from chargerfw.csms.store.endpoints import object_url
from chargerfw.csms.store.parties import holds
from chargerfw.csms.store.push_queue import enqueue_to_receivers
from chargerfw.csms.store.sql import select_page
from chargerfw.csms.store.tariffs import tariff_data
from chargerfw.csms.store.values import CpoIdentity, Page, PageQuery, StoreError
from chargerfw.csms.tables import (
    connectors,
    locations,
    meter_values,
    reservations,
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
    # Sessions started before tariffs were kept with them are priced by the stored one.
    tariff = tx["tariff"] if tx["tariff"] is not None else tariff_data(c, tx["tariff_id"])
    zone = c.execute(sa.select(locations.c.time_zone).where(
        locations.c.id == tx["location_id"])).scalar_one_or_none()
    reservation = None
    if tx["reservation_id"] is not None:
        made = c.execute(sa.select(reservations.c.created_at).where(
            reservations.c.id == tx["reservation_id"],
            reservations.c.charge_point_id == tx["charge_point_id"])).scalar_one_or_none()
        if made is not None and made <= tx["start_time"]:
            reservation = tariff_engine.Reservation(made, tx["start_time"])
    return Pricing(tariff, zone, reservation)


def session_object(c: Connection, cpo: CpoIdentity, tx: RowMapping,
                   tx_samples: list[billing.Sample],
                   connector: RowMapping | None = None) -> dict[str, Any]:
    """The OCPI Session of a transaction on an EVSE."""
    priced_by = pricing(c, tx)
    return ocpi_objects.session_object(cpo, tx, tx_samples,
                                       connector or first_connector(c, tx["evse_uid"]),
                                       priced_by.tariff, priced_by.time_zone,
                                       priced_by.reservation)


def push_session(c: Connection, cpo: CpoIdentity, tx: RowMapping, method: str) -> None:
    """Queue the session to the partner of the party that issued its token (when it
    receives sessions): PUT the whole of it, or PATCH its progress."""
    def body() -> dict[str, Any]:
        session = session_object(c, cpo, tx, samples(c, [tx["id"]])[tx["id"]])
        return ocpi_objects.session_patch(session) if method == "PATCH" else session

    enqueue_to_receivers(c, "sessions", method, lambda base: object_url(
        base, cpo.country_code, cpo.party_id, tx["session_id"]), body, owner=token_owner(tx))


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


@dataclass(frozen=True)
class Sessions:
    engine: Engine
    cpo: CpoIdentity

    def list_sessions(self, query: PageQuery, partner_id: int | None = None) -> Page:
        """A page of sessions: those of ``partner_id``'s tokens, or all for None."""
        with self.engine.connect() as c:
            total, result = select_page(c, transactions, query,
                                        transactions.c.evse_uid.is_not(None),
                                        *visible_to(partner_id))
            rows = result.mappings().all()
            tx_samples = samples(c, [r["id"] for r in rows])
            uids = {r["evse_uid"] for r in rows}
            first_conn: dict[str, RowMapping] = {}
            for conn in c.execute(sa.select(connectors).where(connectors.c.evse_uid.in_(uids))
                                  .order_by(connectors.c.id.desc())).mappings():
                first_conn[conn["evse_uid"]] = conn
            items = [session_object(c, self.cpo, r, tx_samples[r["id"]],
                                    first_conn.get(r["evse_uid"])) for r in rows]
        return Page(items, total)

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
