"""Parties (country code, party id, role) and who holds them: the operator gives each partner
its parties, and a hub also holds the parties it reports reachable through it (CONNECTED or
OFFLINE); a partner registers as, holds the tokens of, sends for, and sees the sessions and
CDRs of those parties only. Every such check goes through ``holds``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from chargerfw.csms.store.values import StoreError
from chargerfw.csms.tables import hub_parties, partner_parties

# A party a hub reports in one of these states acts through it; PLANNED parties have never
# been connected and SUSPENDED ones never will be again.
HUB_ACTIVE_STATUSES = ("CONNECTED", "OFFLINE")

# OCPI 2.2.1 Role
ROLES = ("CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP")


@dataclass(frozen=True, order=True)
class Party:
    """A party in one role: ``DE/EMS`` as an eMSP is ``Party("DE", "EMS", "EMSP")``."""

    country_code: str
    party_id: str
    role: str = "EMSP"

    def __post_init__(self) -> None:
        # Upper-cased (OCPI compares them case-insensitively) and checked: StoreError.
        cc, pid, role = (self.country_code.strip().upper(), self.party_id.strip().upper(),
                         self.role.strip().upper())
        if len(cc) != 2 or not cc.isascii() or not cc.isalpha():
            raise StoreError(f"country code {self.country_code!r}: two letters, e.g. DE")
        if len(pid) != 3 or not pid.isascii() or not pid.isalnum():
            raise StoreError(f"party id {self.party_id!r}: three letters or digits, e.g. EMS")
        if role not in ROLES:
            raise StoreError(f"role {self.role!r}: one of {', '.join(ROLES)}")
        object.__setattr__(self, "country_code", cc)
        object.__setattr__(self, "party_id", pid)
        object.__setattr__(self, "role", role)

    @classmethod
    def parse(cls, text: str) -> Party:
        """``CC/PID`` or ``CC/PID/ROLE`` (role EMSP when left out); raises StoreError."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3):
            raise StoreError(f"party {text!r}: expected COUNTRY/PARTY or COUNTRY/PARTY/ROLE, "
                             "e.g. DE/EMS or DE/EMS/EMSP")
        return cls(*parts)

    @property
    def code(self) -> tuple[str, str]:
        return self.country_code, self.party_id

    def __str__(self) -> str:
        return f"{self.country_code}/{self.party_id}/{self.role}"


def holds(partner_id: Any, country_code: Any, party_id: Any) -> sa.ColumnElement[bool]:
    """SQL: the partner ``partner_id`` holds the party ``country_code``/``party_id`` (in any
    role): it was given the party, or it is a hub reporting the party active through it.
    Each argument is a column or a value; a party of NULLs is nobody's."""
    return sa.or_(
        sa.exists().where(partner_parties.c.partner_id == partner_id,
                          partner_parties.c.country_code == country_code,
                          partner_parties.c.party_id == party_id),
        sa.exists().where(hub_parties.c.hub_id == partner_id,
                          hub_parties.c.country_code == country_code,
                          hub_parties.c.party_id == party_id,
                          hub_parties.c.status.in_(HUB_ACTIVE_STATUSES)))


def parties_of(c: Connection, partner_id: int) -> list[Party]:
    return [Party(r.country_code, r.party_id, r.role) for r in c.execute(
        sa.select(partner_parties).where(partner_parties.c.partner_id == partner_id)
        .order_by(partner_parties.c.country_code, partner_parties.c.party_id,
                  partner_parties.c.role))]


def holder_of(c: Connection, country_code: str, party_id: str) -> int | None:
    """The partner holding a party (in any role), if any: the one it was given to, else a hub
    reporting it active."""
    found: int | None = c.execute(sa.select(partner_parties.c.partner_id).where(
        partner_parties.c.country_code == country_code.upper(),
        partner_parties.c.party_id == party_id.upper())
        .order_by(partner_parties.c.partner_id)).scalars().first()
    if found is None:
        found = c.execute(sa.select(hub_parties.c.hub_id).where(
            hub_parties.c.country_code == country_code.upper(),
            hub_parties.c.party_id == party_id.upper(),
            hub_parties.c.status.in_(HUB_ACTIVE_STATUSES))
            .order_by(hub_parties.c.hub_id)).scalars().first()
    return found


def _held_parties_statement() -> sa.Select[tuple[str, str]]:
    partner_id = sa.bindparam("partner_id", type_=sa.Integer)
    candidates = sa.union(
        sa.select(partner_parties.c.country_code, partner_parties.c.party_id)
        .where(partner_parties.c.partner_id == partner_id),
        sa.select(hub_parties.c.country_code, hub_parties.c.party_id)
        .where(hub_parties.c.hub_id == partner_id)).subquery()
    return (sa.select(candidates.c.country_code, candidates.c.party_id)
            .where(holds(partner_id, candidates.c.country_code, candidates.c.party_id))
            .order_by(candidates.c.country_code, candidates.c.party_id))


# Built once: every partner's listing asks it, and building it costs more than running it.
_HELD_PARTIES = _held_parties_statement()


def held_parties(c: Connection, partner_id: int) -> list[tuple[str, str]]:
    """The parties (country code, party id) ``partner_id`` holds now, by ``holds``: the
    ones a listing scoped to it may show."""
    return [(r.country_code, r.party_id)
            for r in c.execute(_HELD_PARTIES, {"partner_id": partner_id})]
