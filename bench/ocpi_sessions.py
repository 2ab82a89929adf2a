"""OCPI `GET /sessions` and `GET /cdrs` pages over a large store (100,000 sessions and
their CDRs by default), on SQLite and on PostgreSQL.

Fills a database in bulk (completed sessions with a few meter values each, their kept
Session objects and their CDRs: one of each rendered by the backend's own code, the rest
copies of it with their own ids and times), starts `chargerfw csms serve` on it and, as a
partner:

- walks each listing from the first page to the last by following the `Link` headers, and
  keeps each page's URL;
- then asks, round after round (--bucket rounds), one of each: the next of the first, middle
  and last --bucket pages by their Link URL, a plain `offset` page in each of those places
  (no cursor: correct, slower), a `date_from` page, and the baselines `GET /ocpi/versions`
  and a 1-row page; and prints p50/p99 of each.

PostgreSQL is a private server started as tests/pg.py does, unless --pg-url names one.

    .venv/bin/python bench/ocpi_sessions.py --sessions 100000 --limit 50
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from csms_common import percentiles, served_csms

from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.ocpi.models import Tariff
from chargerfw.csms.store import (
    ConnectorSpec,
    CpoIdentity,
    EvseSpec,
    LocationSpec,
    Party,
    Store,
)
from chargerfw.csms.store.cdrs import record_cdr
from chargerfw.csms.tables import cdrs, meter_values, session_objects, transactions

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 5000


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tx_row(n: int, evses: int) -> dict[str, Any]:
    start = T0 + timedelta(minutes=10 * n)
    stop = start + timedelta(minutes=45)
    connector = n % evses + 1
    return dict(
        id=n + 1, session_id=str(uuid.uuid4()),
        idempotency_key=hashlib.sha256(str(n).encode()).hexdigest(),
        charge_point_id="CP", connector_id=connector, evse_uid=f"CP-{connector}",
        location_id="LOC", id_tag=f"TAG{n % 500}", id_tag_status="Accepted",
        token_country_code="DE", token_party_id="EMS", token_type="RFID",
        contract_id=f"DE-EMS-{n % 500}", auth_method="WHITELIST",
        meter_start=0, meter_last=9000, meter_stop=9000, start_time=start,
        stop_time=stop, stop_reason="Local", status="COMPLETED", currency="EUR",
        tariff_id="T1", last_updated=stop)


def _copy_object(template: dict[str, Any], row: dict[str, Any], shift: timedelta,
                 **fields: Any) -> dict[str, Any]:
    """The template object (of session 1) as session ``row``'s: its ids, token and times."""
    obj = copy.deepcopy(template)
    obj.update(fields)
    obj["start_date_time"] = _iso(row["start_time"])
    obj["end_date_time"] = _iso(row["stop_time"])
    obj["last_updated"] = _iso(row["last_updated"])
    obj["cdr_token"].update(uid=row["id_tag"], contract_id=row["contract_id"])
    for period in obj.get("charging_periods", []):
        began = datetime.fromisoformat(period["start_date_time"].replace("Z", "+00:00"))
        period["start_date_time"] = _iso(began + shift)
    return obj


def fill(db: str, sessions: int, samples: int, evses: int = 20) -> str:
    """Create the sessions; returns TOKEN_C of a registered partner that may read them."""
    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine, CpoIdentity())
    store.add_tariff(Tariff.model_validate({
        "country_code": "NL", "party_id": "CFW", "id": "T1", "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]}],
        "last_updated": T0}))
    store.add_charge_point("CP", None, LocationSpec(
        "LOC", "Bench 1", "Utrecht", "NLD", "52.08917", "5.11028", "Europe/Amsterdam"),
        [EvseSpec(f"CP-{n}", n, [ConnectorSpec("1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE",
                                                400, 32)]) for n in range(1, evses + 1)],
        tariff_id="T1")
    party = [Party("DE", "EMS")]
    partner_id, _ = store.add_partner("bench", party)
    token_c = store.register_partner(partner_id, "unused", "http://127.0.0.1:9/versions",
                                     "2.2.1", [], party)
    cpo = CpoIdentity()
    session_template: dict[str, Any] = {}
    cdr_template: dict[str, Any] = {}
    with engine.begin() as conn:
        for first in range(0, sessions, CHUNK):
            tx_rows, mv_rows = [], []
            for n in range(first, min(first + CHUNK, sessions)):
                row = _tx_row(n, evses)
                tx_rows.append(row)
                for k in range(1, samples + 1):
                    mv_rows.append(dict(
                        charge_point_id="CP", connector_id=row["connector_id"],
                        transaction_id=n + 1,
                        timestamp=row["start_time"] + timedelta(minutes=45 * k / (samples + 1)),
                        measurand="Energy.Active.Import.Register", phase="", context="",
                        unit="Wh", value=9000.0 * k / (samples + 1)))
            conn.execute(transactions.insert(), tx_rows)
            if mv_rows:
                conn.execute(meter_values.insert(), mv_rows)
            if first == 0:  # session 1 rendered by the backend: the template of the others
                tx1 = conn.execute(sa.select(transactions).where(transactions.c.id == 1)
                                   ).mappings().one()
                record_cdr(conn, cpo, tx1, tx1["last_updated"])  # keeps its Session too
                session_template = conn.execute(sa.select(session_objects.c.data)).scalar_one()
                cdr_template = conn.execute(sa.select(cdrs.c.data)).scalar_one()
            objects, cdr_rows = [], []
            for row in tx_rows[1:] if first == 0 else tx_rows:
                shift = row["start_time"] - T0
                objects.append(dict(transaction_id=row["id"], last_updated=row["last_updated"],
                                    data=_copy_object(session_template, row, shift,
                                                      id=row["session_id"],
                                                      evse_uid=row["evse_uid"])))
                cdr = _copy_object(cdr_template, row, shift, id=row["session_id"],
                                   session_id=row["session_id"])
                cdr_rows.append(dict(id=cdr["id"], transaction_id=row["id"], data=cdr,
                                     token_country_code="DE", token_party_id="EMS",
                                     last_updated=row["last_updated"]))
            conn.execute(session_objects.insert(), objects)
            conn.execute(cdrs.insert(), cdr_rows)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return token_c


