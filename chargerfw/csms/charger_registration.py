"""A charger's registration from plain fields — the options of ``csms charger add`` or one row
of a CSV or TOML file for ``csms charger import`` — checked once, the same way for both.

Fields: ``charge_point_id``, ``password`` or ``generate_password`` (the backend makes a random
AuthorizationKey, shown once) or ``no_password``, ``location_id`` and, for a new
location, ``address``, ``city``, ``country``, ``coordinates`` (``LAT,LON``), ``time_zone``
(``name``, ``postal_code``, ``unpublished`` optional); ``evses`` (``UID[=EVSE_ID]``, one per OCPP
connector in connector order; in CSV separated by ``;``); the connectors' ``standard``,
``format``, ``power_type``, ``max_voltage``, ``max_amperage``, ``max_power``; ``tariff``;
``rfid_reader``.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chargerfw.csms.store import (
    ConnectorSpec,
    EvseSpec,
    GeneratedPassword,
    LocationSpec,
    generate_password,
)

FIELDS = ("charge_point_id", "password", "generate_password", "no_password", "location_id", "name", "address",
          "city", "postal_code", "country", "coordinates", "time_zone", "unpublished",
          "evses", "standard", "format", "power_type", "max_voltage", "max_amperage",
          "max_power", "tariff", "rfid_reader")
DEFAULTS: dict[str, Any] = {"standard": "IEC_62196_T2", "format": "SOCKET",
                            "power_type": "AC_3_PHASE", "max_voltage": 400,
                            "max_amperage": 32, "rfid_reader": True}
NEW_LOCATION_FIELDS = ("address", "city", "country", "coordinates", "time_zone")
MAX_CHARGERS_PER_FILE = 10_000


class RegistrationError(ValueError):
    """A registration that cannot be made; the message names the field (and the row)."""


@dataclass(frozen=True)
class ChargerRegistration:
    charge_point_id: str
    password: str | None
    location: LocationSpec
    evses: Sequence[EvseSpec]
    tariff_id: str | None
    rfid_reader: bool

    @property
    def generated_password(self) -> GeneratedPassword | None:
        """The password the backend generated for it (to show once), or None."""
        return self.password if isinstance(self.password, GeneratedPassword) else None


# An existing location's row (``Store.get_location``), or None for a new one.
LocationLookup = Callable[[str], Mapping[str, Any] | None]


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise RegistrationError(f"{{{name}}}: expected text, got {type(value).__name__}")
    return str(value).strip() or None


def _flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name, DEFAULTS.get(name, False))
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0", ""):
        return False
    raise RegistrationError(f"{{{name}}}: expected true or false, got {value!r}")


def _number(fields: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = fields.get(name, DEFAULTS.get(name))
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise RegistrationError(f"{{{name}}}: expected a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise RegistrationError(f"{{{name}}}: {number} is outside {low}..{high}")
    return number


def _evse_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise RegistrationError("{evses}: expected UID[=EVSE_ID] entries")


def option_label(field_name: str) -> str:
    """A field as ``charger add`` names it (``--no-password``, ``--evse``)."""
    return "--" + {"evses": "evse"}.get(field_name, field_name).replace("_", "-")


def registration(fields: Mapping[str, Any], existing_location: LocationLookup,
                 *, password_required: bool = True,
                 label: Callable[[str], str] = str) -> ChargerRegistration:
    """One charger's registration from its fields; :class:`RegistrationError` says what is
    wrong, naming fields by ``label`` (:func:`option_label` for the command line)."""
    try:
        return _registration(fields, existing_location, password_required)
    except RegistrationError as exc:
        message = re.sub(r"\{(\w+)\}", lambda m: label(m.group(1)) if m.group(1) in FIELDS
                         else m.group(0), str(exc))
        raise RegistrationError(message) from None


def _registration(fields: Mapping[str, Any], existing_location: LocationLookup,
                  password_required: bool) -> ChargerRegistration:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise RegistrationError(f"unknown field(s): {', '.join(unknown)}")
    charge_point_id = _text(fields, "charge_point_id")
    if charge_point_id is None:
        raise RegistrationError("{charge_point_id}: required")
    password = _text(fields, "password")
    generate = _flag(fields, "generate_password")
    no_password = _flag(fields, "no_password")
    given = [name for name, chosen in (("password", password is not None),
                                       ("generate_password", generate),
                                       ("no_password", no_password)) if chosen]
    if len(given) > 1:
        raise RegistrationError(" and ".join(f"{{{name}}}" for name in given)
                                + " exclude each other")
    if password_required and not given:
        raise RegistrationError("give {generate_password} (recommended), {password} or "
                                "{no_password}")
    location_id = _text(fields, "location_id")
    if location_id is None:
        raise RegistrationError("{location_id}: required")
    existing = existing_location(location_id)
    if existing is None:
        missing = [name for name in NEW_LOCATION_FIELDS if _text(fields, name) is None]
        if missing:
            raise RegistrationError(f"new location {location_id!r} needs "
                                    + ", ".join(f"{{{name}}}" for name in missing))
        lat, _, lon = (_text(fields, "coordinates") or "").partition(",")
        location = LocationSpec(
            id=location_id, address=_text(fields, "address") or "",
            city=_text(fields, "city") or "", country=(_text(fields, "country") or "").upper(),
            latitude=lat.strip(), longitude=lon.strip(),
            time_zone=_text(fields, "time_zone") or "", name=_text(fields, "name"),
            postal_code=_text(fields, "postal_code"), publish=not _flag(fields, "unpublished"))
    else:
        location = LocationSpec(
            id=location_id, address=existing["address"], city=existing["city"],
            country=existing["country"], latitude=existing["coordinates"]["latitude"],
            longitude=existing["coordinates"]["longitude"], time_zone=existing["time_zone"])
    connector = ConnectorSpec(
        "1", _text(fields, "standard") or DEFAULTS["standard"],
        _text(fields, "format") or DEFAULTS["format"],
        _text(fields, "power_type") or DEFAULTS["power_type"],
        _number(fields, "max_voltage", 1, 2000) or DEFAULTS["max_voltage"],
        _number(fields, "max_amperage", 1, 1000) or DEFAULTS["max_amperage"],
        _number(fields, "max_power", 1, 10_000_000))
    evses = []
    for n, entry in enumerate(_evse_list(fields.get("evses")) or [f"{charge_point_id}-1"],
                              start=1):
        uid, _, evse_id = entry.partition("=")
        if not uid:
            raise RegistrationError(f"{{evses}}: entry {entry!r} has no UID")
        evses.append(EvseSpec(uid=uid, ocpp_connector_id=n, connectors=[connector],
                              evse_id=evse_id or None))
    tariff_id, rfid_reader = _text(fields, "tariff"), _flag(fields, "rfid_reader")
    # Generated last: a registration refused above made no secret.
    return ChargerRegistration(charge_point_id, generate_password() if generate else password,
                               location, evses, tariff_id, rfid_reader)


def read_registrations(name: str, content: bytes, existing_location: LocationLookup,
                       ) -> list[ChargerRegistration]:
    """Every charger of a CSV file (a header row of field names) or a TOML file
    (``[[charger]]`` tables), all checked before any is registered: one bad row refuses the
    file, and the error names every bad row."""
    rows = _rows(name, content)
    if len(rows) > MAX_CHARGERS_PER_FILE:
        raise RegistrationError(f"{len(rows)} chargers; at most {MAX_CHARGERS_PER_FILE} a file")
    problems: list[str] = []
    out: list[ChargerRegistration] = []
    seen: dict[str, str] = {}
    # A location a row creates is an existing one for the rows after it.
    created: dict[str, Mapping[str, Any]] = {}

    def location_of(location_id: str) -> Mapping[str, Any] | None:
        return created.get(location_id) or existing_location(location_id)

    for where, fields in rows:
        try:
            item = registration(fields, location_of)
        except RegistrationError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if item.charge_point_id in seen:
            problems.append(f"{where}: charge point {item.charge_point_id!r} is also in "
                            f"{seen[item.charge_point_id]}")
            continue
        seen[item.charge_point_id] = where
        spec = item.location
        created.setdefault(spec.id, {
            "address": spec.address, "city": spec.city, "country": spec.country,
            "coordinates": {"latitude": spec.latitude, "longitude": spec.longitude},
            "time_zone": spec.time_zone})
        out.append(item)
    if problems:
        raise RegistrationError("; ".join(problems))
    if not out:
        raise RegistrationError("no chargers in the file")
    return out


def _rows(name: str, content: bytes) -> list[tuple[str, dict[str, Any]]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RegistrationError(f"not UTF-8 text: {exc}") from None
    if name.lower().endswith(".toml"):
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RegistrationError(f"not TOML: {exc}") from None
        tables = document.get("charger")
        extra = sorted(set(document) - {"charger"})
        if extra:
            raise RegistrationError(f"unknown top-level key(s): {', '.join(extra)}; chargers "
                                    "are [[charger]] tables")
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise RegistrationError("chargers are [[charger]] tables")
        return [(f"charger {n}", table) for n, table in enumerate(tables, start=1)]
    if name.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            raise RegistrationError("an empty CSV file")
        rows = []
        for row in reader:
            if None in row:
                raise RegistrationError(f"line {reader.line_num}: more values than columns")
            rows.append((f"line {reader.line_num}",
                         {k.strip(): v for k, v in row.items() if v is not None and v != ""}))
        return rows
    raise RegistrationError(f"{name}: a .csv or .toml file is expected")
