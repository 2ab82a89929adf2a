"""OCPI list pages: following the Link header walks a partner's sessions and CDRs once each,
in (last_updated, id) order, whatever ties, changes during the walk, date filters and owner
scope; plain offsets still work; a cursor that is not ours is a 2001."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from csms_doubles import OcpiEnv, error, ocpi_env, ok

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import PageQuery, Store
from chargerfw.csms.store import sql as store_sql
from chargerfw.csms.store.cdrs import record_cdr
from chargerfw.csms.tables import hub_parties, transactions

pytestmark = pytest.mark.timeout(120)
V = "/ocpi/2.2.1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
OURS = ("DE", "EMS")  # the registered eMSP's party
OTHERS = ("FR", "OTH")


def add_sessions(store: Store, owners_at: list[tuple[tuple[str, str], datetime]],
                 first_id: int = 1, cdrs: bool = False) -> list[int]:
    """Completed sessions on CP1-1 (ids from ``first_id``), each of a token of the given
    party, last updated at the given time; with their CDRs (of the same time) if ``cdrs``."""
    ids = []
    with store.engine.begin() as c:
        for n, ((cc, pid), when) in enumerate(owners_at, start=first_id):
            c.execute(transactions.insert().values(
                id=n, session_id=f"session-{n:04d}", idempotency_key=f"key-{n}",
                charge_point_id="CP1", connector_id=1, evse_uid="CP1-1", location_id="LOC1",
                id_tag=f"TAG{n}", id_tag_status="Accepted", token_country_code=cc,
                token_party_id=pid, token_type="RFID", contract_id=f"{cc}-{pid}-{n}",
                auth_method="WHITELIST", meter_start=0, meter_last=1000, meter_stop=1000,
                start_time=when - timedelta(hours=1), stop_time=when, stop_reason="Local",
                status="COMPLETED", currency="EUR", tariff_id="T1", last_updated=when))
            if cdrs:
                row = c.execute(sa.select(transactions).where(transactions.c.id == n)
                                ).mappings().one()
                record_cdr(c, store.cpo, row, when)
            ids.append(n)
    return ids


def touch(store: Store, tx_id: int, when: datetime) -> None:
    with store.engine.begin() as c:
        c.execute(transactions.update().where(transactions.c.id == tx_id)
                  .values(last_updated=when))


def next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("Link")
    return link[link.index("<") + 1:link.index(">")] if link else None


async def walk(env: OcpiEnv, module: str, model: Any, params: dict[str, Any],
               between_pages: Any = None) -> tuple[list[Any], list[int]]:
    """Every item of a listing, following Link from the first page; and X-Total-Count of
    each page. ``between_pages(n)`` runs after page n (from 1)."""
    url: str | None = f"{V}/{module}"
    items: list[Any] = []
    totals: list[int] = []
    pages = 0
    while url is not None:
        response = await env.client.get(url, params=params if pages == 0 else None,
                                        headers=env.auth)
        items += ok(response, list[model])
        totals.append(int(response.headers["X-Total-Count"]))
        pages += 1
        url = next_link(response)
        if url is not None:
            assert "cursor=" in url and f"limit={params['limit']}" in url
        if between_pages is not None:
            between_pages(pages)
        assert pages < 100
    return items, totals


def session_number(session: Any) -> int:
    return int(session.id.removeprefix("session-"))


async def test_a_walk_returns_each_session_once_in_order_despite_ties(db: str) -> None:
    # Groups of sessions share a last_updated (later ids, earlier times): the id breaks the
    # tie, across page ends.
    times = [T0 + timedelta(minutes=5 - n // 4) for n in range(23)]
    owners = [OTHERS if n % 5 == 2 else OURS for n in range(23)]
    async with ocpi_env(db) as env:
        store = env.csms.store
        add_sessions(store, list(zip(owners, times, strict=True)))
        ours = sorted((n + 1 for n in range(23) if owners[n] == OURS),
                      key=lambda i: (times[i - 1], i))
        assert ours[:3] == [21, 22, 17]  # 23 is FR/OTH's
        for limit in (1, 3, 4, 50):
            sessions, totals = await walk(env, "sessions", m.Session, {"limit": limit})
            assert [session_number(s) for s in sessions] == ours
            assert set(totals) == {len(ours)}
        # A plain offset request gives the same page as the cursor of the Link.
        by_offset = ok(await env.client.get(f"{V}/sessions", params={"offset": 6, "limit": 3},
                                            headers=env.auth), list[m.Session])
        assert [session_number(s) for s in by_offset] == ours[6:9]


async def test_changes_during_a_walk(db: str) -> None:
    """What a client following the Link sees while sessions change: nothing is skipped; a
    session updated after its page was read is served again, changed, at the end; one
    updated before its page is served once, at its new place; a new one comes at the end."""
    async with ocpi_env(db) as env:
        store = env.csms.store
        add_sessions(store, [(OURS, T0 + timedelta(minutes=n)) for n in range(10)])
        later = T0 + timedelta(days=1)

        def change(page: int) -> None:
            if page == 1:  # sessions 1-3 have been read
                touch(store, 2, later)  # read already: comes again
                touch(store, 7, later + timedelta(seconds=1))  # not read yet: moves
                add_sessions(store, [(OURS, later + timedelta(seconds=2))], first_id=11)

        sessions, totals = await walk(env, "sessions", m.Session, {"limit": 3}, change)
        assert [session_number(s) for s in sessions] == [1, 2, 3, 4, 5, 6, 8, 9, 10, 2, 7, 11]
        assert totals == [10, 11, 11, 11]
        assert sessions[9].last_updated == later


async def test_date_filters_hold_across_pages(db: str) -> None:
    async with ocpi_env(db) as env:
        add_sessions(env.csms.store, [(OURS, T0 + timedelta(minutes=n)) for n in range(20)])
        params = {"limit": 2, "date_from": "2026-03-01T10:05:00Z",
                  "date_to": "2026-03-01T10:12:00+00:00"}
        sessions, totals = await walk(env, "sessions", m.Session, params)
        assert [session_number(s) for s in sessions] == list(range(6, 13))
        assert set(totals) == {7}
        first = await env.client.get(f"{V}/sessions", params=params, headers=env.auth)
        link = next_link(first)
        assert link is not None and "date_from=2026-03-01T10%3A05%3A00Z" in link


async def test_owner_scope_holds_on_every_page(db: str) -> None:
    """A hub's parties count while it reports them active: a party suspended mid-walk is
    not served on the pages that follow, and another partner's sessions never are."""
    async with ocpi_env(db) as env:
        store = env.csms.store
        partner, _ = await env.csms.db(store.partner_by_token, env.token_c)
        parties = [OURS, OTHERS, ("NL", "XYZ")]
        add_sessions(store, [(parties[n % 3], T0 + timedelta(minutes=n)) for n in range(12)],
                     cdrs=True)
        with store.engine.begin() as c:
            c.execute(hub_parties.insert().values(
                hub_id=partner["id"], country_code="FR", party_id="OTH", role="EMSP",
                status="CONNECTED", last_updated=T0))

        def suspend(page: int) -> None:
            if page == 2:
                with store.engine.begin() as c:
                    c.execute(hub_parties.update().values(status="SUSPENDED"))

        sessions, totals = await walk(env, "sessions", m.Session, {"limit": 2}, suspend)
        # Pages 1-2 hold sessions 1, 2, 4, 5 (DE/EMS and FR/OTH); then DE/EMS only.
        assert [session_number(s) for s in sessions] == [1, 2, 4, 5, 7, 10]
        assert totals == [8, 8, 4]
        cdrs, totals = await walk(env, "cdrs", m.CDR, {"limit": 3})
        assert [c.session_id for c in cdrs] == [f"session-{n:04d}" for n in (1, 4, 7, 10)]
        assert set(totals) == {4}
        assert {(c.cdr_token.country_code, c.cdr_token.party_id) for c in cdrs} == {OURS}


