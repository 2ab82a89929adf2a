"""Charge points, their EVSEs and connectors: registration by the operator (or on first
connect), what they report over OCPP (boot, heartbeat, connector statuses), and the EVSE
statuses partners see."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.hashing import hash_password
from chargerfw.csms.store.locations import (
    ensure_location,
    push_evse_status,
    push_location,
    touch_locations,
)
from chargerfw.csms.store.status import evse_status, is_offline
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.tariffs import check_tariff
from chargerfw.csms.store.transactions import (
    mark_open_at_boot,
    note_connector_status_after_boot,
)
from chargerfw.csms.store.values import (
    AlreadyExists,
    CpoIdentity,
    EvseChange,
    EvseSpec,
    LocationSpec,
    NotFound,
    StoreError,
    check_evse_id,
    utcnow,
)
from chargerfw.csms.tables import charge_points, connector_status, connectors, evses
from chargerfw.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ChargePoints:
    engine: StoreEngine
    cpo: CpoIdentity

    # -- registration (administration) --

    def add_charge_point(self, charge_point_id: str, password: str | None,
                         location: LocationSpec | None, evse_specs: Sequence[EvseSpec],
                         tariff_id: str | None = None, rfid_reader: bool = True) -> None:
        """Register a charge point with its location, EVSEs and connectors.

        An existing location (same id) is reused; its address is not changed. An EVSE
        without an evse_id gets one in eMI3 form (``CpoIdentity.evse_id_format``).
        ``rfid_reader``: whether drivers can start with a card there.
        """
        self.add_charge_points([(charge_point_id, password, location, evse_specs, tariff_id,
                                 rfid_reader)])

    def add_charge_points(self, registrations: Sequence[tuple[
            str, str | None, LocationSpec | None, Sequence[EvseSpec], str | None, bool]],
                          ) -> None:
        """Register several charge points (id, password, location, EVSEs, tariff, RFID
        reader; as :meth:`add_charge_point`) in one database transaction: all or none."""
        now = utcnow()
        for _, _, location, evse_specs, _, _ in registrations:
            _check_specs(location, evse_specs, now)
        try:
            with self.engine.begin() as c:
                locations_changed: set[str] = set()
                for (charge_point_id, password, location, evse_specs, tariff_id,
                     rfid_reader) in registrations:
                    if c.execute(sa.select(charge_points.c.id)
                                 .where(charge_points.c.id == charge_point_id)).first():
                        raise AlreadyExists(f"charge point {charge_point_id!r} exists already")
                    check_tariff(c, tariff_id)
                    ensure_location(c, self.cpo, location, now)
                    c.execute(charge_points.insert().values(
                        id=charge_point_id,
                        password_hash=hash_password(password) if password else None,
                        location_id=location.id if location else None, auto_registered=False,
                        rfid_reader=rfid_reader, created_at=now))
                    _insert_evses(c, self.cpo, charge_point_id, location, evse_specs,
                                  tariff_id, now)
                    if location is not None:
                        locations_changed.add(location.id)
                for location_id in sorted(locations_changed):
                    push_location(c, self.cpo, location_id)
        except IntegrityError as exc:
            raise AlreadyExists(f"conflicting identifiers: {exc.orig}") from None

    def attach_charge_point(self, charge_point_id: str, location: LocationSpec,
                            evse_specs: Sequence[EvseSpec], tariff_id: str | None = None,
                            password: str | None = None, clear_password: bool = False,
                            rfid_reader: bool | None = None) -> None:
        """Give a registered charge point without EVSEs (e.g. one that auto-registered on
        first connect) its location, EVSEs and connectors.

        ``password`` replaces its Basic-auth password, ``clear_password`` lets it connect
        without one; neither keeps what it has. ``rfid_reader`` None keeps what is known of
        its token reader. Its transactions are left as they are. A
        charge point that has EVSEs already is refused: changing EVSEs would orphan the
        sessions and CDRs partners hold for them.
        """
        if password and clear_password:
            raise StoreError("give a password or clear it, not both")
        now = utcnow()
        _check_specs(location, evse_specs, now)
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
                check_tariff(c, tariff_id)
                ensure_location(c, self.cpo, location, now)
                values: dict[str, Any] = {"location_id": location.id}
                if rfid_reader is not None:
                    values["rfid_reader"] = rfid_reader
                if password:
                    values["password_hash"] = hash_password(password)
                elif clear_password:
                    values["password_hash"] = None
                c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                          .values(**values))
                _insert_evses(c, self.cpo, charge_point_id, location, evse_specs, tariff_id,
                              now)
                # Every connector it has told us of becomes an EVSE, not only those named.
                _add_evses_for_reported(c, self.cpo, charge_point_id, now)
                push_location(c, self.cpo, location.id)
        except IntegrityError as exc:
            raise AlreadyExists(f"conflicting identifiers: {exc.orig}") from None

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

    # -- reading --

    def list_charge_points(self) -> list[dict[str, Any]]:
        """Every charge point with its EVSE mapping, last connector statuses, connection
        and what it supports."""
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
                "client_certificate_required": cp["client_certificate_required"],
                "auto_registered": cp["auto_registered"], "vendor": cp["vendor"],
                "model": cp["model"], "firmware_version": cp["firmware_version"],
                "last_boot": cp["last_boot"], "last_heartbeat": cp["last_heartbeat"],
                "connected": cp["connected"], "last_seen": cp["last_seen"],
                "offline": cp["offline"], "feature_profiles": cp["feature_profiles"],
                "rfid_reader": cp["rfid_reader"], "security_profile": cp["security_profile"],
                "evses": [{"uid": e["uid"], "evse_id": e["evse_id"],
                           "ocpp_connector_id": e["ocpp_connector_id"], "status": e["status"]}
                          for e in evse_rows if e["charge_point_id"] == cp["id"]],
                "connectors": {s["connector_id"]: s["status"] for s in status_rows
                               if s["charge_point_id"] == cp["id"]}})
        return result

    def get_charge_point(self, charge_point_id: str) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(charge_points)
                             .where(charge_points.c.id == charge_point_id)).mappings().first()

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

    # -- what the charge point reports --

    def record_boot(self, charge_point_id: str, vendor: str, model: str,
                    serial_number: str | None, firmware_version: str | None
                    ) -> list[EvseChange]:
        """Store a BootNotification; returns the EVSEs back from offline."""
        now = utcnow()
        with self.engine.begin() as c:
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(vendor=vendor, model=model, serial_number=serial_number,
                              firmware_version=firmware_version, last_boot=now,
                              last_heartbeat=now))
            mark_open_at_boot(c, charge_point_id)
            return _seen(c, self.cpo, charge_point_id, now)

    def record_heartbeat(self, charge_point_id: str) -> list[EvseChange]:
        """Store a Heartbeat; returns the EVSEs back from offline."""
        now = utcnow()
        with self.engine.begin() as c:
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(last_heartbeat=now))
            return _seen(c, self.cpo, charge_point_id, now)

    def record_seen(self, charge_point_id: str) -> list[EvseChange]:
        """Any message from the charger; returns the EVSEs back from offline."""
        with self.engine.begin() as c:
            return _seen(c, self.cpo, charge_point_id, utcnow())

    def record_feature_profiles(self, charge_point_id: str, profiles: Sequence[str]) -> bool:
        """Store the OCPP feature profiles a charger supports (its SupportedFeatureProfiles);
        its EVSEs' capabilities follow, and partners get its locations again when they
        changed. Returns whether they changed."""
        value = ",".join(sorted({p.strip() for p in profiles if p.strip()}))[:255]
        now = utcnow()
        with self.engine.begin() as c:
            if c.execute(sa.select(charge_points.c.feature_profiles).where(
                    charge_points.c.id == charge_point_id)).scalar() == value:
                return False
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(feature_profiles=value))
            _evses_changed(c, self.cpo, charge_point_id, now)
            return True

    def set_rfid_reader(self, charge_point_id: str, present: bool) -> None:
        """Say whether a charger has a token reader (its EVSEs' RFID_READER capability)."""
        now = utcnow()
        with self.engine.begin() as c:
            updated = c.execute(charge_points.update().where(
                charge_points.c.id == charge_point_id).values(rfid_reader=present))
            if updated.rowcount == 0:
                raise NotFound(f"unknown charge point {charge_point_id!r}")
            _evses_changed(c, self.cpo, charge_point_id, now)

    def require_client_certificate(self, charge_point_id: str, required: bool) -> bool:
        """Whether the charger must present a client certificate from now on; returns
        whether that changed."""
        with self.engine.begin() as c:
            current = c.execute(sa.select(charge_points.c.client_certificate_required).where(
                charge_points.c.id == charge_point_id)).scalar_one_or_none()
            if current is None:
                raise NotFound(f"unknown charge point {charge_point_id!r}")
            if current == required:
                return False
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(client_certificate_required=required))
            return True

    # -- its connection: chargers that drop off show UNKNOWN until they return --

    def charger_connected(self, charge_point_id: str, worker_id: str | None = None,
                          address: str | None = None) -> list[EvseChange]:
        """The charger opened its OCPP connection (held by backend process ``worker_id``
        when several share the database); returns the EVSEs back from offline."""
        now = utcnow()
        with self.engine.begin() as c:
            c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
                      .values(connected=True, worker_id=worker_id, connected_from=address))
            return _seen(c, self.cpo, charge_point_id, now)

    def charger_disconnected(self, charge_point_id: str, worker_id: str | None = None
                             ) -> bool:
        """Its OCPP connection closed: the grace period runs from now. Only the process
        holding it says so: the charger may already be connected to another one. Returns
        whether it was still held by ``worker_id``."""
        with self.engine.begin() as c:
            return bool(c.execute(charge_points.update().where(
                charge_points.c.id == charge_point_id,
                charge_points.c.worker_id.is_not_distinct_from(worker_id))
                .values(connected=False, worker_id=None, last_seen=utcnow())).rowcount)

    def reset_connections(self, now: datetime | None = None) -> int:
        """At start: no charger is connected yet. Those that were (the backend stopped under
        them) get the grace period from ``now`` to come back. Returns how many."""
        now = now or utcnow()
        with self.engine.begin() as c:
            return int(c.execute(charge_points.update().where(
                charge_points.c.connected.is_(True)).values(connected=False, last_seen=now)
            ).rowcount)

    def sweep_offline(self, grace: timedelta, heartbeat_interval: timedelta,
                      now: datetime | None = None) -> list[EvseChange]:
        """Show the EVSEs of every charger silent past ``grace`` (see
        :func:`~chargerfw.csms.store.status.is_offline`) as UNKNOWN, with a PATCH to every
        partner that receives locations; returns the EVSEs that changed."""
        now = now or utcnow()
        with self.engine.begin() as c:
            candidates = c.execute(sa.select(
                charge_points.c.id, charge_points.c.connected, charge_points.c.last_seen)
                .where(charge_points.c.offline.is_(False),
                       charge_points.c.last_seen.is_not(None))
                .order_by(charge_points.c.id)).mappings().all()
            changes: list[EvseChange] = []
            for point in candidates:
                if not is_offline(point["connected"], point["last_seen"], now, grace,
                                  heartbeat_interval):
                    continue
                c.execute(charge_points.update().where(charge_points.c.id == point["id"])
                          .values(offline=True))
                changes += _set_statuses(c, self.cpo, _evses_of(c, point["id"]),
                                         lambda _evse: "UNKNOWN", now)
            return changes

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
            if connector_id > 0:
                note_connector_status_after_boot(c, charge_point_id, connector_id, status, now)
            # A charger back from offline gets every EVSE's status back, this one included.
            back = _seen(c, self.cpo, charge_point_id, now)
            evse_rows = _evses_of(c, charge_point_id)
            if (connector_id > 0 and evse_rows
                    and connector_id not in {e["ocpp_connector_id"] for e in evse_rows}
                    and _auto_registered(c, charge_point_id)):
                # A connector first seen now on a charger that registered itself: sessions
                # there need an EVSE to become OCPI sessions and CDRs.
                for location_id in _add_evses_for_reported(c, self.cpo, charge_point_id, now):
                    push_location(c, self.cpo, location_id)
                evse_rows = _evses_of(c, charge_point_id)
            evse_rows = [evse for evse in evse_rows
                         if connector_id in (0, evse["ocpp_connector_id"])]
            return back + _set_statuses(c, self.cpo, evse_rows,
                                        _reported_status_of(c, charge_point_id), now)


