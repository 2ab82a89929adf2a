"""Local authorization lists: what each charger holds (version and entries, as far as it
accepted our SendLocalList messages) and the pushes an administrator asked the running
server for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.values import NotFound, utcnow
from chargerfw.csms.tables import charge_points, local_list_requests, local_lists

# idTag -> OCPP idTagInfo (snake_case keys, as the ``ocpp`` library takes them)
ListEntries = dict[str, dict[str, str]]


@dataclass(frozen=True)
class HeldList:
    """The list a charger holds as far as the backend knows."""

    version: int
    entries: ListEntries
    updated_at: datetime


@dataclass(frozen=True)
class LocalLists:
    engine: Engine

    def held_local_list(self, charge_point_id: str) -> HeldList | None:
        """The list the charger accepted last (None: it never accepted one from us)."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(local_lists).where(
                local_lists.c.charge_point_id == charge_point_id)).mappings().first()
        if row is None:
            return None
        return HeldList(int(row["list_version"]), dict(row["entries"]), row["updated_at"])

    def record_local_list(self, charge_point_id: str, version: int,
                          entries: ListEntries) -> None:
        """The charger accepted a SendLocalList: it now holds ``entries`` as ``version``."""
        values = dict(list_version=version, entries=entries, updated_at=utcnow())
        with self.engine.begin() as c:
            if not c.execute(local_lists.update().where(
                    local_lists.c.charge_point_id == charge_point_id).values(**values)).rowcount:
                c.execute(local_lists.insert().values(charge_point_id=charge_point_id,
                                                      **values))

    def request_local_list_push(self, charge_point_id: str, full: bool) -> int:
        """Ask the running server to push the charger's list; returns the request's id."""
        with self.engine.begin() as c:
            if c.execute(sa.select(charge_points.c.id).where(
                    charge_points.c.id == charge_point_id)).first() is None:
                raise NotFound(f"unknown charge point {charge_point_id!r}")
            return inserted_id(c.execute(local_list_requests.insert().values(
                charge_point_id=charge_point_id, full=full, requested_at=utcnow())))

    def claim_local_list_requests(self) -> list[RowMapping]:
        """The requests nobody has taken yet, now taken by the caller (oldest first)."""
        claimed = []
        with self.engine.begin() as c:
            pending = c.execute(sa.select(local_list_requests).where(
                local_list_requests.c.claimed_at.is_(None))
                .order_by(local_list_requests.c.id)).mappings().all()
            for row in pending:
                # Another server on the same database may have taken it meanwhile.
                if c.execute(local_list_requests.update().where(
                        local_list_requests.c.id == row["id"],
                        local_list_requests.c.claimed_at.is_(None))
                        .values(claimed_at=utcnow())).rowcount:
                    claimed.append(row)
        return claimed

    def finish_local_list_request(self, request_id: int, outcome: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(local_list_requests.update().where(
                local_list_requests.c.id == request_id).values(
                finished_at=utcnow(), outcome=outcome))

    def withdraw_local_list_request(self, request_id: int) -> bool:
        """Remove a request no server has taken; False when one already has."""
        with self.engine.begin() as c:
            return bool(c.execute(local_list_requests.delete().where(
                local_list_requests.c.id == request_id,
                local_list_requests.c.claimed_at.is_(None))).rowcount)

    def local_list_request(self, request_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(local_list_requests).where(
                local_list_requests.c.id == request_id)).mappings().first()

    def last_local_list_request(self, charge_point_id: str) -> RowMapping | None:
        """The newest finished push request for the charger."""
        with self.engine.connect() as c:
            return c.execute(sa.select(local_list_requests).where(
                local_list_requests.c.charge_point_id == charge_point_id,
                local_list_requests.c.finished_at.is_not(None))
                .order_by(local_list_requests.c.id.desc()).limit(1)).mappings().first()
