"""The derate/stop decision from a connector's temperature."""

from __future__ import annotations

import math

import pytest

from chargerfw.config import TemperatureSection
from chargerfw.station.thermal import ThermalState, thermal_decision

LIMITS = TemperatureSection(derate_at_c=60, stop_at_c=70, resume_at_c=55, derate_min_factor=0.5)
N, D, X = ThermalState.NORMAL, ThermalState.DERATING, ThermalState.STOPPED


@pytest.mark.parametrize(
    ("celsius", "previous", "state", "factor"),
    [
        (-20.0, N, N, 1.0),
        (59.99, N, N, 1.0),
        (60.0, N, D, 1.0),
        (65.0, N, D, 0.75),
        (69.99, D, D, 0.5005),
        (70.0, D, X, 0.0),
        (80.0, N, X, 0.0),
        # stopped stays stopped until resume_at_c
        (69.0, X, X, 0.0),
        (55.01, X, X, 0.0),
        (55.0, X, N, 1.0),
        (30.0, X, N, 1.0),
        (59.0, D, N, 1.0),
    ],
)
def test_thermal_decision(celsius, previous, state, factor):
    decision = thermal_decision(celsius, LIMITS, previous)
    assert decision.state is state
    assert decision.current_factor == pytest.approx(factor)


def test_thermal_decision_with_derate_equal_to_stop():
    limits = TemperatureSection(derate_at_c=65, stop_at_c=65, resume_at_c=55)
    assert thermal_decision(64.9, limits).state is ThermalState.NORMAL
    assert thermal_decision(65.0, limits).state is ThermalState.STOPPED


def test_thermal_decision_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        thermal_decision(math.nan, LIMITS)
