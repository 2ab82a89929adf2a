"""Sites for load management: a site (or a sub-feeder of one) with a maximum current per
phase, the charge points assigned to it, what each connector was last given, and eMSPs'
charging profiles on their sessions.

``site_snapshot`` gathers what the allocator needs of a whole site (its sub-feeders
included): every connector of every member, with its status, transaction, measured current
and last limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms.billing import CURRENT_IMPORT
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import AlreadyExists, NotFound, StoreError, utcnow
from chargerfw.csms.tables import (
    charge_points,
    connector_status,
    connectors,
    evses,
    meter_values,
    session_charging_profiles,
    site_allocations,
    site_members,
    sites,
    transactions,
)

# What a connector carries when its charge point was registered without connector details.
DEFAULT_CONNECTOR_MAX_A = 32.0
DEFAULT_FALLBACK_A = 6.0
DEFAULT_STACK_LEVEL = 1
MAX_SITE_DEPTH = 8


@dataclass(frozen=True)
class ConnectorSnapshot:
    """One connector of a site's charge point, as the store knows it."""

    charge_point_id: str
    connector_id: int
    site_id: str
    feeders: frozenset[str]  # the sub-feeders between it and the site, itself included
    max_a: float
    fallback_a: float
    status: str | None  # the last OCPP connector status
    transaction_id: int | None
    started_at: datetime | None
    drawn_a: float | None
    allocation: RowMapping | None  # what it was last given (site_allocations)


@dataclass(frozen=True)
class SiteSnapshot:
    site: RowMapping  # the top site
    feeder_limits: dict[str, float]  # its sub-feeders' limits per phase
    connectors: list[ConnectorSnapshot]
    # The TxDefaultProfile each member was last given (connector 0), by charge point.
    defaults: dict[str, RowMapping] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)


def _check_amps(what: str, value: float, positive: bool = False) -> float:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise StoreError(f"{what} {value!r} A: a finite number {'>' if positive else '>='} 0")
    return float(value)


def _site(c: Connection, site_id: str) -> RowMapping:
    row = c.execute(sa.select(sites).where(sites.c.id == site_id)).mappings().first()
    if row is None:
        raise NotFound(f"no site {site_id!r}")
    return row


def _top(c: Connection, site_id: str) -> RowMapping:
    row = _site(c, site_id)
    for _ in range(MAX_SITE_DEPTH):
        if row["parent_id"] is None:
            return row
        row = _site(c, row["parent_id"])
    raise StoreError(f"site {site_id!r} is nested deeper than {MAX_SITE_DEPTH} levels")


def _drawn(c: Connection, transaction_id: int) -> float | None:
    """The highest phase current of the transaction's latest Current.Import sample."""
    latest = c.execute(sa.select(sa.func.max(meter_values.c.timestamp)).where(
        meter_values.c.transaction_id == transaction_id,
        meter_values.c.measurand == CURRENT_IMPORT)).scalar_one_or_none()
    if latest is None:
        return None
    value = c.execute(sa.select(sa.func.max(meter_values.c.value)).where(
        meter_values.c.transaction_id == transaction_id,
        meter_values.c.measurand == CURRENT_IMPORT,
        meter_values.c.timestamp == latest)).scalar_one_or_none()
    return None if value is None else float(value)


