"""Hub partners: the parties reachable through each hub with their connection status (OCPI
ClientInfo, pushed by the hub or pulled from it), and the record of token-list pulls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.ocpi_objects import dump
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import utcnow
from chargerfw.csms.tables import hub_parties, token_pulls


def _key(hub_id: int, country_code: str, party_id: str) -> tuple[Any, ...]:
    return (hub_parties.c.hub_id == hub_id,
            hub_parties.c.country_code == country_code.upper(),
            hub_parties.c.party_id == party_id.upper())


@dataclass(frozen=True)
class Hubs:
    engine: StoreEngine

    def put_hub_party(self, hub_id: int, info: m.ClientInfo) -> bool:
        """Store what the hub says of one party; True when the party is new."""
        key = (*_key(hub_id, info.country_code, info.party_id), hub_parties.c.role == info.role)
        with self.engine.begin() as c:
            if c.execute(hub_parties.update().where(*key).values(
                    status=info.status, last_updated=info.last_updated)).rowcount:
                return False
            c.execute(hub_parties.insert().values(
                hub_id=hub_id, country_code=info.country_code, party_id=info.party_id,
                role=info.role, status=info.status, last_updated=info.last_updated))
            return True

    def replace_hub_parties(self, hub_id: int, infos: list[m.ClientInfo]) -> int:
        """The hub's full list: store every party in it and forget those not in it (the
        spec: what a full list leaves out is no longer valid). Returns how many it holds."""
        with self.engine.begin() as c:
            c.execute(hub_parties.delete().where(hub_parties.c.hub_id == hub_id))
            rows = {(i.country_code, i.party_id, i.role): i for i in infos}
            if rows:
                c.execute(hub_parties.insert(), [
                    dict(hub_id=hub_id, country_code=i.country_code, party_id=i.party_id,
                         role=i.role, status=i.status, last_updated=i.last_updated)
                    for i in rows.values()])
            return len(rows)

    def get_hub_party(self, hub_id: int, country_code: str,
                      party_id: str) -> dict[str, Any] | None:
        """The ClientInfo of a party as the hub last reported it (the latest of its roles)."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(hub_parties).where(*_key(hub_id, country_code, party_id))
                            .order_by(hub_parties.c.last_updated.desc())).mappings().first()
        return _client_info(row) if row is not None else None

    def list_hub_parties(self, hub_id: int) -> list[dict[str, Any]]:
        """Every party the hub reports, as ClientInfo objects."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(hub_parties).where(hub_parties.c.hub_id == hub_id)
                             .order_by(hub_parties.c.country_code, hub_parties.c.party_id,
                                       hub_parties.c.role)).mappings().all()
        return [_client_info(r) for r in rows]

    # -- token pulls --

    def last_token_pull(self, partner_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(token_pulls).where(
                token_pulls.c.partner_id == partner_id)).mappings().first()

    def record_token_pull(self, partner_id: int, started: datetime,
                          error: str | None) -> None:
        """A pull that began at ``started`` ended; on success the next one asks for the
        changes since ``started``, on failure it asks again from where this one did."""
        values: dict[str, Any] = dict(last_attempt_at=utcnow(),
                                      last_error=error[:500] if error else None)
        if error is None:
            values["last_success_from"] = started
        with self.engine.begin() as c:
            if not c.execute(token_pulls.update().where(token_pulls.c.partner_id == partner_id)
                             .values(**values)).rowcount:
                c.execute(token_pulls.insert().values(partner_id=partner_id, **values))


def _client_info(row: RowMapping) -> dict[str, Any]:
    return dump(m.ClientInfo.model_validate(
        {k: row[k] for k in ("country_code", "party_id", "role", "status", "last_updated")}))
