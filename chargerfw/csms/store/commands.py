"""OCPI commands an eMSP sent (pending until the charger answers or the timeout passes),
which of them vouch for an idTag at a charger, and who may unlock a connector."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.parties import holds
from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import utcnow
from chargerfw.csms.tables import pending_commands, reservations, transactions

# The commands that carry a token for the charger to use.
TOKEN_COMMANDS = ("START_SESSION", "RESERVE_NOW")
# After a charger accepted a START_SESSION, how long the driver has to plug in and start.
START_WINDOW = timedelta(minutes=10)
# How long after a session ended its partner may still unlock the connector.
UNLOCK_WINDOW = timedelta(minutes=30)


def _vouched_until(c: Connection, command: RowMapping) -> datetime | None:
    """Until when a command with a token vouches for it (see ``command_vouching_for``)."""
    pending = command["status"] == "PENDING"
    if command["command"] == "START_SESSION":
        return command["deadline"] if pending else command["created_at"] + START_WINDOW
    request = m.ReserveNow.model_validate(command["request"])
    reservation = c.execute(sa.select(reservations.c.status, reservations.c.expiry).where(
        reservations.c.partner_id == command["partner_id"],
        reservations.c.ocpi_reservation_id == request.reservation_id,
        reservations.c.charge_point_id == command["charge_point_id"])
        .order_by(reservations.c.id.desc())).first()
    if reservation is None or reservation.status not in ("PENDING", "ACCEPTED"):
        return None
    expiry: datetime = reservation.expiry
    return min(expiry, command["deadline"]) if pending else expiry


@dataclass(frozen=True)
class Commands:
    engine: StoreEngine

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

    def command_vouching_for(self, charge_point_id: str, id_tag: str,
                             now: datetime | None = None) -> tuple[RowMapping, datetime] | None:
        """The eMSP command that vouches for this idTag at this charger, and until when.

        A command carrying a token (START_SESSION, RESERVE_NOW) vouches for it at its own
        charger only: while the charger has not answered it (a charger may authorize the
        idTag before it accepts), until the command's deadline; once accepted, a
        START_SESSION for ``START_WINDOW`` after it was sent, a RESERVE_NOW while its
        reservation holds (not used, cancelled or expired).
        """
        now = now or utcnow()
        with self.engine.connect() as c:
            for row in c.execute(sa.select(pending_commands).where(
                    pending_commands.c.command.in_(TOKEN_COMMANDS),
                    pending_commands.c.charge_point_id == charge_point_id,
                    pending_commands.c.id_tag == id_tag,
                    pending_commands.c.status.in_(("PENDING", "ACCEPTED")))
                    .order_by(pending_commands.c.id.desc())).mappings():
                until = _vouched_until(c, row)
                if until is not None and until > now:
                    return row, until
        return None

    def may_unlock(self, partner_id: int, charge_point_id: str, connector_id: int,
                   now: datetime | None = None) -> bool:
        """Whether the partner may unlock the connector: the newest session there is of its
        tokens, and is going on or ended less than ``UNLOCK_WINDOW`` ago (a cable stuck
        after the session is what an unlock is for)."""
        now = now or utcnow()
        with self.engine.connect() as c:
            tx = c.execute(sa.select(transactions).where(
                transactions.c.charge_point_id == charge_point_id,
                transactions.c.connector_id == connector_id)
                .order_by(transactions.c.id.desc())).mappings().first()
            if tx is None or tx["status"] not in ("ACTIVE", "COMPLETED"):
                return False
            if tx["stop_time"] is not None and tx["stop_time"] < now - UNLOCK_WINDOW:
                return False
            return bool(c.execute(sa.select(holds(
                partner_id, tx["token_country_code"], tx["token_party_id"]))).scalar())

    def get_command(self, command_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(pending_commands).where(
                pending_commands.c.id == command_id)).mappings().first()
