"""Plausibility of meter samples: pure rules, and a monitor that turns them into fault
transitions (each fault reported once when it starts and once when it clears).

Policy: a frozen sample or one whose energy went backwards is withheld (it must not be billed
or trusted for over-current); a sample with voltage or frequency out of range is still passed
on with the fault (the numbers are real, and the station's safety logic wants them).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import astuple, dataclass, fields

from chargerfw.drivers.types import MeterFault, MeterFaultKind, MeterSample

# Faults about talking to the meter; any good reply clears them.
COMMUNICATION_FAULTS = frozenset({
    MeterFaultKind.TIMEOUT, MeterFaultKind.CRC_ERROR, MeterFaultKind.EXCEPTION_REPLY,
    MeterFaultKind.BAD_VALUE,
})


@dataclass(frozen=True, slots=True)
class PlausibilityLimits:
    voltage_min_v: float = 184.0  # 230 V -20 %
    voltage_max_v: float = 264.5  # 230 V +15 %
    # A phase below this is taken as not connected (1-phase install on a 3-phase meter).
    phase_absent_below_v: float = 50.0
    frequency_min_hz: float = 47.5
    frequency_max_hz: float = 52.5
    # Frozen: this many consecutive identical samples while at least this much power flows.
    frozen_samples: int = 5
    frozen_min_power_w: float = 100.0
    # Energy may only go down by float noise of the register (0 for integer counters).
    energy_tolerance_wh: float = 0.0


def voltage_problem(sample: MeterSample, limits: PlausibilityLimits) -> str | None:
    """Why the voltages are implausible, or None. Absent phases are not an error."""
    bad = []
    for name in ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v"):
        volts = getattr(sample, name)
        if volts is None or volts < limits.phase_absent_below_v:
            continue
        if not limits.voltage_min_v <= volts <= limits.voltage_max_v:
            bad.append(f"{name[8:10].upper()} {volts:.1f} V")
    if not bad:
        return None
    return (", ".join(bad) + f" outside {limits.voltage_min_v:g}..{limits.voltage_max_v:g} V")


def frequency_problem(sample: MeterSample, limits: PlausibilityLimits) -> str | None:
    hz = sample.frequency_hz
    if hz is None or limits.frequency_min_hz <= hz <= limits.frequency_max_hz:
        return None
    return f"{hz:.2f} Hz outside {limits.frequency_min_hz:g}..{limits.frequency_max_hz:g} Hz"


def energy_problem(previous: MeterSample | None, sample: MeterSample,
                   limits: PlausibilityLimits) -> str | None:
    """Why the energy registers went backwards since ``previous``, or None."""
    if previous is None:
        return None
    for name in ("energy_import_wh", "energy_export_wh"):
        before, now = getattr(previous, name), getattr(sample, name)
        if before is None or now is None:
            continue
        if now < before - limits.energy_tolerance_wh:
            return f"{name[:-3].replace('_', ' ')} fell from {before:.1f} Wh to {now:.1f} Wh"
    return None


def _values(sample: MeterSample) -> tuple:
    return astuple(sample)[1:]  # everything but the timestamp


def flowing_power_w(sample: MeterSample) -> float:
    if sample.power_w is not None:
        return abs(sample.power_w)
    phases = [p for p in (sample.power_l1_w, sample.power_l2_w, sample.power_l3_w) if p is not None]
    return abs(sum(phases))


def frozen_problem(history: list[MeterSample], limits: PlausibilityLimits) -> str | None:
    """Why the newest ``frozen_samples`` samples look frozen, or None."""
    window = history[-limits.frozen_samples:]
    if len(window) < limits.frozen_samples or limits.frozen_samples < 2:
        return None
    first = _values(window[0])
    if any(_values(s) != first for s in window[1:]):
        return None
    if flowing_power_w(window[-1]) < limits.frozen_min_power_w:
        return None
    return (f"{len(window)} identical samples while {flowing_power_w(window[-1]):.0f} W flows")


def sample_problem(sample: MeterSample) -> str | None:
    """A decoded sample that still holds a non-finite number."""
    for name, value in zip((f.name for f in fields(sample)), astuple(sample), strict=True):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} is {value}"
    return None


class FaultLatch:
    """Remembers which faults are active; reports each start and each recovery once."""

    def __init__(self) -> None:
        self.active: dict[MeterFaultKind, str] = {}

    def raise_(self, kind: MeterFaultKind, detail: str, timestamp: float) -> MeterFault | None:
        if kind in self.active:
            return None
        self.active[kind] = detail
        return MeterFault(kind, True, detail, timestamp)

    def clear(self, kind: MeterFaultKind, timestamp: float) -> MeterFault | None:
        if kind not in self.active:
            return None
        detail = self.active.pop(kind)
        return MeterFault(kind, False, f"recovered from: {detail}", timestamp)

    def set(self, kind: MeterFaultKind, problem: str | None, timestamp: float) -> MeterFault | None:
        return self.raise_(kind, problem, timestamp) if problem else self.clear(kind, timestamp)


class SampleMonitor:
    """Pure bookkeeping for a polling loop: feed it samples, failures and the clock."""

    def __init__(self, limits: PlausibilityLimits, stale_after_s: float, now: float) -> None:
        self.limits = limits
        self.stale_after_s = stale_after_s
        self.latch = FaultLatch()
        self.last_accepted: MeterSample | None = None
        self.last_fresh_at = now
        self._history: deque[MeterSample] = deque(maxlen=max(limits.frozen_samples, 1))

    @property
    def active_faults(self) -> dict[MeterFaultKind, str]:
        return dict(self.latch.active)

    def on_failure(self, kind: MeterFaultKind, detail: str, now: float) -> list[MeterFault]:
        fault = self.latch.raise_(kind, detail, now)
        return [fault] if fault else []

    def on_sample(self, sample: MeterSample, now: float) -> list[MeterSample | MeterFault]:
        out: list[MeterSample | MeterFault] = []

        def note(fault: MeterFault | None) -> None:
            if fault:
                out.append(fault)

        for kind in sorted(COMMUNICATION_FAULTS & self.latch.active.keys()):
            note(self.latch.clear(kind, now))
        self._history.append(sample)
        frozen = frozen_problem(list(self._history), self.limits)
        note(self.latch.set(MeterFaultKind.FROZEN, frozen, now))
        if frozen:
            return out
        backwards = energy_problem(self.last_accepted, sample, self.limits)
        note(self.latch.set(MeterFaultKind.ENERGY_BACKWARDS, backwards, now))
        if backwards:
            return out
        note(self.latch.set(MeterFaultKind.VOLTAGE_OUT_OF_RANGE,
                            voltage_problem(sample, self.limits), now))
        note(self.latch.set(MeterFaultKind.FREQUENCY_OUT_OF_RANGE,
                            frequency_problem(sample, self.limits), now))
        self.last_accepted = sample
        self.last_fresh_at = now
        note(self.latch.clear(MeterFaultKind.STALE, now))
        out.append(sample)
        return out

    def check_stale(self, now: float) -> list[MeterFault]:
        age = now - self.last_fresh_at
        if age <= self.stale_after_s:
            return []
        fault = self.latch.raise_(
            MeterFaultKind.STALE, f"no fresh sample for {age:.1f} s (limit {self.stale_after_s:g} s)",
            now)
        return [fault] if fault else []
