"""SampledValue lists from MeterSample."""

from __future__ import annotations

import pytest
from ocpp_support import compact

from chargerfw.drivers.types import MeterSample
from chargerfw.ocpp.metering import meter_value, sampled_values

FULL = MeterSample(timestamp=1_700_000_000.25, energy_import_wh=12345.9, energy_export_wh=7.0,
                   power_w=None, power_l1_w=1000.0, power_l2_w=1000.5, power_l3_w=999.5,
                   voltage_l1_v=230.0, voltage_l2_v=231.25, voltage_l3_v=229.0,
                   current_l1_a=4.35, current_l2_a=4.0, current_l3_a=4.1, frequency_hz=49.98)


@pytest.mark.parametrize("measurands, phases, expected", [
    (["Energy.Active.Import.Register"], 3,
     [("Energy.Active.Import.Register", None, "12346", "Wh", "Outlet")]),  # nearest Wh
    (["Energy.Active.Export.Register", "Power.Active.Import"], 3,
     [("Energy.Active.Export.Register", None, "7", "Wh", "Outlet"),
      ("Power.Active.Import", None, "3000", "W", "Outlet")]),  # summed from the phases
    (["Current.Import"], 3,
     [("Current.Import", "L1", "4.35", "A", "Outlet"), ("Current.Import", "L2", "4", "A", "Outlet"),
      ("Current.Import", "L3", "4.1", "A", "Outlet")]),
    (["Voltage"], 1, [("Voltage", "L1-N", "230", "V", "Outlet")]),
    (["Frequency", "Temperature"], 3,
     [("Frequency", None, "49.98", None, "Outlet"), ("Temperature", None, "41.5", "Celsius", "Body")]),
])
def test_sampled_values_table(measurands, phases, expected):
    values = sampled_values(FULL, measurands, "Sample.Periodic", phases, temperature_c=41.5)
    assert compact(values) == expected
    assert {v["context"] for v in values} == {"Sample.Periodic"}


@pytest.mark.parametrize("offered, phases, expected", [
    # Power.Offered = offered A x mean measured phase voltage (230.083 V) x phases
    (16.0, 3, [("Current.Offered", None, "16", "A", "Outlet"),
               ("Power.Offered", None, "11044", "W", "Outlet")]),
    (10.5, 1, [("Current.Offered", None, "10.5", "A", "Outlet"),
               ("Power.Offered", None, "2415.875", "W", "Outlet")]),
    (0.0, 3, [("Current.Offered", None, "0", "A", "Outlet"),
              ("Power.Offered", None, "0", "W", "Outlet")]),  # no PWM: nothing offered
    (None, 3, []),  # not known: left out
])
def test_offered_current_and_power(offered, phases, expected):
    values = sampled_values(FULL, ["Current.Offered", "Power.Offered"], "Sample.Periodic", phases,
                            offered_current_a=offered)
    assert compact(values) == expected


def test_power_offered_is_left_out_without_a_measured_voltage():
    bare = MeterSample(timestamp=0.0, energy_import_wh=5.0)
    assert compact(sampled_values(bare, ["Current.Offered", "Power.Offered"], "Sample.Clock",
                                  offered_current_a=16.0)) == [
        ("Current.Offered", None, "16", "A", "Outlet")]


def test_missing_quantities_are_left_out_not_zeroed():
    bare = MeterSample(timestamp=0.0, energy_import_wh=5.0)
    assert compact(sampled_values(bare, ["Voltage", "Temperature", "Energy.Active.Export.Register"],
                                  "Sample.Clock")) == []
    assert meter_value(bare, ["Voltage"], "Sample.Clock") is None
    mv = meter_value(bare, ["Energy.Active.Import.Register"], "Sample.Clock", at=1_700_000_100.0)
    assert mv == {"timestamp": "2023-11-14T22:15:00.000Z", "sampledValue": [
        {"value": "5", "context": "Sample.Clock", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unit": "Wh"}]}
