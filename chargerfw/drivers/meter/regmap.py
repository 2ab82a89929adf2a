"""Meter register maps: one TOML file per model in ``hw/meters`` (file stem = model name).

A map names the serial defaults and, per quantity, where it lives on the bus and how it is
encoded. The same file drives the driver (decoding) and the simulator (encoding), so adding a
model is adding a file. Validation is strict: a bad file raises :class:`MeterMapError` naming
the file and the key.

File format (see the shipped files for complete examples)::

    vendor = "Eastron"            # display names
    model = "SDM630-Modbus v2"
    description = "..."
    phases = 3                    # 1 or 3
    min_query_gap_ms = 100        # pause the meter needs between queries (optional)
    max_read_gap = 40             # unused registers a block read may span (optional)

    [serial]                      # factory defaults; the station config may override
    baudrate = 9600
    parity = "N"                  # N, E or O
    stopbits = 1
    unit_id = 1

    [defaults]                    # inherited by every quantity (optional)
    function_code = 4             # 3 holding, 4 input registers
    data_type = "float32"         # float32 int16 uint16 int32 uint32 int64 uint64
                                  # iskra_t5 iskra_t6
    word_order = "big"            # "little": low word first (Carlo Gavazzi)

    [quantities]                  # energy_import is required; see Quantity for the names
    voltage_l1 = { address = 0x0000, unit = "V" }
    energy_import = { address = 0x0048, unit = "kWh", scale = 1.0 }
    # value in `unit` = raw * scale (* 10**exponent register, if exponent_address is set);
    # nan_markers lists raw words (in word order, unsigned) that mean "not available".

Addresses are 0-based, as sent on the wire (a manual's 30001 is address 0).
"""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from chargerfw.hwdata import data_path
from chargerfw.tomlfile import TomlFileError, dotted_key, read_toml, validation_problems
from chargerfw.validation import FieldError, Invalid, convert

MAX_REGISTERS_PER_READ = 125  # Modbus limit for function codes 3 and 4


class MeterMapError(TomlFileError):
    """A register map that cannot be used; names the file and each bad key."""


class DataType(enum.StrEnum):
    FLOAT32 = "float32"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    # Iskra: bits 31..24 signed decade exponent, bits 23..0 unsigned (T5) / signed (T6) value.
    ISKRA_T5 = "iskra_t5"
    ISKRA_T6 = "iskra_t6"


REGISTER_WIDTH: dict[DataType, int] = {
    DataType.FLOAT32: 2,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.ISKRA_T5: 2,
    DataType.ISKRA_T6: 2,
}


class Quantity(enum.StrEnum):
    """What a meter can report; each maps onto one MeterSample field."""

    ENERGY_IMPORT = "energy_import"
    ENERGY_EXPORT = "energy_export"
    POWER = "power"
    POWER_L1 = "power_l1"
    POWER_L2 = "power_l2"
    POWER_L3 = "power_l3"
    VOLTAGE_L1 = "voltage_l1"
    VOLTAGE_L2 = "voltage_l2"
    VOLTAGE_L3 = "voltage_l3"
    CURRENT_L1 = "current_l1"
    CURRENT_L2 = "current_l2"
    CURRENT_L3 = "current_l3"
    FREQUENCY = "frequency"

    @property
    def sample_field(self) -> str:
        return self.value + _FIELD_SUFFIX[_DIMENSION[self]]

    @property
    def si_unit(self) -> str:
        return _SI_UNIT[_DIMENSION[self]]


