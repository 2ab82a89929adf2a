"""Reservations made by eMSPs (OCPI RESERVE_NOW) on a charger's connector, from PENDING to
ACCEPTED or REJECTED, then USED, CANCELLED or EXPIRED."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import utcnow
from chargerfw.csms.tables import reservations


def mark_used(c: Connection, reservation_id: int, charge_point_id: str) -> None:
    """A transaction started on an accepted reservation of this charger: it is used."""
    c.execute(reservations.update().where(
        reservations.c.id == reservation_id,
        reservations.c.charge_point_id == charge_point_id,
        reservations.c.status == "ACCEPTED").values(status="USED"))


@dataclass(frozen=True)
class Reservations:
    engine: StoreEngine

    def create_reservation(self, charge_point_id: str, connector_id: int, id_tag: str,
                           expiry: datetime, partner_id: int | None,
                           ocpi_reservation_id: str | None) -> int:
        with self.engine.begin() as c:
            return inserted_id(c.execute(reservations.insert().values(
                charge_point_id=charge_point_id, connector_id=connector_id, id_tag=id_tag,
                expiry=expiry, status="PENDING", partner_id=partner_id,
                ocpi_reservation_id=ocpi_reservation_id, created_at=utcnow())))

    def set_reservation_status(self, reservation_id: int, status: str) -> None:
        with self.engine.begin() as c:
            c.execute(reservations.update().where(reservations.c.id == reservation_id)
                      .values(status=status))

    def reservation_by_ocpi_id(self, partner_id: int | None,
                               ocpi_reservation_id: str) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(reservations).where(
                reservations.c.ocpi_reservation_id == ocpi_reservation_id,
                reservations.c.partner_id == partner_id).order_by(reservations.c.id.desc())
            ).mappings().first()

    def get_reservation(self, reservation_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(reservations).where(reservations.c.id == reservation_id)
                             ).mappings().first()

    def expire_reservations(self, now: datetime | None = None) -> int:
        """Mark accepted reservations past their expiry EXPIRED; returns how many."""
        with self.engine.begin() as c:
            return c.execute(reservations.update().where(
                reservations.c.status == "ACCEPTED",
                reservations.c.expiry <= (now or utcnow())).values(status="EXPIRED")).rowcount
