"""What a test's CSMS database costs to make (the ``db`` fixture in tests/conftest.py): every
migration run on an empty database (the baseline, as each test did before) against a copy of a
template migrated once (a SQLite file copy, PostgreSQL ``CREATE DATABASE ... TEMPLATE``), each
then opened and brought to the head as the backend does at start. p50/p99 over the samples.

    python bench/db_fixture.py [--samples 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from csms_common import percentiles  # noqa: E402
from csms_doubles import migrated_postgres, migrated_sqlite  # noqa: E402
from pg import fresh_database, postgres_server  # noqa: E402

from chargerfw.csms.db import create_db_engine, upgrade_database  # noqa: E402


def opened_at_head(db: str) -> None:
    engine = create_db_engine(db)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()


def timed(samples: int, make: Callable[[int], str]) -> list[float]:
    took = []
    for n in range(samples):
        start = time.perf_counter()
        opened_at_head(make(n))
        took.append((time.perf_counter() - start) * 1000)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as server:
        work = Path(tmp)
        migrated_sqlite(work / "warm.sqlite3", work)  # the template, made once as per session
        migrated_postgres(server)
        rows = {
            "sqlite, migrated from empty (baseline)":
                timed(args.samples, lambda n: str(work / f"empty-{n}.sqlite3")),
            "sqlite, copy of the template":
                timed(args.samples, lambda n: migrated_sqlite(work / f"copy-{n}.sqlite3", work)),
            "postgresql, migrated from empty (baseline)":
                timed(args.samples, lambda n: fresh_database(server)),
            "postgresql, copy of the template":
                timed(args.samples, lambda n: migrated_postgres(server)),
        }
    print(f"a test's database, ready at the head ({args.samples} samples each), ms")
    for name, took in rows.items():
        figures = percentiles(took, (50, 99))
        print(f"  {name:44s} p50 {figures['p50']:7.1f}  p99 {figures['p99']:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
