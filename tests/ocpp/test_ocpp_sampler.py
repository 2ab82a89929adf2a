"""Meter sampling: periodic and clock-aligned MeterValues, StopTxn data, the persisted energy
register; the sampler over fake settings, and through the client's transactions."""

from __future__ import annotations

import pytest
from ocpp_support import compact

from chargerfw.drivers.types import MeterSample
from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.ocpp.connection import OcppConnection
from chargerfw.ocpp.sampler import Measurands, MeterSampler
from chargerfw.ocpp.station_port import BootInfo
from chargerfw.ocpp.v16.client import OcppClient
from chargerfw.store import Store


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


# -- the sampler on its own ---------------------------------------------------------------------

class Settings:
    """MeteringSettings a test sets by hand."""

    def __init__(self, sample_interval_s: int = 0, aligned_interval_s: int = 0,
                 **measurands: list[str]) -> None:
        self.sample = sample_interval_s
        self.aligned = aligned_interval_s
        self.lists = {Measurands[name.upper()]: value for name, value in measurands.items()}

    def sample_interval_s(self) -> int:
        return self.sample

    def aligned_interval_s(self) -> int:
        return self.aligned

    def measurands(self, which: Measurands) -> list[str]:
        return self.lists.get(which, [])


def make_sampler(store, settings, sent=None, wakes=None):
    return MeterSampler(store, settings, connector_phases={1: 1},
                        wake_outbox=lambda: wakes.append(1) if wakes is not None else None,
                        send_untracked=lambda cid, value: sent.append((cid, value)),
                        persist_interval_s=0)


def test_periodic_values_go_to_the_outbox_only_during_a_transaction(store):
    wakes: list[int] = []
    sampler = make_sampler(store, Settings(sample_interval_s=60,
                                           sampled=["Energy.Active.Import.Register"]), [], wakes)
    sampler.update(1, MeterSample(timestamp=5.0, energy_import_wh=40), None)
    sampler.make_due(1)
    sampler.sample_due(now_wall=10.0)
    assert store.outbox_pending() == [] and wakes == []

    record = store.start_transaction(1, "TAG", 40, 1.0)
    sampler.transaction_started(record, None)
    sampler.sample_due(now_wall=11.0)  # the interval counts from the start: not due yet
    assert [m.action for m in store.outbox_pending()] == ["StartTransaction"]
    sampler.update(1, MeterSample(timestamp=6.0, energy_import_wh=55), None)
    sampler.make_due(1)
    sampler.sample_due(now_wall=12.0)
    periodic = store.outbox_pending()[-1]
    assert periodic.action == "MeterValues" and wakes == [1]
    assert periodic.payload["meterValue"] == [{"timestamp": "1970-01-01T00:00:06.000Z",
                                               "sampledValue": [
        {"value": "55", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unit": "Wh"}]}]
    assert store.transaction(record.local_id).last_meter_wh == 55


def test_clock_aligned_values_outside_a_transaction_are_sent_best_effort(store):
    sent: list[tuple[int, dict]] = []
    sampler = make_sampler(store, Settings(aligned_interval_s=900,
                                           aligned=["Energy.Active.Import.Register"]), sent)
    sampler.update(1, MeterSample(timestamp=1.0, energy_import_wh=7), None)
    sampler.sample_due(now_wall=900 * 4 + 10)  # remembers the slot
    assert sent == []
    sampler.sample_due(now_wall=900 * 5 + 1)
    assert sent == [(1, {"timestamp": "1970-01-01T01:15:00.000Z", "sampledValue": [
        {"value": "7", "context": "Sample.Clock", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unit": "Wh"}]})]
    assert store.outbox_pending() == []


def test_values_now_for_a_trigger(store):
    sampler = make_sampler(store, Settings(sampled=["Energy.Active.Import.Register", "Voltage"]))
    sampler.update(1, MeterSample(timestamp=0.5, energy_import_wh=9, voltage_l1_v=230.0), None)
    sampler.update(2, MeterSample(timestamp=0.5, energy_import_wh=3), None)
    assert [(cid, compact(v["sampledValue"])) for cid, v in sampler.values_now("Trigger")] == [
        (1, [("Energy.Active.Import.Register", None, "9", "Wh", "Outlet"),
             ("Voltage", "L1-N", "230", "V", "Outlet")]),
        (2, [("Energy.Active.Import.Register", None, "3", "Wh", "Outlet")])]  # no voltage
    assert [cid for cid, _ in sampler.values_now("Trigger", connector_id=2)] == [2]
