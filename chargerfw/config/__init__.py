"""The station config: the schema of the one TOML file that describes a station
(:mod:`.station`), what the wiring of its safety inputs means (:mod:`.wiring`), and the
catalogue of OCPP configuration keys it may provision (:mod:`.ocpp_keys`). Import the schema
from here: ``from chargerfw.config import load_config``.

The schema is msgspec Structs, loaded on the first use of a name below: a command that reads
no config (``chargerfw --help``, ``chargerfw status`` through the service) does not build them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

DEFAULT_CONFIG_PATH = Path("/etc/chargerfw/chargerfw.toml")

if TYPE_CHECKING:
    from chargerfw.config.station import (
        BcmPin,
        ConfigError,
        ConnectorSection,
        ContactorSection,
        FaultInputSection,
        FirmwareSection,
        I2cAddress,
        LockSection,
        MeterSection,
        OcppSection,
        PilotSection,
        RcmSection,
        ReaderSection,
        SafetySection,
        SmartChargingSection,
        StationConfig,
        StationSection,
        StorageSection,
        TemperatureSection,
        known_meter_models,
        load_config,
        parse_config,
    )

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "BcmPin",
    "ConfigError",
    "ConnectorSection",
    "ContactorSection",
    "FaultInputSection",
    "FirmwareSection",
    "I2cAddress",
    "LockSection",
    "MeterSection",
    "OcppSection",
    "PilotSection",
    "RcmSection",
    "ReaderSection",
    "SafetySection",
    "SmartChargingSection",
    "StationConfig",
    "StationSection",
    "StorageSection",
    "TemperatureSection",
    "known_meter_models",
    "load_config",
    "parse_config",
]


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(importlib.import_module("chargerfw.config.station"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
