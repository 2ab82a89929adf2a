"""OCPI partners and their credentials: the tokens we issue (stored as digests), the token and
endpoints they give us, registration in both directions, and the full sync a newly
registered partner gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from chargerfw.csms.store.endpoints import object_url, receiver_url
from chargerfw.csms.store.hashing import new_credentials_token, token_digest
from chargerfw.csms.store.locations import location_objects
from chargerfw.csms.store.push_queue import drop_pending, enqueue
from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.values import StoreError, utcnow
from chargerfw.csms.tables import locations, partners, tariffs

# The roles a partner can have: an eMSP, or a hub that connects us to many parties.
PARTNER_ROLES = ("EMSP", "HUB")


@dataclass(frozen=True)
class Partners:
    engine: Engine

    def add_partner(self, name: str, country_code: str | None = None,
                    party_id: str | None = None, role: str = "EMSP") -> tuple[int, str]:
        """Create a partner (role EMSP, or HUB for a roaming hub) and issue its
        CREDENTIALS_TOKEN_A; returns (id, token_a)."""
        if role not in PARTNER_ROLES:
            raise StoreError(f"a partner's role is one of {', '.join(PARTNER_ROLES)}")
        token_a = new_credentials_token()
        with self.engine.begin() as c:
            partner_id = inserted_id(c.execute(partners.insert().values(
                name=name, country_code=country_code, party_id=party_id, role=role,
                token_a_hash=token_digest(token_a), registered=False,
                last_updated=utcnow())))
        return partner_id, token_a

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

    def register_partner(self, partner_id: int, their_token: str, their_versions_url: str,
                         their_version: str, their_endpoints: list[dict[str, Any]],
                         country_code: str, party_id: str, name: str) -> str:
        """Store the eMSP's credentials, retire TOKEN_A, issue a new TOKEN_C (returned)."""
        token_c = new_credentials_token()
        with self.engine.begin() as c:
            c.execute(partners.update().where(partners.c.id == partner_id).values(
                their_token=their_token, their_versions_url=their_versions_url,
                their_version=their_version, their_endpoints=their_endpoints,
                country_code=country_code, party_id=party_id, name=name,
                token_a_hash=None, token_c_hash=token_digest(token_c), registered=True,
                last_updated=utcnow()))
        return token_c

    def add_initiating_partner(self, name: str, role: str = "EMSP") -> tuple[int, str]:
        """A partner we register with ourselves: issue the token they will use to call us
        (our CREDENTIALS_TOKEN_B) before we POST it, since they call back during the POST."""
        if role not in PARTNER_ROLES:
            raise StoreError(f"a partner's role is one of {', '.join(PARTNER_ROLES)}")
        token_b = new_credentials_token()
        with self.engine.begin() as c:
            partner_id = inserted_id(c.execute(partners.insert().values(
                name=name, role=role, token_c_hash=token_digest(token_b), registered=False,
                last_updated=utcnow())))
        return partner_id, token_b

    def complete_registration(self, partner_id: int, their_token: str,
                              their_versions_url: str, their_version: str,
                              their_endpoints: list[dict[str, Any]], country_code: str,
                              party_id: str, name: str) -> None:
        """Store the peer's token and endpoints once they accepted our credentials."""
        with self.engine.begin() as c:
            c.execute(partners.update().where(partners.c.id == partner_id).values(
                their_token=their_token, their_versions_url=their_versions_url,
                their_version=their_version, their_endpoints=their_endpoints,
                country_code=country_code, party_id=party_id, name=name, registered=True,
                last_updated=utcnow()))

    def delete_partner(self, partner_id: int) -> None:
        """Forget a partner whose registration failed (nothing refers to it yet)."""
        with self.engine.begin() as c:
            c.execute(partners.delete().where(partners.c.id == partner_id))

    def unregister_partner(self, partner_id: int) -> None:
        """DELETE /credentials: forget their token and ours; pending pushes are dropped."""
        with self.engine.begin() as c:
            drop_pending(c, partner_id, "partner unregistered")
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
