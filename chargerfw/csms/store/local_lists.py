"""Local authorization lists: what each charger holds (version and entries, as far as it
accepted our SendLocalList messages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import utcnow
from chargerfw.csms.tables import local_lists

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
    engine: StoreEngine

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
