"""The durability proof, short: 20 sessions between the real station process and the real
backend process through bench/chaos.py's proxy (link cuts, swallowed requests and answers,
delays, SIGKILLs of either side on a seeded schedule), and afterwards the station's store and
the backend's database agree: nothing lost, doubled or stuck, the same stop reasons and
meterStops, no meter reading going backwards. ``make chaos`` runs the same with 1,000."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from chaos import ChaosSettings, run_chaos  # noqa: E402

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
