"""TMP102/LM75 decoding, the sensors against simulated chips, and the derate/stop decision."""

from __future__ import annotations

import math

import pytest

from chargerfw.config import TemperatureSection
from chargerfw.drivers.i2c import I2cBus, SimulatedSmbus
from chargerfw.drivers.simulated.i2c_devices import SimulatedLm75, SimulatedTmp102
from chargerfw.drivers.temperature import (
    Lm75,
    TemperatureErrorKind,
    TemperatureReadError,
    ThermalState,
    Tmp102,
    decode_lm75,
    decode_tmp102,
    sensor_from_config,
    thermal_decision,
)


# Register values from the TMP102 datasheet (table 8-1x, 12-bit) as 16-bit left-justified words.
@pytest.mark.parametrize(
    ("register", "celsius"),
    [
        (0x7FF0, 127.9375),
        (0x6400, 100.0),
        (0x5000, 80.0),
        (0x4B00, 75.0),
        (0x3200, 50.0),
        (0x1900, 25.0),
        (0x0040, 0.25),
        (0x0000, 0.0),
        (0xFFC0, -0.25),
        (0xE700, -25.0),
        (0xC900, -55.0),
        (0x8000, -128.0),
    ],
)
def test_decode_tmp102_normal_mode(register, celsius):
    assert decode_tmp102(register) == celsius


@pytest.mark.parametrize(
    ("register", "celsius"),
    [
        (0x4B01, 150.0),  # 13-bit extended mode: 150 / 0.0625 = 2400 = 0x960, << 3, EM bit set
        (0x0009, 0.0625),
        (0xE481, -55.0),
    ],
)
def test_decode_tmp102_extended_mode(register, celsius):
    assert decode_tmp102(register) == celsius


# LM75B datasheet: 11-bit, 0.125 degC.
@pytest.mark.parametrize(
    ("register", "celsius"),
    [
        (0x7F00, 127.0),
        (0x7EE0, 126.875),
        (0x1920, 25.125),
        (0x0020, 0.125),
        (0x0000, 0.0),
        (0xFFE0, -0.125),
        (0xE700, -25.0),
        (0xC920, -54.875),
        (0xC900, -55.0),
    ],
)
def test_decode_lm75(register, celsius):
    assert decode_lm75(register) == celsius


@pytest.mark.parametrize(
    ("sensor_cls", "chip_cls", "celsius"),
    [
        (Tmp102, SimulatedTmp102, 23.5),
        (Tmp102, SimulatedTmp102, -17.0625),
        (Lm75, SimulatedLm75, 61.25),
        (Lm75, SimulatedLm75, -40.125),
    ],
)
def test_sensor_reads_simulated_chip(sensor_cls, chip_cls, celsius):
    raw = SimulatedSmbus()
    chip = chip_cls(celsius)
    raw.attach(0x49, chip)
    sensor = sensor_cls(I2cBus(raw, "sim"), 0x49)
    assert sensor.read_celsius() == celsius
    chip.temperature_c = celsius + 10
    assert sensor.read_celsius() == celsius + 10


def test_sensor_errors_are_typed():
    raw = SimulatedSmbus()
    chip = SimulatedTmp102()
    raw.attach(0x49, chip)
    sensor = sensor_from_config(
        TemperatureSection(sensor="tmp102", address=0x49), I2cBus(raw, "b1")
    )
    chip.raw_override = 0x8000  # -128 degC: not something a TMP102 can measure
    with pytest.raises(TemperatureReadError) as err:
        sensor.read_celsius()
    assert err.value.kind is TemperatureErrorKind.IMPLAUSIBLE
    raw.failing.add(0x49)
    with pytest.raises(TemperatureReadError, match="tmp102@b1:0x49: bus: no acknowledge") as err:
        sensor.read_celsius()
    assert err.value.kind is TemperatureErrorKind.BUS


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
