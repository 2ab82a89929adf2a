"""Vendor encodings, word for word: what goes on the wire for a known value, and back."""

from __future__ import annotations

import math
import struct

import pytest

from chargerfw.drivers.meter.codec import DecodeError, EncodeError, decode, encode
from chargerfw.drivers.meter.regmap import Quantity, QuantitySpec, load_meter_map
from chargerfw.drivers.types import whole_wh


def spec_of(model: str, quantity: str) -> tuple[QuantitySpec, float]:
    meter_map = load_meter_map(model)
    q = Quantity(quantity)
    return meter_map.quantities[q], meter_map.unit_factor(q)


# (model, quantity, value in sample units, expected words, expected exponent word)
KNOWN_WORDS = [
    ("eastron-sdm630-v2", "voltage_l1", 230.0, [0x4366, 0x0000], None),
    ("eastron-sdm630-v2", "energy_import", 1500.0, [0x3FC0, 0x0000], None),  # 1.5 kWh
    ("eastron-sdm120", "power", -250.0, [0xC37A, 0x0000], None),
    ("carlo-gavazzi-em340", "voltage_l1", 230.0, [0x08FC, 0x0000], None),  # 2300, low word first
    ("carlo-gavazzi-em340", "power", -1000.0, [0xD8F0, 0xFFFF], None),  # -10000 low word first
    ("carlo-gavazzi-em340", "energy_import", 7_000_000.0, [0x1170, 0x0001], None),  # 70000
    ("carlo-gavazzi-em340", "frequency", 50.0, [0x01F4], None),
    ("abb-b23", "energy_import", 1_234_560.0, [0x0000, 0x0000, 0x0001, 0xE240], None),
    ("abb-b23", "power", -1234.5, [0xFFFE, 0x1DC6], None),
    ("abb-b23", "voltage_l1", 230.1, [0x0000, 0x08FD], None),
    ("abb-b23", "frequency", 49.98, [0x1386], None),
    ("iskra-wm3m4", "energy_import", 1_234_567.0, [0x0012, 0xD687], 0x0000),
    ("iskra-wm3m4", "energy_import", 3_000_000_000.0, [0x11E1, 0xA300], 0x0001),
]


@pytest.mark.parametrize(("model", "quantity", "value", "words", "exponent"), KNOWN_WORDS)
def test_encode_gives_vendor_words_and_decodes_back(model, quantity, value, words, exponent):
    spec, factor = spec_of(model, quantity)
    got_words, got_exponent = encode(spec, value, factor)
    assert got_words == words
    assert got_exponent == exponent
    assert decode(spec, got_words, got_exponent, factor) == pytest.approx(value, rel=1e-6)


def test_iskra_t5_t6_match_the_vendor_examples():
    t5, _ = spec_of("iskra-wm3m4", "voltage_l1")
    t6, _ = spec_of("iskra-wm3m4", "power")
    # Iskra's own examples: 123456 * 10^-3 as FD01 E240, -123456 * 10^-3 as FDFE 1DC0.
    assert decode(t5, [0xFD01, 0xE240]) == pytest.approx(123.456)
    assert decode(t6, [0xFDFE, 0x1DC0]) == pytest.approx(-123.456)
    # The same bits read as T5 are a large positive number: the sign lives only in T6.
    assert decode(t5, [0xFDFE, 0x1DC0]) == pytest.approx(0xFE1DC0 * 1e-3)
    # Positive exponent.
    assert decode(t6, [0x0200, 0x0007]) == pytest.approx(700.0)
    # The encoder keeps as many digits as fit in 24 bits.
    assert encode(t5, 230.0)[0] == [0xFC23, 0x1860]  # 2300000 * 10^-4
    assert encode(t6, -7400.0)[0] == [0xFD8F, 0x15C0]  # -7400000 * 10^-3


