"""The fleet's security: each certificate the fleet CA signed for a charger and the
charger's answer to it (its current certificate is the newest it accepted), the security
profile each charger connected with last, and the swap of a charger's password when the
backend gives it a new AuthorizationKey."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from chargerfw.csms.store.hashing import hash_password
from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import NotFound, utcnow
from chargerfw.csms.tables import charge_points, fleet_certificates

ACCEPTED = "Accepted"
# CertificateSigned never reached the charger (it went away, or did not answer).
NOT_DELIVERED = "NotDelivered"


@dataclass(frozen=True)
class IssuedRecord:
    """What is kept of a certificate the fleet CA signed."""

    charge_point_id: str
    serial: str
    fingerprint: str
    subject: str
    not_before: datetime
    not_after: datetime
    certificate_pem: str


@dataclass(frozen=True)
class FleetSecurity:
    engine: StoreEngine

    def record_issued_certificate(self, issued: IssuedRecord) -> int:
        """Keep a certificate just signed (before it is sent); its id."""
        with self.engine.begin() as c:
            if c.execute(sa.select(charge_points.c.id).where(
                    charge_points.c.id == issued.charge_point_id)).first() is None:
                raise NotFound(f"unknown charge point {issued.charge_point_id!r}")
            return inserted_id(c.execute(fleet_certificates.insert().values(
                charge_point_id=issued.charge_point_id, serial=issued.serial,
                fingerprint=issued.fingerprint, subject=issued.subject,
                not_before=issued.not_before, not_after=issued.not_after, issued_at=utcnow(),
                certificate=issued.certificate_pem)))

    def record_certificate_answer(self, certificate_id: int, status: str) -> None:
        """The charger's answer to CertificateSigned (or NOT_DELIVERED)."""
        with self.engine.begin() as c:
            c.execute(fleet_certificates.update().where(
                fleet_certificates.c.id == certificate_id).values(
                status=status, answered_at=utcnow()))

    def charger_certificates(self, charge_point_id: str) -> list[RowMapping]:
        """Every certificate signed for the charger, newest first (without the PEM)."""
        columns = [col for col in fleet_certificates.c if col.name != "certificate"]
        with self.engine.connect() as c:
            return list(c.execute(sa.select(*columns).where(
                fleet_certificates.c.charge_point_id == charge_point_id)
                .order_by(fleet_certificates.c.id.desc())).mappings().all())

    def current_certificate(self, charge_point_id: str) -> RowMapping | None:
        """The newest certificate the charger accepted, or None."""
        with self.engine.connect() as c:
            return c.execute(sa.select(fleet_certificates).where(
                fleet_certificates.c.charge_point_id == charge_point_id,
                fleet_certificates.c.status == ACCEPTED)
                .order_by(fleet_certificates.c.id.desc()).limit(1)).mappings().first()

    def record_security_profile(self, charge_point_id: str, profile: int) -> None:
        """The charger opened a connection with security ``profile`` (its connection count
        goes up)."""
        with self.engine.begin() as c:
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(security_profile=profile,
                              connection_count=charge_points.c.connection_count + 1))

    def replace_password(self, charge_point_id: str, password: str) -> str | None:
        """Make ``password`` the charger's Basic-auth password (hashed by where it came from:
        :func:`~chargerfw.csms.store.hashing.hash_password`); returns the hash it replaces
        (for :meth:`restore_password_hash`)."""
        new_hash = hash_password(password)
        with self.engine.begin() as c:
            row = c.execute(sa.select(charge_points.c.password_hash).where(
                charge_points.c.id == charge_point_id)).first()
            if row is None:
                raise NotFound(f"unknown charge point {charge_point_id!r}")
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(password_hash=new_hash))
            return None if row[0] is None else str(row[0])

    def password_hash(self, charge_point_id: str) -> str | None:
        """The charger's stored password hash (None: it connects without Basic auth)."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(charge_points.c.password_hash).where(
                charge_points.c.id == charge_point_id)).first()
        if row is None:
            raise NotFound(f"unknown charge point {charge_point_id!r}")
        return None if row[0] is None else str(row[0])

    def restore_password_hash(self, charge_point_id: str, password_hash: str | None) -> None:
        """Put back the hash :meth:`replace_password` returned."""
        with self.engine.begin() as c:
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(password_hash=password_hash))
