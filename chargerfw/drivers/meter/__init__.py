"""Energy meters over Modbus RTU/TCP, described by register maps in ``hw/meters``."""

from chargerfw.drivers.meter.driver import (
    BusSettings,
    EnergyMeter,
    MeterError,
    MeterReadError,
    quiet_pymodbus,
)
from chargerfw.drivers.meter.plausibility import PlausibilityLimits
from chargerfw.drivers.meter.regmap import (
    DataType,
    MeterMap,
    MeterMapError,
    Quantity,
    all_meter_maps,
    load_meter_map,
    load_meter_map_file,
)

__all__ = [
    "BusSettings",
    "DataType",
    "EnergyMeter",
    "MeterError",
    "MeterMap",
    "MeterMapError",
    "MeterReadError",
    "PlausibilityLimits",
    "Quantity",
    "all_meter_maps",
    "load_meter_map",
    "load_meter_map_file",
    "quiet_pymodbus",
]
