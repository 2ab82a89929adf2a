"""The durability proof, short: 20 sessions between the real station process and the real
backend process through bench/chaos.py's proxy (link cuts, swallowed requests and answers,
delays, SIGKILLs of either side on a seeded schedule), and afterwards the station's store and
the backend's database agree: nothing lost, doubled or stuck, the same stop reasons and
meterStops, no meter reading going backwards. ``make chaos`` runs the same with 1,000."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from csms_doubles import add_test_charger

from chargerfw.csms import billing
from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.store import AuthDecision, CpoIdentity, StartRequest
from chargerfw.csms.store import Store as BackendStore
from chargerfw.store import Store as StationStore

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from chaos import CHARGER, ChaosFigures, ChaosSettings, compare_stores, run_chaos  # noqa: E402

pytestmark = pytest.mark.timeout(150)


async def test_twenty_sessions_through_chaos_agree_at_both_ends(tmp_path: Path) -> None:
    figures = await run_chaos(ChaosSettings(
        sessions=20, seed=14, charge_s=(0.3, 1.2), fault_gap_s=(1.0, 3.0),
        workdir=tmp_path, verbose=False))
    report = figures.summary() + "\n" + "\n".join(figures.problems)
    assert figures.sessions_driven == 20, report
    assert figures.station_transactions >= 20 and figures.backend_transactions >= 20, report
    assert sum(figures.faults.values()) >= 5, report  # the schedule did hit
    assert (figures.lost, figures.duplicated, figures.stuck, figures.stop_reasons_differ,
            figures.meter_stop_differs, figures.backwards_within, figures.backwards_between,
            figures.orphans_closed) == (0, 0, 0, 0, 0, 0, 0, 0), report


def test_the_comparison_counts_each_kind_of_disagreement(tmp_path: Path) -> None:
    """Both ends written through their own stores, with one of each fault the chaos looks
    for; each is counted once, and the session both ends agree on counts nowhere."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    station = StationStore(tmp_path / "station.db")
    engine = create_db_engine(str(tmp_path / "csms.sqlite3"))
    upgrade_database(engine)
    backend = BackendStore(engine, CpoIdentity())
    add_test_charger(backend, CHARGER)

    def both(start_wh: int, stop_wh: int, minute: int, *, backend_stop: tuple[int, str] | None,
             reason: str = "Local") -> int:
        """A session at both ends (the backend's stop as given, or none); the backend id."""
        tx = station.start_transaction(1, "TAG", start_wh, t0.timestamp() + minute * 60)
        station.stop_transaction(tx.local_id, stop_wh, t0.timestamp() + minute * 60 + 30,
                                 reason)
        row, _ = backend.start_transaction(
            StartRequest(CHARGER, 1, "TAG", start_wh, t0 + timedelta(minutes=minute)),
            AuthDecision("Accepted"))
        for message in station.outbox_pending():
            if message.local_tx_id == tx.local_id:
                station.outbox_delivered(message.seq, backend_tx_id=row["id"] if message.action
                                         == "StartTransaction" else None)
        if backend_stop is not None:
            backend.stop_transaction(CHARGER, row["id"], backend_stop[0],
                                     t0 + timedelta(minutes=minute, seconds=30), backend_stop[1])
        return int(row["id"])

    both(0, 10, 0, backend_stop=(10, "Local"))  # agreed
    both(10, 20, 1, backend_stop=(15, "Other"), reason="EVDisconnected")  # reason and meterStop
    # Starts below the last one's end, and is left open at the backend, which closes it as an
    # orphan when the next one starts (its last reading, reason Other).
    both(18, 25, 2, backend_stop=None)
    backwards = both(25, 30, 3, backend_stop=(30, "Local"))
    backend.add_meter_values(CHARGER, 1, backwards, [billing.Sample(
        t0 + timedelta(minutes=3, seconds=10), "Energy.Active.Import.Register", "", 24.0)])
    station.start_transaction(1, "TAG", 30, t0.timestamp() + 240)  # its start still queued
    # On connector 2, a session the backend answered with an id it does not have.
    lost = station.start_transaction(2, "TAG", 0, t0.timestamp())
    station.stop_transaction(lost.local_id, 5, t0.timestamp() + 30, "Local")
    for message in station.outbox_pending():
        if message.local_tx_id == lost.local_id:
            station.outbox_delivered(message.seq, backend_tx_id=999 if message.action
                                     == "StartTransaction" else None)
    backend.start_transaction(StartRequest(CHARGER, 1, "TAG", 30, t0 + timedelta(minutes=5)),
                              AuthDecision("Accepted"))  # no station transaction is this one
    station.close()
    engine.dispose()

    figures = compare_stores(tmp_path / "station.db", tmp_path / "csms.sqlite3", CHARGER,
                             ChaosFigures(seed=0))
    assert (figures.station_transactions, figures.backend_transactions) == (6, 5)
    assert (figures.lost, figures.duplicated, figures.stuck) == (1, 1, 1), figures.problems
    assert (figures.stop_reasons_differ, figures.meter_stop_differs) == (2, 2), figures.problems
    assert figures.orphans_closed == 1
    assert (figures.backwards_within, figures.backwards_between) == (1, 1), figures.problems
    assert not figures.ok