@dataclass(frozen=True)
class Sites:
    engine: StoreEngine

    # -- administration --

    def add_site(self, site_id: str, name: str, max_current_a: float,
                 parent_id: str | None = None, fallback_a: float = DEFAULT_FALLBACK_A,
                 stack_level: int = DEFAULT_STACK_LEVEL) -> None:
        """A site (a sub-feeder when ``parent_id`` names its site) of ``max_current_a`` per
        phase; its chargers' connectors apply ``fallback_a`` when they lose the backend."""
        if not site_id or len(site_id) > 36 or not site_id.isprintable() or "/" in site_id:
            raise StoreError(f"site id {site_id!r}: 1 to 36 printable characters, no '/'")
        if not name or len(name) > 100:
            raise StoreError("site name: 1 to 100 characters")
        _check_amps("maximum current", max_current_a, positive=True)
        _check_amps("fallback current", fallback_a)
        if not 0 <= stack_level <= 100:
            raise StoreError(f"stack level {stack_level}: 0 to 100")
        with self.engine.begin() as c:
            if c.execute(sa.select(sites.c.id).where(sites.c.id == site_id)).first():
                raise AlreadyExists(f"site {site_id!r} exists already")
            if parent_id is not None:
                _top(c, parent_id)  # exists, and not nested too deep
            c.execute(sites.insert().values(
                id=site_id, name=name, max_current_a=float(max_current_a), parent_id=parent_id,
                fallback_a=float(fallback_a), stack_level=stack_level, created_at=utcnow()))

    def list_sites(self) -> list[dict[str, Any]]:
        """Every site with how many charge points are assigned to it."""
        members = (sa.select(site_members.c.site_id, sa.func.count().label("members"))
                   .group_by(site_members.c.site_id).subquery())
        with self.engine.connect() as c:
            rows = c.execute(sa.select(sites, sa.func.coalesce(members.c.members, 0)
                                       .label("members"))
                             .outerjoin(members, members.c.site_id == sites.c.id)
                             .order_by(sites.c.id)).mappings().all()
        return [dict(row) for row in rows]

    def get_site(self, site_id: str) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(sites).where(sites.c.id == site_id)).mappings().first()

    def assign_site(self, charge_point_id: str, site_id: str | None) -> None:
        """Put a charge point on a site (None: take it off); what it was given is forgotten."""
        with self.engine.begin() as c:
            if c.execute(sa.select(charge_points.c.id)
                         .where(charge_points.c.id == charge_point_id)).first() is None:
                raise NotFound(f"no charge point {charge_point_id!r}")
            if site_id is not None:
                _site(c, site_id)
            c.execute(site_members.delete().where(
                site_members.c.charge_point_id == charge_point_id))
            c.execute(site_allocations.delete().where(
                site_allocations.c.charge_point_id == charge_point_id))
            if site_id is not None:
                c.execute(site_members.insert().values(charge_point_id=charge_point_id,
                                                       site_id=site_id))

    # -- what the balancer reads --

    def top_site_of(self, charge_point_id: str) -> str | None:
        """The top site whose capacity the charge point shares (None: on no site)."""
        with self.engine.connect() as c:
            site_id = c.execute(sa.select(site_members.c.site_id).where(
                site_members.c.charge_point_id == charge_point_id)).scalar_one_or_none()
            return None if site_id is None else str(_top(c, site_id)["id"])

    def site_snapshot(self, site_id: str) -> SiteSnapshot:
        """Every connector of the site's charge points, its sub-feeders' included."""
        with self.engine.connect() as c:
            top = _top(c, site_id)
            all_sites = {row["id"]: row for row in c.execute(sa.select(sites)).mappings()}
            chains: dict[str, list[str]] = {}  # site -> itself and its parents below top
            for sid in all_sites:
                chain, current = [], sid
                for _ in range(MAX_SITE_DEPTH):
                    if current == top["id"] or current is None:
                        break
                    chain.append(current)
                    current = all_sites[current]["parent_id"]
                if current == top["id"]:
                    chains[sid] = chain
            members = {row.charge_point_id: row.site_id for row in c.execute(
                sa.select(site_members).where(site_members.c.site_id.in_(list(chains))))}
            found = [self._connectors(c, cp_id, sid, frozenset(chains[sid]),
                                      float(all_sites[sid]["fallback_a"]))
                     for cp_id, sid in sorted(members.items())]
            defaults = {row["charge_point_id"]: row for row in c.execute(
                sa.select(site_allocations).where(
                    site_allocations.c.charge_point_id.in_(list(members)),
                    site_allocations.c.connector_id == 0)).mappings()}
        feeders = {sid: float(all_sites[sid]["max_current_a"]) for sid in chains
                   if sid != top["id"]}
        return SiteSnapshot(top, feeders, [snap for group in found for snap in group],
                            defaults, sorted(members))

    def _connectors(self, c: Connection, charge_point_id: str, site_id: str,
                    feeders: frozenset[str], fallback_a: float) -> list[ConnectorSnapshot]:
        rated = {row.ocpp_connector_id: row.max_a for row in c.execute(
            sa.select(evses.c.ocpp_connector_id,
                      sa.func.max(connectors.c.max_amperage).label("max_a"))
            .select_from(evses.outerjoin(connectors, connectors.c.evse_uid == evses.c.uid))
            .where(evses.c.charge_point_id == charge_point_id)
            .group_by(evses.c.ocpp_connector_id))}
        statuses = {row.connector_id: row.status for row in c.execute(
            sa.select(connector_status.c.connector_id, connector_status.c.status).where(
                connector_status.c.charge_point_id == charge_point_id,
                connector_status.c.connector_id > 0))}
        running = {row["connector_id"]: row for row in c.execute(
            sa.select(transactions.c.id, transactions.c.connector_id,
                      transactions.c.start_time).where(
                transactions.c.charge_point_id == charge_point_id,
                transactions.c.stop_time.is_(None), transactions.c.status == "ACTIVE")
            .order_by(transactions.c.id)).mappings()}
        given = {row["connector_id"]: row for row in c.execute(
            sa.select(site_allocations).where(
                site_allocations.c.charge_point_id == charge_point_id,
                site_allocations.c.connector_id > 0)).mappings()}
        result = []
        for connector_id in sorted(set(rated) | set(statuses) | set(running)):
            tx = running.get(connector_id)
            max_a = rated.get(connector_id)
            result.append(ConnectorSnapshot(
                charge_point_id, connector_id, site_id, feeders,
                float(max_a) if max_a else DEFAULT_CONNECTOR_MAX_A, fallback_a,
                statuses.get(connector_id), tx["id"] if tx else None,
                tx["start_time"] if tx else None, _drawn(c, tx["id"]) if tx else None,
                given.get(connector_id)))
        return result

    def connector_rating(self, charge_point_id: str, connector_id: int) -> float:
        """What a connector carries per phase (as registered, else the default)."""
        with self.engine.connect() as c:
            rated = c.execute(sa.select(sa.func.max(connectors.c.max_amperage)).select_from(
                evses.join(connectors, connectors.c.evse_uid == evses.c.uid)).where(
                evses.c.charge_point_id == charge_point_id,
                evses.c.ocpp_connector_id == connector_id)).scalar_one_or_none()
        return float(rated) if rated else DEFAULT_CONNECTOR_MAX_A

    # -- what the balancer writes --

    def record_allocation(self, charge_point_id: str, connector_id: int, limit_a: float,
                          role: str, profile_id: int, transaction_id: int | None,
                          schedule: dict[str, Any]) -> None:
        values = dict(limit_a=limit_a, role=role, profile_id=profile_id,
                      transaction_id=transaction_id, schedule=schedule, updated_at=utcnow())
        with self.engine.begin() as c:
            updated = c.execute(site_allocations.update().where(
                site_allocations.c.charge_point_id == charge_point_id,
                site_allocations.c.connector_id == connector_id).values(**values)).rowcount
            if not updated:
                c.execute(site_allocations.insert().values(
                    charge_point_id=charge_point_id, connector_id=connector_id, **values))

    def set_allocation_role(self, charge_point_id: str, connector_id: int, role: str) -> None:
        with self.engine.begin() as c:
            c.execute(site_allocations.update().where(
                site_allocations.c.charge_point_id == charge_point_id,
                site_allocations.c.connector_id == connector_id).values(role=role))

    def forget_allocations(self, charge_point_id: str) -> None:
        """The charger (re)booted: everything it is given is sent again."""
        with self.engine.begin() as c:
            c.execute(site_allocations.delete().where(
                site_allocations.c.charge_point_id == charge_point_id))

    # -- eMSPs' charging profiles on their sessions --

    def set_session_profile(self, transaction_id: int, partner_id: int | None,
                            profile: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(session_charging_profiles.delete().where(
                session_charging_profiles.c.transaction_id == transaction_id))
            c.execute(session_charging_profiles.insert().values(
                transaction_id=transaction_id, partner_id=partner_id, profile=profile,
                updated_at=utcnow()))

    def clear_session_profile(self, transaction_id: int) -> bool:
        with self.engine.begin() as c:
            return bool(c.execute(session_charging_profiles.delete().where(
                session_charging_profiles.c.transaction_id == transaction_id)).rowcount)

    def session_profile(self, transaction_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(session_charging_profiles).where(
                session_charging_profiles.c.transaction_id == transaction_id)
            ).mappings().first()

    def session_profiles(self, transaction_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        with self.engine.connect() as c:
            return {row.transaction_id: row.profile for row in c.execute(
                sa.select(session_charging_profiles).where(
                    session_charging_profiles.c.transaction_id.in_(list(transaction_ids))))}
