"""The station config schema: one TOML file that describes a charger's hardware and backend.

Parsed with :mod:`tomllib` and validated with pydantic; every error names the key
(``connector[1].meter.baudrate``) and the problem. OCPP configuration keys that the backend
may change do not live here but in the station's store; ``[ocpp.keys]`` only gives their
factory values, checked against :mod:`chargerfw.config.ocpp_keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chargerfw.config import DEFAULT_CONFIG_PATH
from chargerfw.config.ocpp_keys import ConfigValueError, key_definitions, normalise
from chargerfw.hwdata import data_path
from chargerfw.tomlfile import TomlFileError, read_toml, validation_problems

BcmPin = Annotated[int, Field(ge=0, le=27, description="BCM GPIO number")]
I2cAddress = Annotated[int, Field(ge=0x03, le=0x77)]


class ConfigError(TomlFileError):
    """A station config that cannot be used; the message names each bad key."""


class _Section(BaseModel):
    # Unknown keys are typos until proven otherwise: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True)


def known_meter_models() -> list[str]:
    """Names of the meter register maps shipped in ``hw/meters`` (file stem = model name)."""
    folder = data_path("meters")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


class StationSection(_Section):
    id: str = Field(min_length=1, max_length=48, description="charge point identity")
    vendor: str = Field(default="chargerfw", max_length=20)
    model: str = Field(default="chargerfw-pi", max_length=20)
    serial_number: str | None = Field(default=None, max_length=25)


class MeterSection(_Section):
    model: str
    transport: Literal["rtu", "tcp"] = "rtu"
    port: str | None = None
    baudrate: int | None = Field(default=None, gt=0, description="default: the model's map")
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    host: str = "127.0.0.1"
    tcp_port: int = Field(default=502, ge=1, le=65535)
    unit_id: int | None = Field(default=None, ge=1, le=247, description="default: the model's map")
    timeout_s: float = Field(default=1.0, gt=0, le=30)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)

    @field_validator("model")
    @classmethod
    def _model_is_known(cls, value: str) -> str:
        models = known_meter_models()
        if value not in models:
            raise ValueError(f"unknown meter model {value!r}; known: {', '.join(models)}")
        return value

    @model_validator(mode="after")
    def _transport_has_address(self) -> MeterSection:
        if self.transport == "rtu" and not self.port:
            raise ValueError("transport 'rtu' needs 'port' (for example /dev/ttyUSB0)")
        return self


class ReaderSection(_Section):
    type: Literal["pcsc", "pn532-uart", "pn532-i2c", "rdm6300", "sim"]
    port: str | None = None
    baudrate: int | None = Field(default=None, gt=0)
    i2c_bus: int = Field(default=1, ge=0)
    i2c_address: I2cAddress = 0x24
    reader_name: str | None = Field(default=None, description="PC/SC: substring of the reader name")
    poll_interval_s: float = Field(default=0.2, gt=0, le=10)
    removal_timeout_s: float = Field(default=0.5, gt=0, le=10)

    @model_validator(mode="after")
    def _serial_types_have_port(self) -> ReaderSection:
        if self.type in ("pn532-uart", "rdm6300") and not self.port:
            raise ValueError(f"reader type {self.type!r} needs 'port' (for example /dev/serial0)")
        return self


class ContactorSection(_Section):
    pin: BcmPin
    active_high: bool = True
    feedback_pin: BcmPin | None = None
    feedback_active_high: bool = True
    feedback_timeout_s: float = Field(default=0.5, gt=0, le=5)


class FaultInputSection(_Section):
    pin: BcmPin
    active_low: bool = True
    debounce_ms: int = Field(default=20, ge=0, le=1000)


class RcmSection(FaultInputSection):
    test_pin: BcmPin | None = None
    test_pulse_ms: int = Field(default=100, ge=10, le=1000)


class LockSection(_Section):
    pin: BcmPin
    active_high: bool = True
    feedback_pin: BcmPin | None = None
    feedback_active_high: bool = True
    feedback_timeout_s: float = Field(default=1.0, gt=0, le=10)


class PilotSection(_Section):
    pwm_pin: BcmPin
    pwm_frequency_hz: int = Field(default=1000, ge=900, le=1100)
    adc_bus: int = Field(default=1, ge=0)
    adc_address: I2cAddress = 0x48
    adc_channel: int = Field(default=0, ge=0, le=3)
    # The front end scales the +-12 V pilot into the ADC's single-ended range:
    # pilot volts = adc volts * scale + offset (default: -12..+12 V onto 0..3 V).
    adc_scale: float = 8.0
    adc_offset: float = -12.0
    # 860 SPS cannot resolve a 1 kHz plateau: a burst of samples, max = high, min = low plateau.
    # 860 SPS against 1 kHz walks the sample phase in steps of 1/43 period: 43+ samples see every
    # phase, so both plateaus are caught even at 10 % and 96 % duty.
    adc_samples: int = Field(default=48, ge=8, le=256)
    hysteresis_v: float = Field(default=0.5, ge=0, le=1.4, description="margin to leave a state")
    confirm_reads: int = Field(default=2, ge=1, le=10, description="equal reads to change state")


class TemperatureSection(_Section):
    sensor: Literal["tmp102", "lm75"] = "tmp102"
    bus: int = Field(default=1, ge=0)
    address: I2cAddress = 0x48
    derate_at_c: float = 60.0
    stop_at_c: float = 65.0
    resume_at_c: float = 55.0
    # Current factor reached at stop_at_c; derating is linear from 1.0 at derate_at_c.
    derate_min_factor: float = Field(default=0.5, gt=0, le=1)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> TemperatureSection:
        if not self.resume_at_c < self.derate_at_c <= self.stop_at_c:
            raise ValueError("need resume_at_c < derate_at_c <= stop_at_c")
        return self


class ConnectorSection(_Section):
    id: int = Field(ge=1, le=2)
    max_current_a: float = Field(default=16.0, ge=6, le=80)
    phases: Literal[1, 3] = 3
    meter: MeterSection
    contactor: ContactorSection
    pilot: PilotSection
    lock: LockSection | None = None
    temperature: TemperatureSection | None = None


class OcppSection(_Section):
    url: str = Field(description="CSMS WebSocket URL without the charge point id")
    security_profile: Literal[0, 1, 2] = 0
    password: str | None = Field(default=None, repr=False)
    ca_file: Path | None = None
    # Factory values for OCPP configuration keys (MeterValueSampleInterval = "10", ...). They
    # are written to the store only where it holds no value yet: the backend's changes win.
    keys: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("keys")
    @classmethod
    def _keys_are_known_and_valid(cls, value: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        definitions = key_definitions(number_of_connectors=2)
        problems = []
        for key, raw in value.items():
            definition = definitions.get(key)
            if definition is None:
                problems.append(f"{key}: not an OCPP configuration key this firmware knows")
                continue
            if definition.readonly:
                problems.append(f"{key}: read-only, it cannot be provisioned")
                continue
            text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
            try:
                normalise(definition, text)
            except ConfigValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return {k: ("true" if v else "false") if isinstance(v, bool) else str(v)
                for k, v in value.items()}

    @field_validator("url")
    @classmethod
    def _url_is_websocket(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _profile_matches(self) -> OcppSection:
        if self.security_profile >= 1 and not self.password:
            raise ValueError(f"security_profile {self.security_profile} needs 'password'")
        if self.security_profile == 2 and not self.url.startswith("wss://"):
            raise ValueError("security_profile 2 needs a wss:// url")
        return self


class StorageSection(_Section):
    path: Path = Path("/var/lib/chargerfw/chargerfw.db")


class StationConfig(_Section):
    """A whole station. ``hardware = "sim"`` swaps every device for its simulated twin."""

    station: StationSection
    hardware: Literal["pi", "sim"] = "pi"
    reader: ReaderSection | None = None
    rcm: RcmSection | None = None
    emergency_stop: FaultInputSection | None = None
    connector: list[ConnectorSection] = Field(min_length=1, max_length=2)
    ocpp: OcppSection | None = None
    storage: StorageSection = StorageSection()

    @model_validator(mode="after")
    def _connector_ids_unique(self) -> StationConfig:
        ids = [c.id for c in self.connector]
        if len(set(ids)) != len(ids):
            raise ValueError(f"connector ids must be unique, got {ids}")
        return self

    @model_validator(mode="after")
    def _pins_not_shared(self) -> StationConfig:
        owners: dict[int, str] = {}
        problems: list[str] = []

        def claim(pin: int | None, key: str) -> None:
            if pin is None:
                return
            if pin in owners:
                problems.append(f"GPIO {pin} is used by both {owners[pin]} and {key}")
            owners[pin] = key

        if self.rcm:
            claim(self.rcm.pin, "rcm.pin")
            claim(self.rcm.test_pin, "rcm.test_pin")
        if self.emergency_stop:
            claim(self.emergency_stop.pin, "emergency_stop.pin")
        for c in self.connector:
            prefix = f"connector[{c.id}]"
            claim(c.contactor.pin, f"{prefix}.contactor.pin")
            claim(c.contactor.feedback_pin, f"{prefix}.contactor.feedback_pin")
            claim(c.pilot.pwm_pin, f"{prefix}.pilot.pwm_pin")
            if c.lock:
                claim(c.lock.pin, f"{prefix}.lock.pin")
                claim(c.lock.feedback_pin, f"{prefix}.lock.feedback_pin")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def connector_by_id(self, connector_id: int) -> ConnectorSection:
        for c in self.connector:
            if c.id == connector_id:
                return c
        raise KeyError(connector_id)


def parse_config(data: dict, source: str = "<config>") -> StationConfig:
    """Validate an already-parsed TOML document."""
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        # Keys as written: connector[1].meter.port (array entries by their id).
        raise ConfigError(source, validation_problems(exc, data)) from None


def load_config(path: Path | str = DEFAULT_CONFIG_PATH) -> StationConfig:
    """Read and validate a station config file; raise :class:`ConfigError` on any problem."""
    path = Path(path)
    return parse_config(read_toml(path, ConfigError), str(path))
