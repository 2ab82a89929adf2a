"""The station config schema: one TOML file that describes a charger's hardware and backend.

Parsed with :mod:`tomllib` and validated with msgspec (:mod:`chargerfw.validation`); every
error names the key (``connector[1].meter.baudrate``) and the problem. OCPP configuration keys
that the backend may change do not live here but in the station's store; ``[ocpp.keys]`` only
gives their factory values, checked against :mod:`chargerfw.config.ocpp_keys`.

The sections are frozen: a changed copy is ``msgspec.structs.replace(section, key=value)``,
which checks the section's own rules (``__post_init__``) again but not its ranges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from chargerfw.config import DEFAULT_CONFIG_PATH
from chargerfw.config.ocpp_keys import (
    OFFLINE_AFTER_KEY,
    OFFLINE_LIMIT_KEY,
    ConfigValueError,
    key_definitions,
    normalise,
)
from chargerfw.config.wiring import FAIL_SAFE_WIRING, ContactWiring, PullDirection, Wiring
from chargerfw.hwdata import data_path
from chargerfw.tomlfile import TomlFileError, read_toml, validation_problems
from chargerfw.validation import FieldError, Invalid, convert

BcmPin = Annotated[int, Meta(ge=0, le=27, description="BCM GPIO number")]
I2cAddress = Annotated[int, Meta(ge=0x03, le=0x77)]
Positive = Annotated[int, Meta(gt=0)]
Bus = Annotated[int, Meta(ge=0)]


class ConfigError(TomlFileError):
    """A station config that cannot be used; the message names each bad key."""


# Unknown keys are typos until proven otherwise: reject them. Every section is built from
# keywords, like the TOML table it comes from (kw_only, which each class states again).
class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Keys an older file may still have, each with what replaced it (reported instead of
    # "unknown key", see chargerfw.validation).
    replaced_keys: ClassVar[Mapping[str, str]] = {}


def known_meter_models() -> list[str]:
    """Names of the meter register maps shipped in ``hw/meters`` (file stem = model name)."""
    folder = data_path("meters")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


class StationSection(_Section, frozen=True, kw_only=True):
    id: Annotated[str, Meta(min_length=1, max_length=48)]  # the charge point identity
    vendor: Annotated[str, Meta(max_length=20)] = "chargerfw"
    model: Annotated[str, Meta(max_length=20)] = "chargerfw-pi"
    serial_number: Annotated[str, Meta(max_length=25)] | None = None


class MeterSection(_Section, frozen=True, kw_only=True):
    model: str
    transport: Literal["rtu", "tcp"] = "rtu"
    port: str | None = None
    baudrate: Positive | None = None  # default: the model's map
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    host: str = "127.0.0.1"
    tcp_port: Annotated[int, Meta(ge=1, le=65535)] = 502
    unit_id: Annotated[int, Meta(ge=1, le=247)] | None = None  # default: the model's map
    timeout_s: Annotated[float, Meta(gt=0, le=30)] = 1.0
    poll_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0

    def __post_init__(self) -> None:
        models = known_meter_models()
        if self.model not in models:
            raise FieldError(
                "model", f"unknown meter model {self.model!r}; known: {', '.join(models)}"
            )
        if self.transport == "rtu" and not self.port:
            raise ValueError("transport 'rtu' needs 'port' (for example /dev/ttyUSB0)")


class ReaderSection(_Section, frozen=True, kw_only=True):
    type: Literal["pcsc", "pn532-uart", "pn532-i2c", "rdm6300", "sim"]
    port: str | None = None
    baudrate: Positive | None = None
    i2c_bus: Bus = 1
    i2c_address: I2cAddress = 0x24
    reader_name: str | None = None  # PC/SC: a substring of the reader's name
    poll_interval_s: Annotated[float, Meta(gt=0, le=10)] = 0.2
    removal_timeout_s: Annotated[float, Meta(gt=0, le=10)] = 0.5

    def __post_init__(self) -> None:
        if self.type in ("pn532-uart", "rdm6300") and not self.port:
            raise ValueError(f"reader type {self.type!r} needs 'port' (for example /dev/serial0)")


class ContactorSection(_Section, frozen=True, kw_only=True):
    pin: BcmPin
    active_high: bool = True
    feedback_pin: BcmPin | None = None
    # The mirror contact (IEC 60947-4-1 Annex F) is closed while the main contacts are open:
    # a cut feedback wire reads as main contacts closed (chargerfw.config.wiring).
    feedback_wiring: Wiring = FAIL_SAFE_WIRING.wiring
    feedback_pull: PullDirection = FAIL_SAFE_WIRING.pull
    feedback_timeout_s: Annotated[float, Meta(gt=0, le=5)] = 0.5

    replaced_keys: ClassVar[Mapping[str, str]] = {
        "feedback_active_high": (
            "`feedback_active_high` was replaced by `feedback_wiring` and `feedback_pull`: "
            "feedback_active_high = true (a contact that closes with the main contacts, to "
            '3.3 V, pull-down) is feedback_wiring = "normally_open", feedback_pull = "down"; '
            'false (the same contact to GND, pull-up) is feedback_wiring = "normally_open", '
            'feedback_pull = "up". Fail-safe is a mirror contact, closed while the main '
            'contacts are open: feedback_wiring = "normally_closed" (docs/safety.md)'
        ),
    }

    @property
    def feedback_contact_wiring(self) -> ContactWiring:
        return ContactWiring(self.feedback_wiring, self.feedback_pull)


class FaultInputSection(_Section, frozen=True, kw_only=True):
    pin: BcmPin
    # The trip contact opens on a trip: a cut wire or a floating pin reads as tripped
    # (chargerfw.config.wiring).
    wiring: Wiring = FAIL_SAFE_WIRING.wiring
    pull: PullDirection = FAIL_SAFE_WIRING.pull
    debounce_ms: Annotated[int, Meta(ge=0, le=1000)] = 20

    replaced_keys: ClassVar[Mapping[str, str]] = {
        "active_low": (
            "`active_low` was replaced by `wiring` and `pull`: active_low = true with a contact "
            'that closes on a trip (to GND, pull-up) is wiring = "normally_open", pull = "up"; '
            'active_low = false (to 3.3 V, pull-down) is wiring = "normally_open", '
            'pull = "down". Fail-safe is a contact that opens on a trip: '
            'wiring = "normally_closed" (docs/safety.md)'
        ),
    }

    @property
    def contact_wiring(self) -> ContactWiring:
        return ContactWiring(self.wiring, self.pull)


class RcmSection(FaultInputSection, frozen=True, kw_only=True):
    test_pin: BcmPin | None = None
    test_pulse_ms: Annotated[int, Meta(ge=10, le=1000)] = 100


class LockSection(_Section, frozen=True, kw_only=True):
    pin: BcmPin
    active_high: bool = True
    feedback_pin: BcmPin | None = None
    feedback_active_high: bool = True
    feedback_timeout_s: Annotated[float, Meta(gt=0, le=10)] = 1.0


class PilotSection(_Section, frozen=True, kw_only=True):
    pwm_pin: BcmPin
    pwm_frequency_hz: Annotated[int, Meta(ge=900, le=1100)] = 1000
    adc_bus: Bus = 1
    adc_address: I2cAddress = 0x48
    adc_channel: Annotated[int, Meta(ge=0, le=3)] = 0
    # The front end scales the +-12 V pilot into the ADC's single-ended range:
    # pilot volts = adc volts * scale + offset (default: -12..+12 V onto 0..3 V).
    adc_scale: float = 8.0
    adc_offset: float = -12.0
    # 860 SPS cannot resolve a 1 kHz plateau: a burst of samples, max = high, min = low plateau.
    # 860 SPS against 1 kHz walks the sample phase in steps of 1/43 period: 43+ samples see every
    # phase, so both plateaus are caught even at 10 % and 96 % duty.
    adc_samples: Annotated[int, Meta(ge=8, le=256)] = 48
    hysteresis_v: Annotated[float, Meta(ge=0, le=1.4)] = 0.5  # the margin to leave a state
    confirm_reads: Annotated[int, Meta(ge=1, le=10)] = 2  # equal reads to change state


class TemperatureSection(_Section, frozen=True, kw_only=True):
    sensor: Literal["tmp102", "lm75"] = "tmp102"
    bus: Bus = 1
    address: I2cAddress = 0x48
    derate_at_c: float = 60.0
    stop_at_c: float = 65.0
    resume_at_c: float = 55.0
    # Current factor reached at stop_at_c; derating is linear from 1.0 at derate_at_c.
    derate_min_factor: Annotated[float, Meta(gt=0, le=1)] = 0.5

    def __post_init__(self) -> None:
        if not self.resume_at_c < self.derate_at_c <= self.stop_at_c:
            raise ValueError("need resume_at_c < derate_at_c <= stop_at_c")


class ConnectorSection(_Section, frozen=True, kw_only=True):
    id: Annotated[int, Meta(ge=1, le=2)]
    max_current_a: Annotated[float, Meta(ge=6, le=80)] = 16.0
    phases: Literal[1, 3] = 3
    meter: MeterSection
    contactor: ContactorSection
    pilot: PilotSection
    lock: LockSection | None = None
    temperature: TemperatureSection | None = None


class OcppSection(_Section, frozen=True, kw_only=True):
    url: str  # the CSMS WebSocket URL without the charge point id
    # The profile the station starts with; a backend may raise it (SecurityProfile), and the
    # raised profile, kept in the store, wins over this one (docs/security.md).
    security_profile: Literal[0, 1, 2, 3] = 0
    password: str | None = None
    # The backend's root CA, installed as a CentralSystemRootCertificate at start-up when the
    # certificate store has none: the station trusts only the store ([security]).
    ca_file: Path | None = None
    # The wss:// URL for profiles 2 and 3 when ``url`` is ws:// (a profile raised remotely).
    secure_url: str | None = None
    # Factory values for OCPP configuration keys (MeterValueSampleInterval = "10", ...), as
    # OCPP's strings once validated. They are written to the store only where it holds no value
    # yet: the backend's changes win.
    keys: dict[str, str | int | bool] = {}

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://", "wss://")):
            raise FieldError("url", "must start with ws:// or wss://")
        msgspec.structs.force_setattr(self, "url", self.url.rstrip("/"))
        msgspec.structs.force_setattr(self, "keys", _provisioned_keys(self.keys))
        if self.secure_url is not None:
            if not self.secure_url.startswith("wss://"):
                raise FieldError("secure_url", "must start with wss://")
            msgspec.structs.force_setattr(self, "secure_url", self.secure_url.rstrip("/"))
        if self.security_profile in (1, 2) and not self.password:
            raise ValueError(f"security_profile {self.security_profile} needs 'password'")
        if self.security_profile >= 2 and self.tls_url is None:
            raise ValueError(f"security_profile {self.security_profile} needs a wss:// url "
                             "(url or secure_url)")

    @property
    def tls_url(self) -> str | None:
        """The wss:// URL of security profiles 2 and 3, if there is one."""
        return self.url if self.url.startswith("wss://") else self.secure_url

    def __repr__(self) -> str:
        # The password stays out of logs and tracebacks.
        shown = {f: getattr(self, f) for f in self.__struct_fields__ if f != "password"}
        return "OcppSection(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def _provisioned_keys(value: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
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
        if key == "SecurityProfile":
            problems.append(f"{key}: provisioned by [ocpp] security_profile")
            continue
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        try:
            normalise(definition, text)
        except ConfigValueError as exc:
            problems.append(str(exc))
    if problems:
        raise FieldError("keys", "; ".join(problems))
    return {
        k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in value.items()
    }


