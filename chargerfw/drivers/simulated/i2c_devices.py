"""Simulated I2C chips for :class:`~chargerfw.drivers.i2c.SimulatedSmbus`, modelled at the
register level so the real drivers run unchanged against them."""

from __future__ import annotations

from collections.abc import Callable

from chargerfw.drivers.temperature import encode_lm75, encode_tmp102

ChannelSource = Callable[[int], float]
"""Returns the input voltage (ADC volts, vs GND) for conversion number ``n``."""


class SimulatedAds1115:
    """ADS1115: config register 0x01, conversion register 0x00, MSB first.

    Each read of the conversion register is one new conversion of the selected channel; its
    voltage comes from the channel's source, called with a running conversion count so a source
    can model where in the PWM period the sample fell.
    """

    POWER_ON_CONFIG = 0x8583
    _FSR = {0b000: 6.144, 0b001: 4.096, 0b010: 2.048, 0b011: 1.024}

    def __init__(self) -> None:
        self.config = self.POWER_ON_CONFIG
        self.config_writes: list[int] = []
        self.sources: dict[int, ChannelSource] = {}
        self.conversions = 0

    def connect(self, channel: int, source: ChannelSource) -> None:
        if channel in self.sources:
            raise ValueError(f"ADS1115 channel {channel} is already connected")
        self.sources[channel] = source

    @property
    def channel(self) -> int | None:
        """The single-ended channel the MUX selects (None for differential settings)."""
        mux = (self.config >> 12) & 0b111
        return mux & 0b11 if mux & 0b100 else None

    @property
    def full_scale_v(self) -> float:
        return self._FSR.get((self.config >> 9) & 0b111, 0.256)

    def read_register(self, register: int, length: int) -> bytes:
        if register == 0x01:
            value = self.config
        elif register == 0x00:
            value = self._convert() & 0xFFFF
        else:
            value = 0
        return value.to_bytes(2, "big")[:length].ljust(length, b"\x00")

    def write_register(self, register: int, data: bytes) -> None:
        if register == 0x01 and len(data) == 2:
            self.config = int.from_bytes(data, "big")
            self.config_writes.append(self.config)

    def _convert(self) -> int:
        channel = self.channel
        source = self.sources.get(channel) if channel is not None else None
        volts = source(self.conversions) if source is not None else 0.0
        self.conversions += 1
        code = round(volts / self.full_scale_v * 32768)
        return max(-32768, min(32767, code))


class SimulatedTemperatureChip:
    """A TMP102/LM75-style sensor: register 0x00 holds the temperature in the model's encoding."""

    def __init__(self, celsius: float = 25.0) -> None:
        self.temperature_c = celsius
        self.raw_override: int | None = None  # a test may force the register

    def read_register(self, register: int, length: int) -> bytes:
        value = 0
        if register == 0x00:
            value = self.raw_override if self.raw_override is not None else self._encode()
        return value.to_bytes(2, "big")[:length].ljust(length, b"\x00")

    def write_register(self, register: int, data: bytes) -> None:
        pass  # configuration and limit registers are not modelled

    def _encode(self) -> int:
        raise NotImplementedError


class SimulatedTmp102(SimulatedTemperatureChip):
    def _encode(self) -> int:
        return encode_tmp102(self.temperature_c)


class SimulatedLm75(SimulatedTemperatureChip):
    def _encode(self) -> int:
        return encode_lm75(self.temperature_c)


SIMULATED_SENSORS: dict[str, type[SimulatedTemperatureChip]] = {
    "tmp102": SimulatedTmp102,
    "lm75": SimulatedLm75,
}
