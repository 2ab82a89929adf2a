"""OCPI partners and their credentials: the parties the operator gives each partner, the tokens
we issue (stored as digests), the token and endpoints they give us, registration in both
directions (refused when a partner declares a party it was not given), and the full sync a
newly registered partner gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from chargerfw.csms.store.endpoints import object_url, receiver_url
from chargerfw.csms.store.hashing import new_credentials_token, token_digest
from chargerfw.csms.store.locations import location_objects
from chargerfw.csms.store.parties import Party, holder_of, holds, parties_of
from chargerfw.csms.store.push_queue import drop_pending, enqueue
from chargerfw.csms.store.sessions import forget_session_pushes
from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import AlreadyExists, CpoIdentity, NotFound, StoreError, utcnow
from chargerfw.csms.tables import locations, partner_parties, partners, tariffs


class PartyNotAllowed(StoreError):
    """A partner declared a party the operator did not give it."""


def check_declared(c: Connection, partner_id: int, declared: Sequence[Party]) -> None:
    """Refuse (PartyNotAllowed) a declaration of roles unless every one was given to the
    partner; and refuse an empty one."""
    if not declared:
        raise PartyNotAllowed("roles: at least one role is needed")
    given = set(parties_of(c, partner_id))
    foreign = sorted(set(declared) - given)
    if foreign:
        allowed = ", ".join(map(str, sorted(given))) or "none"
        raise PartyNotAllowed(f"roles: {', '.join(map(str, foreign))} not given to this "
                              f"partner (given: {allowed})")

def partner_role(parties: Sequence[Party]) -> str:
    """A partner given a HUB party is a hub (it routes for the parties it reports); any
    other is an eMSP."""
    return "HUB" if any(party.role == "HUB" for party in parties) else "EMSP"


@dataclass(frozen=True)
class Partners:
    engine: StoreEngine
    cpo: CpoIdentity

    def add_partner(self, name: str, parties: Sequence[Party] = ()) -> tuple[int, str]:
        """Create a partner fixed to ``parties`` and issue its CREDENTIALS_TOKEN_A; returns
        (id, token_a). Refused when a party is ours or another partner's."""
        token_a = new_credentials_token()
        with self.engine.begin() as c:
            partner_id = self._insert_partner(c, name, parties,
                                              token_a_hash=token_digest(token_a))
        return partner_id, token_a

    def _insert_partner(self, c: Connection, name: str, parties: Sequence[Party],
                        **tokens: str) -> int:
        first = parties[0] if parties else None
        partner_id = inserted_id(c.execute(partners.insert().values(
            name=name, country_code=first.country_code if first else None,
            party_id=first.party_id if first else None, role=partner_role(parties),
            registered=False, last_updated=utcnow(), **tokens)))
        for party in dict.fromkeys(parties):
            self._give(c, partner_id, party)
        return partner_id

    def _give(self, c: Connection, partner_id: int, party: Party) -> None:
        if party.code == (self.cpo.country_code, self.cpo.party_id):
            raise StoreError(f"party {party.country_code}/{party.party_id} is our own")
        holder = holder_of(c, *party.code)
        if holder is not None and holder != partner_id:
            raise AlreadyExists(f"party {party.country_code}/{party.party_id} belongs to "
                                f"partner {holder}")
        if party in parties_of(c, partner_id):
            raise AlreadyExists(f"partner {partner_id} holds {party} already")
        c.execute(partner_parties.insert().values(
            partner_id=partner_id, country_code=party.country_code, party_id=party.party_id,
            role=party.role))

    def give_party(self, partner_id: int, party: Party) -> None:
        """Give a partner one more party (refused when it is ours or another partner's)."""
        with self.engine.begin() as c:
            if c.execute(sa.select(partners.c.id).where(partners.c.id == partner_id)
                         ).first() is None:
                raise NotFound(f"no partner {partner_id}")
            self._give(c, partner_id, party)

    def take_party(self, partner_id: int, party: Party) -> None:
        """Take a party from a partner: it no longer sees or acts for it."""
        with self.engine.begin() as c:
            if not c.execute(partner_parties.delete().where(
                    partner_parties.c.partner_id == partner_id,
                    partner_parties.c.country_code == party.country_code,
                    partner_parties.c.party_id == party.party_id,
                    partner_parties.c.role == party.role)).rowcount:
                raise NotFound(f"partner {partner_id} does not hold {party}")

    def partner_parties(self, partner_id: int) -> list[Party]:
        with self.engine.connect() as c:
            return parties_of(c, partner_id)

    def holds_party(self, partner_id: int, country_code: str | None,
                    party_id: str | None) -> bool:
        """Whether the partner holds the party (the owner of a token, session or CDR)."""
        if country_code is None or party_id is None:
            return False
        with self.engine.connect() as c:
            return bool(c.execute(sa.select(holds(partner_id, country_code.upper(),
                                                  party_id.upper()))).scalar())

    def partner_of_party(self, country_code: str, party_id: str) -> RowMapping | None:
        """The partner holding a party (e.g. the issuer of a token), if any."""
        with self.engine.connect() as c:
            partner_id = holder_of(c, country_code, party_id)
            if partner_id is None:
                return None
            return c.execute(sa.select(partners).where(partners.c.id == partner_id)
                             ).mappings().first()

    def partner_by_token(self, token: str) -> tuple[RowMapping, str] | None:
        """The partner holding ``token`` and which kind it is: ("A" or "C")."""
        digest = token_digest(token)
        with self.engine.connect() as c:
            row = c.execute(sa.select(partners).where(partners.c.token_c_hash == digest)
                            ).mappings().first()
            if row is not None:
                return row, "C"
            row = c.execute(sa.select(partners).where(partners.c.token_a_hash == digest)
                            ).mappings().first()
            if row is not None:
                return row, "A"
        return None

    def get_partner(self, partner_id: int) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(partners).where(partners.c.id == partner_id)
                             ).mappings().first()

    def list_partners(self) -> list[RowMapping]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(partners).order_by(partners.c.id)).mappings().all())

    def check_declared_roles(self, partner_id: int, declared: Sequence[Party]) -> None:
        """Raise PartyNotAllowed unless the partner was given every declared role."""
        with self.engine.connect() as c:
            check_declared(c, partner_id, declared)

    def register_partner(self, partner_id: int, their_token: str, their_versions_url: str,
                         their_version: str, their_endpoints: list[dict[str, Any]],
                         declared: Sequence[Party]) -> str:
        """Store the eMSP's credentials, retire TOKEN_A, issue a new TOKEN_C (returned).

        Refused (PartyNotAllowed, nothing changed) when it declares a role it was not given.
        """
        token_c = new_credentials_token()
        with self.engine.begin() as c:
            check_declared(c, partner_id, declared)
            c.execute(partners.update().where(partners.c.id == partner_id).values(
                their_token=their_token, their_versions_url=their_versions_url,
                their_version=their_version, their_endpoints=their_endpoints,
                token_a_hash=None, token_c_hash=token_digest(token_c), registered=True,
                last_updated=utcnow()))
            forget_session_pushes(c, partner_id)
        return token_c

    def add_initiating_partner(self, name: str,
                               parties: Sequence[Party] = ()) -> tuple[int, str]:
        """A partner we register with ourselves: issue the token they will use to call us
        (our CREDENTIALS_TOKEN_B) before we POST it, since they call back during the POST."""
        token_b = new_credentials_token()
        with self.engine.begin() as c:
            partner_id = self._insert_partner(c, name, parties,
                                              token_c_hash=token_digest(token_b))
        return partner_id, token_b

    def complete_registration(self, partner_id: int, their_token: str,
                              their_versions_url: str, their_version: str,
                              their_endpoints: list[dict[str, Any]],
                              declared: Sequence[Party]) -> None:
        """Store the peer's token and endpoints once they accepted our credentials; refused
        (PartyNotAllowed) when they declare a role they were not given."""
        with self.engine.begin() as c:
            check_declared(c, partner_id, declared)
            c.execute(partners.update().where(partners.c.id == partner_id).values(
                their_token=their_token, their_versions_url=their_versions_url,
                their_version=their_version, their_endpoints=their_endpoints,
                registered=True, last_updated=utcnow()))
            forget_session_pushes(c, partner_id)

    def delete_partner(self, partner_id: int) -> None:
        """Forget a partner whose registration failed (nothing refers to it yet)."""
        with self.engine.begin() as c:
            c.execute(partner_parties.delete().where(partner_parties.c.partner_id == partner_id))
            c.execute(partners.delete().where(partners.c.id == partner_id))

    def unregister_partner(self, partner_id: int) -> None:
        """DELETE /credentials: forget their token and ours; pending pushes are dropped."""
        with self.engine.begin() as c:
            drop_pending(c, partner_id, "partner unregistered")
            forget_session_pushes(c, partner_id)
            c.execute(partners.update().where(partners.c.id == partner_id).values(
                their_token=None, their_endpoints=None, token_c_hash=None, registered=False,
                last_updated=utcnow()))

    def queue_full_sync(self, partner_id: int) -> int:
        """Queue PUTs of every location and tariff to one newly registered partner."""
        with self.engine.begin() as c:
            partner = c.execute(sa.select(partners).where(partners.c.id == partner_id)
                                ).mappings().one()
            queued = 0
            base = receiver_url(partner["their_endpoints"], "locations")
            if base is not None:
                rows = c.execute(sa.select(locations).order_by(locations.c.id)).mappings().all()
                for body in location_objects(c, rows):
                    _put_object(c, partner_id, "locations", base, body)
                    queued += 1
            base = receiver_url(partner["their_endpoints"], "tariffs")
            if base is not None:
                for body in c.execute(sa.select(tariffs.c.data).order_by(tariffs.c.id)
                                      ).scalars():
                    _put_object(c, partner_id, "tariffs", base, body)
                    queued += 1
            return queued


def _put_object(c: Connection, partner_id: int, module: str, base: str,
                body: dict[str, Any]) -> None:
    enqueue(c, partner_id, module, "PUT", object_url(
        base.rstrip("/"), body["country_code"], body["party_id"], body["id"]), body)
