"""Transactions as the charger reports them over OCPP: started once however often the start
is delivered, metered, stopped once; each change reaches partners as a session push and,
at the end, a CDR (built after the stop is answered: see ``cdrs``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from chargerfw.csms import billing
from chargerfw.csms.store.cdrs import gets_cdr
from chargerfw.csms.store.reservations import mark_used
from chargerfw.csms.store.sessions import push_session
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import AuthDecision, CpoIdentity, StartRequest, utcnow
from chargerfw.csms.tables import connectors, evses, meter_values, tariffs, transactions

# OCPP 1.6: a StopTransaction without a reason was stopped locally.
DEFAULT_STOP_REASON = "Local"
# The reason recorded for a transaction the backend closed itself.
ORPHAN_STOP_REASON = "Other"
REFUSED_STOP_REASON = "DeAuthorized"
ORPHAN_BY_NEW_START = ("closed by the backend: the charger started another transaction on this "
                       "connector without stopping this one; energy up to its last reading")
ORPHAN_AFTER_BOOT = ("closed by the backend: after a reboot the charger reported this connector "
                     "Available and sent no StopTransaction for it; energy up to its last "
                     "reading")
# How long a StopTransaction may follow the Available of a rebooted charger (a charger may send
# its statuses before the stops it queued) before the transaction is closed as an orphan.
ORPHAN_GRACE = timedelta(minutes=5)


def _close_by_backend(c: Connection, tx: RowMapping, at: datetime, remark: str) -> None:
    """Close a transaction its charger will never stop, at its last reading (no energy is
    billed that was not measured), with the reason in its CDR."""
    status = "COMPLETED" if tx["status"] == "ACTIVE" else tx["status"]
    c.execute(transactions.update().where(transactions.c.id == tx["id"]).values(
        meter_stop=tx["meter_last"], stop_time=max(at, tx["start_time"]),
        stop_reason=ORPHAN_STOP_REASON, remark=remark, status=status, open_at_boot=False,
        available_after_boot_at=None, cdr_due=gets_cdr(status, tx["evse_uid"]),
        last_updated=utcnow()))


def _open_on_connector(c: Connection, charge_point_id: str, connector_id: int,
                       *conditions: sa.ColumnElement[bool]) -> list[RowMapping]:
    return list(c.execute(sa.select(transactions).where(
        transactions.c.charge_point_id == charge_point_id,
        transactions.c.connector_id == connector_id,
        transactions.c.stop_time.is_(None), *conditions).order_by(transactions.c.id)
    ).mappings().all())


def mark_open_at_boot(c: Connection, charge_point_id: str) -> None:
    """The charger booted: its open transactions become orphans if it then reports their
    connector Available without stopping them (it may still stop them: a charger sends what
    it queued before the reboot)."""
    c.execute(transactions.update().where(
        transactions.c.charge_point_id == charge_point_id,
        transactions.c.stop_time.is_(None)).values(open_at_boot=True))


def note_connector_status_after_boot(c: Connection, charge_point_id: str, connector_id: int,
                                     status: str, at: datetime) -> None:
    """A rebooted charger reported ``connector_id``: Available starts the grace period of a
    transaction still open there since before the boot (:meth:`Transactions.close_orphans_due`
    closes it after); any other status (it charges on) ends it."""
    open_at_boot = (transactions.c.charge_point_id == charge_point_id,
                    transactions.c.connector_id == connector_id,
                    transactions.c.stop_time.is_(None), transactions.c.open_at_boot.is_(True))
    if status == "Available":
        c.execute(transactions.update().where(
            *open_at_boot, transactions.c.available_after_boot_at.is_(None))
            .values(available_after_boot_at=at))
    else:
        c.execute(transactions.update().where(
            *open_at_boot, transactions.c.available_after_boot_at.is_not(None))
            .values(available_after_boot_at=None))


def _insert_new_samples(c: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert meter samples; one whose identity (uq_meter_values_sample) is stored already is
    skipped by the database itself, so a repeated MeterValues needs no lookup first."""
    insert = (sqlite_insert(meter_values) if c.dialect.name == "sqlite"
              else postgresql_insert(meter_values))
    c.execute(insert.on_conflict_do_nothing(), rows)


def _update_transaction(c: Connection, transaction_id: int, **values: Any) -> RowMapping:
    """Change a transaction; returns its row as changed (one statement, no read after)."""
    return c.execute(transactions.update().where(transactions.c.id == transaction_id)
                     .values(**values).returning(transactions)).mappings().one()


