"""The per-party counts of the session and CDR listings (``owner_counts``): exact through
every change of the rows they count, whoever writes them, undone with a rolled-back
transaction, kept by folding; and the X-Total-Count of listings taken from them."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from chargerfw.csms.store import ConnectorSpec, EvseSpec, PageQuery, Party, Store
from chargerfw.csms.store.owner_counts import CDRS, SESSIONS, fold_owner_counts, listing_total
from chargerfw.csms.store.values import LocationSpec
from chargerfw.csms.tables import cdrs, owner_counts, transactions

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
EMS, OTH = ("DE", "EMS"), ("NL", "OTH")
PARTIES: list[tuple[str, str] | None] = [EMS, OTH, None]


@pytest.fixture
def charger(store: Store) -> Store:
    store.add_charge_point("CP", None, LocationSpec(
        "LOC", "Site", "Utrecht", "NLD", "52.08917", "5.11028", "Europe/Amsterdam"),
        [EvseSpec("CP-1", 1, [ConnectorSpec("1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE",
                                             400, 32)])])
    return store


def add_transaction(c: Connection, n: int, owner: tuple[str, str] | None,
                    on_evse: bool = True, cdr: bool = False) -> None:
    start = T0 + timedelta(minutes=n)
    cc, pid = owner or (None, None)
    c.execute(transactions.insert().values(
        id=n, session_id=str(uuid.uuid4()), idempotency_key=hashlib.sha256(
            str(n).encode()).hexdigest(), charge_point_id="CP", connector_id=1,
        evse_uid="CP-1" if on_evse else None, location_id="LOC" if on_evse else None,
        id_tag=f"TAG{n}", id_tag_status="Accepted", token_country_code=cc,
        token_party_id=pid, auth_method="WHITELIST", meter_start=0, meter_last=1000,
        meter_stop=1000, start_time=start, stop_time=start + timedelta(minutes=30),
        stop_reason="Local", status="COMPLETED", currency="EUR", last_updated=start))
    if cdr:
        c.execute(cdrs.insert().values(
            id=f"CDR{n}", transaction_id=n, data={"id": f"CDR{n}"}, token_country_code=cc,
            token_party_id=pid, last_updated=start))


def counted(c: Connection, listing: str, owner: tuple[str, str] | None | str) -> int:
    """The rows ``listing`` holds for ``owner`` ("all": everyone's), counted."""
    table = transactions if listing == SESSIONS else cdrs
    where: list[Any] = [transactions.c.evse_uid.is_not(None)] if listing == SESSIONS else []
    if owner != "all":
        cc, pid = owner if isinstance(owner, tuple) else (None, None)
        where += [table.c.token_country_code.is_(cc) if cc is None
                  else table.c.token_country_code == cc,
                  table.c.token_party_id.is_(pid) if pid is None
                  else table.c.token_party_id == pid]
    return int(c.execute(sa.select(sa.func.count()).select_from(table).where(*where))
               .scalar_one())


def assert_exact(engine: Engine) -> dict[str, dict[str, int]]:
    """Every listing's total, per party and for everyone, is the rows' count; returns them."""
    totals: dict[str, dict[str, int]] = {}
    with engine.connect() as c:
        for listing in (SESSIONS, CDRS):
            kept = {str(owner): listing_total(c, listing, [owner]) for owner in (EMS, OTH)}
            kept["all"] = listing_total(c, listing, None)
            kept["EMS+OTH"] = listing_total(c, listing, [EMS, OTH])
            rows = {str(owner): counted(c, listing, owner) for owner in (EMS, OTH)}
            rows["all"] = counted(c, listing, "all")
            rows["EMS+OTH"] = rows[str(EMS)] + rows[str(OTH)]
            assert kept == rows, listing
            assert listing_total(c, listing, []) == 0
            totals[listing] = kept
    return totals


def test_counts_follow_inserts_owner_and_date_changes_and_deletes(engine: Engine,
                                                                  charger: Store) -> None:
    with engine.begin() as c:
        for n in range(1, 13):
            add_transaction(c, n, PARTIES[n % 3], on_evse=n % 4 != 0, cdr=n % 2 == 0)
    totals = assert_exact(engine)
    assert totals[SESSIONS] == {str(EMS): 3, str(OTH): 3, "all": 9, "EMS+OTH": 6}
    assert totals[CDRS] == {str(EMS): 2, str(OTH): 2, "all": 6, "EMS+OTH": 4}
    steps: list[tuple[sa.Table, Any, dict[str, Any]]] = [
        # another party, from a party, to a party, from unknown
        (transactions, transactions.c.id == 3, dict(token_party_id="EMX")),
        (transactions, transactions.c.id == 1, dict(token_country_code="NL",
                                                     token_party_id="OTH")),
        (cdrs, cdrs.c.transaction_id == 4, dict(token_country_code=None,
                                                token_party_id=None)),
        (cdrs, cdrs.c.transaction_id == 6, dict(token_country_code="NL",
                                                token_party_id="OTH")),
        # off an EVSE and onto one: leaves and joins the session listing
        (transactions, transactions.c.id == 2, dict(evse_uid=None)),
        (transactions, transactions.c.id == 4, dict(evse_uid="CP-1")),
        # dates and everything else: no change
        (transactions, transactions.c.id == 5, dict(last_updated=T0 + timedelta(days=9),
                                                     meter_last=5000)),
        (cdrs, cdrs.c.transaction_id == 8, dict(last_updated=T0 + timedelta(days=9))),
        # the same owner written again
        (transactions, transactions.c.id == 7, dict(token_country_code="DE",
                                                     token_party_id="EMS")),
    ]
    for table, where, values in steps:
        with engine.begin() as c:
            c.execute(table.update().where(where).values(**values))
        assert_exact(engine)
    with engine.begin() as c:
        c.execute(cdrs.delete().where(cdrs.c.transaction_id.in_([2, 6, 10])))
        c.execute(transactions.delete().where(transactions.c.id.in_([2, 6, 7, 10])))
    assert_exact(engine)
    with engine.begin() as c:
        c.execute(transactions.update().values(token_country_code="DE", token_party_id="EMS"))
    assert assert_exact(engine)[SESSIONS][str(EMS)] == 6  # all 8 left but 2 off an EVSE


def test_a_rolled_back_change_leaves_the_counts_as_they_were(engine: Engine,
                                                            charger: Store) -> None:
    with engine.begin() as c:
        add_transaction(c, 1, EMS, cdr=True)
    before = assert_exact(engine)
    with pytest.raises(RuntimeError), engine.begin() as c:
        add_transaction(c, 2, EMS, cdr=True)
        c.execute(transactions.update().where(transactions.c.id == 1)
                  .values(token_party_id="OTH"))
        c.execute(cdrs.delete().where(cdrs.c.transaction_id == 1))
        raise RuntimeError("abandoned")
    assert assert_exact(engine) == before
    assert before[SESSIONS][str(EMS)] == before[CDRS][str(EMS)] == 1


def test_folding_keeps_the_totals_in_one_row_per_party(engine: Engine,
                                                       charger: Store) -> None:
    with engine.begin() as c:
        for n in range(1, 21):
            add_transaction(c, n, PARTIES[n % 3], cdr=True)
        c.execute(transactions.update().where(transactions.c.id <= 4)
                  .values(token_country_code="NL", token_party_id="OTH"))
        c.execute(cdrs.delete().where(cdrs.c.transaction_id > 10))
    before = assert_exact(engine)
    assert charger.fold_owner_counts() > 0
    assert assert_exact(engine) == before
    with engine.connect() as c:
        per_owner = c.execute(sa.select(owner_counts.c.listing, owner_counts.c.country_code,
                                        owner_counts.c.party_id, sa.func.count())
                              .group_by(owner_counts.c.listing, owner_counts.c.country_code,
                                        owner_counts.c.party_id)).all()
    assert per_owner and all(row[3] == 1 for row in per_owner)
    assert charger.fold_owner_counts() == 0
    with engine.begin() as c:  # a party whose rows all went: its folded row goes too
        c.execute(cdrs.delete())
    charger.fold_owner_counts()
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(owner_counts)
                         .where(owner_counts.c.listing == CDRS)).scalar_one() == 0
    assert assert_exact(engine)[CDRS]["all"] == 0


