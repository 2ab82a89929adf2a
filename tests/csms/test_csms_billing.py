"""A session's usage from its meter samples (``chargerfw.csms.billing``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chargerfw.csms import billing

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def energy(minute: float, wh: float) -> billing.Sample:
    return billing.Sample(T0 + timedelta(minutes=minute), billing.ENERGY_REGISTER, "", wh)


def test_usage_stays_monotonic_and_adds_up() -> None:
    samples = [energy(n, wh) for n, wh in ((1, 1500.0), (2, 1400.0), (3, 2500.0), (4, 9000.0))]
    stretches = billing.usage(T0, 1000, samples, T0 + timedelta(minutes=5), 3000)
    assert [u.energy_wh for u in stretches] == [500, 1000, 500]  # 1400 and 9000 skipped
    assert [u.start for u in stretches] == [T0, T0 + timedelta(minutes=1),
                                            T0 + timedelta(minutes=3)]


def test_parked_when_the_energy_averages_under_100_w() -> None:
    # 10 kWh in the first hour, then 90 Wh in an hour (a full car's standby), then 0.
    samples = [energy(60, 10_000), energy(120, 10_090)]
    stretches = billing.usage(T0, 0, samples, T0 + timedelta(minutes=150), 10_090)
    assert [u.charging for u in stretches] == [True, False, False]
    # 100 Wh in an hour is charging, just
    stretches = billing.usage(T0, 0, [], T0 + timedelta(hours=1), 100)
    assert [u.charging for u in stretches] == [True]


def test_a_running_session_ends_at_its_last_reading() -> None:
    stretches = billing.usage(T0, 0, [energy(10, 2000), energy(20, 4000)])
    assert stretches[-1].end == T0 + timedelta(minutes=20)
    assert sum(u.energy_wh for u in stretches) == 4000


def test_currents_are_summed_over_phases_and_power_scaled_to_kw() -> None:
    at = T0 + timedelta(minutes=10)
    samples = [energy(10, 2000),
               *(billing.Sample(at, billing.CURRENT_IMPORT, phase, 16.0)
                 for phase in ("L1", "L2", "L3")),
               billing.Sample(at, billing.POWER_IMPORT, "", 11_000.0),
               energy(20, 4000), billing.Sample(T0 + timedelta(minutes=20),
                                                billing.CURRENT_IMPORT, "", 20.0)]
    first, second = billing.usage(T0, 0, samples)
    assert (first.current_a, first.max_current_a, first.power_kw) == (
        Decimal(48), Decimal(48), Decimal(11))
    assert (second.current_a, second.power_kw) == (Decimal(20), None)
    assert second.mean_power_kw == Decimal(12)  # 2 kWh in 10 minutes


def test_a_session_without_duration_still_has_usage() -> None:
    stretches = billing.usage(T0, 500, [], T0, 500)
    assert len(stretches) == 1 and stretches[0].energy_wh == 0


def test_current_carries_over_while_charging_but_not_into_parking() -> None:
    samples = [billing.Sample(T0, billing.CURRENT_IMPORT, "", 16.0),  # Transaction.Begin
               energy(10, 2000), energy(20, 4000), energy(30, 4000)]
    charging, more, parked = billing.usage(T0, 0, samples)
    assert (charging.current_a, more.current_a, parked.current_a) == (
        Decimal(16), Decimal(16), None)
    assert charging.max_current_a is None  # extremes are what was measured in the stretch