class SafetySection(_Section, frozen=True, kw_only=True):
    """Where the safety core runs and how it watches the station (docs/safety.md)."""

    # "process": a safety process of its own (`chargerfw safety run`, the chargerfw-safety
    # unit) owns the hardware; "thread": the safety core runs in the station's process.
    # Unset: process on a Pi, thread on simulated hardware.
    mode: Literal["process", "thread"] | None = None
    # The station's silence that opens every contactor (a killed, frozen or restarting station).
    heartbeat_bound_ms: Annotated[int, Meta(ge=20, le=1000)] = 200
    # How often the safety process polls pilot, feedback and temperature: a vehicle that stops
    # (pilot C to B or A) is seen within two polls and the coil opens at once.
    poll_interval_ms: Annotated[int, Meta(ge=5, le=200)] = 20
    # SCHED_FIFO priority the safety process asks for (0: keep what systemd gave it).
    realtime_priority: Annotated[int, Meta(ge=0, le=99)] = 0
    lock_memory: bool = True  # mlockall, so a page fault never delays an interlock
    # A hardware watchdog or charge-pump coil driver, toggled while the safety process guards.
    watchdog_pin: BcmPin | None = None


class SmartChargingSection(_Section, frozen=True, kw_only=True):
    """OCPP Smart Charging on this station (docs/smart-charging.md)."""

    # Where Recurring charging profiles repeat at the same wall-clock time (IANA name).
    time_zone: str = "UTC"
    # The limit that applies while the backend has been unreachable for offline_after_s: a
    # site's grid protection must not depend on the link. Unset: the profiles alone.
    offline_limit_a: Annotated[float, Meta(ge=0, le=80)] | None = None
    offline_after_s: Annotated[float, Meta(ge=0, le=86400)] = 300.0

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise FieldError("time_zone", f"unknown time zone {self.time_zone!r} (an IANA "
                             "name such as Europe/Amsterdam)") from None


