"""Register words <-> values, in each vendor's encoding (the driver decodes, the simulator
encodes, from the same :class:`QuantitySpec`)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import Decimal

from chargerfw.drivers.meter.regmap import DataType, QuantitySpec

# struct format of the plain types (big-endian byte order inside each word, as Modbus sends).
_STRUCT = {
    DataType.FLOAT32: "f",
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
}
_EXPONENT_RANGE = range(-9, 10)  # decade exponents the simulator may pick


class DecodeError(ValueError):
    """Registers that do not hold a usable value (NaN marker, infinity, bad exponent)."""


class EncodeError(ValueError):
    """A value that the quantity's encoding cannot represent."""


def _words_to_int(words: Sequence[int], word_order: str) -> int:
    ordered = list(words) if word_order == "big" else list(reversed(words))
    raw = 0
    for word in ordered:
        raw = (raw << 16) | (word & 0xFFFF)
    return raw


def _int_to_words(raw: int, width: int, word_order: str) -> list[int]:
    words = [(raw >> (16 * (width - 1 - i))) & 0xFFFF for i in range(width)]
    return words if word_order == "big" else list(reversed(words))


def _decade(exponent: int) -> float:
    # 10**-2 as a float is exact enough; avoid 0.1 ** n accumulation.
    return 10.0 ** exponent


def _float32_as_meant(raw: int) -> Decimal:
    """The decimal a meter stored in a float32 register: the shortest one that encodes to the
    same bits (0.168 kWh is stored as 0.16799999773502350 and read back as 0.168)."""
    value = struct.unpack(">f", raw.to_bytes(4, "big"))[0]
    if not math.isfinite(value):
        raise DecodeError(f"not a finite number ({value})")
    packed = raw.to_bytes(4, "big")
    for digits in range(6, 10):  # float32 holds 6 to 9 significant decimal digits
        text = f"{value:.{digits}g}"
        if struct.pack(">f", float(text)) == packed:
            return Decimal(text)
    return Decimal(repr(value))


def decode(spec: QuantitySpec, words: Sequence[int], exponent_word: int | None = None,
           unit_factor: float = 1.0) -> float:
    """Decode one quantity from its registers into the sample's unit (Wh, W, V, A, Hz).

    The register's value, its scale, exponent and unit are combined in decimal, so the reading
    is the register's value at its own resolution with no binary-float residue (0.168 kWh is
    168 Wh, not 167.99999)."""
    if len(words) != spec.width:
        raise DecodeError(f"need {spec.width} register(s), got {len(words)}")
    raw = _words_to_int(words, spec.word_order)
    if raw in spec.nan_markers:
        raise DecodeError(f"not-available marker {raw:#0{spec.width * 4 + 2}x}")
    if spec.data_type in (DataType.ISKRA_T5, DataType.ISKRA_T6):
        exponent = struct.unpack(">b", bytes([raw >> 24]))[0]
        mantissa = raw & 0xFFFFFF
        if spec.data_type is DataType.ISKRA_T6 and mantissa & 0x800000:
            mantissa -= 1 << 24
        value = Decimal(mantissa).scaleb(exponent)
    elif spec.data_type is DataType.FLOAT32:
        value = _float32_as_meant(raw)
    else:
        fmt = _STRUCT[spec.data_type]
        value = Decimal(struct.unpack(f">{fmt}", raw.to_bytes(2 * spec.width, "big"))[0])
    if spec.exponent_address is not None:
        if exponent_word is None:
            raise DecodeError("exponent register missing")
        exponent = struct.unpack(">h", exponent_word.to_bytes(2, "big"))[0]
        if exponent not in _EXPONENT_RANGE:
            raise DecodeError(f"implausible exponent {exponent}")
        value = value.scaleb(exponent)
    result = float(value * Decimal(repr(spec.scale)) * Decimal(repr(unit_factor)))
    if not math.isfinite(result):
        raise DecodeError(f"not a finite number ({result})")
    return result


def _fits(data_type: DataType, raw: int) -> bool:
    fmt = _STRUCT[data_type]
    try:
        struct.pack(f">{fmt}", raw)
    except struct.error:
        return False
    return True


def encode(spec: QuantitySpec, value: float, unit_factor: float = 1.0) -> tuple[list[int], int | None]:
    """Encode a value in the sample's unit into (register words, exponent word or None)."""
    if not math.isfinite(value):
        raise EncodeError(f"cannot encode {value}")
    in_unit = value / unit_factor / spec.scale
    if spec.data_type in (DataType.ISKRA_T5, DataType.ISKRA_T6):
        signed = spec.data_type is DataType.ISKRA_T6
        low, high = (-(1 << 23), (1 << 23) - 1) if signed else (0, (1 << 24) - 1)
        if in_unit < 0 and not signed:
            raise EncodeError(f"{value} is negative; {spec.data_type} is unsigned")
        # Smallest exponent that fits: the most digits, as the meter itself would show.
        for exponent in _EXPONENT_RANGE:
            mantissa = round(in_unit / _decade(exponent))
            if low <= mantissa <= high:
                raw = ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)
                return _int_to_words(raw, spec.width, spec.word_order), None
        raise EncodeError(f"{value} does not fit {spec.data_type}")
    if spec.data_type is DataType.FLOAT32:
        raw = int.from_bytes(struct.pack(">f", in_unit), "big")
        return _int_to_words(raw, spec.width, spec.word_order), None
    exponent_word: int | None = None
    if spec.exponent_address is not None:
        # Whole units (exponent 0) while the counter fits, coarser steps after that.
        for exponent in range(0, _EXPONENT_RANGE.stop):
            mantissa = round(in_unit / _decade(exponent))
            if _fits(spec.data_type, mantissa):
                break
        else:
            raise EncodeError(f"{value} does not fit {spec.data_type} with an exponent")
        exponent_word = exponent & 0xFFFF
    else:
        mantissa = round(in_unit)
        if not _fits(spec.data_type, mantissa):
            raise EncodeError(f"{value} does not fit {spec.data_type} at scale {spec.scale}")
    raw = mantissa & ((1 << (16 * spec.width)) - 1)
    return _int_to_words(raw, spec.width, spec.word_order), exponent_word
