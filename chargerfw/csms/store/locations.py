"""Locations: created with the first charge point placed there, served and pushed as OCPI
Location objects with their EVSEs and connectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import ocpi_objects
from chargerfw.csms.store.endpoints import object_url
from chargerfw.csms.store.push_queue import enqueue_to_receivers
from chargerfw.csms.store.sql import select_page
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import (
    CpoIdentity,
    LocationDetails,
    LocationSpec,
    NotFound,
    Page,
    PageQuery,
    StoreError,
    utcnow,
)
from chargerfw.csms.tables import charge_points, connectors, evses, locations


def location_objects(c: Connection, rows: Sequence[RowMapping]) -> list[dict[str, Any]]:
    """The OCPI Locations of ``rows``, with their EVSEs and connectors."""
    ids = [row["id"] for row in rows]
    evse_rows = c.execute(
        sa.select(evses, charge_points.c.feature_profiles, charge_points.c.rfid_reader)
        .join(charge_points, charge_points.c.id == evses.c.charge_point_id)
        .where(evses.c.location_id.in_(ids)).order_by(evses.c.uid)).mappings().all(
    ) if ids else []
    uids = [row["uid"] for row in evse_rows]
    conn_rows = c.execute(sa.select(connectors).where(connectors.c.evse_uid.in_(uids))
                          .order_by(connectors.c.id)).mappings().all() if uids else []
    return ocpi_objects.location_objects(rows, evse_rows, conn_rows)


def ensure_location(c: Connection, cpo: CpoIdentity, location: LocationSpec | None,
                    now: datetime) -> None:
    """Create the location, or mark an existing one changed (it gains EVSEs); its address
    is not changed."""
    if location is None:
        return
    if not c.execute(sa.select(locations.c.id).where(locations.c.id == location.id)).first():
        details = detail_values(location.details) if location.details else {}
        c.execute(locations.insert().values(
            id=location.id, country_code=cpo.country_code, party_id=cpo.party_id,
            publish=location.publish, name=location.name, address=location.address,
            city=location.city, postal_code=location.postal_code, country=location.country,
            latitude=location.latitude, longitude=location.longitude,
            time_zone=location.time_zone, last_updated=now, **details))
    else:
        c.execute(locations.update().where(locations.c.id == location.id)
                  .values(last_updated=now))


def detail_values(details: LocationDetails) -> dict[str, Any]:
    """The columns that ``details`` change, checked as their OCPI fields; an empty value
    clears a field. Raises StoreError naming the field that is wrong."""
    values: dict[str, Any] = {}
    if details.opening_times is not None:
        values["opening_times"] = _checked("opening_times", m.Hours, details.opening_times)
    if details.operator is not None:
        values["operator"] = _checked("operator", m.BusinessDetails, details.operator)
    if details.charging_when_closed is not None:
        values["charging_when_closed"] = details.charging_when_closed
    if details.facilities is not None:
        unknown = sorted(set(details.facilities) - set(m.Facility))
        if unknown:
            raise StoreError(f"facilities: unknown {', '.join(unknown)} (one of "
                             f"{', '.join(m.Facility)})")
        values["facilities"] = sorted(set(details.facilities)) or None
    if details.parking_type is not None:
        if details.parking_type and details.parking_type not in set(m.ParkingType):
            raise StoreError(f"parking_type: unknown {details.parking_type} (one of "
                             f"{', '.join(m.ParkingType)})")
        values["parking_type"] = details.parking_type or None
    return values


def _checked(field: str, model: type[m.OcpiModel], value: dict[str, Any]
             ) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        return ocpi_objects.dump(model.model_validate(value))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in (field, *first["loc"]))
        raise StoreError(f"{where}: {first['msg']}") from None


def touch_locations(c: Connection, location_ids: set[str], now: datetime) -> None:
    """Mark locations changed (one of their EVSEs changed)."""
    c.execute(locations.update().where(locations.c.id.in_(sorted(location_ids)))
              .values(last_updated=now))


def push_location(c: Connection, cpo: CpoIdentity, location_id: str) -> None:
    """Queue a PUT of the whole location to every partner that receives locations."""
    def body() -> dict[str, Any]:
        row = c.execute(sa.select(locations).where(locations.c.id == location_id)
                        ).mappings().one()
        return location_objects(c, [row])[0]

    enqueue_to_receivers(c, "locations", "PUT", lambda base: object_url(
        base, cpo.country_code, cpo.party_id, location_id), body)


def push_evse_status(c: Connection, cpo: CpoIdentity, location_id: str, evse_uid: str,
                     status: str, now: datetime) -> None:
    """Queue a PATCH of one EVSE's status to every partner that receives locations."""
    enqueue_to_receivers(c, "locations", "PATCH", lambda base: object_url(
        base, cpo.country_code, cpo.party_id, location_id, evse_uid),
        {"status": status, "last_updated": now.strftime("%Y-%m-%dT%H:%M:%SZ")})


@dataclass(frozen=True)
class Locations:
    engine: StoreEngine
    cpo: CpoIdentity

    def set_location_details(self, location_id: str, details: LocationDetails
                             ) -> dict[str, Any]:
        """Change what an eMSP app shows of a location (opening times, operator, facilities,
        parking type); partners that receive locations get it PUT. Returns the location."""
        values = detail_values(details)
        with self.engine.begin() as c:
            row = c.execute(sa.select(locations).where(locations.c.id == location_id)
                            ).mappings().first()
            if row is None:
                raise NotFound(f"unknown location {location_id!r}")
            if not values:
                return location_objects(c, [row])[0]
            c.execute(locations.update().where(locations.c.id == location_id)
                      .values(**values, last_updated=utcnow()))
            push_location(c, self.cpo, location_id)
            row = c.execute(sa.select(locations).where(locations.c.id == location_id)
                            ).mappings().one()
            return location_objects(c, [row])[0]

    def list_locations(self, query: PageQuery, published_only: bool = False) -> Page:
        conditions = [locations.c.publish.is_(True)] if published_only else []
        with self.engine.connect() as c:
            page = select_page(c, locations, query, *conditions)
            return Page(location_objects(c, page.rows), page.total, page.next_key)

    def get_location(self, location_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(locations).where(locations.c.id == location_id)
                            ).mappings().first()
            return location_objects(c, [row])[0] if row else None