class FirmwareSection(_Section, frozen=True, kw_only=True):
    """Firmware updates from the backend (docs/firmware-update.md)."""

    # Where the release slots live (releases/, current, previous, the boot launcher).
    prefix: Path = Path("/opt/chargerfw")
    # The Ed25519 key (PEM) a release must be signed with.
    public_key: Path = Path("/etc/chargerfw/release-signing.pub")
    # After the restart into a new release: its self-test and an Accepted BootNotification
    # within this time, or it rolls back to the previous release.
    health_check_s: Annotated[float, Meta(gt=0, le=86400)] = 300.0
    # How many starts of a new release the boot launcher allows before it rolls back.
    boot_attempts: Annotated[int, Meta(ge=1, le=20)] = 3
    # Whether the unsigned UpdateFirmware is taken (SignedUpdateFirmware is not affected).
    allow_unsigned_update_firmware: bool = True
    # Where downloads are kept until installed; unset: ``firmware/`` beside the store.
    download_dir: Path | None = None


class SecuritySection(_Section, frozen=True, kw_only=True):
    """Keys and certificates of the OCPP Security Whitepaper (docs/security.md)."""

    # The station's certificate store, readable by the service user only. Its layout is
    # fixed here so that everything that reads or writes a certificate agrees on it.
    certificates_dir: Path = Path("/etc/chargerfw/certs")

    @property
    def manufacturer_roots_dir(self) -> Path:
        """ManufacturerRootCertificates (PEM), which signed firmware must chain to."""
        return self.certificates_dir / "manufacturer"

    @property
    def central_system_roots_dir(self) -> Path:
        """CentralSystemRootCertificates (PEM), which the backend's TLS certificate must
        chain to."""
        return self.certificates_dir / "central_system"

    @property
    def charge_point_certificate(self) -> Path:
        """The station's own certificate chain (PEM, leaf first) for security profile 3."""
        return self.certificates_dir / "charge_point" / "cert.pem"

    @property
    def charge_point_key(self) -> Path:
        """The private key of :attr:`charge_point_certificate` (PEM, mode 0600)."""
        return self.certificates_dir / "charge_point" / "key.pem"

    # Renew the station's certificate (SignCertificate) this many days before it expires.
    renew_before_days: Annotated[int, Meta(ge=1, le=365)] = 30
    # The read-only key AdditionalRootCertificateCheck: one CentralSystemRootCertificate at a
    # time (plus the one it replaced, as a fallback), each new one signed by the one before.
    additional_root_certificate_check: bool = False

    @property
    def charge_point_generations_dir(self) -> Path:
        """Complete generations of the station's certificate and key, one directory each;
        ``charge_point`` is a symlink to the current one, swapped atomically."""
        return self.certificates_dir / ".charge_point"

    @property
    def pending_charge_point_key(self) -> Path:
        """The private key of the last SignCertificate's CSR (mode 0600), until its
        CertificateSigned arrives."""
        return self.charge_point_generations_dir / "pending-key.pem"
    # Security events the station watches for (docs/security.md, "Security events"): a tamper
    # contact (an enclosure switch; fail-safe wiring reads a cut wire as opened), each
    # activation one TamperDetectionActivated; the wall clock moving this many seconds against
    # the monotonic clock is SettingSystemTime; less free space than this on the store's disk
    # is MemoryExhaustion.
    tamper: FaultInputSection | None = None
    clock_jump_s: Annotated[float, Meta(ge=1)] = 60.0
    min_free_disk_mb: Annotated[int, Meta(ge=0)] = 16

    @property
    def authorization_key_file(self) -> Path:
        """The AuthorizationKey a backend set, and its fallback (JSON, mode 0600)."""
        return self.certificates_dir / "authorization_key.json"


