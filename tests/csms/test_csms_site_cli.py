"""`chargerfw csms site`: creating sites, putting chargers on them, showing the allocation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from csms_doubles import ACCEPTED, add_test_charger

from chargerfw.cli import main
from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.store import StartRequest, Store

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", *args])
    return result.exit_code, result.output


def test_site_add_list_assign_show(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine)
    add_test_charger(store, "CP1", None, connectors=2)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), ACCEPTED)

    assert run("site", "add", "S1", "--max-current", "63", "--name", "Car park", "--db", db) \
        == (0, "added site S1 (63 A per phase)\n")
    code, out = run("site", "add", "F1", "--max-current", "32", "--parent", "S1", "--db", db)
    assert code == 0 and "under S1" in out
    code, out = run("site", "add", "S1", "--max-current", "10", "--db", db)
    assert code == 2 and "exists already" in out
    code, out = run("site", "add", "S2", "--max-current", "-5", "--db", db)
    assert code == 2 and "maximum current" in out
    code, out = run("site", "assign", "CP1", "F1", "--db", db)
    assert code == 0 and "CP1: on site F1" in out
    code, out = run("site", "assign", "CP1", "--db", db)
    assert code == 2 and "SITE_ID or --remove" in out
    code, out = run("site", "assign", "CPX", "S1", "--db", db)
    assert code == 2 and "no charge point 'CPX'" in out

    code, out = run("site", "list", "--db", db)
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()[2:]] == [["F1", "F1", "32"],
                                                                   ["S1", "Car", "park"]]
    # Records written by the running backend, shown per connector.
    store.record_allocation("CP1", 1, 16.5, "share", 9101, tx["id"], {})
    store.record_allocation("CP1", 2, 0.0, "queued", 9102, None, {})
    code, out = run("site", "show", "S1", "--json", "--db", db)
    assert code == 0, out
    shown = json.loads(out)
    assert shown["feeders"] == {"F1": 32.0} and shown["allocated_a"] == 16.5
    assert [(c["connector"], c["limit_a"], c["queued"], c["transaction"])
            for c in shown["connectors"]] == [(1, 16.5, False, tx["id"]), (2, 0.0, True, None)]
    code, out = run("site", "show", "S1", "--db", db)
    assert code == 0 and "QUEUED" in out and "16.5" in out and "sub-feeder F1: 32 A" in out
    code, out = run("site", "show", "nope", "--db", db)
    assert code == 2 and "no site 'nope'" in out
    code, out = run("site", "assign", "CP1", "--remove", "--db", db)
    assert code == 0 and "on no site" in out
    engine.dispose()
