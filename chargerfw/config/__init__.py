"""The station config: the schema of the one TOML file that describes a station
(:mod:`.station`), and the catalogue of OCPP configuration keys it may provision
(:mod:`.ocpp_keys`). Import the schema from here: ``from chargerfw.config import load_config``.
"""

from chargerfw.config.station import (
    DEFAULT_CONFIG_PATH,
    BcmPin,
    ConfigError,
    ConnectorSection,
    ContactorSection,
    FaultInputSection,
    I2cAddress,
    LockSection,
    MeterSection,
    OcppSection,
    PilotSection,
    RcmSection,
    ReaderSection,
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
    "I2cAddress",
    "LockSection",
    "MeterSection",
    "OcppSection",
    "PilotSection",
    "RcmSection",
    "ReaderSection",
    "StationConfig",
    "StationSection",
    "StorageSection",
    "TemperatureSection",
    "known_meter_models",
    "load_config",
    "parse_config",
]