def test_iskra_energy_counter_uses_its_exponent_register():
    spec, factor = spec_of("iskra-wm3m4", "energy_import")
    assert decode(spec, [0x0001, 0xE240], 0x0001, factor) == pytest.approx(1_234_560.0)
    assert decode(spec, [0x0001, 0xE240], 0xFFFF, factor) == pytest.approx(12_345.6)
    with pytest.raises(DecodeError, match="exponent register missing"):
        decode(spec, [0x0001, 0xE240], None, factor)
    with pytest.raises(DecodeError, match="implausible exponent 100"):
        decode(spec, [0x0001, 0xE240], 100, factor)


@pytest.mark.parametrize(("model", "quantity", "words", "message"), [
    ("abb-b23", "voltage_l1", [0xFFFF, 0xFFFF], "not-available marker 0xffffffff"),
    ("abb-b23", "power", [0x7FFF, 0xFFFF], "not-available marker 0x7fffffff"),
    ("abb-b23", "energy_import", [0xFFFF] * 4, "not-available marker"),
    ("abb-b23", "frequency", [0xFFFF], "not-available marker 0xffff"),
    ("eastron-sdm630-v2", "voltage_l1", [0x7FC0, 0x0000], "not a finite number"),  # NaN
    ("eastron-sdm630-v2", "power", [0x7F80, 0x0000], "not a finite number"),  # +inf
    ("eastron-sdm630-v2", "power", [0x7F80], "need 2 register(s), got 1"),
])
def test_unavailable_or_broken_values_do_not_decode(model, quantity, words, message):
    spec, factor = spec_of(model, quantity)
    with pytest.raises(DecodeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(spec, words, None, factor)


def test_abb_all_ones_power_is_a_real_value_not_nan():
    # For a signed register the marker is 0x7FFFFFFF; all ones is -0.01 W.
    spec, factor = spec_of("abb-b23", "power")
    assert decode(spec, [0xFFFF, 0xFFFF], None, factor) == pytest.approx(-0.01)


@pytest.mark.parametrize(("model", "quantity", "value"), [
    ("abb-b23", "energy_import", -50.0),  # unsigned counter
    ("carlo-gavazzi-em340", "frequency", 4000.0),  # int16 at 0.1 Hz
    ("iskra-wm3m4", "voltage_l1", -1.0),  # T5 is unsigned
    ("eastron-sdm630-v2", "power", math.nan),
])
def test_values_the_encoding_cannot_hold_are_refused(model, quantity, value):
    spec, factor = spec_of(model, quantity)
    with pytest.raises(EncodeError):
        encode(spec, value, factor)


@pytest.mark.parametrize(("kwh", "wh"), [(0.168, 168.0), (0.001, 1.0), (12345.67, 12345670.0),
                                         (99999.99, 99999990.0), (1.5, 1500.0)])
def test_a_float32_energy_register_reads_as_the_meter_meant_it(kwh, wh):
    # 0.168 kWh in float32 is 0.16799999773502350: read back as 168 Wh, not 167.99999.
    spec, factor = spec_of("eastron-sdm630-v2", "energy_import")
    raw = int.from_bytes(struct.pack(">f", kwh), "big")
    assert decode(spec, [raw >> 16, raw & 0xFFFF], None, factor) == wh


def test_a_scaled_integer_register_has_no_binary_residue():
    # 0.1 kWh steps (Carlo Gavazzi): 7 steps are 700 Wh, where binary floats make 700.0000000001.
    spec, factor = spec_of("carlo-gavazzi-em340", "energy_import")
    assert 7 * spec.scale * factor != 700.0
    assert decode(spec, [7, 0], None, factor) == 700.0


@pytest.mark.parametrize(("reading", "whole"), [(167.99999, 168), (167.5, 168), (167.49, 167),
                                                (0.0, 0), (0.5, 1), (2.5, 3)])
def test_one_rounding_rule_to_whole_wh(reading, whole):
    assert whole_wh(reading) == whole
