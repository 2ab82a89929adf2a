"""The SQL shapes every aggregate shares: a page of an OCPI listing (filtered on
``last_updated``, ordered by it, then by id) and the id the database gave an inserted row.

A page is read by key (the rows after the previous page's last ``(last_updated, id)``) when
the caller has that key, so its cost does not grow with how deep into the listing it is;
by offset otherwise (correct, but the database steps over every row before it). A listing
scoped to owning parties reads each party's rows from an index that leads with the owner
columns and merges them. The total of a listing whose rows the owner counts keep
(``owner_counts``) comes from them when no date filter narrows it; otherwise it is a count
over the same scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, RowMapping

from chargerfw.csms.store.owner_counts import listing_total
from chargerfw.csms.store.values import BadPageKey, PageKey, PageQuery

# Past this many owning parties (a hub's), their rows are read in one ordered scan instead
# of one index range per party merged.
MAX_MERGED_OWNERS = 16


@dataclass(frozen=True)
class Owners:
    """Rows of these parties only: ``country_code``/``party_id`` are the owner columns."""

    country_code: sa.ColumnElement[Any]
    party_id: sa.ColumnElement[Any]
    parties: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class PageRows:
    rows: list[RowMapping]
    total: int
    next_key: PageKey | None


def select_page(c: Connection, table: sa.Table, query: PageQuery, *conditions: Any,
                owners: Owners | None = None, counted_as: str | None = None,
                columns: Sequence[sa.Column[Any]] = (), as_text: Sequence[str] = ()
                ) -> PageRows:
    """The requested page of ``table``'s rows that meet ``conditions`` (and belong to
    ``owners``), how many such rows there are, and the key the next page starts after.
    ``counted_as``: the ``owner_counts`` listing that counts exactly the rows meeting
    ``conditions``, per owner. ``columns``: what to read of each row (``last_updated`` and
    ``id`` among them), all of it by default; ``as_text``: the names of JSON columns among
    them read as the text they hold, not parsed. Raises BadPageKey when ``query.after``
    cannot be a key of ``table``."""
    last_updated, row_id = table.c.last_updated, table.c.id
    read: Sequence[Any] = list(columns) or [table]
    where = [*conditions, *_date_filter(last_updated, query)]
    if owners is None:
        scopes: list[list[Any]] = [[]]
    elif not owners.parties:
        return PageRows([], 0, None)
    else:
        scopes = [[owners.country_code == cc, owners.party_id == pid]
                  for cc, pid in owners.parties]
    anywhere = (sa.or_(*(sa.and_(*scope) for scope in scopes)) if owners is not None
                else sa.true())
    if counted_as is not None and query.date_from is None and query.date_to is None:
        total = listing_total(c, counted_as, None if owners is None else owners.parties)
    else:
        total = c.execute(sa.select(sa.func.count()).select_from(table)
                          .where(*where, anywhere)).scalar_one()
    # One row more than asked tells whether a next page exists.
    wanted = query.limit + 1
    if query.after is None:
        rows = _fetch(c, sa.select(*read).where(*where, anywhere)
                      .order_by(last_updated, row_id).offset(query.offset).limit(wanted),
                      as_text)
    else:
        after = _checked_key(table, query.after)
        where.append(sa.and_(last_updated >= after.last_updated,
                             sa.or_(last_updated > after.last_updated, row_id > after.id)))
        if len(scopes) > MAX_MERGED_OWNERS:
            scopes = [[anywhere]]
        rows = _merged(c, table, read, where, scopes, wanted, as_text)
    page = list(rows[:query.limit])
    next_key = None
    if len(rows) > query.limit:
        next_key = PageKey(page[-1]["last_updated"], page[-1]["id"])
    return PageRows(page, int(total), next_key)


def _merged(c: Connection, table: sa.Table, read: Sequence[Any], where: list[Any],
            scopes: list[list[Any]], wanted: int, as_text: Sequence[str]
            ) -> Sequence[RowMapping]:
    """The first ``wanted`` rows (``read`` of each) in (last_updated, id) order of the
    union of ``scopes``, each read as its own ordered, limited index range."""
    parts = [sa.select(*read).where(*where, *scope)
             .order_by(table.c.last_updated, table.c.id).limit(wanted) for scope in scopes]
    if len(parts) == 1:
        return _fetch(c, parts[0], as_text)
    # SQLite takes no ORDER BY/LIMIT on a compound member: each is wrapped as a subquery.
    union = sa.union_all(*(sa.select(part.subquery()) for part in parts)).subquery()
    return _fetch(c, sa.select(union).order_by(union.c.last_updated, union.c.id)
                  .limit(wanted), as_text)


def _fetch(c: Connection, page: sa.Select[Any], as_text: Sequence[str]
           ) -> Sequence[RowMapping]:
    """The rows of ``page``, the ``as_text`` columns as text. Converted outside the page's
    query: PostgreSQL would convert each row an OFFSET steps over too."""
    if not as_text:
        return c.execute(page).mappings().all()
    rows = page.subquery()
    return c.execute(sa.select(*(stored_json(column) if column.key in as_text else column
                                 for column in rows.c))
                     .order_by(rows.c.last_updated, rows.c.id)).mappings().all()


def _checked_key(table: sa.Table, key: PageKey) -> PageKey:
    """``key`` when it can be a row's: an id of the column's type and range (the database
    would fail on anything else), an aware timestamp."""
    column_type = table.c.id.type
    if isinstance(column_type, sa.Integer):
        top = 2**63 - 1 if isinstance(column_type, sa.BigInteger) else 2**31 - 1
        valid = isinstance(key.id, int) and not isinstance(key.id, bool) and 0 <= key.id <= top
    else:
        length = getattr(column_type, "length", None) or 255
        valid = (isinstance(key.id, str) and len(key.id) <= length and key.id.isprintable())
    if not valid:
        raise BadPageKey(f"page key id {key.id!r} is not an id of {table.name}")
    if key.last_updated.tzinfo is None:
        raise BadPageKey("page key last_updated has no time zone")
    return key


def stored_json(column: sa.ColumnElement[Any]) -> sa.Label[str]:
    """A JSON column read as the text it holds (under its own name), not parsed."""
    return sa.cast(column, sa.Text).label(column.key)


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the one row an INSERT just added."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT reported no primary key")
    return int(key[0])


def _date_filter(column: sa.ColumnElement[Any], query: PageQuery) -> list[Any]:
    conditions: list[Any] = []
    if query.date_from is not None:
        conditions.append(column >= query.date_from)
    if query.date_to is not None:
        conditions.append(column < query.date_to)
    return conditions
