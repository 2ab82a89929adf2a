"""Pricing and charging periods: pure functions over meter readings and an OCPI tariff."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ENERGY_REGISTER = "Energy.Active.Import.Register"
CURRENT_IMPORT = "Current.Import"
POWER_IMPORT = "Power.Active.Import"

_MONEY = Decimal("0.0001")
_HOURS = Decimal("0.000001")


@dataclass(frozen=True)
class Sample:
    """One sampled value in canonical units: Wh, A, W."""

    timestamp: datetime
    measurand: str
    phase: str
    value: float


@dataclass(frozen=True)
class Cost:
    """A cost split as the CDR reports it (each with and without VAT)."""

    energy: tuple[Decimal, Decimal]
    time: tuple[Decimal, Decimal]
    fixed: tuple[Decimal, Decimal]

    @property
    def total(self) -> tuple[Decimal, Decimal]:
        return (self.energy[0] + self.time[0] + self.fixed[0],
                self.energy[1] + self.time[1] + self.fixed[1])


def price_dict(amount: tuple[Decimal, Decimal]) -> dict[str, float]:
    """An OCPI Price object."""
    return {"excl_vat": float(amount[0]), "incl_vat": float(amount[1])}


def hours_between(start: datetime, end: datetime) -> Decimal:
    seconds = Decimal(str(max((end - start).total_seconds(), 0.0)))
    return (seconds / Decimal(3600)).quantize(_HOURS, ROUND_HALF_UP)


def _component(tariff: Mapping[str, Any], dimension: str) -> Mapping[str, Any] | None:
    # Elements without restrictions apply at all times; the first one naming the dimension
    # prices it. (Time-of-day restrictions are not evaluated by this backend.)
    for element in tariff.get("elements", []):
        for component in element.get("price_components", []):
            if component.get("type") == dimension:
                return component
    return None


def _with_vat(excl: Decimal, component: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    excl = excl.quantize(_MONEY, ROUND_HALF_UP)
    vat = Decimal(str(component.get("vat") or 0))
    incl = (excl * (1 + vat / 100)).quantize(_MONEY, ROUND_HALF_UP)
    return excl, incl


def compute_cost(tariff: Mapping[str, Any] | None, energy_wh: int, start: datetime,
                 end: datetime, charging_s: float | None = None) -> Cost:
    """Cost of a session under ``tariff`` (energy per kWh, time per hour, flat per session).

    TIME is OCPI's "time charging": ``charging_s`` seconds (from :func:`charging_seconds`);
    without it the whole session from ``start`` to ``end`` counts. Step sizes are honoured:
    energy is billed in whole steps of ``step_size`` Wh and time in whole steps of
    ``step_size`` seconds, rounded up.
    """
    zero = (Decimal(0), Decimal(0))
    if tariff is None:
        return Cost(zero, zero, zero)
    energy_cost = time_cost = fixed_cost = zero
    if (component := _component(tariff, "ENERGY")) is not None:
        step = max(int(component.get("step_size") or 1), 1)
        billed_wh = math.ceil(max(energy_wh, 0) / step) * step
        energy_cost = _with_vat(Decimal(str(component["price"])) * billed_wh / 1000, component)
    if (component := _component(tariff, "TIME")) is not None:
        step = max(int(component.get("step_size") or 1), 1)
        seconds = max((end - start).total_seconds() if charging_s is None else charging_s,
                      0.0)
        billed_s = math.ceil(seconds / step) * step
        time_cost = _with_vat(Decimal(str(component["price"])) * billed_s / 3600, component)
    if (component := _component(tariff, "FLAT")) is not None:
        fixed_cost = _with_vat(Decimal(str(component["price"])), component)
    return Cost(energy_cost, time_cost, fixed_cost)


def charging_periods(start: datetime, meter_start_wh: int, samples: Iterable[Sample],
                     end: datetime | None = None, meter_stop_wh: int | None = None,
                     tariff_id: str | None = None) -> list[dict[str, Any]]:
    """OCPI ChargingPeriods: one per interval between energy readings.

    Each period carries ENERGY (kWh) and TIME (h), plus MAX_CURRENT (A) and POWER (kW, mean)
    when the charger sampled them in that interval. The ENERGY volumes add up to the meter
    delta exactly.
    """
    ordered = sorted(samples, key=lambda s: s.timestamp)
    points: list[tuple[datetime, int]] = [(start, meter_start_wh)]
    for sample in ordered:
        if sample.measurand != ENERGY_REGISTER or sample.phase:
            continue
        if sample.timestamp <= points[-1][0] or (end is not None and sample.timestamp >= end):
            continue
        value = int(round(sample.value))
        # Keep the readings monotonic and within the session's final reading, so every
        # period's ENERGY is >= 0 and they add up to the meter delta.
        if value < points[-1][1] or (meter_stop_wh is not None and value > meter_stop_wh):
            continue
        points.append((sample.timestamp, value))
    if end is not None and meter_stop_wh is not None and end >= points[-1][0]:
        points.append((end, meter_stop_wh))
    periods: list[dict[str, Any]] = []
    for (t0, e0), (t1, e1) in zip(points, points[1:], strict=False):
        dims: list[dict[str, Any]] = [
            {"type": "ENERGY", "volume": float(Decimal(e1 - e0) / 1000)},
            {"type": "TIME", "volume": float(hours_between(t0, t1))},
        ]
        window = [s for s in ordered if t0 <= s.timestamp <= t1]
        currents = [s.value for s in window if s.measurand == CURRENT_IMPORT]
        if currents:
            dims.append({"type": "MAX_CURRENT", "volume": round(max(currents), 3)})
        powers = [s.value for s in window if s.measurand == POWER_IMPORT and not s.phase]
        if powers:
            dims.append({"type": "POWER", "volume": round(sum(powers) / len(powers) / 1000, 3)})
        period: dict[str, Any] = {"start_date_time": t0, "dimensions": dims}
        if tariff_id:
            period["tariff_id"] = tariff_id
        periods.append(period)
    return periods


def charging_seconds(periods: Sequence[Mapping[str, Any]], end: datetime) -> float:
    """Seconds of ``periods`` (from :func:`charging_periods`, the last one lasting until
    ``end``) in which energy flowed, at the resolution of the meter values. OCPI prices TIME
    as time charging; periods without energy (a vehicle full and still plugged in) are
    parking time."""
    total = 0.0
    for period, following in zip(periods, [*periods[1:], None], strict=True):
        until = following["start_date_time"] if following is not None else end
        if sum(d["volume"] for d in period["dimensions"] if d["type"] == "ENERGY") > 0:
            total += max((until - period["start_date_time"]).total_seconds(), 0.0)
    return total


def seconds_to_hours(seconds: float) -> Decimal:
    return (Decimal(str(max(seconds, 0.0))) / Decimal(3600)).quantize(_HOURS, ROUND_HALF_UP)


def to_canonical(value: float, unit: str) -> float:
    """Convert an OCPP sampled value to Wh / W / A (kWh and kW scale by 1000)."""
    if unit in ("kWh", "kW", "kvarh", "kvar"):
        return value * 1000.0
    return value


def sum_energy(periods: Sequence[Mapping[str, Any]]) -> Decimal:
    return sum((Decimal(str(d["volume"])) for p in periods for d in p["dimensions"]
                if d["type"] == "ENERGY"), Decimal(0))
