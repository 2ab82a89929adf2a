"""A session's usage from its meter samples: pure functions, priced by
:mod:`chargerfw.csms.tariff_engine`.

Charging or parked: OCPI prices TIME as time charging and PARKING_TIME as time connected but
not charging. The samples say which only through the energy register, so a stretch between
two energy readings counts as charging when the energy it delivered averages at least
:data:`CHARGING_POWER_W`; below that the vehicle is full or paused and draws standby power at
most (a 6 A single-phase charge is 1.4 kW; a Wh-resolution meter read each minute shows 60 W
per Wh). Current and power samples add what the tariff restrictions and the charging periods'
MIN/MAX_CURRENT and MIN/MAX_POWER dimensions need.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chargerfw.csms.tariff_engine import Usage

ENERGY_REGISTER = "Energy.Active.Import.Register"
CURRENT_IMPORT = "Current.Import"
CURRENT_IMPORT = "Current.Import"
POWER_IMPORT = "Power.Active.Import"

CHARGING_POWER_W = 100

_HOURS = Decimal("0.000001")


@dataclass(frozen=True)
class Sample:
    """One sampled value in canonical units: Wh, A, W."""

    timestamp: datetime
    measurand: str
    phase: str
    value: float


def hours_between(start: datetime, end: datetime) -> Decimal:
    seconds = Decimal(str(max((end - start).total_seconds(), 0.0)))
    return (seconds / Decimal(3600)).quantize(_HOURS, ROUND_HALF_UP)


def to_canonical(value: float, unit: str) -> float:
    """Convert an OCPP sampled value to Wh / W / A (kWh and kW scale by 1000)."""
    if unit in ("kWh", "kW", "kvarh", "kvar"):
        return value * 1000.0
    return value


def sum_energy(periods: Sequence[Mapping[str, Any]]) -> Decimal:
    return sum((Decimal(str(d["volume"])) for p in periods for d in p["dimensions"]
                if d["type"] == "ENERGY"), Decimal(0))


def _totals(samples: Iterable[Sample], measurand: str) -> list[Decimal]:
    """One value per instant: the unphased reading where there is one, else the sum of the
    phases (current and power restrictions are on the sum over all phases)."""
    unphased: dict[datetime, float] = {}
    phased: dict[datetime, dict[str, float]] = {}
    for s in samples:
        if s.measurand != measurand:
            continue
        if s.phase:
            # L1-N and L1 name the same phase's current/power here.
            phased.setdefault(s.timestamp, {})[s.phase.split("-")[0]] = s.value
        else:
            unphased[s.timestamp] = s.value
    stamps = sorted(set(unphased) | set(phased))
    return [Decimal(str(round(unphased[t] if t in unphased else sum(phased[t].values()), 3)))
            for t in stamps]


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    return sum(values, Decimal(0)) / len(values) if values else None


def usage(start: datetime, meter_start_wh: int, samples: Iterable[Sample],
          end: datetime | None = None, meter_stop_wh: int | None = None) -> list[Usage]:
    """The stretches between a session's energy readings, from ``start`` (at
    ``meter_start_wh``) to ``end`` (at ``meter_stop_wh``), or to the last reading of a session
    still running. Readings that go backwards or beyond the final one are skipped, so the
    stretches' energy is never negative and adds up to the meter delta exactly."""
    ordered = sorted(samples, key=lambda s: s.timestamp)
    points: list[tuple[datetime, int]] = [(start, meter_start_wh)]
    for sample in ordered:
        if sample.measurand != ENERGY_REGISTER or sample.phase:
            continue
        if sample.timestamp <= points[-1][0] or (end is not None and sample.timestamp >= end):
            continue
        value = int(round(sample.value))
        if value < points[-1][1] or (meter_stop_wh is not None and value > meter_stop_wh):
            continue
        points.append((sample.timestamp, value))
    if end is not None and meter_stop_wh is not None and end >= points[-1][0]:
        points.append((end, max(meter_stop_wh, points[-1][1])))
    stretches = []
    last_current = next(reversed(_totals(
        (s for s in ordered if s.timestamp <= start), CURRENT_IMPORT)), None)
    for (t0, e0), (t1, e1) in zip(points, points[1:], strict=False):
        seconds = (t1 - t0).total_seconds()
        if seconds <= 0:
            continue
        # Samples taken during the stretch (the one at its end describes it too).
        window = [s for s in ordered if t0 < s.timestamp <= t1]
        currents = _totals(window, CURRENT_IMPORT)
        powers = [p / 1000 for p in _totals(window, POWER_IMPORT)]
        charging = (e1 - e0) * 3600 / seconds >= CHARGING_POWER_W
        current = _mean(currents)
        if current is None and charging:
            # Chargers sample current less often than energy: while charging, the last
            # reading still stands.
            current = last_current
        last_current = currents[-1] if currents else last_current
        stretches.append(Usage(
            t0, t1, Decimal(e1 - e0), charging, current, _mean(powers),
            min(currents, default=None), max(currents, default=None),
            min(powers, default=None), max(powers, default=None)))
    if not stretches and end is not None and meter_stop_wh is not None:
        # A session that ended as it started still needs its one (empty) charging period.
        delivered = points[-1][1] - meter_start_wh
        stretches.append(Usage(start, max(end, start), Decimal(delivered), delivered > 0))
    return stretches
