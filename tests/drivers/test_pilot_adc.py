"""The ADS1115 driver against the simulated chip, at the register level."""

from __future__ import annotations

import pytest

from chargerfw.drivers.i2c import I2cBus, I2cError, SimulatedSmbus
from chargerfw.drivers.pilot import Ads1115
from chargerfw.drivers.simulated.i2c_devices import SimulatedAds1115


class RecordingSmbus(SimulatedSmbus):
    """The simulated bus, also keeping the raw smbus2 calls as the driver made them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        value = super().read_word_data(i2c_addr, register)
        self.calls.append(("read_word_data", i2c_addr, register, value))
        return value

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        self.calls.append(("write_word_data", i2c_addr, register, value))
        super().write_word_data(i2c_addr, register, value)


@pytest.fixture
def rig():
    raw = RecordingSmbus()
    chip = SimulatedAds1115()
    raw.attach(0x48, chip)
    sleeps: list[float] = []
    adc = Ads1115(I2cBus(raw, "sim"), 0x48, sample_interval_s=0.001, sleep=sleeps.append)
    return raw, chip, adc, sleeps


def test_config_word_bits():
    adc = Ads1115(I2cBus(SimulatedSmbus(), "sim"))
    # OS=0 MUX=100 (AIN0/GND) PGA=001 (+-4.096 V) MODE=0 (continuous) DR=111 (860 SPS) COMP=11
    assert adc.config_word(0) == 0b0_100_001_0_111_0_0_0_11 == 0x42E3
    assert adc.config_word(3) == 0x72E3
    assert Ads1115(I2cBus(SimulatedSmbus(), "sim"), full_scale_v=6.144).config_word(1) == 0x50E3
    with pytest.raises(ValueError, match="0..3"):
        adc.config_word(4)
    with pytest.raises(ValueError, match="full scale"):
        Ads1115(I2cBus(SimulatedSmbus(), "sim"), full_scale_v=5.0)


def test_config_is_written_msb_first_through_a_swapped_smbus_word(rig):
    raw, chip, adc, sleeps = rig
    chip.connect(0, lambda n: 1.5)
    adc.burst(0, 1)
    # smbus2 sends a word low byte first; the chip wants MSB first: 0x42E3 goes out as 0xE342.
    assert ("write_word_data", 0x48, 0x01, 0xE342) in raw.calls
    assert chip.config_writes == [0x42E3]
    assert chip.channel == 0 and chip.full_scale_v == 4.096
    assert sleeps[0] == pytest.approx(0.002)  # two conversions to settle after the MUX change


def test_conversion_read_is_byte_swapped_and_signed(rig):
    raw, chip, adc, _ = rig
    chip.connect(0, lambda n: 1.5)
    chip.connect(1, lambda n: -0.5)
    [volts] = adc.burst(0, 1)
    # 1.5 V / 4.096 V * 32768 = 12000 = 0x2EE0 on the wire (2E, E0); SMBus hands back 0xE02E.
    reads = [c for c in raw.calls if c[0] == "read_word_data"]
    assert reads[-1] == ("read_word_data", 0x48, 0x00, 0xE02E)
    assert volts == pytest.approx(1.5, abs=0.000125)
    [negative] = adc.burst(1, 1)
    assert negative == pytest.approx(-0.5, abs=0.000125)
    assert chip.config_writes == [0x42E3, 0x52E3]


def test_burst_samples_once_per_conversion_and_keeps_the_channel(rig):
    raw, chip, adc, sleeps = rig
    chip.connect(2, lambda n: 0.1 * n)
    samples = adc.burst(2, 5)
    assert samples == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=0.001)
    adc.burst(2, 2)
    assert len(chip.config_writes) == 1  # same channel: no rewrite
    assert sleeps == pytest.approx([0.002, 0.001, 0.001, 0.001, 0.001, 0.001])


def test_out_of_range_input_clips_to_full_scale(rig):
    _, chip, adc, _ = rig
    chip.connect(0, lambda n: 9.0)
    assert adc.burst(0, 1)[0] == pytest.approx(32767 * 4.096 / 32768)


def test_missing_chip_is_a_typed_error(rig):
    raw, chip, adc, _ = rig
    raw.failing.add(0x48)
    with pytest.raises(I2cError, match="0x48 reg 0x01: no acknowledge") as err:
        adc.burst(0, 1)
    assert err.value.address == 0x48 and err.value.register == 0x01


def test_real_bus_that_does_not_exist_is_a_typed_error():
    from chargerfw.drivers.i2c import open_i2c_bus

    with pytest.raises(I2cError, match="/dev/i2c-250 .*cannot open bus"):
        open_i2c_bus(250)


def test_bus_refuses_a_value_wider_than_16_bits_without_writing():
    raw = SimulatedSmbus()
    chip = SimulatedAds1115()
    raw.attach(0x48, chip)
    with pytest.raises(ValueError, match="16-bit"):
        I2cBus(raw, "sim").write_u16(0x48, 0x01, 0x10000)
    assert chip.config_writes == []
