"""`chargerfw meter` live view and `--once`: read directly (service stopped: a simulated meter
over Modbus TCP, a missing meter, an RS-485 meter guarded by the hardware lock) and through the
running service (a fake one on the control socket)."""

from __future__ import annotations

import json

import pytest
from diag_support import (
    FakeService,
    as_json,
    invoke,
    sim_meter_thread,
    status_result,
    write_station,
)

from chargerfw.control.api import ConnectorMeter, MeterSampleReply, Method
from chargerfw.hwlock import HardwareLock

pytestmark = pytest.mark.timeout(30)


def rtu_station(tmp_path):
    def rtu(document):
        meter = document["connector"][0]["meter"]
        meter["transport"] = "rtu"
        meter["port"] = str(tmp_path / "no-such-tty")
        meter["timeout_s"] = 0.2
    return str(write_station(tmp_path, edit=rtu))


def test_live_view_reads_the_meter_until_count(tmp_path, runtime_dir):
    with sim_meter_thread(power_w=11000, voltage_v=231.0) as (meter, port):
        station = str(write_station(tmp_path, meter_port=port))
        result = invoke("meter", "-c", station, "--count", "2", "--interval", "0.2", "--json")
        once = invoke("meter", "-c", station, "--once")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert all(line["source"].startswith("direct tcp 127.0.0.1:") for line in lines)
    assert lines[0]["sample"]["power_w"] == pytest.approx(11000)
    assert lines[1]["sample"]["energy_import_wh"] >= lines[0]["sample"]["energy_import_wh"]
    assert once.exit_code == 0
    assert "power          11000.0 W" in once.stdout and "frequency      50.00 Hz" in once.stdout


def test_missing_meter_exits_3_and_keeps_meter_read_working(tmp_path, runtime_dir):
    station = str(write_station(tmp_path))  # nothing listens on the meter port
    result = invoke("meter", "-c", station, "--once", "--json")
    assert result.exit_code == 3
    assert "cannot open tcp" in json.loads(result.stdout)["error"]
    with sim_meter_thread() as (_, port):
        station = str(write_station(tmp_path, meter_port=port))
        read = invoke("meter", "read", "--config", station, "--json")
    assert read.exit_code == 0 and "sample" in json.loads(read.stdout)


def test_rs485_meter_needs_the_hardware_lock(tmp_path, runtime_dir):
    station = rtu_station(tmp_path)
    with HardwareLock("chargerfw run"):
        live = invoke("meter", "-c", station, "--once")
        read = invoke("meter", "read", "--config", station)
    assert live.exit_code == 1 and "chargerfw run (pid" in live.stderr
    assert read.exit_code == 1 and "meter --once" in read.stderr
    free = invoke("meter", "-c", station, "--once")
    assert free.exit_code == 3 and "no-such-tty" in free.stdout


def test_meter_live_view_through_the_service(tmp_path, runtime_dir):
    station = str(write_station(tmp_path))
    sample = {"timestamp": 1_700_000_000.0, "energy_import_wh": 5000.0, "power_w": 3680.0,
              "voltage_l1_v": 230.0, "current_l1_a": 16.0, "frequency_hz": 50.0}
    reply = MeterSampleReply(**sample, age_s=0.4)
    socket = runtime_dir / "control.sock"
    with FakeService(socket, {Method.METER_SAMPLE: lambda request: reply}) as fake:
        once = invoke("meter", "-c", station, "--once", "--json")
        two = invoke("meter", "-c", station, "--count", "2", "--interval", "0.2")
    assert once.exit_code == 0, once.output
    assert as_json(once) == {"connector": 1, "source": "service", "sample": {
        **{k: None for k in ("energy_export_wh", "power_l1_w", "power_l2_w", "power_l3_w",
                             "voltage_l2_v", "voltage_l3_v", "current_l2_a", "current_l3_a")},
        **sample}}
    assert two.stdout.count("energy import  5.000 kWh") == 2
    assert fake.methods() == [Method.METER_SAMPLE] * 3
    # A service without meter.sample: the values of its status.
    meter = ConnectorMeter(age_s=0.4, energy_import_wh=12345.0, power_w=7200.0,
                           voltage_v=[230.1, 229.8, 230.4], current_a=[10.4, 10.5, 10.4],
                           frequency_hz=50.01)
    with FakeService(socket, {Method.STATUS: lambda request: status_result(meter=meter)}):
        fallback = invoke("meter", "-c", station, "--once")
    assert fallback.exit_code == 0
    assert "energy import  12.345 kWh" in fallback.stdout
    assert "voltage        L1 230.1 V  L2 229.8 V  L3 230.4 V" in fallback.stdout
