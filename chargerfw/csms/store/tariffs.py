"""Tariffs: stored as their OCPI objects, pushed to partners when added, changed or deleted,
and attached to connectors (a connector's tariff prices the sessions that start on it).

A tariff is checked by the tariff engine before it is stored, so every stored tariff can be
priced; one that cannot is refused with the field at fault and nothing changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from chargerfw.csms import tariff_engine
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.endpoints import object_url
from chargerfw.csms.store.ocpi_objects import dump
from chargerfw.csms.store.push_queue import enqueue_to_receivers
from chargerfw.csms.store.sql import select_page
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import (
    AlreadyExists,
    CpoIdentity,
    NotFound,
    Page,
    PageQuery,
    StoreError,
    utcnow,
)
from chargerfw.csms.tables import connectors, tariffs


class InvalidTariff(StoreError):
    """A tariff that cannot be stored; ``str()`` names the field and what is wrong."""


class TariffInUse(StoreError):
    """A tariff that connectors still price with cannot be deleted."""


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


def tariffs_data(c: Connection, tariff_ids: Iterable[str | None]) -> dict[str, Any]:
    """The OCPI objects of the stored tariffs among ``tariff_ids``, by id."""
    ids = sorted({i for i in tariff_ids if i is not None})
    if not ids:
        return {}
    return {r.id: r.data for r in c.execute(
        sa.select(tariffs.c.id, tariffs.c.data).where(tariffs.c.id.in_(ids)))}


@dataclass(frozen=True)
class Tariffs:
    engine: StoreEngine
    cpo: CpoIdentity

    def _body(self, tariff: m.Tariff, now: datetime) -> dict[str, Any]:
        """The OCPI object to store and push, stamped ``now`` (partners fetch by
        last_updated)."""
        if (tariff.country_code, tariff.party_id) != (self.cpo.country_code, self.cpo.party_id):
            raise InvalidTariff(
                f"tariff {tariff.id!r}: country_code/party_id {tariff.country_code}/"
                f"{tariff.party_id} are not ours ({self.cpo.country_code}/{self.cpo.party_id})")
        body = dump(tariff.model_copy(update={"last_updated": now}))
        try:
            tariff_engine.check_tariff(body)
        except tariff_engine.TariffError as exc:
            raise InvalidTariff(f"tariff {tariff.id!r}: {exc}") from None
        return body

    def add_tariff(self, tariff: m.Tariff) -> dict[str, Any]:
        now = utcnow()
        body = self._body(tariff, now)
        try:
            with self.engine.begin() as c:
                c.execute(tariffs.insert().values(
                    id=tariff.id, country_code=tariff.country_code, party_id=tariff.party_id,
                    currency=tariff.currency, data=body, last_updated=now))
                self._push(c, "PUT", tariff.id, body)
        except IntegrityError:
            raise AlreadyExists(f"tariff {tariff.id!r} exists already") from None
        return body

    def update_tariff(self, tariff: m.Tariff) -> dict[str, Any]:
        """Replace a stored tariff and PUT it to partners. Sessions already running keep the
        tariff they started under."""
        now = utcnow()
        body = self._body(tariff, now)
        with self.engine.begin() as c:
            if not c.execute(tariffs.update().where(tariffs.c.id == tariff.id).values(
                    currency=tariff.currency, data=body, last_updated=now)
                    ).rowcount:
                raise NotFound(f"unknown tariff {tariff.id!r}")
            self._push(c, "PUT", tariff.id, body)
        return body

    def delete_tariff(self, tariff_id: str) -> None:
        """Delete a tariff no connector prices with any more, and DELETE it at partners."""
        with self.engine.begin() as c:
            check_tariff(c, tariff_id)
            evses = sorted(set(c.execute(sa.select(connectors.c.evse_uid).where(
                connectors.c.tariff_id == tariff_id)).scalars()))
            if evses:
                raise TariffInUse(f"tariff {tariff_id!r} still prices the connectors of EVSE "
                                  f"{', '.join(evses)}; price them with another tariff first")
            c.execute(tariffs.delete().where(tariffs.c.id == tariff_id))
            self._push(c, "DELETE", tariff_id, None)

    def _push(self, c: Connection, method: str, tariff_id: str,
              body: dict[str, Any] | None) -> None:
        enqueue_to_receivers(c, "tariffs", method, lambda base: object_url(
            base, self.cpo.country_code, self.cpo.party_id, tariff_id), body)

    def get_tariff(self, tariff_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            return tariff_data(c, tariff_id)

    def list_tariffs(self, query: PageQuery) -> Page:
        with self.engine.connect() as c:
            page = select_page(c, tariffs, query)
            return Page([r["data"] for r in page.rows], page.total, page.next_key)

    def set_connector_tariff(self, tariff_id: str, evse_uid: str | None = None) -> int:
        """Price connectors (all, or one EVSE's) with ``tariff_id``; returns how many."""
        with self.engine.begin() as c:
            check_tariff(c, tariff_id)
            stmt = connectors.update().values(tariff_id=tariff_id, last_updated=utcnow())
            if evse_uid is not None:
                stmt = stmt.where(connectors.c.evse_uid == evse_uid)
            return c.execute(stmt).rowcount
