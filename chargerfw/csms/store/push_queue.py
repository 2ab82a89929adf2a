"""The durable queue of OCPI pushes to partners.

A change that partners must hear about queues its pushes in the transaction that makes the
change (the module functions below take that transaction's connection), so a crash loses
neither. The push worker takes each partner's oldest pending push in turn, so a partner sees
its pushes in order.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from chargerfw.csms.store.endpoints import receiver_url
from chargerfw.csms.store.parties import holds
from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import PushItem, utcnow
from chargerfw.csms.tables import partner_generation, partners, push_queue

# Prebuilt: a push is queued per meter reading, and building this query costs more than
# running it.
_GENERATION = sa.select(partner_generation.c.generation).where(partner_generation.c.id == 1)
_REGISTERED = (sa.select(partners.c.id, partners.c.their_endpoints)
               .where(partners.c.registered.is_(True)).order_by(partners.c.id))
_HOLDING_PARTY = _REGISTERED.where(holds(partners.c.id, sa.bindparam("country_code"),
                                         sa.bindparam("party_id")))


@dataclass
class _Receivers:
    """Who receives what, as of one ``partner_generation``."""

    generation: str
    of: dict[tuple[str, tuple[str | None, str | None] | None], list[tuple[int, str]]] = field(
        default_factory=dict)


_receivers_of_engine: weakref.WeakKeyDictionary[Engine, _Receivers] = \
    weakref.WeakKeyDictionary()


def receivers(c: Connection, module: str,
              owner: tuple[str | None, str | None] | None = None) -> list[tuple[int, str]]:
    """(partner id, endpoint URL) of every registered partner that receives ``module`` or,
    with ``owner`` (country code, party id), of the partner holding that party.

    Remembered until ``partner_generation`` changes (any change to partners or parties, by
    any process); the generation is read first, so an answer is never older than it."""
    generation = c.execute(_GENERATION).scalar_one()
    known = _receivers_of_engine.get(c.engine)
    if known is None or known.generation != generation:
        known = _Receivers(generation)
        _receivers_of_engine[c.engine] = known
    found = known.of.get((module, owner))
    if found is None:
        rows = c.execute(_REGISTERED) if owner is None else c.execute(
            _HOLDING_PARTY, {"country_code": owner[0], "party_id": owner[1]})
        found = [(partner["id"], base) for partner in rows.mappings()
                 if (base := receiver_url(partner["their_endpoints"], module)) is not None]
        known.of[(module, owner)] = found
    return list(found)


def enqueue_to_receivers(c: Connection, module: str, method: str,
                         url_for: Callable[[str], str],
                         body: Any | Callable[[], Any],
                         owner: tuple[str | None, str | None] | None = None) -> int:
    """Queue a push to every registered partner that receives ``module`` or, with
    ``owner`` (country code, party id), only to the partner holding that party; ``url_for``
    turns the partner's endpoint URL into the push's. Returns how many were queued.

    ``body`` may be a callable: it is then built only when someone receives it.
    """
    now = utcnow()
    partners_base = receivers(c, module, owner)
    if not partners_base:
        return 0
    if callable(body):
        body = body()
    c.execute(push_queue.insert(), [
        dict(partner_id=partner_id, module=module, method=method,
             url=url_for(base.rstrip("/")), body=body, status="PENDING", attempts=0,
             next_attempt_at=now, created_at=now) for partner_id, base in partners_base])
    return len(partners_base)


def enqueue(c: Connection, partner_id: int, module: str, method: str, url: str,
            body: Any) -> int:
    """Queue one push to one partner; returns its id."""
    now = utcnow()
    return inserted_id(c.execute(push_queue.insert().values(
        partner_id=partner_id, module=module, method=method, url=url, body=body,
        status="PENDING", attempts=0, next_attempt_at=now, created_at=now)))


def drop_pending(c: Connection, partner_id: int, reason: str) -> None:
    """Give up every push still pending to a partner."""
    c.execute(push_queue.update().where(push_queue.c.partner_id == partner_id,
                                        push_queue.c.status == "PENDING")
              .values(status="FAILED", last_error=reason))


@dataclass(frozen=True)
class PushQueue:
    """The queue as the push worker and the command handler see it."""

    engine: StoreEngine

    def enqueue_push(self, partner_id: int, module: str, method: str, url: str,
                     body: Any) -> int:
        """Queue one push to one partner (e.g. a CommandResult to its response_url)."""
        with self.engine.begin() as c:
            return enqueue(c, partner_id, module, method, url, body)

    def due_pushes(self, now: datetime | None = None, limit: int = 100) -> list[PushItem]:
        """The oldest pending push of each partner, when it is due (pushes stay in order)."""
        now = now or utcnow()
        with self.engine.connect() as c:
            heads = (sa.select(sa.func.min(push_queue.c.id))
                     .where(push_queue.c.status == "PENDING")
                     .group_by(push_queue.c.partner_id))
            rows = c.execute(sa.select(push_queue, partners.c.their_token,
                                       partners.c.country_code, partners.c.party_id,
                                       partners.c.role)
                             .join(partners, partners.c.id == push_queue.c.partner_id)
                             .where(push_queue.c.id.in_(heads),
                                    push_queue.c.next_attempt_at <= now)
                             .order_by(push_queue.c.id).limit(limit)).mappings().all()
        return [PushItem(r["id"], r["partner_id"], r["module"], r["method"], r["url"],
                         r["body"], r["attempts"], r["their_token"], r["country_code"],
                         r["party_id"], r["role"]) for r in rows]

    def push_done(self, push_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(push_queue.update().where(push_queue.c.id == push_id)
                      .values(status="DONE", done_at=utcnow()))

    def push_failed(self, push_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt; ``retry_at`` None gives up on the push."""
        with self.engine.begin() as c:
            c.execute(push_queue.update().where(push_queue.c.id == push_id).values(
                attempts=push_queue.c.attempts + 1, last_error=error[:500],
                status="PENDING" if retry_at else "FAILED",
                next_attempt_at=retry_at or utcnow()))

    def patch_refused(self, push_id: int, error: str) -> int:
        """Give up a PATCH the receiver refused, and the PATCHes queued after it to the same
        object: each adds to what the refused one would have left. Returns how many later
        ones were given up too."""
        with self.engine.begin() as c:
            row = c.execute(sa.select(push_queue.c.partner_id, push_queue.c.url)
                            .where(push_queue.c.id == push_id)).one()
            c.execute(push_queue.update().where(push_queue.c.id == push_id).values(
                attempts=push_queue.c.attempts + 1, last_error=error[:500], status="FAILED",
                next_attempt_at=utcnow()))
            return int(c.execute(push_queue.update().where(
                push_queue.c.partner_id == row.partner_id, push_queue.c.url == row.url,
                push_queue.c.method == "PATCH", push_queue.c.status == "PENDING",
                push_queue.c.id > push_id).values(
                    status="FAILED", last_error=f"after refused push {push_id}")).rowcount)

    def pushes(self, status: str | None = None) -> list[RowMapping]:
        with self.engine.connect() as c:
            stmt = sa.select(push_queue).order_by(push_queue.c.id)
            if status is not None:
                stmt = stmt.where(push_queue.c.status == status)
            return list(c.execute(stmt).mappings().all())
