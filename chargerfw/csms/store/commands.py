"""OCPI commands an eMSP sent (pending until the charger answers or the timeout passes),
and which of them vouch for an idTag at a charger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.values import utcnow
from chargerfw.csms.tables import pending_commands


@dataclass(frozen=True)
class Commands:
    engine: Engine

    def create_command(self, partner_id: int | None, command: str, request: dict[str, Any],
                       response_url: str, charge_point_id: str | None, id_tag: str | None,
                       timeout_s: float) -> int:
        now = utcnow()
        with self.engine.begin() as c:
            return inserted_id(c.execute(pending_commands.insert().values(
                partner_id=partner_id, command=command, request=request,
                response_url=response_url, charge_point_id=charge_point_id, id_tag=id_tag,
                status="PENDING", created_at=now,
                deadline=now + timedelta(seconds=timeout_s))))

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
