"""Pricing and charging periods (``chargerfw.csms.billing``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from chargerfw.csms import billing

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_cost_step_sizes_round_up() -> None:
    tariff: dict[str, Any] = {"elements": [{"price_components": [
        {"type": "ENERGY", "price": 1.0, "step_size": 500},
        {"type": "TIME", "price": 3.6, "step_size": 60}]}]}
    cost = billing.compute_cost(tariff, 1001, T0, T0 + timedelta(seconds=61))
    assert cost.energy == (Decimal("1.5"), Decimal("1.5"))  # 1500 Wh billed, no VAT
    assert cost.time == (Decimal("0.12"), Decimal("0.12"))  # 120 s at 3.6/h


def test_charging_periods_stay_monotonic() -> None:
    samples = [billing.Sample(T0 + timedelta(minutes=n), billing.ENERGY_REGISTER, "", wh)
               for n, wh in ((1, 1500.0), (2, 1400.0), (3, 2500.0), (4, 9000.0))]
    periods = billing.charging_periods(T0, 1000, samples, T0 + timedelta(minutes=5), 3000)
    energies = [d["volume"] for p in periods for d in p["dimensions"] if d["type"] == "ENERGY"]
    assert energies == [0.5, 1.0, 0.5]  # 1400 went backwards and 9000 overshot: skipped
    assert billing.sum_energy(periods) == Decimal("2")
    assert [p["start_date_time"] for p in periods] == [T0, T0 + timedelta(minutes=1),
                                                       T0 + timedelta(minutes=3)]
