"""`chargerfw status`: from the running service (a fake one on the control socket), and with
the service stopped (what the store holds, who holds the hardware lock)."""

from __future__ import annotations

import time

import msgspec
import pytest
from diag_support import (
    FakeService,
    active_fault,
    as_json,
    invoke,
    status_result,
)

from chargerfw.control.api import (
    ConnectorMeter,
    FirmwareUpdateStatus,
    Method,
    StatusRequest,
    TransactionStatus,
    encode_reply,
)
from chargerfw.station.faults import FAULT_SPECS, FaultKind

pytestmark = pytest.mark.timeout(30)

METER = ConnectorMeter(age_s=0.4, energy_import_wh=12345.0, power_w=7200.0,
                       voltage_v=[230.1, 229.8, 230.4], current_a=[10.4, 10.5, 10.4],
                       frequency_hz=50.01)
TRANSACTION = TransactionStatus(local_id=3, transaction_id=1001, id_tag="04A1B2C3",
                                started_at=1_700_000_000.0, meter_start_wh=10000,
                                energy_wh=2345.0)


def test_status_from_the_service(station, runtime_dir):
    status = status_result(pilot="C", transaction=TRANSACTION, meter=METER,
                           faults=[active_fault(FaultKind.METER_FAILURE, 1)])
    with FakeService(runtime_dir / "control.sock", {Method.STATUS: lambda request: status}):
        human = invoke("status", "-c", station)
        report = invoke("status", "-c", station, "--json")
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert lines[0].startswith("station    SIM-CP-1  firmware 0.1.0")
    assert any(line.startswith("backend    connected") and "boot Accepted" in line
               and "ping 2 ms" in line for line in lines)
    assert "outbox     2 waiting, 0 dead" in lines
    assert any(line.startswith("connector 1  Charging  pilot C") and "contactor closed" in line
               for line in lines)
    assert any("transaction 1001  idTag 04A1B2C3" in line and "2.345 kWh" in line
               for line in lines)
    assert any("12.345 kWh  7200 W  230/230/230 V  10.4/10.5/10.4 A  50.01 Hz" in line
               for line in lines)
    assert "faults     meter_failure@1 (self-clearing)" in lines
    spec = FAULT_SPECS[FaultKind.METER_FAILURE]
    assert f"  meter_failure: {spec.description}" in lines  # what it means
    assert f"    -> {spec.hint}" in lines  # what to do
    assert as_json(report) == {"service": "running",
                               "status": encode_reply(StatusRequest, status)}
    fault = as_json(report)["status"]["faults"][0]
    assert (fault["description"], fault["hint"]) == (spec.description, spec.hint)


def test_status_shows_a_firmware_update_and_its_progress(station, runtime_dir):
    downloading = msgspec.structs.replace(status_result(), firmware=FirmwareUpdateStatus(
        status="Downloading", phase="downloading", location="http://b/fw.tar", bytes=1500,
        total=6000, percent=25.0))
    with FakeService(runtime_dir / "control.sock", {Method.STATUS: lambda _: downloading}):
        human = invoke("status", "-c", station)
        report = invoke("status", "-c", station, "--json")
    assert "firmware   update Downloading (downloading)  1500 bytes of 6000 (25 %)" in (
        human.stdout.splitlines())
    assert as_json(report)["status"]["firmware"]["percent"] == 25.0
    idle = msgspec.structs.replace(status_result(), firmware=FirmwareUpdateStatus(
        status="Idle", phase="idle"))
    with FakeService(runtime_dir / "control.sock", {Method.STATUS: lambda _: idle}):
        assert "firmware" not in invoke("status", "-c", station).stdout.replace(
            "firmware 0.1.0", "")


def test_status_with_the_service_down_says_so_and_shows_the_store(station, store):
    store.start_transaction(1, "04A1B2C3", 5000, time.time())
    store.fault_raise("contactor_welded", 1, True, "mirror closed")
    result = invoke("status", "-c", station)
    assert result.exit_code == 3
    assert "NOT RUNNING" in result.stdout
    assert "open transaction 1 on connector 1 idTag 04A1B2C3" in result.stdout
    assert "1 waiting, 0 dead" in result.stdout  # the StartTransaction
    assert "contactor_welded@1" in result.stdout
    assert FAULT_SPECS[FaultKind.CONTACTOR_WELDED].hint in result.stdout
    report = as_json(invoke("status", "-c", station, "--json"))
    assert report["service"] == "stopped" and "control.sock" in report["reason"]
    assert report["store"]["outbox_pending"] == 1
    assert [t["id_tag"] for t in report["store"]["open_transactions"]] == ["04A1B2C3"]
    assert report["store"]["active_faults"][0]["code"] == "contactor_welded"
    assert report["store"]["active_faults"][0]["hint"] == \
        FAULT_SPECS[FaultKind.CONTACTOR_WELDED].hint


def test_status_names_the_lock_holder_when_the_socket_is_silent(station, runtime_dir):
    from chargerfw.hwlock import HardwareLock

    with HardwareLock("chargerfw run"):
        result = invoke("status", "-c", station)
    assert result.exit_code == 3
    assert "hardware lock is held by chargerfw run (pid" in result.stdout


def test_status_without_store_or_with_bad_config(station, tmp_path):
    result = invoke("status", "-c", station, "--json")
    assert result.exit_code == 3 and as_json(result)["store"] == {"available": False}
    assert not (tmp_path / "state.db").exists()  # reading never creates a store
    missing = invoke("status", "-c", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 2 and "cannot read file" in missing.stderr