def a_store(db: str) -> Store:
    """A store with charger CP1 (EVSE CP1-1 at LOC1) priced by T1."""
    from csms_doubles import add_test_charger, make_tariff

    from chargerfw.csms.db import create_db_engine, upgrade_database
    from chargerfw.csms.store import CpoIdentity

    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine, CpoIdentity())
    store.add_tariff(make_tariff("T1"))
    add_test_charger(store, "CP1", None, "T1", "LOC1")
    return store


def test_a_completed_session_is_served_as_kept_while_unchanged(db: str) -> None:
    from chargerfw.csms.store import Party
    from chargerfw.csms.tables import session_objects

    store = a_store(db)
    partner_id, _ = store.add_partner("eMSP", [Party(*OURS)])
    add_sessions(store, [(OURS, T0)], cdrs=True)  # completing it keeps its Session
    kept = store.list_sessions(PageQuery(), partner_id).items
    assert [s["kwh"] for s in kept] == [1.0]
    with store.engine.begin() as c:
        c.execute(session_objects.update().values(data={**kept[0], "kwh": 7.5}))
    assert [s["kwh"] for s in store.list_sessions(PageQuery(), partner_id).items] == [7.5]
    touch(store, 1, T0 + timedelta(minutes=1))  # changed since: priced anew
    assert [s["kwh"] for s in store.list_sessions(PageQuery(), partner_id).items] == [1.0]
    store.engine.dispose()