def _ms(client: httpx.Client, url: str, params: dict[str, Any] | None = None
        ) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = (time.perf_counter() - t0) * 1000
    response.raise_for_status()
    return elapsed, response


def _row(label: str, values: list[float]) -> str:
    p = percentiles(values)
    return (f"  {label:<34} n={len(values):<5} p50={p['p50']:7.1f} ms  p99={p['p99']:7.1f} ms"
            f"  max={p['max']:7.1f} ms")


def walk(client: httpx.Client, url: str, limit: int, total: int) -> list[str]:
    """Follow Link from the first page to the last; the URL of each page, in order."""
    urls = [f"{url}?limit={limit}"]
    seen = 0
    while True:
        response = client.get(urls[-1])
        response.raise_for_status()
        seen += len(response.json()["data"])
        link = response.headers.get("Link")
        if not link:
            break
        urls.append(link[link.index("<") + 1:link.index(">")])
    if seen != total:
        raise RuntimeError(f"walked {seen} of {total} items")
    return urls


def measure(db: str, args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    token_c = fill(db, args.sessions, args.samples)
    print(f"stored {args.sessions} sessions ({args.samples} meter values each) and their "
          f"CDRs in {time.perf_counter() - t0:.1f} s")
    rng = random.Random(1)
    with served_csms(db) as csms, httpx.Client(
            base_url=csms.api_url, timeout=60,
            headers={"Authorization": f"Token {token_c}"}) as client:
        for _ in range(20):  # warm up connections and caches
            _ms(client, "/ocpi/versions")
        print(f"page size {args.limit}; each round asks one request of every row below in "
              "turn, so the machine's load weighs on all alike")
        for module in ("sessions", "cdrs"):
            url = f"/ocpi/2.2.1/{module}"
            t0 = time.perf_counter()
            urls = walk(client, url, args.limit, args.sessions)
            elapsed = time.perf_counter() - t0
            print(f"  {module}: followed Link over all {len(urls)} pages in {elapsed:.1f} s "
                  f"({args.sessions / elapsed:.0f} items/s)")
            middle = len(urls) // 2 - args.bucket // 2
            by_link = {"first": urls[:args.bucket],
                       "middle": urls[middle:middle + args.bucket],
                       "last": urls[-args.bucket:]}
            span = args.bucket * args.limit
            offset_low = {"first": 0, "middle": args.sessions // 2 - span // 2,
                          "last": args.sessions - span}
            window = _iso(T0 + timedelta(minutes=10 * int(args.sessions * 0.99)))
            rounds = range(args.bucket)
            # Per row, the request of each round: (URL, query parameters).
            plan: dict[str, list[tuple[str, dict[str, Any] | None]]] = {
                "baseline GET /ocpi/versions": [("/ocpi/versions", None)] * args.bucket,
                f"baseline {module} 1-row page": [(url, {"limit": 1})] * args.bucket}
            for where, page_urls in by_link.items():
                plan[f"{module} by Link, {where} pages"] = [(u, None) for u in page_urls]
            for where, low in offset_low.items():
                plan[f"{module} by offset, {where} pages"] = [
                    (url, {"limit": args.limit,
                           "offset": rng.randrange(low, low + span, args.limit)})
                    for _ in rounds]
            plan[f"{module} date_from (last 1 %)"] = [
                (url, {"limit": args.limit, "date_from": window})] * args.bucket
            times: dict[str, list[float]] = {label: [] for label in plan}
            for i in rounds:
                for label, requests in plan.items():
                    times[label].append(_ms(client, *requests[i])[0])
            for label, values in times.items():
                print(_row(label, values))


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from pg import fresh_database, postgres_server

    with postgres_server() as server:
        yield fresh_database(server, "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=3, help="meter values per session")
    parser.add_argument("--limit", type=int, default=50, help="page size")
    parser.add_argument("--bucket", type=int, default=100,
                        help="pages per position (first, middle, last) and baseline samples")
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--pg-url", default=None,
                        help="an empty PostgreSQL database (default: a private server)")
    args = parser.parse_args()
    if args.sessions < 3 * args.bucket * args.limit:
        parser.error("--sessions must hold at least 3 x --bucket pages")
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="csms-bench-") as tmp:
            print("== SQLite")
            measure(str(Path(tmp) / "bench.sqlite3"), args)
    if args.db in ("pg", "both"):
        with postgres(args.pg_url) as url:
            print("== PostgreSQL")
            measure(url, args)


if __name__ == "__main__":
    main()
