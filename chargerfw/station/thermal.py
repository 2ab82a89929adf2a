"""Over-temperature: derate the current, or stop, from a connector's temperature. Pure."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chargerfw.config import TemperatureSection


class ThermalState(enum.StrEnum):
    NORMAL = "normal"
    DERATING = "derating"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ThermalDecision:
    state: ThermalState
    current_factor: float  # multiply the current limit by this (0 when stopped)


def thermal_decision(
    celsius: float, limits: TemperatureSection, previous: ThermalState = ThermalState.NORMAL
) -> ThermalDecision:
    """Derate or stop on temperature. Pure.

    At or above ``stop_at_c``: stop, and stay stopped until ``resume_at_c`` or below. Otherwise,
    from ``derate_at_c`` the current factor falls linearly from 1.0 to ``derate_min_factor`` at
    ``stop_at_c`` (continuous, so it needs no hysteresis of its own).
    """
    if celsius != celsius:  # NaN
        raise ValueError("temperature is NaN")
    if celsius >= limits.stop_at_c:
        return ThermalDecision(ThermalState.STOPPED, 0.0)
    if previous is ThermalState.STOPPED and celsius > limits.resume_at_c:
        return ThermalDecision(ThermalState.STOPPED, 0.0)
    if celsius < limits.derate_at_c:
        return ThermalDecision(ThermalState.NORMAL, 1.0)
    span = limits.stop_at_c - limits.derate_at_c
    fraction = (celsius - limits.derate_at_c) / span if span > 0 else 1.0
    factor = 1.0 - (1.0 - limits.derate_min_factor) * fraction
    return ThermalDecision(ThermalState.DERATING, factor)