def test_listings_total_is_exact_with_and_without_a_date_filter(engine: Engine,
                                                                charger: Store) -> None:
    emsp, _ = charger.add_partner("emsp", [Party(*EMS)])
    # two parties, one without rows
    other, _ = charger.add_partner("other", [Party(*OTH), Party("FR", "ZZZ")])
    with engine.begin() as c:
        for n in range(1, 31):
            add_transaction(c, n, PARTIES[n % 3], cdr=n % 2 == 1)
    charger.fold_owner_counts()
    with engine.begin() as c:  # after a fold, more rows
        for n in range(31, 37):
            add_transaction(c, n, PARTIES[n % 3], cdr=True)
    whole = PageQuery(limit=5)
    since = PageQuery(limit=5, date_from=T0 + timedelta(minutes=20))
    with engine.connect() as c:
        for partner, owners in ((emsp, [EMS]), (other, [OTH, ("FR", "ZZZ")]), (None, None)):
            for listing, list_page in ((SESSIONS, charger.list_sessions),
                                       (CDRS, charger.list_cdrs)):
                table = transactions if listing == SESSIONS else cdrs
                scope = [] if owners is None else [sa.tuple_(
                    table.c.token_country_code, table.c.token_party_id).in_(owners)]
                if listing == SESSIONS:
                    scope.append(transactions.c.evse_uid.is_not(None))
                count = sa.select(sa.func.count()).select_from(table).where(*scope)
                assert list_page(whole, partner).total == c.execute(count).scalar_one()
                assert list_page(since, partner).total == c.execute(count.where(
                    table.c.last_updated >= since.date_from)).scalar_one()
    assert charger.list_sessions(whole, emsp).total == 12


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_writers_and_folders_never_wait_for_each_other(engine: Engine,
                                                       charger: Store) -> None:
    """PostgreSQL: two open transactions writing rows of one party, and a fold beside them,
    each go on without waiting (a lock wait would fail on the lock timeout)."""
    with engine.begin() as c:
        for n in range(1, 5):
            add_transaction(c, n, EMS, cdr=True)
    first, second = engine.connect(), engine.connect()
    try:
        for conn in (first, second):
            conn.exec_driver_sql("SET lock_timeout = '2s'")
        add_transaction(first, 10, EMS, cdr=True)
        assert fold_owner_counts(first) > 0  # holds the rows it folded until it commits
        add_transaction(second, 11, EMS, cdr=True)
        fold_owner_counts(second)  # skips the rows the first is folding
        folded_aside = threading.Thread(target=charger.fold_owner_counts)
        folded_aside.start()
        folded_aside.join(timeout=10)
        assert not folded_aside.is_alive()
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    totals = assert_exact(engine)
    assert totals[SESSIONS][str(EMS)] == totals[CDRS][str(EMS)] == 6
    charger.fold_owner_counts()
    assert assert_exact(engine) == totals