_DIMENSION: dict[Quantity, str] = {
    Quantity.ENERGY_IMPORT: "energy",
    Quantity.ENERGY_EXPORT: "energy",
    Quantity.POWER: "power",
    Quantity.POWER_L1: "power",
    Quantity.POWER_L2: "power",
    Quantity.POWER_L3: "power",
    Quantity.VOLTAGE_L1: "voltage",
    Quantity.VOLTAGE_L2: "voltage",
    Quantity.VOLTAGE_L3: "voltage",
    Quantity.CURRENT_L1: "current",
    Quantity.CURRENT_L2: "current",
    Quantity.CURRENT_L3: "current",
    Quantity.FREQUENCY: "frequency",
}
_FIELD_SUFFIX = {"energy": "_wh", "power": "_w", "voltage": "_v", "current": "_a", "frequency": "_hz"}
_SI_UNIT = {"energy": "Wh", "power": "W", "voltage": "V", "current": "A", "frequency": "Hz"}
# Units a register may report in, and the factor to the sample's unit (kWh -> Wh is 1000).
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "energy": {"Wh": 1.0, "kWh": 1000.0},
    "power": {"W": 1.0, "kW": 1000.0},
    "voltage": {"V": 1.0},
    "current": {"A": 1.0, "mA": 0.001},
    "frequency": {"Hz": 1.0},
}

FunctionCode = Literal[3, 4]
Address = Annotated[int, Meta(ge=0, le=0xFFFF)]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class SerialDefaults(_Strict, frozen=True, kw_only=True):
    baudrate: Annotated[int, Meta(gt=0)]
    parity: Literal["N", "E", "O"]
    stopbits: Literal[1, 2]
    unit_id: Annotated[int, Meta(ge=1, le=247)]


class RegisterDefaults(_Strict, frozen=True, kw_only=True):
    """Values every quantity inherits unless it sets its own."""

    function_code: FunctionCode | None = None
    data_type: DataType | None = None
    word_order: Literal["big", "little"] | None = None
    nan_markers: tuple[int, ...] | None = None


class QuantitySpec(_Strict, frozen=True, kw_only=True):
    function_code: FunctionCode
    address: Address
    data_type: DataType
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0  # the raw value times scale is in `unit`
    unit: str
    # A separate int16 register holding a decade exponent: value = raw * 10**exponent.
    exponent_address: Address | None = None
    # Raw words (assembled in word order, read as unsigned) that mean "not available".
    nan_markers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.scale == 0:
            raise FieldError("scale", "must not be 0")

    @property
    def width(self) -> int:
        return REGISTER_WIDTH[self.data_type]

    def registers(self) -> list[tuple[int, int]]:
        """(function code, address) of every register this quantity needs."""
        regs: list[tuple[int, int]] = [
            (self.function_code, self.address + i) for i in range(self.width)
        ]
        if self.exponent_address is not None:
            regs.append((self.function_code, self.exponent_address))
        return regs


