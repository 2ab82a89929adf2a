"""OCPI `GET /sessions` over a large store (100,000 sessions by default).

Fills a database with completed sessions (each with a few meter values), starts
`chargerfw csms serve` on it and times pages: the first, one in the middle, the last, a run
of pages followed through their `Link` headers, and a `date_from` window.

    .venv/bin/python bench/ocpi_sessions.py --sessions 100000 --limit 100
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from csms_common import served_csms

from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.ocpi.models import Envelope, Session, Tariff
from chargerfw.csms.store import (
    ConnectorSpec,
    CpoIdentity,
    EvseSpec,
    LocationSpec,
    Party,
    Store,
)
from chargerfw.csms.tables import meter_values, transactions

T0 = datetime(2025, 1, 1, tzinfo=UTC)


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
    chunk = 5000
    with engine.begin() as conn:
        for first in range(0, sessions, chunk):
            tx_rows, mv_rows = [], []
            for n in range(first, min(first + chunk, sessions)):
                start = T0 + timedelta(minutes=10 * n)
                stop = start + timedelta(minutes=45)
                connector = n % evses + 1
                tx_rows.append(dict(
                    id=n + 1, session_id=str(uuid.uuid4()),
                    idempotency_key=hashlib.sha256(str(n).encode()).hexdigest(),
                    charge_point_id="CP", connector_id=connector, evse_uid=f"CP-{connector}",
                    location_id="LOC", id_tag=f"TAG{n % 500}", id_tag_status="Accepted",
                    token_country_code="DE", token_party_id="EMS", token_type="RFID",
                    contract_id=f"DE-EMS-{n % 500}", auth_method="WHITELIST",
                    meter_start=0, meter_last=9000, meter_stop=9000, start_time=start,
                    stop_time=stop, stop_reason="Local", status="COMPLETED", currency="EUR",
                    tariff_id="T1", last_updated=stop))
                for k in range(1, samples + 1):
                    mv_rows.append(dict(
                        charge_point_id="CP", connector_id=connector, transaction_id=n + 1,
                        timestamp=start + timedelta(minutes=45 * k / (samples + 1)),
                        measurand="Energy.Active.Import.Register", phase="", context="",
                        unit="Wh", value=9000.0 * k / (samples + 1)))
            conn.execute(transactions.insert(), tx_rows)
            if mv_rows:
                conn.execute(meter_values.insert(), mv_rows)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return token_c


def timed_get(client: httpx.Client, url: str, params: dict[str, str] | None = None,
              repeat: int = 5) -> tuple[float, httpx.Response]:
    """Median wall time in ms over ``repeat`` identical requests."""
    times = []
    response = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    assert response is not None
    return statistics.median(times), response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=3, help="meter values per session")
    parser.add_argument("--limit", type=int, default=100, help="page size")
    parser.add_argument("--follow", type=int, default=20, help="pages to follow via Link")
    parser.add_argument("--db", default=None, help="database (default: a temporary SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="csms-bench-") as tmp:
        db = args.db or str(Path(tmp) / "bench.sqlite3")
        t0 = time.perf_counter()
        token_c = fill(db, args.sessions, args.samples)
        print(f"stored {args.sessions} sessions ({args.samples} meter values each) in "
              f"{time.perf_counter() - t0:.1f} s")
        with served_csms(db) as csms, httpx.Client(
                base_url=csms.api_url, timeout=60,
                headers={"Authorization": f"Token {token_c}"}) as client:
            url = "/ocpi/2.2.1/sessions"
            limit = str(args.limit)
            rows = [
                ("first page", {"limit": limit}),
                ("middle page", {"limit": limit, "offset": str(args.sessions // 2)}),
                ("last page", {"limit": limit, "offset": str(max(args.sessions - args.limit,
                                                                 0))}),
                ("date_from window (last 1 %)", {"limit": limit, "date_from": (
                    T0 + timedelta(minutes=10 * int(args.sessions * 0.99))).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")}),
            ]
            for label, params in rows:
                ms, response = timed_get(client, url, params)
                items = Envelope[list[Session]].model_validate(response.json()).data or []
                print(f"{label:<30} {ms:8.1f} ms  items={len(items):<4} "
                      f"X-Total-Count={response.headers['X-Total-Count']}")
            t0 = time.perf_counter()
            next_url: str | None = f"{url}?limit={limit}"
            pages = 0
            while next_url and pages < args.follow:
                response = client.get(next_url)
                response.raise_for_status()
                pages += 1
                link = response.headers.get("Link")
                next_url = link[link.index("<") + 1:link.index(">")] if link else None
            elapsed = time.perf_counter() - t0
            print(f"followed {pages} pages via Link: {elapsed * 1000 / pages:.1f} ms per page, "
                  f"{pages * args.limit / elapsed:.0f} sessions/s")


if __name__ == "__main__":
    main()