def _add_samples(c: Connection, cpo: CpoIdentity, charge_point_id: str, connector_id: int,
                 tx: RowMapping | None, samples: Sequence[billing.Sample]
                 ) -> RowMapping | None:
    """Store samples of ``tx`` (None: of no known transaction); a newer energy reading
    moves a running transaction on, and its partners hear of it. Returns the transaction
    when it moved on."""
    _insert_new_samples(c, [dict(
        charge_point_id=charge_point_id, connector_id=connector_id,
        transaction_id=tx["id"] if tx else None, timestamp=s.timestamp,
        measurand=s.measurand, phase=s.phase, context="", unit="", value=s.value)
        for s in samples])
    if tx is None or tx["status"] != "ACTIVE":
        return None
    energy = [s for s in samples if s.measurand == billing.ENERGY_REGISTER and not s.phase]
    if not energy:
        return None
    latest = max(energy, key=lambda s: s.timestamp)
    meter_wh = int(round(latest.value))
    if meter_wh <= tx["meter_last"]:
        return None
    row = _update_transaction(c, tx["id"], meter_last=meter_wh, last_updated=utcnow())
    if row["evse_uid"] is not None:
        push_session(c, cpo, row, "PATCH")
    return row


@dataclass(frozen=True)
class Transactions:
    engine: StoreEngine
    cpo: CpoIdentity

    def start_transaction(self, req: StartRequest, auth: AuthDecision) -> tuple[RowMapping, bool]:
        """Open a transaction, or return the one a repeated delivery already opened.

        Returns (transaction row, created).
        """
        key = req.idempotency_key()
        existing = self._transaction_by_key(key)
        if existing is not None:
            return existing, False
        now = utcnow()
        accepted = auth.status == "Accepted"
        try:
            with self.engine.begin() as c:
                # A connector carries one transaction: one still open there was given up by
                # the charger (e.g. its StartTransaction timed out there and was committed
                # here).
                for orphan in _open_on_connector(c, req.charge_point_id, req.connector_id):
                    _close_by_backend(c, orphan, req.timestamp, ORPHAN_BY_NEW_START)
                evse = c.execute(sa.select(evses).where(
                    evses.c.charge_point_id == req.charge_point_id,
                    evses.c.ocpp_connector_id == req.connector_id)).mappings().first()
                tariff_id = tariff = None
                currency = self.cpo.currency
                if evse is not None:
                    tariff_id = c.execute(sa.select(connectors.c.tariff_id).where(
                        connectors.c.evse_uid == evse["uid"]).order_by(connectors.c.id)
                    ).scalars().first()
                    if tariff_id is not None:
                        currency, tariff = c.execute(sa.select(
                            tariffs.c.currency, tariffs.c.data).where(
                            tariffs.c.id == tariff_id)).one()
                row = c.execute(transactions.insert().values(
                    session_id=str(uuid.uuid4()), idempotency_key=key,
                    charge_point_id=req.charge_point_id, connector_id=req.connector_id,
                    evse_uid=evse["uid"] if evse else None,
                    location_id=evse["location_id"] if evse else None,
                    id_tag=req.id_tag, id_tag_status=auth.status,
                    token_country_code=auth.country_code, token_party_id=auth.party_id,
                    token_type=auth.token_type, contract_id=auth.contract_id,
                    auth_method=auth.auth_method,
                    authorization_reference=auth.authorization_reference,
                    reservation_id=req.reservation_id, meter_start=req.meter_start,
                    meter_last=req.meter_start, start_time=req.timestamp,
                    status="ACTIVE" if accepted else "INVALID", currency=currency,
                    tariff_id=tariff_id, tariff=tariff, last_updated=now,
                    # A refused start is closed where it began: nothing is left open for it.
                    **({} if accepted else dict(
                        stop_time=req.timestamp, meter_stop=req.meter_start,
                        stop_reason=REFUSED_STOP_REASON,
                        remark=f"refused at start ({auth.status})"))).returning(transactions)
                ).mappings().one()
                if req.reservation_id is not None:
                    mark_used(c, req.reservation_id, req.charge_point_id)
                if accepted and evse is not None:
                    push_session(c, self.cpo, row, "PUT")
                return row, True
        except IntegrityError:
            # The same StartTransaction arrived twice at once: the other copy won.
            existing = self._transaction_by_key(key)
            if existing is None:
                raise
            return existing, False

    def transaction_for_start(self, req: StartRequest) -> RowMapping | None:
        """The transaction an earlier delivery of this StartTransaction opened, if any."""
        return self._transaction_by_key(req.idempotency_key())

    def _transaction_by_key(self, key: str) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(transactions).where(transactions.c.idempotency_key == key)
                             ).mappings().first()

    def get_transaction(self, transaction_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(transactions).where(transactions.c.id == transaction_id)
                             ).mappings().first()

    def transaction_by_session_id(self, session_id: str) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(transactions).where(
                transactions.c.session_id == session_id)).mappings().first()

    def add_meter_values(self, charge_point_id: str, connector_id: int,
                         transaction_id: int | None,
                         samples: Sequence[billing.Sample]) -> RowMapping | None:
        """Store samples (repeats are ignored); returns the transaction when it moved on."""
        if not samples:
            return None
        with self.engine.begin() as c:
            tx = None
            if transaction_id is not None:
                tx = c.execute(sa.select(transactions).where(
                    transactions.c.id == transaction_id,
                    transactions.c.charge_point_id == charge_point_id)).mappings().first()
            return _add_samples(c, self.cpo, charge_point_id, connector_id, tx, samples)

    def stop_transaction(self, charge_point_id: str, transaction_id: int, meter_stop: int,
                         timestamp: datetime, reason: str | None,
                         samples: Sequence[billing.Sample] = ()) -> tuple[RowMapping | None,
                                                                          bool]:
        """Close a transaction; its CDR is due (``build_due_cdrs``). A repeated
        StopTransaction, or one for a transaction the backend closed already, changes
        nothing (its samples neither); one without a reason was stopped ``Local``.

        Returns (transaction row or None when unknown, stopped now).
        """
        reason = reason or DEFAULT_STOP_REASON
        with self.engine.begin() as c:
            tx = c.execute(sa.select(transactions).where(
                transactions.c.id == transaction_id,
                transactions.c.charge_point_id == charge_point_id)).mappings().first()
            if tx is None:
                return None, False
            if tx["stop_time"] is not None:
                return tx, False
            if samples:
                tx = _add_samples(c, self.cpo, charge_point_id, tx["connector_id"], tx,
                                  samples) or tx
            status = "COMPLETED" if tx["status"] == "ACTIVE" else tx["status"]
            remark = tx["remark"]
            if meter_stop < tx["meter_start"]:
                # A register below where the session began is a meter fault, not a credit:
                # the session ends at its last reading (meterStart if there was none).
                remark = (f"meterStop {meter_stop} Wh was below meterStart "
                          f"{tx['meter_start']} Wh: the last reading, {tx['meter_last']} Wh, "
                          "counts")
                meter_stop = tx["meter_last"]
            return _update_transaction(
                c, transaction_id, meter_stop=meter_stop,
                meter_last=max(meter_stop, tx["meter_last"]),
                stop_time=max(timestamp, tx["start_time"]), stop_reason=reason, remark=remark,
                status=status, cdr_due=gets_cdr(status, tx["evse_uid"]),
                last_updated=utcnow()), True

    def close_orphans_due(self, grace: timedelta = ORPHAN_GRACE,
                          now: datetime | None = None) -> int:
        """Close the transactions whose rebooted charger reported their connector Available
        more than ``grace`` ago without stopping them (at the Available, at their last
        reading). Returns how many."""
        now = now or utcnow()
        with self.engine.begin() as c:
            due = list(c.execute(sa.select(transactions).where(
                transactions.c.stop_time.is_(None),
                transactions.c.available_after_boot_at <= now - grace)
                .order_by(transactions.c.id)).mappings().all())
            for orphan in due:
                _close_by_backend(c, orphan, orphan["available_after_boot_at"], ORPHAN_AFTER_BOOT)
            return len(due)

    def active_transaction(self, charge_point_id: str, connector_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(transactions).where(
                transactions.c.charge_point_id == charge_point_id,
                transactions.c.connector_id == connector_id,
                transactions.c.stop_time.is_(None),
                transactions.c.status == "ACTIVE").order_by(transactions.c.id.desc())
            ).mappings().first()

    def transactions_table(self, limit: int = 100) -> list[RowMapping]:
        """The newest transactions, newest first (administration listing)."""
        with self.engine.connect() as c:
            return list(c.execute(sa.select(transactions).order_by(transactions.c.id.desc())
                                  .limit(limit)).mappings().all())