def _evses_of(c: Connection, charge_point_id: str) -> list[RowMapping]:
    return list(c.execute(sa.select(evses).where(evses.c.charge_point_id == charge_point_id)
                          .order_by(evses.c.ocpp_connector_id)).mappings().all())


def _auto_registered(c: Connection, charge_point_id: str) -> bool:
    return bool(c.execute(sa.select(charge_points.c.auto_registered).where(
        charge_points.c.id == charge_point_id)).scalar())


def _add_evses_for_reported(c: Connection, cpo: CpoIdentity, charge_point_id: str,
                            now: datetime) -> set[str]:
    """An EVSE for every connector the charger reported a status for and that has none yet,
    like its first EVSE (location, connectors, tariff), uid ``<charge point>-<connector>``.
    Returns the locations that gained one."""
    existing = _evses_of(c, charge_point_id)
    if not existing:
        return set()
    template = existing[0]
    mapped = {evse["ocpp_connector_id"] for evse in existing}
    reported = _reported_statuses(c, charge_point_id)
    plugs = list(c.execute(sa.select(connectors).where(
        connectors.c.evse_uid == template["uid"]).order_by(connectors.c.id)).mappings().all())
    changed: set[str] = set()
    for connector_id in sorted(n for n in reported if n > 0 and n not in mapped):
        uid = f"{charge_point_id}-{connector_id}"
        if c.execute(sa.select(evses.c.uid).where(evses.c.uid == uid)).first():
            log.warning("csms.evse_uid_taken", charge_point=charge_point_id,
                        connector=connector_id, uid=uid)
            continue
        c.execute(evses.insert().values(
            uid=uid, location_id=template["location_id"],
            evse_id=cpo.evse_id_for(uid, charge_point_id, connector_id),
            charge_point_id=charge_point_id, ocpp_connector_id=connector_id,
            status=evse_status(reported.get(connector_id), reported.get(0)),
            last_updated=now))
        for plug in plugs:
            c.execute(connectors.insert().values(
                {**dict(plug), "evse_uid": uid, "last_updated": now}))
        log.info("csms.evse_added", charge_point=charge_point_id, connector=connector_id,
                 uid=uid, location=template["location_id"])
        changed.add(template["location_id"])
    if changed:
        touch_locations(c, changed, now)
    return changed


