"""Tokens (OCPI Receiver): what eMSPs put and patch, and the site's own cards; a token's
identity is country code, party id, uid and type. Also the routing rules that say which
party issued a token we do not hold (by uid prefix)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.ocpi_objects import dump
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import CpoIdentity, NotFound, StoreError, utcnow
from chargerfw.csms.tables import token_routes, tokens

# OCPP 1.6 IdToken (CiString20): an idTag or parentIdTag longer than this cannot be sent.
ID_TOKEN_MAX_LENGTH = 20


@dataclass(frozen=True)
class StoredToken:
    """A stored token: the OCPI Token object and, for a card of the site's own, its expiry."""

    data: dict[str, Any]
    expires_at: datetime | None = None

    def status(self, now: datetime) -> str:
        """The OCPP AuthorizationStatus the token itself has, whatever its whitelist rule:
        Blocked when it is not valid, Expired past its expiry, else Accepted."""
        if not self.data["valid"]:
            return "Blocked"
        if self.expires_at is not None and self.expires_at <= now:
            return "Expired"
        return "Accepted"

    @property
    def parent_id_tag(self) -> str | None:
        """The OCPP parentIdTag: the token's OCPI group_id when it fits an IdToken."""
        group = self.data.get("group_id")
        return group if group and len(group) <= ID_TOKEN_MAX_LENGTH else None


def _identity(country_code: str, party_id: str, uid: str, token_type: str) -> tuple[Any, ...]:
    return (tokens.c.country_code == country_code, tokens.c.party_id == party_id,
            tokens.c.uid == uid, tokens.c.type == token_type)