class MeterMap(_Strict, frozen=True, kw_only=True):
    name: str  # the file stem; filled in by the loader
    vendor: Annotated[str, Meta(min_length=1)]
    model: Annotated[str, Meta(min_length=1)]
    description: str = ""
    phases: Literal[1, 3]
    serial: SerialDefaults
    # The meter's minimum pause between queries.
    min_query_gap_ms: Annotated[int, Meta(ge=0, le=10_000)] = 0
    # Unused registers the planner may read across.
    max_read_gap: Annotated[int, Meta(ge=0, le=MAX_REGISTERS_PER_READ)] = 0
    quantities: dict[Quantity, QuantitySpec]

    def __post_init__(self) -> None:
        problems: list[str] = []
        if Quantity.ENERGY_IMPORT not in self.quantities:
            problems.append("quantities.energy_import: required key is missing")
        for quantity, spec in self.quantities.items():
            dimension = _DIMENSION[quantity]
            if spec.unit not in UNIT_FACTORS[dimension]:
                known = ", ".join(UNIT_FACTORS[dimension])
                problems.append(f"quantities.{quantity}.unit: {spec.unit!r} is not a unit of "
                                f"{dimension} (use one of {known})")
            top = spec.address + spec.width - 1
            if top > 0xFFFF:
                problems.append(f"quantities.{quantity}.address: register {top} beyond 65535")
            if spec.exponent_address is not None and spec.data_type in (
                DataType.ISKRA_T5, DataType.ISKRA_T6, DataType.FLOAT32
            ):
                problems.append(f"quantities.{quantity}.exponent_address: not allowed with "
                                f"{spec.data_type} (it carries its own exponent)")
            limit = 1 << (16 * spec.width)
            for marker in spec.nan_markers:
                if not 0 <= marker < limit:
                    problems.append(f"quantities.{quantity}.nan_markers: {marker:#x} does not fit "
                                    f"{spec.width} register(s)")
        if self.phases == 1:
            for quantity in self.quantities:
                if quantity.value.endswith(("_l2", "_l3")):
                    problems.append(f"quantities.{quantity}: a 1-phase meter has no {quantity}")
        owners: dict[tuple[int, int], str] = {}
        for quantity, spec in self.quantities.items():
            for reg in [(spec.function_code, spec.address + i) for i in range(spec.width)]:
                if reg in owners and owners[reg] != quantity:
                    problems.append(f"quantities.{quantity}.address: register {reg[1]} (fc {reg[0]})"
                                    f" overlaps quantities.{owners[reg]}")
                owners[reg] = quantity
        if problems:
            raise ValueError("; ".join(problems))

    def unit_factor(self, quantity: Quantity) -> float:
        return UNIT_FACTORS[_DIMENSION[quantity]][self.quantities[quantity].unit]


def _apply_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Copy the ``[defaults]`` table into each quantity that does not set the key itself."""
    data = dict(data)
    defaults = data.pop("defaults", {})
    if not isinstance(defaults, dict):
        return {**data, "defaults": defaults}
    try:
        convert(defaults, RegisterDefaults, strict=False)
    except Invalid:
        # Put it back so the model reports the bad key with its name.
        return {**data, "defaults": defaults}
    quantities = data.get("quantities")
    if isinstance(quantities, dict):
        merged = {}
        for name, spec in quantities.items():
            if isinstance(spec, dict):
                spec = {**{k: v for k, v in defaults.items() if v is not None}, **spec}
            merged[name] = spec
        data["quantities"] = merged
    return data


class _MapFile(MeterMap, frozen=True, kw_only=True):
    """Only used to report a bad ``[defaults]`` table under its own key (it always fails)."""

    defaults: RegisterDefaults | None = None


def parse_meter_map(data: dict[str, Any], name: str, source: str | None = None) -> MeterMap:
    """Validate an already-parsed map document; ``name`` is the model name (file stem)."""
    source = source or f"{name}.toml"
    if "name" in data:
        raise MeterMapError(source, ["name: unknown key (the file name is the model name)"])
    prepared = _apply_defaults(data)
    model = _MapFile if "defaults" in prepared else MeterMap
    try:
        parsed = convert({**prepared, "name": name}, model, strict=False)
    except Invalid as exc:
        # Keys joined with dots (quantities.power_total.address); map-wide problems bare.
        raise MeterMapError(source, validation_problems(exc, data, key=dotted_key)) from None
    return parsed


def load_meter_map_file(path: Path | str) -> MeterMap:
    """Read and validate one map file; the model name is the file stem."""
    path = Path(path)
    return parse_meter_map(read_toml(path, MeterMapError), path.stem, str(path))


@lru_cache(maxsize=64)
def load_meter_map(model: str) -> MeterMap:
    """The shipped map for ``model`` (a file stem in ``hw/meters``)."""
    path = data_path("meters", f"{model}.toml")
    if not path.is_file():
        from chargerfw.config import known_meter_models

        raise MeterMapError(f"{model}.toml", [
            f"unknown meter model {model!r}; known: {', '.join(known_meter_models())}"])
    return load_meter_map_file(path)


def all_meter_maps() -> list[MeterMap]:
    from chargerfw.config import known_meter_models

    return [load_meter_map(name) for name in known_meter_models()]
