"""How many rows each token party's listing of sessions or CDRs holds, for an exact
X-Total-Count that does not cost a count over the party's rows.

Triggers on ``transactions`` and ``cdrs`` (migration 0021_owner_counts) append a row of +1 or
-1 to ``owner_counts`` for each row that enters or leaves a party's listing, in the
transaction that changes it: a rollback takes it back, and whatever writes the rows (the
store, a migration, a bulk load) keeps the counts. Writers only append, so concurrent ones
never wait on a shared counter row (PostgreSQL row locks, and the deadlocks of two
transactions taking two counters in opposite orders). A party's total is the sum of its
rows; :func:`fold_owner_counts`, run by the backend every few seconds, folds each party's
rows into one so that sum stays a few rows long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.tables import owner_counts

SESSIONS = "sessions"
CDRS = "cdrs"


def listing_total(c: Connection, listing: str, parties: Sequence[tuple[str, str]] | None
                  ) -> int:
    """How many rows ``listing`` holds for ``parties`` (country code, party id), or for
    everyone (rows of unknown parties included) with None."""
    where = [owner_counts.c.listing == listing]
    if parties is not None:
        if not parties:
            return 0
        where.append(sa.or_(*(sa.and_(owner_counts.c.country_code == cc,
                                      owner_counts.c.party_id == pid)
                              for cc, pid in parties)))
    total = c.execute(sa.select(sa.func.coalesce(sa.func.sum(owner_counts.c.delta), 0))
                      .where(*where)).scalar_one()
    return int(total)


def fold_owner_counts(c: Connection) -> int:
    """Fold each party's count rows into one (of their sum; none when it is 0); returns
    how many rows went. Rows another transaction is folding are left to it (PostgreSQL:
    skipped, never waited for), so folders never block each other or a writer."""
    key = (owner_counts.c.listing, owner_counts.c.country_code, owner_counts.c.party_id)
    removed = 0
    for listing, country_code, party_id in c.execute(
            sa.select(*key).group_by(*key).having(sa.func.count() > 1).order_by(*key)).all():
        scope = (owner_counts.c.listing == listing, owner_counts.c.country_code == country_code,
                 owner_counts.c.party_id == party_id)
        taken = sa.select(owner_counts.c.id).where(*scope).with_for_update(skip_locked=True)
        deltas = c.execute(owner_counts.delete().where(owner_counts.c.id.in_(taken))
                           .returning(owner_counts.c.delta)).scalars().all()
        if total := sum(deltas):
            c.execute(owner_counts.insert().values(listing=listing, country_code=country_code,
                                                   party_id=party_id, delta=total))
        removed += len(deltas) - (1 if total else 0)
    return removed


@dataclass(frozen=True)
class OwnerCounts:
    engine: StoreEngine

    def fold_owner_counts(self) -> int:
        """See :func:`fold_owner_counts`."""
        with self.engine.begin() as c:
            return fold_owner_counts(c)
