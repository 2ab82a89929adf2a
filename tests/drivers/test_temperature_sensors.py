"""TMP102/LM75 decoding and the sensors against simulated chips."""

from __future__ import annotations

import pytest

from chargerfw.config import TemperatureSection
from chargerfw.drivers.i2c import I2cBus, SimulatedSmbus
from chargerfw.drivers.simulated.i2c_devices import SimulatedLm75, SimulatedTmp102
from chargerfw.drivers.temperature import (
    Lm75,
    TemperatureErrorKind,
    TemperatureReadError,
    Tmp102,
    decode_lm75,
    decode_tmp102,
    sensor_from_config,
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
