"""The SQL shapes every aggregate shares: a page of an OCPI listing (filtered on
``last_updated``, ordered by it, then by id) and the id the database gave an inserted row."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from chargerfw.csms.store.values import PageQuery


def select_page(c: Connection, table: sa.Table, query: PageQuery, *conditions: Any,
                columns: tuple[Any, ...] = ()) -> tuple[int, CursorResult[Any]]:
    """How many rows of ``table`` match, and the requested page of them (``columns``, or
    whole rows)."""
    where = [*conditions, *_date_filter(table.c.last_updated, query)]
    total = c.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    rows = c.execute(sa.select(*(columns or (table,))).where(*where)
                     .order_by(table.c.last_updated, table.c.id)
                     .offset(query.offset).limit(query.limit))
    return int(total), rows


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
