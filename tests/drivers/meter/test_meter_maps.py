"""Register map files: the shipped ones load, bad ones are refused naming file and key."""

from __future__ import annotations

import pytest

from chargerfw.config import known_meter_models
from chargerfw.drivers.meter.regmap import (
    DataType,
    MeterMapError,
    Quantity,
    all_meter_maps,
    load_meter_map,
    load_meter_map_file,
    parse_meter_map,
)

REQUIRED_MODELS = {
    "eastron-sdm630-v2", "eastron-sdm120", "eastron-sdm72d-m-v2", "abb-b23",
    "carlo-gavazzi-em340", "iskra-wm3m4",
}


def minimal_map(**overrides):
    data = {
        "vendor": "Acme",
        "model": "M1",
        "phases": 3,
        "serial": {"baudrate": 9600, "parity": "N", "stopbits": 1, "unit_id": 1},
        "defaults": {"function_code": 4, "data_type": "float32"},
        "quantities": {
            "energy_import": {"address": 0x48, "unit": "kWh"},
            "voltage_l1": {"address": 0, "unit": "V"},
        },
    }
    data.update(overrides)
    return data


def test_every_required_model_ships_and_validates():
    assert REQUIRED_MODELS <= set(known_meter_models())
    maps = {m.name: m for m in all_meter_maps()}
    assert REQUIRED_MODELS <= maps.keys()
    for meter_map in maps.values():
        assert Quantity.ENERGY_IMPORT in meter_map.quantities


def test_vendor_encodings_are_as_documented():
    em340 = load_meter_map("carlo-gavazzi-em340")
    assert em340.quantities[Quantity.ENERGY_IMPORT].word_order == "little"
    assert em340.quantities[Quantity.FREQUENCY].data_type is DataType.INT16
    abb = load_meter_map("abb-b23")
    assert abb.serial.parity == "E"
    assert {s.function_code for s in abb.quantities.values()} == {3}
    assert abb.quantities[Quantity.ENERGY_IMPORT].data_type is DataType.UINT64
    assert abb.quantities[Quantity.ENERGY_IMPORT].nan_markers == (0xFFFFFFFFFFFFFFFF,)
    iskra = load_meter_map("iskra-wm3m4")
    assert iskra.serial.unit_id == 33
    assert iskra.quantities[Quantity.VOLTAGE_L1].data_type is DataType.ISKRA_T5
    assert iskra.quantities[Quantity.POWER].data_type is DataType.ISKRA_T6
    assert iskra.quantities[Quantity.ENERGY_IMPORT].exponent_address == 414
    sdm120 = load_meter_map("eastron-sdm120")
    assert sdm120.phases == 1 and Quantity.VOLTAGE_L2 not in sdm120.quantities
    assert load_meter_map("eastron-sdm630-v2").min_query_gap_ms == 100


def test_defaults_fill_in_and_quantity_overrides_win():
    data = minimal_map()
    data["quantities"]["frequency"] = {"address": 0x46, "unit": "Hz", "data_type": "int16"}
    parsed = parse_meter_map(data, "acme-m1")
    assert parsed.name == "acme-m1"
    assert parsed.quantities[Quantity.VOLTAGE_L1].data_type is DataType.FLOAT32
    assert parsed.quantities[Quantity.FREQUENCY].data_type is DataType.INT16
    assert parsed.unit_factor(Quantity.ENERGY_IMPORT) == 1000.0


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["quantities"]["voltage_l1"].update(adress=1), "quantities.voltage_l1.adress: unknown key"),
    (lambda d: d["quantities"]["voltage_l1"].update(unit="kWh"), "quantities.voltage_l1.unit: 'kWh' is not a unit of voltage"),
    (lambda d: d["quantities"].update(voltage_l4={"address": 9, "unit": "V"}), "quantities.voltage_l4"),
    (lambda d: d["quantities"]["voltage_l1"].update(address=0x47), "overlaps quantities.energy_import"),
    (lambda d: d["quantities"]["voltage_l1"].update(data_type="float16"), "quantities.voltage_l1.data_type"),
    (lambda d: d["quantities"]["voltage_l1"].update(function_code=6), "quantities.voltage_l1.function_code"),
    (lambda d: d["quantities"]["voltage_l1"].update(scale=0), "quantities.voltage_l1.scale: must not be 0"),
    (lambda d: d["quantities"]["voltage_l1"].update(address=70000), "quantities.voltage_l1.address"),
    (lambda d: d["quantities"].pop("energy_import"), "quantities.energy_import: required key is missing"),
    (lambda d: d["serial"].pop("parity"), "serial.parity: required key is missing"),
    (lambda d: d["serial"].update(parity="X"), "serial.parity"),
    (lambda d: d.update(phases=2), "phases"),
    (lambda d: d.update(max_read_gap=500), "max_read_gap"),
    (lambda d: d["defaults"].update(word_order="middle"), "defaults.word_order"),
    (lambda d: d["quantities"]["voltage_l1"].update(nan_markers=[0x1FFFFFFFF]), "nan_markers: 0x1ffffffff does not fit"),
    (lambda d: d["quantities"]["voltage_l1"].update(exponent_address=3), "exponent_address: not allowed with float32"),
    (lambda d: d.update(name="x"), "name: unknown key"),
])
def test_bad_map_names_file_and_key(change, expected):
    data = minimal_map()
    change(data)
    with pytest.raises(MeterMapError) as info:
        parse_meter_map(data, "acme-m1")
    assert str(info.value).startswith("acme-m1.toml: ")
    assert expected in str(info.value)


def test_one_phase_meter_rejects_l2(tmp_path):
    data = minimal_map(phases=1)
    data["quantities"]["current_l2"] = {"address": 8, "unit": "A"}
    with pytest.raises(MeterMapError, match="a 1-phase meter has no current_l2"):
        parse_meter_map(data, "acme-m1")


def test_map_file_errors_name_the_path(tmp_path):
    bad_toml = tmp_path / "broken.toml"
    bad_toml.write_text("vendor = \n")
    with pytest.raises(MeterMapError, match=r"broken.toml: not valid TOML"):
        load_meter_map_file(bad_toml)
    wrong = tmp_path / "acme-x.toml"
    wrong.write_text('vendor = "A"\nmodel = "X"\nphases = 3\n'
                     '[serial]\nbaudrate = 9600\nparity = "N"\nstopbits = 1\nunit_id = 1\n'
                     '[quantities.energy_import]\nfunction_code = 4\naddress = 0\n'
                     'data_type = "float32"\nunit = "kW"\n')
    with pytest.raises(MeterMapError) as info:
        load_meter_map_file(wrong)
    assert str(wrong) in str(info.value)
    assert "quantities.energy_import.unit: 'kW' is not a unit of energy" in str(info.value)
    with pytest.raises(MeterMapError, match="cannot read file"):
        load_meter_map_file(tmp_path / "missing.toml")


def test_unknown_model_lists_known_ones():
    with pytest.raises(MeterMapError, match="unknown meter model 'nope'.*eastron-sdm630-v2"):
        load_meter_map("nope")