def test_many_owners_read_in_one_scan_give_the_same_pages(tmp_path: Any,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from chargerfw.csms.store import Party

    store = a_store(str(tmp_path / "csms.sqlite3"))
    engine = store.engine
    partner_id, _ = store.add_partner("two parties", [Party(*OURS), Party(*OTHERS)])
    add_sessions(store, [((OURS, OTHERS, ("NL", "XYZ"))[n % 3], T0 + timedelta(minutes=n // 2))
                         for n in range(15)])

    def pages() -> list[list[str]]:
        result, query = [], PageQuery(limit=4)
        while True:
            page = store.list_sessions(query, partner_id)
            result.append([s["id"] for s in page.items])
            if page.next_key is None:
                return result
            query = PageQuery(offset=query.offset + 4, limit=4, after=page.next_key)

    merged = pages()
    monkeypatch.setattr(store_sql, "MAX_MERGED_OWNERS", 1)
    assert pages() == merged
    assert sum(merged, []) == [f"session-{n + 1:04d}" for n in range(15) if n % 3 != 2]
    engine.dispose()


def cursor_of(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_bad_cursors_are_2001_and_edited_links_page_by_offset(db: str) -> None:
    async with ocpi_env(db) as env:
        add_sessions(env.csms.store, [(OURS, T0 + timedelta(minutes=n)) for n in range(6)],
                     cdrs=True)
        when = "2026-03-01T10:01:00+00:00"
        for module, cursor in [
                ("sessions", "not a cursor!"), ("sessions", "%%%"),
                ("sessions", "x" * 513), ("sessions", "AAAA"),
                ("sessions", cursor_of({"offset": 2})), ("sessions", cursor_of([2, None])),
                ("sessions", cursor_of([2, None, None, "yesterday", 2])),
                ("sessions", cursor_of([2, None, None, "2026-03-01T10:01:00", 2])),
                ("sessions", cursor_of([2, None, None, "2026-03-01T12:01:00+02:00", 2])),
                ("sessions", cursor_of([2, None, None, when, 2.5])),
                ("sessions", cursor_of([2, None, None, when, True])),
                ("sessions", cursor_of([2, None, None, when, "session-0002"])),
                ("sessions", cursor_of([2, None, None, when, 2**40])),
                ("sessions", cursor_of([2, None, None, when, -1])),
                ("cdrs", cursor_of([2, None, None, when, 2])),
                ("cdrs", cursor_of([2, None, None, when, "a\u0000b"])),
                ("cdrs", cursor_of([2, None, None, when, "x" * 40]))]:
            response = await env.client.get(f"{V}/{module}", headers=env.auth,
                                            params={"offset": 2, "cursor": cursor})
            assert "cursor" in error(response, 400, 2001), cursor
        # Ours, but for offset 2: with another offset or date range the page is by offset.
        good = cursor_of([2, None, None, when, 2])
        for params in ({"offset": 2, "cursor": good, "limit": 2},
                       {"offset": 4, "cursor": good, "limit": 2},
                       {"offset": 4, "cursor": good, "limit": 2,
                        "date_from": "2026-03-01T10:00:00Z"}):
            sessions = ok(await env.client.get(f"{V}/sessions", headers=env.auth,
                                               params=params), list[m.Session])
            expected = [3, 4] if params["offset"] == 2 else [5, 6]
            assert [session_number(s) for s in sessions] == expected
