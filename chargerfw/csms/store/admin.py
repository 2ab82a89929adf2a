"""The admin HTTP API's tokens (stored as SHA-256 digests, found by a constant-time
comparison), and the events of each charger the API serves: command outcomes and the status
notifications of the processes commands start, in order."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from chargerfw.csms.store.hashing import new_credentials_token, token_digest
from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import AlreadyExists, NotFound, StoreError, utcnow
from chargerfw.csms.tables import admin_tokens, charge_point_events, charge_points

TOKEN_NAME = re.compile(r"[A-Za-z0-9._@-]{1,100}")


@dataclass(frozen=True)
class AdminTokens:
    engine: StoreEngine

    def create_admin_token(self, name: str | None = None) -> tuple[str, str]:
        """A new random token; returns (its name, the token). Only its digest is kept, so
        this is the one time it can be shown. Without a name it is called token-<id>."""
        if name is not None and not TOKEN_NAME.fullmatch(name):
            raise StoreError(f"a token name is 1 to 100 letters, digits or . _ @ -, "
                             f"not {name!r}")
        token = new_credentials_token()
        try:
            with self.engine.begin() as c:
                token_id = inserted_id(c.execute(admin_tokens.insert().values(
                    name=name or f"new-{token_digest(token)[:16]}",
                    token_hash=token_digest(token), created_at=utcnow())))
                if name is None:
                    name = f"token-{token_id}"
                    c.execute(admin_tokens.update().where(admin_tokens.c.id == token_id)
                              .values(name=name))
        except IntegrityError:
            raise AlreadyExists(f"an admin token named {name!r} exists already") from None
        return name, token

    def list_admin_tokens(self) -> list[RowMapping]:
        """Every token's id, name, creation and revocation time (never the digest)."""
        with self.engine.connect() as c:
            return list(c.execute(sa.select(
                admin_tokens.c.id, admin_tokens.c.name, admin_tokens.c.created_at,
                admin_tokens.c.revoked_at).order_by(admin_tokens.c.id)).mappings().all())

    def revoke_admin_token(self, name: str) -> bool:
        """Revoke the token named ``name``; False when it was revoked already."""
        with self.engine.begin() as c:
            row = c.execute(sa.select(admin_tokens).where(admin_tokens.c.name == name)
                            ).mappings().first()
            if row is None:
                raise NotFound(f"no admin token named {name!r}")
            if row["revoked_at"] is not None:
                return False
            c.execute(admin_tokens.update().where(admin_tokens.c.id == row["id"])
                      .values(revoked_at=utcnow()))
            return True

    def admin_token_name(self, token: str) -> str | None:
        """The name of the unrevoked token ``token``, or None. Every unrevoked digest is
        compared in constant time, so the answer's timing tells nothing of the tokens."""
        digest = token_digest(token)
        with self.engine.connect() as c:
            rows = c.execute(sa.select(admin_tokens.c.name, admin_tokens.c.token_hash).where(
                admin_tokens.c.revoked_at.is_(None))).all()
        found = None
        for name, stored in rows:
            if hmac.compare_digest(digest, stored):
                found = name
        return found


def _of_charger(charge_point_id: str, of_type: str | None) -> list[Any]:
    conditions: list[Any] = [charge_point_events.c.charge_point_id == charge_point_id]
    if of_type is not None:
        conditions.append(sa.or_(charge_point_events.c.kind == of_type,
                                 charge_point_events.c.event_type == of_type))
    return conditions


@dataclass(frozen=True)
class ChargePointEvents:
    engine: StoreEngine

    def record_charge_point_event(self, charge_point_id: str, kind: str,
                                  data: dict[str, Any],
                                  event_type: str | None = None) -> int | None:
        """Append an event (a security event with its ``event_type``); its id (the cursor),
        or None for an unknown charge point."""
        with self.engine.begin() as c:
            if c.execute(sa.select(charge_points.c.id).where(
                    charge_points.c.id == charge_point_id)).first() is None:
                return None
            return inserted_id(c.execute(charge_point_events.insert().values(
                charge_point_id=charge_point_id, at=utcnow(), kind=kind, data=data,
                event_type=event_type)))

    def charge_point_events(self, charge_point_id: str, after: int = 0,
                            limit: int = 100, of_type: str | None = None) -> list[RowMapping]:
        """The charger's events with an id above ``after``, oldest first (``of_type``: see
        :meth:`charge_point_event_history`)."""
        with self.engine.connect() as c:
            return list(c.execute(sa.select(charge_point_events).where(
                *_of_charger(charge_point_id, of_type), charge_point_events.c.id > after)
                .order_by(charge_point_events.c.id).limit(limit)).mappings().all())

    def charge_point_event_history(self, charge_point_id: str, of_type: str | None = None,
                                   limit: int = 50) -> list[RowMapping]:
        """The charger's newest ``limit`` events, newest first; with ``of_type`` only those
        of that kind (e.g. ``command``, ``SecurityEventNotification``) or security event
        type (e.g. ``InvalidChargePointCertificate``)."""
        with self.engine.connect() as c:
            return list(c.execute(sa.select(charge_point_events).where(
                *_of_charger(charge_point_id, of_type))
                                  .order_by(charge_point_events.c.id.desc()).limit(limit)
                                  ).mappings().all())

    def latest_charge_point_events(self, charge_point_id: str,
                                   limit: int = 10) -> list[RowMapping]:
        """The charger's newest ``limit`` events, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(charge_point_events).where(
                charge_point_events.c.charge_point_id == charge_point_id)
                .order_by(charge_point_events.c.id.desc()).limit(limit)).mappings().all()
        return list(reversed(rows))