def _set_statuses(c: Connection, cpo: CpoIdentity, evse_rows: Sequence[RowMapping],
                  status_of: Callable[[RowMapping], str], now: datetime) -> list[EvseChange]:
    """Give each EVSE its status from ``status_of``; every change is PATCHed to partners
    and marks its location changed."""
    changes = []
    for evse in evse_rows:
        new_status = status_of(evse)
        if new_status == evse["status"]:
            continue
        c.execute(evses.update().where(evses.c.uid == evse["uid"])
                  .values(status=new_status, last_updated=now))
        push_evse_status(c, cpo, evse["location_id"], evse["uid"], new_status, now)
        changes.append(EvseChange(evse["location_id"], evse["uid"], new_status))
    if changes:
        touch_locations(c, {change.location_id for change in changes}, now)
    return changes


def _reported_status_of(c: Connection, charge_point_id: str) -> Callable[[RowMapping], str]:
    """An EVSE's status from what its charger last reported (see ``status.evse_status``)."""
    reported = _reported_statuses(c, charge_point_id)
    return lambda evse: evse_status(reported.get(evse["ocpp_connector_id"]), reported.get(0))


def _seen(c: Connection, cpo: CpoIdentity, charge_point_id: str,
          now: datetime) -> list[EvseChange]:
    """We heard from the charger: note when; one that was offline gets its EVSEs' last
    reported statuses back (returned)."""
    was_offline = c.execute(sa.select(charge_points.c.offline).where(
        charge_points.c.id == charge_point_id)).scalar()
    c.execute(charge_points.update().where(charge_points.c.id == charge_point_id)
              .values(last_seen=now, offline=False))
    if not was_offline:
        return []
    return _set_statuses(c, cpo, _evses_of(c, charge_point_id),
                         _reported_status_of(c, charge_point_id), now)


