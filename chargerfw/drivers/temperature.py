"""Temperature sensors over I2C (TMP102, LM75).

What a temperature means for charging (derate, stop) is the station's rule:
:mod:`chargerfw.station.thermal`.

Both chips send the temperature register MSB first, left-justified two's complement:
TMP102 12 bits x 0.0625 degC (13 bits when its extended-mode flag, bit 0, is set), LM75(B) 11 bits
x 0.125 degC.
"""

from __future__ import annotations

import abc
import enum

from chargerfw.config import TemperatureSection
from chargerfw.drivers.i2c import I2cBus, I2cError


class TemperatureErrorKind(enum.StrEnum):
    BUS = "bus"  # no answer on the bus
    IMPLAUSIBLE = "implausible"  # decoded, but outside what the sensor can measure


class TemperatureReadError(RuntimeError):
    def __init__(self, kind: TemperatureErrorKind, sensor: str, detail: str) -> None:
        self.kind, self.sensor, self.detail = kind, sensor, detail
        super().__init__(f"{sensor}: {kind.value}: {detail}")


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def decode_tmp102(register: int) -> float:
    """TMP102 temperature register (16-bit, MSB first) to degC."""
    if register & 0x0001:  # EM flag: 13-bit extended mode
        return _signed(register >> 3, 13) * 0.0625
    return _signed(register >> 4, 12) * 0.0625


def decode_lm75(register: int) -> float:
    """LM75(B) temperature register (16-bit, MSB first, 11 significant bits) to degC."""
    return _signed(register >> 5, 11) * 0.125


def encode_tmp102(celsius: float) -> int:
    """The register a TMP102 in normal mode shows for ``celsius`` (for simulators and tests)."""
    return (round(celsius / 0.0625) & 0xFFF) << 4


def encode_lm75(celsius: float) -> int:
    return (round(celsius / 0.125) & 0x7FF) << 5


class TemperatureSensor(abc.ABC):
    """A temperature sensor; :meth:`read_celsius` raises :class:`TemperatureReadError`."""

    REG_TEMPERATURE = 0x00
    model = ""
    min_c, max_c = -55.0, 150.0  # the datasheets' measuring range

    def __init__(self, bus: I2cBus, address: int) -> None:
        self.bus = bus
        self.address = address

    @property
    def name(self) -> str:
        return f"{self.model}@{self.bus.name}:0x{self.address:02x}"

    def read_celsius(self) -> float:
        try:
            register = self.bus.read_u16(self.address, self.REG_TEMPERATURE)
        except I2cError as exc:
            raise TemperatureReadError(TemperatureErrorKind.BUS, self.name, exc.reason) from exc
        celsius = self._decode(register)
        if not self.min_c <= celsius <= self.max_c:
            raise TemperatureReadError(
                TemperatureErrorKind.IMPLAUSIBLE,
                self.name,
                f"{celsius} degC (register 0x{register:04x})",
            )
        return celsius

    @abc.abstractmethod
    def _decode(self, register: int) -> float: ...


class Tmp102(TemperatureSensor):
    model = "tmp102"
    min_c, max_c = -55.0, 150.0

    def _decode(self, register: int) -> float:
        return decode_tmp102(register)


class Lm75(TemperatureSensor):
    model = "lm75"
    min_c, max_c = -55.0, 125.0

    def _decode(self, register: int) -> float:
        return decode_lm75(register)


SENSOR_MODELS: dict[str, type[TemperatureSensor]] = {"tmp102": Tmp102, "lm75": Lm75}


def sensor_from_config(section: TemperatureSection, bus: I2cBus) -> TemperatureSensor:
    return SENSOR_MODELS[section.sensor](bus, section.address)
