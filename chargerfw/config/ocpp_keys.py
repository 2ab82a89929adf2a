"""The OCPP 1.6 configuration keys this firmware knows: name, type, default, whether read-only,
and the rule a value must meet. The station config provisions them (``[ocpp.keys]``), the OCPP
layer serves and stores them (:mod:`chargerfw.ocpp.config_keys`), the CLI edits them; each key's
rule lives here once.

Every OCPP 1.6 Core key is defined, plus the LocalAuthListManagement, Reservation and
SmartCharging keys, the security whitepaper's AuthorizationKey /
SecurityProfile and certificate keys (CpoName, CertificateSignedMaxChainSize,
CertificateStoreMaxLength, AdditionalRootCertificateCheck), and vendor keys of this firmware: the
offline fallback limit
(``ChargerfwOfflineLimitA``, ``ChargerfwOfflineAfterS``), so a backend that shares a site's
current can tell each charger the safe share it counts the charger at when the link is lost,
and ``ChargerfwNotifyAllSecurityEvents`` (push every security event, not only critical ones).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace


class KeyType(enum.StrEnum):
    BOOL = "bool"
    INT = "int"
    STRING = "string"
    CSL = "csl"  # comma separated list
    DECIMAL = "decimal"  # a number with at most one decimal place; "" = not set


# Measurands this firmware can produce from a MeterSample (plus temperature).
SUPPORTED_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "Frequency",
    "Temperature",
    "Current.Offered",  # what the pilot's PWM offers (0 A without PWM)
    "Power.Offered",  # that current x measured voltage x phases
)
PHASE_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
FEATURE_PROFILES = ("Core", "LocalAuthListManagement", "RemoteTrigger", "Reservation",
                    "SmartCharging")
# ChargingScheduleAllowedChargingRateUnit items: Current (A) and Power (W).
CHARGING_RATE_UNITS = ("Current", "Power")
MAX_CSL_ITEMS = 8  # *MaxLength of every measurand list
ASCII_INTEGER = re.compile(r"-?[0-9]+")
ASCII_DECIMAL = re.compile(r"[0-9]+(\.[0-9])?")
# Vendor keys: the offline fallback (docs/smart-charging.md). Defaults: the station config's
# [smart_charging] offline_limit_a / offline_after_s.
OFFLINE_LIMIT_KEY = "ChargerfwOfflineLimitA"
OFFLINE_AFTER_KEY = "ChargerfwOfflineAfterS"
# The certificate store's limits (chargerfw.ocpp.certificates): the characters of a
# CertificateSigned chain (a leaf and two RSA-4096 CAs fit; the schema caps the field at
# 10000, the whitepaper the key likewise) and the root certificates of both types together.
CERTIFICATE_SIGNED_MAX_CHAIN_SIZE = 8000
CERTIFICATE_STORE_MAX_LENGTH = 10
# Vendor key: send a SecurityEventNotification for every security event, not only the
# whitepaper's critical ones (docs/security.md, "Security events").
NOTIFY_ALL_SECURITY_EVENTS_KEY = "ChargerfwNotifyAllSecurityEvents"


@dataclass(frozen=True)
class KeyDef:
    """One configuration key. ``readable=False`` keys (AuthorizationKey) are write-only."""

    name: str
    type: KeyType
    default: str
    readonly: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_length: int = 500  # ConfigurationKey value is CiString500 in 1.6
    max_items: int | None = None
    item_check: Callable[[str], str | None] | None = None  # returns a problem or None
    list_check: Callable[[list[str]], str | None] | None = None  # the same, for the whole list
    readable: bool = True
    min_length: int = 0
    choices: tuple[str, ...] = field(default=())


class ConfigValueError(ValueError):
    """A value refused for a key; the message says why."""


def _measurand_problem(item: str) -> str | None:
    if item in SUPPORTED_MEASURANDS:
        return None
    # Imported only to word the refusal: the ocpp library takes a quarter second to load, and
    # every command that reads a station config with measurand keys validates them.
    from ocpp.v16.enums import Measurand

    if item not in {m.value for m in Measurand}:
        return f"{item!r} is not an OCPP 1.6 Measurand"
    if item == "SoC":
        # A vehicle on a basic PWM pilot (IEC 61851-1) never reports its state of charge;
        # only high-level communication (ISO 15118) would, and this charge point has none.
        return "SoC is not known here: the vehicle reports none over the PWM pilot"
    return f"measurand {item!r} is not measured by this charge point"


CONNECTOR_ID = re.compile(r"0|[1-9][0-9]*")  # ASCII digits, no leading zero


def _rotation_checks(number_of_connectors: int) -> tuple[Callable[[str], str | None],
                                                          Callable[[list[str]], str | None]]:
    """ConnectorPhaseRotation: each item ``<connectorId>.<rotation>`` for connector 0 (the
    grid connection) to ``number_of_connectors``, each connector at most once."""

    def item_problem(item: str) -> str | None:
        connector, dot, rotation = item.partition(".")
        if not dot or not CONNECTOR_ID.fullmatch(connector) or rotation not in PHASE_ROTATIONS:
            return f"{item!r} is not <connectorId>.<{'|'.join(PHASE_ROTATIONS)}>"
        if int(connector) > number_of_connectors:
            return f"{item!r}: this charge point has connectors 0 to {number_of_connectors}"
        return None

    def list_problem(items: list[str]) -> str | None:
        connectors = [item.partition(".")[0] for item in items]
        repeated = sorted({c for c in connectors if connectors.count(c) > 1}, key=int)
        return f"connector {repeated[0]} given more than once" if repeated else None

    return item_problem, list_problem


def _profile_problem(item: str) -> str | None:
    return None if item in FEATURE_PROFILES else f"{item!r} is not a supported feature profile"


def _bool(name: str, default: bool, readonly: bool = False) -> KeyDef:
    return KeyDef(name, KeyType.BOOL, "true" if default else "false", readonly)


def _int(name: str, default: int, lo: int = 0, hi: int = 86400, readonly: bool = False) -> KeyDef:
    return KeyDef(name, KeyType.INT, str(default), readonly, minimum=lo, maximum=hi)


def _measurands(name: str, default: str) -> KeyDef:
    return KeyDef(name, KeyType.CSL, default, max_items=MAX_CSL_ITEMS, item_check=_measurand_problem)


def key_definitions(number_of_connectors: int, security_profile: int = 0,
                    defaults: Mapping[str, str] | None = None,
                    additional_root_certificate_check: bool = False) -> dict[str, KeyDef]:
    """Every key this firmware knows, for a station with ``number_of_connectors``;
    ``defaults`` replaces the built-in default of writable keys (from the station config).

    SecurityProfile defaults to the station config's profile; the running service alone
    changes it (upward only, after trying the new profile: chargerfw.ocpp.security_profile)."""
    rotations = ",".join(f"{c}.Unknown" for c in range(0, number_of_connectors + 1))
    rotation_item, rotation_list = _rotation_checks(number_of_connectors)
    keys = [
        # --- Core profile (OCPP 1.6 section 9.1) ---
        _bool("AllowOfflineTxForUnknownId", False),
        _bool("AuthorizationCacheEnabled", True),
        _bool("AuthorizeRemoteTxRequests", False),
        _int("ClockAlignedDataInterval", 900),
        _int("ConnectionTimeOut", 60, lo=1, hi=3600),
        # Stored and reported as the backend (or [ocpp.keys]) wrote it; this firmware cannot
        # measure the rotation, so every connector starts Unknown.
        KeyDef("ConnectorPhaseRotation", KeyType.CSL, rotations, max_items=number_of_connectors + 1,
               item_check=rotation_item, list_check=rotation_list),
        _int("ConnectorPhaseRotationMaxLength", number_of_connectors + 1, readonly=True),
        _int("GetConfigurationMaxKeys", 100, readonly=True),
        _int("HeartbeatInterval", 300, lo=1),
        _bool("LocalAuthorizeOffline", True),
        _bool("LocalPreAuthorize", False),
        _int("MaxEnergyOnInvalidId", 0, hi=10_000_000),
        _measurands("MeterValuesAlignedData", "Energy.Active.Import.Register"),
        _int("MeterValuesAlignedDataMaxLength", MAX_CSL_ITEMS, readonly=True),
        _measurands("MeterValuesSampledData", "Energy.Active.Import.Register"),
        _int("MeterValuesSampledDataMaxLength", MAX_CSL_ITEMS, readonly=True),
        _int("MeterValueSampleInterval", 60),
        # Seconds a status must last before it is sent; Faulted goes at once.
        _int("MinimumStatusDuration", 0, hi=3600),
        _int("NumberOfConnectors", number_of_connectors, readonly=True),
        _int("ResetRetries", 3, hi=10),
        _bool("StopTransactionOnEVSideDisconnect", True),
        _bool("StopTransactionOnInvalidId", True),
        _measurands("StopTxnAlignedData", ""),
        _int("StopTxnAlignedDataMaxLength", MAX_CSL_ITEMS, readonly=True),
        _measurands("StopTxnSampledData", ""),
        _int("StopTxnSampledDataMaxLength", MAX_CSL_ITEMS, readonly=True),
        KeyDef("SupportedFeatureProfiles", KeyType.CSL, ",".join(FEATURE_PROFILES), readonly=True,
               item_check=_profile_problem),
        _int("SupportedFeatureProfilesMaxLength", len(FEATURE_PROFILES), readonly=True),
        _int("TransactionMessageAttempts", 3, lo=1, hi=100),
        _int("TransactionMessageRetryInterval", 60, hi=86400),
        _bool("UnlockConnectorOnEVSideDisconnect", True),
        _int("WebSocketPingInterval", 60, hi=3600),
        # --- Local Auth List Management ---
        _bool("LocalAuthListEnabled", True),
        _int("LocalAuthListMaxLength", 1000, readonly=True),
        _int("SendLocalListMaxLength", 100, readonly=True),
        # --- Reservation: per connector only (no connector 0) ---
        _bool("ReserveConnectorZeroSupported", False, readonly=True),
        # --- Smart Charging (what a profile may hold; chargerfw.station.charging_profiles) ---
        _int("ChargeProfileMaxStackLevel", 10, readonly=True),
        KeyDef("ChargingScheduleAllowedChargingRateUnit", KeyType.CSL,
               ",".join(CHARGING_RATE_UNITS), readonly=True),
        _int("ChargingScheduleMaxPeriods", 24, readonly=True),
        # The board has no phase-switch output: numberPhases cannot switch 3 to 1 phase.
        _bool("ConnectorSwitch3to1PhaseSupported", False, readonly=True),
        _int("MaxChargingProfilesInstalled", 20, readonly=True),
        # --- chargerfw: the offline fallback ("": none, the profiles alone) ---
        KeyDef(OFFLINE_LIMIT_KEY, KeyType.DECIMAL, "", minimum=0, maximum=80),
        _int(OFFLINE_AFTER_KEY, 300),
        # --- chargerfw: which security events are pushed to the backend ---
        _bool(NOTIFY_ALL_SECURITY_EVENTS_KEY, False),
        # --- Security whitepaper (1.6 edition 3) ---
        KeyDef("AuthorizationKey", KeyType.STRING, "", readable=False, min_length=16,
               max_length=40),
        _int("SecurityProfile", security_profile, hi=3),
        # The O of the station's certificate (its CSR); 64 is X.520's bound for O.
        KeyDef("CpoName", KeyType.STRING, "", max_length=64),
        _int("CertificateSignedMaxChainSize", CERTIFICATE_SIGNED_MAX_CHAIN_SIZE, hi=10000,
             readonly=True),
        _int("CertificateStoreMaxLength", CERTIFICATE_STORE_MAX_LENGTH, readonly=True),
        # [security] additional_root_certificate_check
        _bool("AdditionalRootCertificateCheck", additional_root_certificate_check, readonly=True),
    ]
    definitions = {k.name: k for k in keys}
    for name, value in (defaults or {}).items():
        definition = definitions[name]
        if definition.readonly:
            raise ConfigValueError(f"{name}: read-only, it has no configurable default")
        definitions[name] = replace(definition, default=normalise(definition, value))
    return definitions


def normalise(definition: KeyDef, value: str) -> str:
    """Check ``value`` for ``definition``; return its canonical wire form or raise
    :class:`ConfigValueError`."""
    if not isinstance(value, str):
        raise ConfigValueError(f"{definition.name}: value must be a string")
    if len(value) > definition.max_length:
        raise ConfigValueError(f"{definition.name}: longer than {definition.max_length} characters")
    # A value is taken as written or refused, never trimmed: " 7 " or Arabic-Indic digits
    # ("١٢٣", which int() would read as 123) are refused.
    if definition.type is KeyType.BOOL:
        lowered = value.lower()  # CiString: case does not matter
        if lowered not in ("true", "false"):
            raise ConfigValueError(f"{definition.name}: expected 'true' or 'false', got {value!r}")
        return lowered
    if definition.type is KeyType.INT:
        if not ASCII_INTEGER.fullmatch(value):
            raise ConfigValueError(f"{definition.name}: expected an integer, got {value!r}")
        number = int(value)
        if definition.minimum is not None and number < definition.minimum:
            raise ConfigValueError(f"{definition.name}: {number} is below {definition.minimum}")
        if definition.maximum is not None and number > definition.maximum:
            raise ConfigValueError(f"{definition.name}: {number} is above {definition.maximum}")
        return str(number)
    if definition.type is KeyType.DECIMAL:
        if value == "":
            return value
        if not ASCII_DECIMAL.fullmatch(value):
            raise ConfigValueError(f"{definition.name}: expected a number with at most one "
                                   f"decimal place (or empty: not set), got {value!r}")
        amount = float(value)
        if definition.minimum is not None and amount < definition.minimum:
            raise ConfigValueError(f"{definition.name}: {value} is below {definition.minimum}")
        if definition.maximum is not None and amount > definition.maximum:
            raise ConfigValueError(f"{definition.name}: {value} is above {definition.maximum}")
        return f"{amount:g}"
    if definition.type is KeyType.CSL:
        items = [item.strip() for item in value.split(",")] if value.strip() else []
        if any(not item for item in items):
            raise ConfigValueError(f"{definition.name}: empty item in list {value!r}")
        if len(set(items)) != len(items):
            raise ConfigValueError(f"{definition.name}: repeated item in list {value!r}")
        if definition.max_items is not None and len(items) > definition.max_items:
            raise ConfigValueError(
                f"{definition.name}: {len(items)} items, at most {definition.max_items}")
        for item in items:
            problem = definition.item_check(item) if definition.item_check else None
            if problem:
                raise ConfigValueError(f"{definition.name}: {problem}")
        problem = definition.list_check(items) if definition.list_check else None
        if problem:
            raise ConfigValueError(f"{definition.name}: {problem}")
        return ",".join(items)
    if len(value) < definition.min_length:
        raise ConfigValueError(f"{definition.name}: at least {definition.min_length} characters")
    if definition.choices and value not in definition.choices:
        raise ConfigValueError(f"{definition.name}: one of {', '.join(definition.choices)}")
    return value