@dataclass(frozen=True)
class Tokens:
    engine: StoreEngine
    cpo: CpoIdentity

    def put_token(self, token: m.Token, partner_id: int | None,
                  expires_at: datetime | None = None) -> bool:
        """Create or replace a token; True when it was created."""
        body = dump(token)
        key = _identity(token.country_code, token.party_id, token.uid, token.type)
        values = dict(contract_id=token.contract_id, valid=token.valid,
                      whitelist=token.whitelist, partner_id=partner_id, data=body,
                      expires_at=expires_at, last_updated=token.last_updated)
        with self.engine.begin() as c:
            if c.execute(tokens.update().where(*key).values(**values)).rowcount:
                return False
            c.execute(tokens.insert().values(country_code=token.country_code,
                                             party_id=token.party_id, uid=token.uid,
                                             type=token.type, **values))
            return True

    def add_local_token(self, uid: str, *, whitelist: str = "ALWAYS", valid: bool = True,
                        token_type: str = "RFID", issuer: str = "chargerfw csms",
                        contract_id: str | None = None, parent_id_tag: str | None = None,
                        expires_at: datetime | None = None) -> bool:
        """A token of the site's own (cards the operator hands out, no eMSP behind it), under
        our country code and party id. ``parent_id_tag`` groups cards (OCPP parentIdTag,
        stored as the OCPI group_id); past ``expires_at`` the card is Expired. True when it
        was created, False when replaced."""
        cpo = self.cpo
        if parent_id_tag is not None and not (
                0 < len(parent_id_tag) <= ID_TOKEN_MAX_LENGTH and parent_id_tag.isascii()
                and parent_id_tag.isprintable()):
            raise StoreError(f"parent id tag {parent_id_tag!r}: 1 to {ID_TOKEN_MAX_LENGTH} "
                             "printable ASCII characters (an OCPP idTag)")
        if expires_at is not None and expires_at.tzinfo is None:
            raise StoreError("expiry: a time with its UTC offset, e.g. 2027-01-01T00:00:00Z")
        try:
            token = m.Token.model_validate({
                "country_code": cpo.country_code, "party_id": cpo.party_id,
                "uid": uid, "type": token_type,
                "contract_id": contract_id or f"{cpo.country_code}-{cpo.party_id}-{uid}"[:36],
                "issuer": issuer, "group_id": parent_id_tag, "valid": valid,
                "whitelist": whitelist, "last_updated": utcnow()})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise StoreError(f"token {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        return self.put_token(token, None, expires_at)

    def get_token(self, country_code: str, party_id: str, uid: str,
                  token_type: str = "RFID") -> dict[str, Any] | None:
        with self.engine.connect() as c:
            data: dict[str, Any] | None = c.execute(sa.select(tokens.c.data).where(
                *_identity(country_code, party_id, uid, token_type))).scalar_one_or_none()
            return data

    def patch_token(self, country_code: str, party_id: str, uid: str, token_type: str,
                    patch: m.TokenPatch) -> dict[str, Any]:
        changes = patch.model_dump(mode="json", exclude_unset=True)
        key = _identity(country_code, party_id, uid, token_type)
        with self.engine.begin() as c:
            current = c.execute(sa.select(tokens.c.data).where(*key)).scalar_one_or_none()
            if current is None:
                raise NotFound(f"unknown token {country_code}/{party_id}/{uid}")
            if {"uid", "country_code", "party_id", "type"} & changes.keys():
                raise StoreError("a PATCH may not change the token's identity")
            merged = m.Token.model_validate({**current, **changes})
            body = dump(merged)
            c.execute(tokens.update().where(*key).values(
                contract_id=merged.contract_id, valid=merged.valid,
                whitelist=merged.whitelist, data=body, last_updated=merged.last_updated))
        return body

    def tokens_by_uid(self, uid: str) -> list[StoredToken]:
        """The stored tokens with this uid, the one to decide by first: the site's own
        (a partner cannot shadow them), then the issuer a routing rule names, then the
        most recently changed."""
        with self.engine.connect() as c:
            found = [StoredToken(r.data, r.expires_at) for r in c.execute(
                sa.select(tokens.c.data, tokens.c.expires_at).where(tokens.c.uid == uid)
                .order_by(tokens.c.last_updated.desc()))]
            if len(found) < 2:
                return found
            routed = _route(c, uid)
        return self._ranked(found, routed)

    def deciding_tokens(self, whitelists: Iterable[str]) -> list[StoredToken]:
        """For every uid with a stored token, the token that decides it (as
        ``tokens_by_uid`` ranks them), when its whitelist rule is one of ``whitelists``;
        ordered by uid."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(tokens.c.data, tokens.c.expires_at)
                             .order_by(tokens.c.uid, tokens.c.last_updated.desc())).all()
            rules = list(c.execute(sa.select(token_routes)))
        by_uid: dict[str, list[StoredToken]] = {}
        for row in rows:
            by_uid.setdefault(row.data["uid"], []).append(StoredToken(row.data, row.expires_at))
        wanted = set(whitelists)
        deciding = []
        for uid, found in by_uid.items():
            first = self._ranked(found, _best_route(rules, uid))[0] if len(found) > 1 \
                else found[0]
            if first.data["whitelist"] in wanted:
                deciding.append(first)
        return deciding

    def _ranked(self, found: list[StoredToken], routed: tuple[str, str] | None
                ) -> list[StoredToken]:
        ours = (self.cpo.country_code, self.cpo.party_id)

        def rank(token: StoredToken) -> int:
            party = (token.data["country_code"], token.data["party_id"])
            return 0 if party == ours else 1 if party == routed else 2

        return sorted(found, key=rank)

    def set_token_route(self, uid_prefix: str, country_code: str, party_id: str) -> None:
        """Route real-time authorization of unknown tokens whose uid starts with
        ``uid_prefix`` to the party ``country_code``/``party_id`` (replacing a rule)."""
        if not uid_prefix or len(uid_prefix) > 36 or not uid_prefix.isprintable():
            raise StoreError(f"uid prefix {uid_prefix!r}: 1 to 36 printable characters")
        values = dict(country_code=country_code.upper(), party_id=party_id.upper())
        with self.engine.begin() as c:
            if not c.execute(token_routes.update().where(token_routes.c.uid_prefix == uid_prefix)
                             .values(**values)).rowcount:
                c.execute(token_routes.insert().values(uid_prefix=uid_prefix, **values))

    def remove_token_route(self, uid_prefix: str) -> None:
        with self.engine.begin() as c:
            if not c.execute(token_routes.delete().where(
                    token_routes.c.uid_prefix == uid_prefix)).rowcount:
                raise NotFound(f"no route for uid prefix {uid_prefix!r}")

    def token_routes(self) -> list[tuple[str, str, str]]:
        """(uid prefix, country code, party id) of every routing rule."""
        with self.engine.connect() as c:
            return [(r.uid_prefix, r.country_code, r.party_id) for r in c.execute(
                sa.select(token_routes).order_by(token_routes.c.uid_prefix))]

    def route_for_uid(self, uid: str) -> tuple[str, str] | None:
        """The party the longest matching routing rule names for ``uid``, if any."""
        with self.engine.connect() as c:
            return _route(c, uid)


def _route(c: Connection, uid: str) -> tuple[str, str] | None:
    return _best_route(list(c.execute(sa.select(token_routes))), uid)


def _best_route(rules: Iterable[Any], uid: str) -> tuple[str, str] | None:
    """The party of the longest rule whose uid prefix ``uid`` starts with."""
    best: tuple[str, str] | None = None
    longest = 0
    for row in rules:
        if uid.startswith(row.uid_prefix) and len(row.uid_prefix) > longest:
            best, longest = (row.country_code, row.party_id), len(row.uid_prefix)
    return best
