"""The operator-command queue: commands an operator asked the running server to send to a
charger (the CLI is another process; the server holds the charger's connection). A request is
queued, claimed by one server, and finished with its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import NotFound, utcnow
from chargerfw.csms.tables import charge_points, operator_commands


@dataclass(frozen=True)
class OperatorCommands:
    engine: StoreEngine

    def request_operator_command(self, charge_point_id: str, command: str,
                                 params: dict[str, Any], requested_by: str | None = None,
                                 claimed: bool = False) -> int:
        """Queue ``command`` for the running server; returns the request's id. ``claimed``:
        the caller runs it itself (the admin API, inside the server) and only records it."""
        with self.engine.begin() as c:
            if c.execute(sa.select(charge_points.c.id).where(
                    charge_points.c.id == charge_point_id)).first() is None:
                raise NotFound(f"unknown charge point {charge_point_id!r}")
            return inserted_id(c.execute(operator_commands.insert().values(
                charge_point_id=charge_point_id, command=command, params=params,
                requested_at=utcnow(), requested_by=requested_by,
                claimed_at=utcnow() if claimed else None)))

    def claim_operator_commands(self) -> list[RowMapping]:
        """The requests nobody has taken yet, now taken by the caller (oldest first)."""
        claimed = []
        with self.engine.begin() as c:
            pending = c.execute(sa.select(operator_commands).where(
                operator_commands.c.claimed_at.is_(None))
                .order_by(operator_commands.c.id)).mappings().all()
            for row in pending:
                # Another server on the same database may have taken it meanwhile.
                if c.execute(operator_commands.update().where(
                        operator_commands.c.id == row["id"],
                        operator_commands.c.claimed_at.is_(None))
                        .values(claimed_at=utcnow())).rowcount:
                    claimed.append(row)
        return claimed

    def finish_operator_command(self, request_id: int, outcome: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(operator_commands.update().where(
                operator_commands.c.id == request_id).values(
                finished_at=utcnow(), outcome=outcome))

    def withdraw_operator_command(self, request_id: int) -> bool:
        """Remove a request no server has taken; False when one already has."""
        with self.engine.begin() as c:
            return bool(c.execute(operator_commands.delete().where(
                operator_commands.c.id == request_id,
                operator_commands.c.claimed_at.is_(None))).rowcount)

    def operator_command(self, request_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(operator_commands).where(
                operator_commands.c.id == request_id)).mappings().first()

    def last_operator_command(self, charge_point_id: str, command: str) -> RowMapping | None:
        """The newest finished ``command`` request for the charger."""
        with self.engine.connect() as c:
            return c.execute(sa.select(operator_commands).where(
                operator_commands.c.charge_point_id == charge_point_id,
                operator_commands.c.command == command,
                operator_commands.c.finished_at.is_not(None))
                .order_by(operator_commands.c.id.desc()).limit(1)).mappings().first()