class StorageSection(_Section, frozen=True, kw_only=True):
    path: Path = Path("/var/lib/chargerfw/chargerfw.db")


class StationConfig(_Section, frozen=True, kw_only=True):
    """A whole station. ``hardware = "sim"`` swaps every device for its simulated twin."""

    station: StationSection
    hardware: Literal["pi", "sim"] = "pi"
    reader: ReaderSection | None = None
    rcm: RcmSection | None = None
    emergency_stop: FaultInputSection | None = None
    connector: Annotated[list[ConnectorSection], Meta(min_length=1, max_length=2)]
    ocpp: OcppSection | None = None
    storage: StorageSection = msgspec.field(default_factory=StorageSection)
    safety: SafetySection = msgspec.field(default_factory=SafetySection)
    smart_charging: SmartChargingSection = msgspec.field(default_factory=SmartChargingSection)
    firmware: FirmwareSection = msgspec.field(default_factory=FirmwareSection)
    security: SecuritySection = msgspec.field(default_factory=SecuritySection)

    def __post_init__(self) -> None:
        ids = [c.id for c in self.connector]
        if len(set(ids)) != len(ids):
            raise ValueError(f"connector ids must be unique, got {ids}")
        if self.hardware == "pi" and self.rcm is not None and self.rcm.test_pin is None:
            # An RCM the Pi watches is self-tested at start-up and before every close.
            raise FieldError(
                "rcm",
                "test_pin is required on a Pi: the RCM self-test runs at "
                "start-up and before every contactor close",
            )
        self._pins_not_shared()

    @property
    def safety_mode(self) -> Literal["process", "thread"]:
        """Where the safety core runs (``[safety] mode``, or the hardware's default)."""
        if self.safety.mode is not None:
            return self.safety.mode
        return "process" if self.hardware == "pi" else "thread"

    def ocpp_key_defaults(self) -> dict[str, str]:
        """The OCPP keys whose default is this config's: the offline fallback
        (``[smart_charging]``; a backend's ChangeConfiguration overrides it)."""
        section = self.smart_charging
        limit = section.offline_limit_a
        return {
            OFFLINE_LIMIT_KEY: "" if limit is None
            else f"{math.floor(limit * 10 + 1e-6) / 10:g}",  # the key's resolution, 0.1 A
            OFFLINE_AFTER_KEY: str(math.ceil(section.offline_after_s)),
        }

    @property
    def firmware_download_dir(self) -> Path:
        return self.firmware.download_dir or self.storage.path.parent / "firmware"

    def _pins_not_shared(self) -> None:
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
        claim(self.safety.watchdog_pin, "safety.watchdog_pin")
        if self.security.tamper:
            claim(self.security.tamper.pin, "security.tamper.pin")
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

    def connector_by_id(self, connector_id: int) -> ConnectorSection:
        for c in self.connector:
            if c.id == connector_id:
                return c
        raise KeyError(connector_id)


def parse_config(data: dict[str, Any], source: str = "<config>") -> StationConfig:
    """Validate an already-parsed TOML document."""
    try:
        return convert(data, StationConfig, strict=False)
    except Invalid as exc:
        # Keys as written: connector[1].meter.port (array entries by their id).
        raise ConfigError(source, validation_problems(exc, data)) from None


def load_config(path: Path | str = DEFAULT_CONFIG_PATH) -> StationConfig:
    """Read and validate a station config file; raise :class:`ConfigError` on any problem.

    A file that holds the OCPP password and that every user may read is loaded with a
    warning, not refused: refusing would stop a charger that a firmware update finds so, and
    the fix (mode 0640, root:chargerfw, as scripts/install.sh installs it) is the operator's."""
    path = Path(path)
    config = parse_config(read_toml(path, ConfigError), str(path))
    if config.ocpp is not None and config.ocpp.password:
        _warn_if_world_readable(path)
    return config


def _warn_if_world_readable(path: Path) -> None:
    import stat

    from chargerfw.logs import get_logger

    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o004:
        get_logger(__name__).warning(
            "config.password_readable_by_all", path=str(path), mode=f"{mode:04o}",
            fix=f"chown root:chargerfw {path} && chmod 0640 {path}")