def _evses_changed(c: Connection, cpo: CpoIdentity, charge_point_id: str,
                   now: datetime) -> None:
    """Something partners see of a charger's EVSEs changed: stamp them and PUT their
    locations to partners."""
    location_ids = set(c.execute(sa.select(evses.c.location_id).where(
        evses.c.charge_point_id == charge_point_id)).scalars())
    if not location_ids:
        return
    c.execute(evses.update().where(evses.c.charge_point_id == charge_point_id)
              .values(last_updated=now))
    touch_locations(c, location_ids, now)
    for location_id in sorted(location_ids):
        push_location(c, cpo, location_id)


def _reported_statuses(c: Connection, charge_point_id: str) -> dict[int, str]:
    """The last OCPP status of each connector of a charge point (0: the whole of it)."""
    return {row.connector_id: row.status for row in c.execute(
        sa.select(connector_status.c.connector_id, connector_status.c.status)
        .where(connector_status.c.charge_point_id == charge_point_id))}


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


def _insert_evses(c: Connection, cpo: CpoIdentity, charge_point_id: str,
                  location: LocationSpec | None, evse_specs: Sequence[EvseSpec],
                  tariff_id: str | None, now: datetime) -> None:
    # A charger that connected before it had EVSEs has told us its statuses already.
    reported = _reported_statuses(c, charge_point_id)
    for spec in evse_specs:
        evse_id = (check_evse_id(spec.evse_id) if spec.evse_id else
                   cpo.evse_id_for(spec.uid, charge_point_id, spec.ocpp_connector_id))
        c.execute(evses.insert().values(
            uid=spec.uid, location_id=location.id if location else None,
            evse_id=evse_id, charge_point_id=charge_point_id,
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
