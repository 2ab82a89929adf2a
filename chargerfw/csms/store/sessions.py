"""OCPI Sessions: transactions on an EVSE, with their meter values as charging periods,
served to partners and pushed to them as they start, progress and end."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from chargerfw.csms import billing
from chargerfw.csms.store import ocpi_objects
from chargerfw.csms.store.endpoints import object_url
from chargerfw.csms.store.parties import holds
from chargerfw.csms.store.push_queue import enqueue_to_receivers
from chargerfw.csms.store.sql import select_page
from chargerfw.csms.store.tariffs import tariff_data
from chargerfw.csms.store.values import CpoIdentity, Page, PageQuery, StoreError
from chargerfw.csms.tables import connectors, meter_values, transactions


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


def session_object(c: Connection, cpo: CpoIdentity, tx: RowMapping,
                   tx_samples: list[billing.Sample],
                   connector: RowMapping | None = None) -> dict[str, Any]:
    """The OCPI Session of a transaction on an EVSE."""
    # Only a finished session is priced.
    tariff = tariff_data(c, tx["tariff_id"]) if tx["stop_time"] is not None else None
    return ocpi_objects.session_object(cpo, tx, tx_samples,
                                       connector or first_connector(c, tx["evse_uid"]), tariff)


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
