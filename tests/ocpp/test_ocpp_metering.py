"""SampledValue lists from MeterSample, clock-aligned and StopTxn data scheduling."""

from __future__ import annotations

import pytest

from chargerfw.drivers.types import MeterSample
from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.ocpp.connection import OcppConnection
from chargerfw.ocpp.metering import meter_value, sampled_values
from chargerfw.ocpp.station_port import BootInfo
from chargerfw.ocpp.v16.client import OcppClient
from chargerfw.store import Store

FULL = MeterSample(timestamp=1_700_000_000.25, energy_import_wh=12345.9, energy_export_wh=7.0,
                   power_w=None, power_l1_w=1000.0, power_l2_w=1000.5, power_l3_w=999.5,
                   voltage_l1_v=230.0, voltage_l2_v=231.25, voltage_l3_v=229.0,
                   current_l1_a=4.35, current_l2_a=4.0, current_l3_a=4.1, frequency_hz=49.98)


def compact(values):
    return [(v["measurand"], v.get("phase"), v["value"], v.get("unit"), v["location"]) for v in values]


@pytest.mark.parametrize("measurands, phases, expected", [
    (["Energy.Active.Import.Register"], 3,
     [("Energy.Active.Import.Register", None, "12345", "Wh", "Outlet")]),
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


def test_missing_quantities_are_left_out_not_zeroed():
    bare = MeterSample(timestamp=0.0, energy_import_wh=5.0)
    assert compact(sampled_values(bare, ["Voltage", "Temperature", "Energy.Active.Export.Register"],
                                  "Sample.Clock")) == []
    assert meter_value(bare, ["Voltage"], "Sample.Clock") is None
    mv = meter_value(bare, ["Energy.Active.Import.Register"], "Sample.Clock", at=1_700_000_100.0)
    assert mv == {"timestamp": "2023-11-14T22:15:00.000Z", "sampledValue": [
        {"value": "5", "context": "Sample.Clock", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unit": "Wh"}]}


@pytest.fixture
def client(tmp_path):
    store = Store(tmp_path / "s.db")
    keys = ConfigurationKeys(store, number_of_connectors=1)
    conn = OcppConnection("ws://127.0.0.1:9", "CP1")
    yield OcppClient(store=store, keys=keys, connection=conn, boot=BootInfo("v", "m"),
                     connector_phases={1: 1}, meter_persist_interval_s=0)
    store.close()


def test_clock_aligned_values_go_to_the_outbox_during_a_transaction(client):
    client.keys.change("ClockAlignedDataInterval", "900")
    client.keys.change("MeterValuesAlignedData", "Energy.Active.Import.Register,Voltage")
    client.keys.change("StopTxnAlignedData", "Energy.Active.Import.Register")
    tx = client.start_transaction(1, "TAG", 100)
    client.update_meter(1, MeterSample(timestamp=1000.0, energy_import_wh=150, voltage_l1_v=231))
    client.sampler.sample_due(now_wall=900 * 10 + 899)  # first tick: remembers the slot
    client.sampler.sample_due(now_wall=900 * 10 + 899.5)  # same slot: nothing
    assert [m.action for m in client.store.outbox_pending()] == ["StartTransaction"]
    client.sampler.sample_due(now_wall=900 * 11 + 0.2)  # crossed a quarter hour
    aligned = client.store.outbox_pending()[-1]
    assert aligned.action == "MeterValues"
    (mv,) = aligned.payload["meterValue"]
    assert mv["timestamp"] == "1970-01-01T02:45:00.000Z"  # the aligned instant, 900 * 11 s
    assert compact(mv["sampledValue"]) == [
        ("Energy.Active.Import.Register", None, "150", "Wh", "Outlet"),
        ("Voltage", "L1-N", "231", "V", "Outlet")]
    assert client.store.transaction(tx.local_id).last_meter_wh == 150
    client.stop_transaction(1, 160, "Local")
    stop = client.store.outbox_pending()[-1]
    assert [v["context"] for d in stop.payload["transactionData"] for v in d["sampledValue"]] == [
        "Sample.Clock"]


def test_stop_txn_sampled_data_records_begin_and_end(client):
    client.keys.change("StopTxnSampledData", "Energy.Active.Import.Register")
    begin = MeterSample(timestamp=10.0, energy_import_wh=100)
    client.start_transaction(1, "TAG", 100, sample=begin)
    client.stop_transaction(1, 180, "EVDisconnected",
                            sample=MeterSample(timestamp=20.0, energy_import_wh=180))
    stop = client.store.outbox_pending()[-1]
    data = stop.payload["transactionData"]
    assert [(d["sampledValue"][0]["context"], d["sampledValue"][0]["value"]) for d in data] == [
        ("Transaction.Begin", "100"), ("Transaction.End", "180")]


def test_no_transaction_no_persisting(client):
    client.update_meter(1, MeterSample(timestamp=1.0, energy_import_wh=5))
    client.sampler.sample_due(now_wall=10.0)
    assert client.store.outbox_pending() == [] and client.store.transactions() == []
