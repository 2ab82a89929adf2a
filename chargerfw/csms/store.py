"""The CSMS data layer: one place that reads and writes the database for the OCPP and OCPI
sides and the administration commands.

Every method is synchronous and runs one database transaction; the async servers call them
through ``AsyncStore`` (a worker thread), so the event loop never waits on the database.
Changes that partners must hear about enqueue their OCPI pushes in the same transaction, so a
crash can lose neither the change nor its push.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from chargerfw.csms import billing
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.tables import (
    cdrs,
    charge_points,
    connector_status,
    connectors,
    evses,
    locations,
    meter_values,
    partners,
    pending_commands,
    push_queue,
    reservations,
    tariffs,
    tokens,
    transactions,
)

T = TypeVar("T")

# OCPP 1.6 ChargePointStatus -> OCPI EVSE status (see shared/reference/ocpi-2.2.1.md).
_EVSE_STATUS = {
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}


# OCPP 1.6 StatusNotification for connector 0 speaks for the whole charge point; these two
# take every EVSE of it out of service while they last.
_WHOLE_CHARGE_POINT_STATUS = {"Unavailable": "INOPERATIVE", "Faulted": "OUTOFORDER"}


def evse_status_from_ocpp(status: str) -> str:
    """Map an OCPP 1.6 connector status to an OCPI EVSE status."""
    return _EVSE_STATUS.get(status, "UNKNOWN")


def evse_status(connector_status: str | None, charge_point_status: str | None) -> str:
    """The OCPI status of an EVSE from its own OCPP connector's last status and that of
    connector 0 (the whole charge point); None where no StatusNotification arrived yet.

    Connector 0 Unavailable makes every EVSE INOPERATIVE and Faulted makes it OUTOFORDER;
    an EVSE that is itself faulted stays OUTOFORDER. Otherwise the EVSE's own status counts.
    """
    own = evse_status_from_ocpp(connector_status) if connector_status else "UNKNOWN"
    whole = _WHOLE_CHARGE_POINT_STATUS.get(charge_point_status or "")
    if whole is None or own == "OUTOFORDER":
        return own
    return whole


def utcnow() -> datetime:
    """Now, in UTC, to whole seconds (OCPI timestamps carry seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


# --- secrets -------------------------------------------------------------------------------

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """A salted scrypt hash of a charge point's Basic-auth password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a ``hash_password`` result."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                               p=int(p), dklen=len(digest) // 2)
    return hmac.compare_digest(candidate.hex(), digest)


def token_digest(token: str) -> str:
    """SHA-256 of an OCPI credentials token (random 256-bit values need no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_credentials_token() -> str:
    return secrets.token_urlsafe(32)


# --- value types ---------------------------------------------------------------------------

class StoreError(Exception):
    """A request the data layer refuses; ``str()`` says why."""


class NotFound(StoreError):
    """The object does not exist."""


class AlreadyExists(StoreError):
    """An object with that identity exists already."""


@dataclass(frozen=True)
class CpoIdentity:
    country_code: str = "NL"
    party_id: str = "CFW"
    name: str = "chargerfw CSMS"
    currency: str = "EUR"


@dataclass(frozen=True)
class ConnectorSpec:
    id: str
    standard: str
    format: str
    power_type: str
    max_voltage: int
    max_amperage: int
    max_electric_power: int | None = None


@dataclass(frozen=True)
class EvseSpec:
    uid: str
    ocpp_connector_id: int
    connectors: Sequence[ConnectorSpec]
    evse_id: str | None = None


@dataclass(frozen=True)
class LocationSpec:
    id: str
    address: str
    city: str
    country: str
    latitude: str
    longitude: str
    time_zone: str
    name: str | None = None
    postal_code: str | None = None
    publish: bool = True


@dataclass(frozen=True)
class AuthDecision:
    """How an idTag was authorised, and the token it stands for."""

    status: str  # OCPP AuthorizationStatus: Accepted, Blocked, Expired, Invalid
    auth_method: str = "WHITELIST"
    country_code: str | None = None
    party_id: str | None = None
    token_type: str | None = None
    contract_id: str | None = None
    authorization_reference: str | None = None


@dataclass(frozen=True)
class StartRequest:
    charge_point_id: str
    connector_id: int
    id_tag: str
    meter_start: int
    timestamp: datetime
    reservation_id: int | None = None

    def idempotency_key(self) -> str:
        ident = "|".join([self.charge_point_id, str(self.connector_id), self.id_tag,
                          self.timestamp.astimezone(UTC).isoformat(), str(self.meter_start)])
        return hashlib.sha256(ident.encode()).hexdigest()


@dataclass(frozen=True)
class PageQuery:
    offset: int = 0
    limit: int = 50
    date_from: datetime | None = None
    date_to: datetime | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class EvseChange:
    location_id: str
    evse_uid: str
    status: str


@dataclass
class PushItem:
    id: int
    partner_id: int
    module: str
    method: str
    url: str
    body: Any
    attempts: int
    their_token: str | None = field(repr=False, default=None)
    country_code: str | None = None  # the partner's, for the OCPI-to-* routing headers
    party_id: str | None = None


# --- the store -----------------------------------------------------------------------------

def _dump(model: m.OcpiModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


class Store:
    """Synchronous data layer over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, cpo: CpoIdentity | None = None) -> None:
        self.engine = engine
        self.cpo = cpo or CpoIdentity()

    # -- locations and charge points (administration) --

    def add_charge_point(self, charge_point_id: str, password: str | None,
                         location: LocationSpec | None, evse_specs: Sequence[EvseSpec],
                         tariff_id: str | None = None) -> None:
        """Register a charge point with its location, EVSEs and connectors.

        An existing location (same id) is reused; its address is not changed.
        """
        now = utcnow()
        self._check_specs(location, evse_specs, now)
        try:
            with self.engine.begin() as c:
                if c.execute(sa.select(charge_points.c.id)
                             .where(charge_points.c.id == charge_point_id)).first():
                    raise AlreadyExists(f"charge point {charge_point_id!r} exists already")
                self._check_tariff(c, tariff_id)
                self._ensure_location(c, location, now)
                c.execute(charge_points.insert().values(
                    id=charge_point_id,
                    password_hash=hash_password(password) if password else None,
                    location_id=location.id if location else None, auto_registered=False,
                    created_at=now))
                self._insert_evses(c, charge_point_id, location, evse_specs, tariff_id, now)
                if location is not None:
                    self._push_location(c, location.id)
        except IntegrityError as exc:
            raise AlreadyExists(f"conflicting identifiers: {exc.orig}") from None

    def attach_charge_point(self, charge_point_id: str, location: LocationSpec,
                            evse_specs: Sequence[EvseSpec], tariff_id: str | None = None,
                            password: str | None = None, clear_password: bool = False) -> None:
        """Give a registered charge point without EVSEs (e.g. one that auto-registered on
        first connect) its location, EVSEs and connectors.

        ``password`` replaces its Basic-auth password, ``clear_password`` lets it connect
        without one; neither keeps what it has. Its transactions are left as they are. A
        charge point that has EVSEs already is refused: changing EVSEs would orphan the
        sessions and CDRs partners hold for them.
        """
        if password and clear_password:
            raise StoreError("give a password or clear it, not both")
        now = utcnow()
        self._check_specs(location, evse_specs, now)
        try:
            with self.engine.begin() as c:
                point = c.execute(sa.select(charge_points).where(
                    charge_points.c.id == charge_point_id)).mappings().first()
                if point is None:
                    raise NotFound(f"unknown charge point {charge_point_id!r}")
                attached = c.execute(sa.select(evses.c.uid).where(
                    evses.c.charge_point_id == charge_point_id).order_by(evses.c.uid)
                ).scalars().all()
                if attached:
                    raise AlreadyExists(
                        f"charge point {charge_point_id!r} has EVSE(s) already "
                        f"({', '.join(attached)} at location {point['location_id']!r}); "
                        f"changing a registered charge point's EVSEs is not supported")
                self._check_tariff(c, tariff_id)
                self._ensure_location(c, location, now)
                values: dict[str, Any] = {"location_id": location.id}
                if password:
                    values["password_hash"] = hash_password(password)
                elif clear_password:
                    values["password_hash"] = None
                c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                          .values(**values))
                self._insert_evses(c, charge_point_id, location, evse_specs, tariff_id, now)
                self._push_location(c, location.id)
        except IntegrityError as exc:
            raise AlreadyExists(f"conflicting identifiers: {exc.orig}") from None

    @staticmethod
    def _check_specs(location: LocationSpec | None, evse_specs: Sequence[EvseSpec],
                     now: datetime) -> None:
        if evse_specs and location is None:
            raise StoreError("EVSEs need a location")
        for spec in evse_specs:
            if not spec.connectors:
                raise StoreError(f"EVSE {spec.uid} needs at least one connector")
            for conn in spec.connectors:
                try:
                    m.Connector.model_validate({**conn.__dict__, "last_updated": now})
                except ValidationError as exc:
                    raise StoreError(f"EVSE {spec.uid} connector {conn.id}: "
                                     f"{exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"
                                     ) from None
        if location is not None:
            try:
                m.GeoLocation(latitude=location.latitude, longitude=location.longitude)
            except ValidationError:
                raise StoreError("coordinates must look like 52.08917 / 5.11028 "
                                 "(5 to 7 decimals)") from None

    @staticmethod
    def _check_tariff(c: Connection, tariff_id: str | None) -> None:
        if tariff_id is not None and not c.execute(
                sa.select(tariffs.c.id).where(tariffs.c.id == tariff_id)).first():
            raise NotFound(f"unknown tariff {tariff_id!r}")

    def _ensure_location(self, c: Connection, location: LocationSpec | None,
                         now: datetime) -> None:
        """Create the location, or mark an existing one changed (it gains EVSEs)."""
        if location is None:
            return
        if not c.execute(sa.select(locations.c.id).where(locations.c.id == location.id)
                         ).first():
            c.execute(locations.insert().values(
                id=location.id, country_code=self.cpo.country_code,
                party_id=self.cpo.party_id, publish=location.publish,
                name=location.name, address=location.address, city=location.city,
                postal_code=location.postal_code, country=location.country,
                latitude=location.latitude, longitude=location.longitude,
                time_zone=location.time_zone, last_updated=now))
        else:
            c.execute(locations.update().where(locations.c.id == location.id)
                      .values(last_updated=now))

    @staticmethod
    def _insert_evses(c: Connection, charge_point_id: str, location: LocationSpec | None,
                      evse_specs: Sequence[EvseSpec], tariff_id: str | None,
                      now: datetime) -> None:
        # A charger that connected before it had EVSEs has told us its statuses already.
        reported = {row.connector_id: row.status for row in c.execute(
            sa.select(connector_status.c.connector_id, connector_status.c.status)
            .where(connector_status.c.charge_point_id == charge_point_id))}
        for spec in evse_specs:
            c.execute(evses.insert().values(
                uid=spec.uid, location_id=location.id if location else None,
                evse_id=spec.evse_id, charge_point_id=charge_point_id,
                ocpp_connector_id=spec.ocpp_connector_id,
                status=evse_status(reported.get(spec.ocpp_connector_id), reported.get(0)),
                last_updated=now))
            for conn in spec.connectors:
                c.execute(connectors.insert().values(
                    evse_uid=spec.uid, id=conn.id, standard=conn.standard,
                    format=conn.format, power_type=conn.power_type,
                    max_voltage=conn.max_voltage, max_amperage=conn.max_amperage,
                    max_electric_power=conn.max_electric_power, tariff_id=tariff_id,
                    last_updated=now))

    def list_charge_points(self) -> list[dict[str, Any]]:
        """Every charge point with its EVSE mapping and last connector statuses."""
        with self.engine.connect() as c:
            points = c.execute(sa.select(charge_points).order_by(charge_points.c.id)
                               ).mappings().all()
            evse_rows = c.execute(sa.select(evses).order_by(evses.c.ocpp_connector_id)
                                  ).mappings().all()
            status_rows = c.execute(sa.select(connector_status)).mappings().all()
        result = []
        for cp in points:
            result.append({
                "id": cp["id"], "location_id": cp["location_id"],
                "password": cp["password_hash"] is not None,
                "auto_registered": cp["auto_registered"], "vendor": cp["vendor"],
                "model": cp["model"], "firmware_version": cp["firmware_version"],
                "last_boot": cp["last_boot"], "last_heartbeat": cp["last_heartbeat"],
                "evses": [{"uid": e["uid"], "evse_id": e["evse_id"],
                           "ocpp_connector_id": e["ocpp_connector_id"], "status": e["status"]}
                          for e in evse_rows if e["charge_point_id"] == cp["id"]],
                "connectors": {s["connector_id"]: s["status"] for s in status_rows
                               if s["charge_point_id"] == cp["id"]}})
        return result

    def auto_register(self, charge_point_id: str, password: str | None) -> None:
        """Register an unknown charge point that connected (``--auto-register``)."""
        try:
            with self.engine.begin() as c:
                c.execute(charge_points.insert().values(
                    id=charge_point_id,
                    password_hash=hash_password(password) if password else None,
                    auto_registered=True, created_at=utcnow()))
        except IntegrityError:
            pass  # registered meanwhile by another connection

    def get_charge_point(self, charge_point_id: str) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(charge_points)
                             .where(charge_points.c.id == charge_point_id)).mappings().first()

    def record_boot(self, charge_point_id: str, vendor: str, model: str,
                    serial_number: str | None, firmware_version: str | None) -> None:
        with self.engine.begin() as c:
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(vendor=vendor, model=model, serial_number=serial_number,
                              firmware_version=firmware_version, last_boot=utcnow(),
                              last_heartbeat=utcnow()))

    def record_heartbeat(self, charge_point_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(last_heartbeat=utcnow()))

    def record_status(self, charge_point_id: str, connector_id: int, status: str,
                      error_code: str, timestamp: datetime | None, info: str | None = None,
                      vendor_id: str | None = None,
                      vendor_error_code: str | None = None) -> list[EvseChange]:
        """Store a StatusNotification; returns the EVSEs whose OCPI status changed.

        Connector 0 is the whole charge point: its status can change every EVSE of it.
        """
        now = utcnow()
        values = dict(status=status, error_code=error_code, info=info, vendor_id=vendor_id,
                      vendor_error_code=vendor_error_code, timestamp=timestamp, received_at=now)
        with self.engine.begin() as c:
            updated = c.execute(connector_status.update().where(
                connector_status.c.charge_point_id == charge_point_id,
                connector_status.c.connector_id == connector_id).values(**values))
            if updated.rowcount == 0:
                c.execute(connector_status.insert().values(
                    charge_point_id=charge_point_id, connector_id=connector_id, **values))
            affected = sa.select(evses).where(evses.c.charge_point_id == charge_point_id)
            if connector_id != 0:
                affected = affected.where(evses.c.ocpp_connector_id == connector_id)
            evse_rows = c.execute(affected.order_by(evses.c.ocpp_connector_id)
                                  ).mappings().all()
            if not evse_rows:
                return []
            reported = {row.connector_id: row.status for row in c.execute(
                sa.select(connector_status.c.connector_id, connector_status.c.status)
                .where(connector_status.c.charge_point_id == charge_point_id))}
            changes = []
            for evse in evse_rows:
                new_status = evse_status(reported.get(evse["ocpp_connector_id"]),
                                         reported.get(0))
                if new_status == evse["status"]:
                    continue
                c.execute(evses.update().where(evses.c.uid == evse["uid"])
                          .values(status=new_status, last_updated=now))
                self._enqueue_all(c, "locations", "PATCH",
                                  lambda url, evse=evse: f"{url}/{self.cpo.country_code}/"
                                  f"{self.cpo.party_id}/{evse['location_id']}/{evse['uid']}",
                                  {"status": new_status,
                                   "last_updated": now.strftime("%Y-%m-%dT%H:%M:%SZ")})
                changes.append(EvseChange(evse["location_id"], evse["uid"], new_status))
            if changes:
                c.execute(locations.update().where(
                    locations.c.id.in_(sorted({change.location_id for change in changes})))
                    .values(last_updated=now))
            return changes

    def connector_statuses(self, charge_point_id: str) -> dict[int, RowMapping]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(connector_status).where(
                connector_status.c.charge_point_id == charge_point_id)).mappings().all()
        return {row["connector_id"]: row for row in rows}

    def evse_for_connector(self, charge_point_id: str, connector_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(evses).where(
                evses.c.charge_point_id == charge_point_id,
                evses.c.ocpp_connector_id == connector_id)).mappings().first()

    def evse(self, location_id: str, evse_uid: str) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(evses).where(
                evses.c.location_id == location_id, evses.c.uid == evse_uid)).mappings().first()

    def evses_of_location(self, location_id: str) -> list[RowMapping]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(evses).where(evses.c.location_id == location_id)
                                  .order_by(evses.c.uid)).mappings().all())

    # -- OCPI locations --

    def _location_objects(self, c: Connection, rows: Sequence[RowMapping]) -> list[dict[str, Any]]:
        ids = [row["id"] for row in rows]
        evse_rows = c.execute(sa.select(evses).where(evses.c.location_id.in_(ids))
                              .order_by(evses.c.uid)).mappings().all() if ids else []
        uids = [row["uid"] for row in evse_rows]
        conn_rows = c.execute(sa.select(connectors).where(connectors.c.evse_uid.in_(uids))
                              .order_by(connectors.c.id)).mappings().all() if uids else []
        conns_by_evse: dict[str, list[dict[str, Any]]] = {}
        for conn in conn_rows:
            conns_by_evse.setdefault(conn["evse_uid"], []).append(_connector_object(conn))
        evses_by_loc: dict[str, list[dict[str, Any]]] = {}
        for evse in evse_rows:
            evses_by_loc.setdefault(evse["location_id"], []).append({
                "uid": evse["uid"], "evse_id": evse["evse_id"], "status": evse["status"],
                "connectors": conns_by_evse.get(evse["uid"], []),
                "last_updated": evse["last_updated"]})
        result = []
        for row in rows:
            obj = {key: row[key] for key in ("country_code", "party_id", "id", "publish", "name",
                                             "address", "city", "postal_code", "country",
                                             "time_zone", "last_updated")}
            obj["coordinates"] = {"latitude": row["latitude"], "longitude": row["longitude"]}
            obj["evses"] = [e for e in evses_by_loc.get(row["id"], []) if e["connectors"]]
            result.append(_dump(m.Location.model_validate(obj)))
        return result

    def list_locations(self, query: PageQuery, published_only: bool = False) -> Page:
        conditions = _date_filter(locations.c.last_updated, query)
        if published_only:
            conditions.append(locations.c.publish.is_(True))
        with self.engine.connect() as c:
            total = c.execute(sa.select(sa.func.count()).select_from(locations)
                              .where(*conditions)).scalar_one()
            rows = c.execute(sa.select(locations).where(*conditions)
                             .order_by(locations.c.last_updated, locations.c.id)
                             .offset(query.offset).limit(query.limit)).mappings().all()
            return Page(self._location_objects(c, rows), total)

    def get_location(self, location_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(locations).where(locations.c.id == location_id)
                            ).mappings().first()
            return self._location_objects(c, [row])[0] if row else None

    def _push_location(self, c: Connection, location_id: str) -> None:
        def body() -> dict[str, Any]:
            row = c.execute(sa.select(locations).where(locations.c.id == location_id)
                            ).mappings().one()
            return self._location_objects(c, [row])[0]

        self._enqueue_all(c, "locations", "PUT",
                          lambda url: f"{url}/{self.cpo.country_code}/{self.cpo.party_id}/"
                                      f"{location_id}", body)

    # -- tariffs --

    def add_tariff(self, tariff: m.Tariff) -> dict[str, Any]:
        body = _dump(tariff)
        try:
            with self.engine.begin() as c:
                c.execute(tariffs.insert().values(
                    id=tariff.id, country_code=tariff.country_code, party_id=tariff.party_id,
                    currency=tariff.currency, data=body, last_updated=tariff.last_updated))
                self._enqueue_all(c, "tariffs", "PUT",
                                  lambda url: f"{url}/{tariff.country_code}/{tariff.party_id}/"
                                              f"{tariff.id}", body)
        except IntegrityError:
            raise AlreadyExists(f"tariff {tariff.id!r} exists already") from None
        return body

    def list_tariffs(self, query: PageQuery) -> Page:
        conditions = _date_filter(tariffs.c.last_updated, query)
        with self.engine.connect() as c:
            total = c.execute(sa.select(sa.func.count()).select_from(tariffs)
                              .where(*conditions)).scalar_one()
            rows = c.execute(sa.select(tariffs.c.data).where(*conditions)
                             .order_by(tariffs.c.last_updated, tariffs.c.id)
                             .offset(query.offset).limit(query.limit)).scalars().all()
        return Page(list(rows), total)

    def set_connector_tariff(self, tariff_id: str, evse_uid: str | None = None) -> int:
        """Price connectors (all, or one EVSE's) with ``tariff_id``; returns how many."""
        with self.engine.begin() as c:
            if not c.execute(sa.select(tariffs.c.id).where(tariffs.c.id == tariff_id)).first():
                raise NotFound(f"unknown tariff {tariff_id!r}")
            stmt = connectors.update().values(tariff_id=tariff_id, last_updated=utcnow())
            if evse_uid is not None:
                stmt = stmt.where(connectors.c.evse_uid == evse_uid)
            return c.execute(stmt).rowcount

    # -- partners and credentials --

    def add_partner(self, name: str, country_code: str | None = None,
                    party_id: str | None = None) -> tuple[int, str]:
        """Create a partner and issue its CREDENTIALS_TOKEN_A; returns (id, token_a)."""
        token_a = new_credentials_token()
        with self.engine.begin() as c:
            partner_id = c.execute(partners.insert().values(
                name=name, country_code=country_code, party_id=party_id, role="EMSP",
                token_a_hash=token_digest(token_a), registered=False,
                last_updated=utcnow())).inserted_primary_key[0]
        return int(partner_id), token_a

    def partner_by_token(self, token: str) -> tuple[RowMapping, str] | None:
        """The partner holding ``token`` and which kind it is: ("A" or "C")."""
        digest = token_digest(token)
        with self.engine.connect() as c:
            row = c.execute(sa.select(partners).where(partners.c.token_c_hash == digest)
                            ).mappings().first()
            if row is not None:
                return row, "C"
            row = c.execute(sa.select(partners).where(partners.c.token_a_hash == digest)
                            ).mappings().first()
            if row is not None:
                return row, "A"
        return None

    def get_partner(self, partner_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(partners).where(partners.c.id == partner_id)
                             ).mappings().first()

    def list_partners(self) -> list[RowMapping]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(partners).order_by(partners.c.id)).mappings().all())

    def register_partner(self, partner_id: int, their_token: str, their_versions_url: str,
                         their_version: str, their_endpoints: list[dict[str, Any]],
                         country_code: str, party_id: str, name: str) -> str:
        """Store the eMSP's credentials, retire TOKEN_A, issue a new TOKEN_C (returned)."""
        token_c = new_credentials_token()
        with self.engine.begin() as c:
            c.execute(partners.update().where(partners.c.id == partner_id).values(
                their_token=their_token, their_versions_url=their_versions_url,
                their_version=their_version, their_endpoints=their_endpoints,
                country_code=country_code, party_id=party_id, name=name,
                token_a_hash=None, token_c_hash=token_digest(token_c), registered=True,
                last_updated=utcnow()))
        return token_c

    def add_initiating_partner(self, name: str) -> tuple[int, str]:
        """A partner we register with ourselves: issue the token they will use to call us
        (our CREDENTIALS_TOKEN_B) before we POST it, since they call back during the POST."""
        token_b = new_credentials_token()
        with self.engine.begin() as c:
            partner_id = c.execute(partners.insert().values(
                name=name, role="EMSP", token_c_hash=token_digest(token_b), registered=False,
                last_updated=utcnow())).inserted_primary_key[0]
        return int(partner_id), token_b

    def complete_registration(self, partner_id: int, their_token: str,
                              their_versions_url: str, their_version: str,
                              their_endpoints: list[dict[str, Any]], country_code: str,
                              party_id: str, name: str) -> None:
        """Store the peer's token and endpoints once they accepted our credentials."""
        with self.engine.begin() as c:
            c.execute(partners.update().where(partners.c.id == partner_id).values(
                their_token=their_token, their_versions_url=their_versions_url,
                their_version=their_version, their_endpoints=their_endpoints,
                country_code=country_code, party_id=party_id, name=name, registered=True,
                last_updated=utcnow()))

    def delete_partner(self, partner_id: int) -> None:
        """Forget a partner whose registration failed (nothing refers to it yet)."""
        with self.engine.begin() as c:
            c.execute(partners.delete().where(partners.c.id == partner_id))

    def queue_full_sync(self, partner_id: int) -> int:
        """Queue PUTs of every location and tariff to one newly registered partner."""
        with self.engine.begin() as c:
            partner = c.execute(sa.select(partners).where(partners.c.id == partner_id)
                                ).mappings().one()
            queued = 0
            base = receiver_url(partner["their_endpoints"], "locations")
            if base is not None:
                rows = c.execute(sa.select(locations).order_by(locations.c.id)).mappings().all()
                for body in self._location_objects(c, rows):
                    queued += self._enqueue_one(
                        c, partner_id, "locations", "PUT",
                        f"{base.rstrip('/')}/{body['country_code']}/{body['party_id']}/"
                        f"{body['id']}", body)
            base = receiver_url(partner["their_endpoints"], "tariffs")
            if base is not None:
                for body in c.execute(sa.select(tariffs.c.data).order_by(tariffs.c.id)
                                      ).scalars():
                    queued += self._enqueue_one(
                        c, partner_id, "tariffs", "PUT",
                        f"{base.rstrip('/')}/{body['country_code']}/{body['party_id']}/"
                        f"{body['id']}", body)
            return queued

    def _enqueue_one(self, c: Connection, partner_id: int, module: str, method: str, url: str,
                     body: Any) -> int:
        now = utcnow()
        c.execute(push_queue.insert().values(
            partner_id=partner_id, module=module, method=method, url=url, body=body,
            status="PENDING", attempts=0, next_attempt_at=now, created_at=now))
        return 1

    def unregister_partner(self, partner_id: int) -> None:
        """DELETE /credentials: forget their token and ours; pending pushes are dropped."""
        with self.engine.begin() as c:
            c.execute(push_queue.update().where(push_queue.c.partner_id == partner_id,
                                                push_queue.c.status == "PENDING")
                      .values(status="FAILED", last_error="partner unregistered"))
            c.execute(partners.update().where(partners.c.id == partner_id).values(
                their_token=None, their_endpoints=None, token_c_hash=None, registered=False,
                last_updated=utcnow()))

    # -- tokens (OCPI Receiver) --

    def put_token(self, token: m.Token, partner_id: int | None) -> bool:
        """Create or replace a token; True when it was created."""
        body = _dump(token)
        key = (tokens.c.country_code == token.country_code,
               tokens.c.party_id == token.party_id, tokens.c.uid == token.uid,
               tokens.c.type == token.type)
        values = dict(contract_id=token.contract_id, valid=token.valid,
                      whitelist=token.whitelist, partner_id=partner_id, data=body,
                      last_updated=token.last_updated)
        with self.engine.begin() as c:
            if c.execute(tokens.update().where(*key).values(**values)).rowcount:
                return False
            c.execute(tokens.insert().values(country_code=token.country_code,
                                             party_id=token.party_id, uid=token.uid,
                                             type=token.type, **values))
            return True

    def add_local_token(self, uid: str, *, whitelist: str = "ALWAYS", valid: bool = True,
                        token_type: str = "RFID", issuer: str = "chargerfw csms",
                        contract_id: str | None = None) -> bool:
        """A token of the site's own (cards the operator hands out, no eMSP behind it), under
        our country code and party id. True when it was created, False when replaced."""
        try:
            token = m.Token.model_validate({
                "country_code": self.cpo.country_code, "party_id": self.cpo.party_id,
                "uid": uid, "type": token_type,
                "contract_id": contract_id or f"{self.cpo.country_code}-{self.cpo.party_id}-{uid}"[:36],
                "issuer": issuer, "valid": valid, "whitelist": whitelist,
                "last_updated": utcnow()})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise StoreError(f"token {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        return self.put_token(token, None)

    def get_token(self, country_code: str, party_id: str, uid: str,
                  token_type: str = "RFID") -> dict[str, Any] | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(tokens.c.data).where(
                tokens.c.country_code == country_code, tokens.c.party_id == party_id,
                tokens.c.uid == uid, tokens.c.type == token_type)).scalar_one_or_none()

    def patch_token(self, country_code: str, party_id: str, uid: str, token_type: str,
                    patch: m.TokenPatch) -> dict[str, Any]:
        changes = patch.model_dump(mode="json", exclude_unset=True)
        with self.engine.begin() as c:
            current = c.execute(sa.select(tokens.c.data).where(
                tokens.c.country_code == country_code, tokens.c.party_id == party_id,
                tokens.c.uid == uid, tokens.c.type == token_type)).scalar_one_or_none()
            if current is None:
                raise NotFound(f"unknown token {country_code}/{party_id}/{uid}")
            if {"uid", "country_code", "party_id", "type"} & changes.keys():
                raise StoreError("a PATCH may not change the token's identity")
            merged = m.Token.model_validate({**current, **changes})
            body = _dump(merged)
            c.execute(tokens.update().where(
                tokens.c.country_code == country_code, tokens.c.party_id == party_id,
                tokens.c.uid == uid, tokens.c.type == token_type).values(
                contract_id=merged.contract_id, valid=merged.valid,
                whitelist=merged.whitelist, data=body, last_updated=merged.last_updated))
        return body

    def tokens_by_uid(self, uid: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(tokens.c.data).where(tokens.c.uid == uid)
                                  .order_by(tokens.c.last_updated.desc())).scalars().all())

    # -- transactions --

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
                evse = c.execute(sa.select(evses).where(
                    evses.c.charge_point_id == req.charge_point_id,
                    evses.c.ocpp_connector_id == req.connector_id)).mappings().first()
                tariff_id = None
                currency = self.cpo.currency
                if evse is not None:
                    tariff_id = c.execute(sa.select(connectors.c.tariff_id).where(
                        connectors.c.evse_uid == evse["uid"]).order_by(connectors.c.id)
                    ).scalars().first()
                    if tariff_id is not None:
                        currency = c.execute(sa.select(tariffs.c.currency).where(
                            tariffs.c.id == tariff_id)).scalar_one()
                tx_id = c.execute(transactions.insert().values(
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
                    tariff_id=tariff_id, last_updated=now)).inserted_primary_key[0]
                if req.reservation_id is not None:
                    c.execute(reservations.update().where(
                        reservations.c.id == req.reservation_id,
                        reservations.c.charge_point_id == req.charge_point_id,
                        reservations.c.status == "ACCEPTED").values(status="USED"))
                row = c.execute(sa.select(transactions).where(transactions.c.id == tx_id)
                                ).mappings().one()
                if accepted and evse is not None:
                    self._push_session(c, row, "PUT")
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
            stamps = {s.timestamp for s in samples}
            seen = {(r.timestamp, r.measurand, r.phase, r.context) for r in c.execute(
                sa.select(meter_values.c.timestamp, meter_values.c.measurand,
                          meter_values.c.phase, meter_values.c.context).where(
                    meter_values.c.charge_point_id == charge_point_id,
                    meter_values.c.connector_id == connector_id,
                    meter_values.c.timestamp.in_(stamps)))}
            fresh = []
            for s in samples:
                ident = (s.timestamp, s.measurand, s.phase, "")
                if ident in seen:
                    continue
                seen.add(ident)
                fresh.append(dict(charge_point_id=charge_point_id, connector_id=connector_id,
                                  transaction_id=tx["id"] if tx else None,
                                  timestamp=s.timestamp, measurand=s.measurand, phase=s.phase,
                                  context="", unit="", value=s.value))
            if fresh:
                c.execute(meter_values.insert(), fresh)
            if tx is None or tx["status"] != "ACTIVE":
                return None
            energy = [s for s in samples if s.measurand == billing.ENERGY_REGISTER
                      and not s.phase]
            if not energy:
                return None
            latest = max(energy, key=lambda s: s.timestamp)
            meter_wh = int(round(latest.value))
            if meter_wh <= tx["meter_last"]:
                return None
            c.execute(transactions.update().where(transactions.c.id == tx["id"])
                      .values(meter_last=meter_wh, last_updated=utcnow()))
            row = c.execute(sa.select(transactions).where(transactions.c.id == tx["id"])
                            ).mappings().one()
            if row["evse_uid"] is not None:
                self._push_session(c, row, "PATCH")
            return row

    def stop_transaction(self, charge_point_id: str, transaction_id: int, meter_stop: int,
                         timestamp: datetime, reason: str | None,
                         samples: Sequence[billing.Sample] = ()) -> tuple[RowMapping | None,
                                                                          bool]:
        """Close a transaction and write its CDR; a repeated StopTransaction changes nothing.

        Returns (transaction row or None when unknown, stopped now).
        """
        if samples:
            self.add_meter_values(charge_point_id,
                                  self._connector_of(transaction_id) or 0, transaction_id,
                                  samples)
        with self.engine.begin() as c:
            tx = c.execute(sa.select(transactions).where(
                transactions.c.id == transaction_id,
                transactions.c.charge_point_id == charge_point_id)).mappings().first()
            if tx is None:
                return None, False
            if tx["stop_time"] is not None:
                return tx, False
            now = utcnow()
            status = "COMPLETED" if tx["status"] == "ACTIVE" else tx["status"]
            c.execute(transactions.update().where(transactions.c.id == transaction_id).values(
                meter_stop=meter_stop, meter_last=max(meter_stop, tx["meter_last"]),
                stop_time=timestamp, stop_reason=reason, status=status, last_updated=now))
            row = c.execute(sa.select(transactions).where(transactions.c.id == transaction_id)
                            ).mappings().one()
            if status == "COMPLETED" and row["evse_uid"] is not None:
                self._push_session(c, row, "PUT")
                cdr = self._build_cdr(c, row)
                c.execute(cdrs.insert().values(id=cdr["id"], transaction_id=transaction_id,
                                               data=cdr, last_updated=now))
                self._enqueue_all(c, "cdrs", "POST", lambda url: url, cdr)
            return row, True

    def _connector_of(self, transaction_id: int) -> int | None:
        tx = self.get_transaction(transaction_id)
        return tx["connector_id"] if tx else None

    def active_transaction(self, charge_point_id: str, connector_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(transactions).where(
                transactions.c.charge_point_id == charge_point_id,
                transactions.c.connector_id == connector_id,
                transactions.c.stop_time.is_(None),
                transactions.c.status == "ACTIVE").order_by(transactions.c.id.desc())
            ).mappings().first()

    # -- OCPI sessions and CDRs --

    def _samples(self, c: Connection, tx_ids: Iterable[int]) -> dict[int, list[billing.Sample]]:
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

    def _first_connector(self, c: Connection, evse_uid: str) -> RowMapping:
        return c.execute(sa.select(connectors).where(connectors.c.evse_uid == evse_uid)
                         .order_by(connectors.c.id)).mappings().first()

    def _session_object(self, c: Connection, tx: RowMapping, samples: list[billing.Sample],
                        connector: RowMapping | None = None) -> dict[str, Any]:
        connector = connector or self._first_connector(c, tx["evse_uid"])
        periods = billing.charging_periods(tx["start_time"], tx["meter_start"], samples,
                                           tx["stop_time"], tx["meter_stop"], tx["tariff_id"])
        obj: dict[str, Any] = {
            "country_code": self.cpo.country_code, "party_id": self.cpo.party_id,
            "id": tx["session_id"], "start_date_time": tx["start_time"],
            "end_date_time": tx["stop_time"],
            "kwh": Decimal(tx["meter_last"] - tx["meter_start"]) / 1000,
            "cdr_token": _cdr_token(tx, self.cpo), "auth_method": tx["auth_method"],
            "authorization_reference": tx["authorization_reference"],
            "location_id": tx["location_id"], "evse_uid": tx["evse_uid"],
            "connector_id": connector["id"], "currency": tx["currency"],
            "charging_periods": periods or None, "status": tx["status"],
            "last_updated": tx["last_updated"]}
        if tx["stop_time"] is not None:
            # Priced exactly as its CDR is.
            cost, _, _ = self._finished_cost(c, tx, samples)
            obj["total_cost"] = billing.price_dict(cost.total)
        return _dump(m.Session.model_validate(obj))

    def _finished_cost(self, c: Connection, tx: RowMapping, samples: list[billing.Sample]
                       ) -> tuple[billing.Cost, list[dict[str, Any]], float]:
        """A finished transaction's cost, charging periods and charging seconds."""
        # A meter that was replaced or reset mid-session must not produce negative energy.
        energy_wh = max(tx["meter_stop"] - tx["meter_start"], 0)
        periods = billing.charging_periods(tx["start_time"], tx["meter_start"], samples,
                                           tx["stop_time"], tx["meter_start"] + energy_wh,
                                           tx["tariff_id"])
        charging_s = billing.charging_seconds(periods, tx["stop_time"])
        cost = billing.compute_cost(self._tariff_data(c, tx["tariff_id"]), energy_wh,
                                    tx["start_time"], tx["stop_time"], charging_s)
        return cost, periods, charging_s

    def _push_session(self, c: Connection, tx: RowMapping, method: str) -> None:
        def body() -> dict[str, Any]:
            session = self._session_object(c, tx, self._samples(c, [tx["id"]])[tx["id"]])
            if method == "PATCH":
                return {key: session[key] for key in ("kwh", "charging_periods",
                                                      "last_updated") if key in session}
            return session

        self._enqueue_all(c, "sessions", method,
                          lambda url: f"{url}/{self.cpo.country_code}/{self.cpo.party_id}/"
                                      f"{tx['session_id']}", body)

    def list_sessions(self, query: PageQuery) -> Page:
        conditions = [transactions.c.evse_uid.is_not(None),
                      *_date_filter(transactions.c.last_updated, query)]
        with self.engine.connect() as c:
            total = c.execute(sa.select(sa.func.count()).select_from(transactions)
                              .where(*conditions)).scalar_one()
            rows = c.execute(sa.select(transactions).where(*conditions)
                             .order_by(transactions.c.last_updated, transactions.c.id)
                             .offset(query.offset).limit(query.limit)).mappings().all()
            samples = self._samples(c, [r["id"] for r in rows])
            uids = {r["evse_uid"] for r in rows}
            first_conn: dict[str, RowMapping] = {}
            for conn in c.execute(sa.select(connectors).where(connectors.c.evse_uid.in_(uids))
                                  .order_by(connectors.c.id.desc())).mappings():
                first_conn[conn["evse_uid"]] = conn
            items = [self._session_object(c, r, samples[r["id"]], first_conn.get(r["evse_uid"]))
                     for r in rows]
        return Page(items, total)

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            tx = c.execute(sa.select(transactions).where(
                transactions.c.session_id == session_id,
                transactions.c.evse_uid.is_not(None))).mappings().first()
            if tx is None:
                return None
            return self._session_object(c, tx, self._samples(c, [tx["id"]])[tx["id"]])

    def _tariff_data(self, c: Connection, tariff_id: str | None) -> dict[str, Any] | None:
        if tariff_id is None:
            return None
        return c.execute(sa.select(tariffs.c.data).where(tariffs.c.id == tariff_id)
                         ).scalar_one_or_none()

    def _build_cdr(self, c: Connection, tx: RowMapping) -> dict[str, Any]:
        evse = c.execute(sa.select(evses).where(evses.c.uid == tx["evse_uid"])).mappings().one()
        loc = c.execute(sa.select(locations).where(locations.c.id == evse["location_id"])
                        ).mappings().one()
        conn = self._first_connector(c, evse["uid"])
        samples = self._samples(c, [tx["id"]])[tx["id"]]
        energy_wh = max(tx["meter_stop"] - tx["meter_start"], 0)
        tariff = self._tariff_data(c, tx["tariff_id"])
        cost, periods, charging_s = self._finished_cost(c, tx, samples)
        session_s = (tx["stop_time"] - tx["start_time"]).total_seconds()
        obj: dict[str, Any] = {
            "country_code": self.cpo.country_code, "party_id": self.cpo.party_id,
            "id": tx["session_id"], "start_date_time": tx["start_time"],
            "end_date_time": tx["stop_time"], "session_id": tx["session_id"],
            "cdr_token": _cdr_token(tx, self.cpo), "auth_method": tx["auth_method"],
            "authorization_reference": tx["authorization_reference"],
            "cdr_location": {
                "id": loc["id"], "name": loc["name"], "address": loc["address"],
                "city": loc["city"], "postal_code": loc["postal_code"],
                "country": loc["country"],
                "coordinates": {"latitude": loc["latitude"], "longitude": loc["longitude"]},
                "evse_uid": evse["uid"], "evse_id": evse["evse_id"] or evse["uid"],
                "connector_id": conn["id"], "connector_standard": conn["standard"],
                "connector_format": conn["format"], "connector_power_type": conn["power_type"]},
            "currency": tx["currency"],
            "tariffs": [tariff] if tariff else None,
            "charging_periods": periods,
            "total_cost": billing.price_dict(cost.total),
            "total_fixed_cost": billing.price_dict(cost.fixed),
            "total_energy": Decimal(energy_wh) / 1000,
            "total_energy_cost": billing.price_dict(cost.energy),
            "total_time": billing.hours_between(tx["start_time"], tx["stop_time"]),
            "total_time_cost": billing.price_dict(cost.time),
            "total_parking_time": billing.seconds_to_hours(session_s - charging_s),
            "last_updated": utcnow()}
        return _dump(m.CDR.model_validate(obj))

    def list_cdrs(self, query: PageQuery) -> Page:
        conditions = _date_filter(cdrs.c.last_updated, query)
        with self.engine.connect() as c:
            total = c.execute(sa.select(sa.func.count()).select_from(cdrs)
                              .where(*conditions)).scalar_one()
            rows = c.execute(sa.select(cdrs.c.data).where(*conditions)
                             .order_by(cdrs.c.last_updated, cdrs.c.id)
                             .offset(query.offset).limit(query.limit)).scalars().all()
        return Page(list(rows), total)

    # -- reservations --

    def create_reservation(self, charge_point_id: str, connector_id: int, id_tag: str,
                           expiry: datetime, partner_id: int | None,
                           ocpi_reservation_id: str | None) -> int:
        with self.engine.begin() as c:
            return int(c.execute(reservations.insert().values(
                charge_point_id=charge_point_id, connector_id=connector_id, id_tag=id_tag,
                expiry=expiry, status="PENDING", partner_id=partner_id,
                ocpi_reservation_id=ocpi_reservation_id, created_at=utcnow())
            ).inserted_primary_key[0])

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

    # -- pending commands --

    def create_command(self, partner_id: int | None, command: str, request: dict[str, Any],
                       response_url: str, charge_point_id: str | None, id_tag: str | None,
                       timeout_s: float) -> int:
        now = utcnow()
        with self.engine.begin() as c:
            return int(c.execute(pending_commands.insert().values(
                partner_id=partner_id, command=command, request=request,
                response_url=response_url, charge_point_id=charge_point_id, id_tag=id_tag,
                status="PENDING", created_at=now,
                deadline=now + timedelta(seconds=timeout_s))).inserted_primary_key[0])

    def finish_command(self, command_id: int, result: str) -> None:
        with self.engine.begin() as c:
            c.execute(pending_commands.update().where(pending_commands.c.id == command_id)
                      .values(status=result, finished_at=utcnow()))

    def command_for_id_tag(self, charge_point_id: str, id_tag: str,
                           within: timedelta = timedelta(minutes=10)) -> RowMapping | None:
        """The eMSP command that vouches for this idTag at this charger, if any.

        A START_SESSION sent in the last ``within`` (answered or not yet: the charger may
        start before its answer is recorded), or an accepted RESERVE_NOW not yet expired.
        """
        now = utcnow()
        with self.engine.connect() as c:
            for row in c.execute(sa.select(pending_commands).where(
                    pending_commands.c.command.in_(("START_SESSION", "RESERVE_NOW")),
                    pending_commands.c.charge_point_id == charge_point_id,
                    pending_commands.c.id_tag == id_tag,
                    pending_commands.c.status.in_(("PENDING", "ACCEPTED")))
                    .order_by(pending_commands.c.id.desc())).mappings():
                if row["command"] == "START_SESSION" and row["created_at"] >= now - within:
                    return row
                if row["command"] == "RESERVE_NOW" and row["status"] == "ACCEPTED":
                    expiry = m.ReserveNow.model_validate(row["request"]).expiry_date
                    if expiry > now:
                        return row
        return None

    def get_command(self, command_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(pending_commands).where(
                pending_commands.c.id == command_id)).mappings().first()

    # -- durable push queue --

    def _enqueue_all(self, c: Connection, module: str, method: str,
                     url_for: Callable[[str], str], body: Any) -> int:
        """Queue a push to every registered partner that receives ``module``.

        ``body`` may be a callable: it is then built only when someone receives it.
        """
        now = utcnow()
        receivers = [(partner["id"], base) for partner in c.execute(
            sa.select(partners.c.id, partners.c.their_endpoints)
            .where(partners.c.registered.is_(True))).mappings()
            if (base := receiver_url(partner["their_endpoints"], module)) is not None]
        if not receivers:
            return 0
        if callable(body):
            body = body()
        c.execute(push_queue.insert(), [
            dict(partner_id=partner_id, module=module, method=method,
                 url=url_for(base.rstrip("/")), body=body, status="PENDING", attempts=0,
                 next_attempt_at=now, created_at=now) for partner_id, base in receivers])
        return len(receivers)

    def enqueue_push(self, partner_id: int, module: str, method: str, url: str,
                     body: Any) -> int:
        """Queue one push to one partner (e.g. a CommandResult to its response_url)."""
        now = utcnow()
        with self.engine.begin() as c:
            return int(c.execute(push_queue.insert().values(
                partner_id=partner_id, module=module, method=method, url=url, body=body,
                status="PENDING", attempts=0, next_attempt_at=now, created_at=now)
            ).inserted_primary_key[0])

    def due_pushes(self, now: datetime | None = None, limit: int = 100) -> list[PushItem]:
        """The oldest pending push of each partner, when it is due (pushes stay in order)."""
        now = now or utcnow()
        with self.engine.connect() as c:
            heads = (sa.select(sa.func.min(push_queue.c.id))
                     .where(push_queue.c.status == "PENDING")
                     .group_by(push_queue.c.partner_id))
            rows = c.execute(sa.select(push_queue, partners.c.their_token,
                                       partners.c.country_code, partners.c.party_id)
                             .join(partners, partners.c.id == push_queue.c.partner_id)
                             .where(push_queue.c.id.in_(heads),
                                    push_queue.c.next_attempt_at <= now)
                             .order_by(push_queue.c.id).limit(limit)).mappings().all()
        return [PushItem(r["id"], r["partner_id"], r["module"], r["method"], r["url"],
                         r["body"], r["attempts"], r["their_token"], r["country_code"],
                         r["party_id"]) for r in rows]

    def push_done(self, push_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(push_queue.update().where(push_queue.c.id == push_id)
                      .values(status="DONE", done_at=utcnow()))

    def push_failed(self, push_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt; ``retry_at`` None gives up on the push."""
        with self.engine.begin() as c:
            c.execute(push_queue.update().where(push_queue.c.id == push_id).values(
                attempts=push_queue.c.attempts + 1, last_error=error[:500],
                status="PENDING" if retry_at else "FAILED",
                next_attempt_at=retry_at or utcnow()))

    def pushes(self, status: str | None = None) -> list[RowMapping]:
        with self.engine.connect() as c:
            stmt = sa.select(push_queue).order_by(push_queue.c.id)
            if status is not None:
                stmt = stmt.where(push_queue.c.status == status)
            return list(c.execute(stmt).mappings().all())

    # -- administration listings --

    def transactions_table(self, limit: int = 100) -> list[RowMapping]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(transactions).order_by(transactions.c.id.desc())
                                  .limit(limit)).mappings().all())


def receiver_url(endpoints: list[dict[str, Any]] | None, module: str) -> str | None:
    """The URL of a partner's RECEIVER endpoint for ``module``."""
    for endpoint in endpoints or []:
        if endpoint.get("identifier") == module and endpoint.get("role") == "RECEIVER":
            return str(endpoint["url"])
    return None


def sender_url(endpoints: list[dict[str, Any]] | None, module: str) -> str | None:
    """The URL of a partner's SENDER endpoint for ``module`` (e.g. eMSP tokens)."""
    for endpoint in endpoints or []:
        if endpoint.get("identifier") == module and endpoint.get("role") == "SENDER":
            return str(endpoint["url"])
    return None


def _date_filter(column: sa.ColumnElement[Any], query: PageQuery) -> list[Any]:
    conditions: list[Any] = []
    if query.date_from is not None:
        conditions.append(column >= query.date_from)
    if query.date_to is not None:
        conditions.append(column < query.date_to)
    return conditions


def _connector_object(row: RowMapping) -> dict[str, Any]:
    obj = {key: row[key] for key in ("id", "standard", "format", "power_type", "max_voltage",
                                     "max_amperage", "max_electric_power", "last_updated")}
    if row["tariff_id"]:
        obj["tariff_ids"] = [row["tariff_id"]]
    return obj


def _cdr_token(tx: RowMapping, cpo: CpoIdentity) -> dict[str, Any]:
    # A token we know nothing about (e.g. accepted offline) is reported under our own party.
    return {"country_code": tx["token_country_code"] or cpo.country_code,
            "party_id": tx["token_party_id"] or cpo.party_id, "uid": tx["id_tag"],
            "type": tx["token_type"] or "RFID", "contract_id": tx["contract_id"] or tx["id_tag"]}


class AsyncStore:
    """Runs ``Store`` methods on worker threads so the event loop never blocks on the DB.

    SQLite gets one worker (one writer at a time is what it supports anyway); PostgreSQL a few.
    """

    def __init__(self, store: Store, workers: int | None = None) -> None:
        self.store = store
        if workers is None:
            workers = 1 if store.engine.dialect.name == "sqlite" else 4
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="csms-db")

    async def __call__(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(method, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
