"""Tariffs: stored as their OCPI objects, pushed to partners when added, and attached to
connectors (a connector's tariff prices the sessions that start on it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.endpoints import object_url
from chargerfw.csms.store.ocpi_objects import dump
from chargerfw.csms.store.push_queue import enqueue_to_receivers
from chargerfw.csms.store.sql import select_page
from chargerfw.csms.store.values import AlreadyExists, NotFound, Page, PageQuery, utcnow
from chargerfw.csms.tables import connectors, tariffs


def check_tariff(c: Connection, tariff_id: str | None) -> None:
    """Raise NotFound unless ``tariff_id`` is None or a stored tariff."""
    if tariff_id is not None and not c.execute(
            sa.select(tariffs.c.id).where(tariffs.c.id == tariff_id)).first():
        raise NotFound(f"unknown tariff {tariff_id!r}")


def tariff_data(c: Connection, tariff_id: str | None) -> dict[str, Any] | None:
    """A tariff's OCPI object (None for no tariff)."""
    if tariff_id is None:
        return None
    data: dict[str, Any] | None = c.execute(
        sa.select(tariffs.c.data).where(tariffs.c.id == tariff_id)).scalar_one_or_none()
    return data


@dataclass(frozen=True)
class Tariffs:
    engine: Engine

    def add_tariff(self, tariff: m.Tariff) -> dict[str, Any]:
        body = dump(tariff)
        try:
            with self.engine.begin() as c:
                c.execute(tariffs.insert().values(
                    id=tariff.id, country_code=tariff.country_code, party_id=tariff.party_id,
                    currency=tariff.currency, data=body, last_updated=tariff.last_updated))
                enqueue_to_receivers(c, "tariffs", "PUT", lambda base: object_url(
                    base, tariff.country_code, tariff.party_id, tariff.id), body)
        except IntegrityError:
            raise AlreadyExists(f"tariff {tariff.id!r} exists already") from None
        return body

    def list_tariffs(self, query: PageQuery) -> Page:
        with self.engine.connect() as c:
            total, rows = select_page(c, tariffs, query, columns=(tariffs.c.data,))
            return Page(list(rows.scalars().all()), total)

    def set_connector_tariff(self, tariff_id: str, evse_uid: str | None = None) -> int:
        """Price connectors (all, or one EVSE's) with ``tariff_id``; returns how many."""
        with self.engine.begin() as c:
            check_tariff(c, tariff_id)
            stmt = connectors.update().values(tariff_id=tariff_id, last_updated=utcnow())
            if evse_uid is not None:
                stmt = stmt.where(connectors.c.evse_uid == evse_uid)
            return c.execute(stmt).rowcount
