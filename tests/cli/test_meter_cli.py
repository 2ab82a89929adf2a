"""`chargerfw meters`, `chargerfw meter read` and `chargerfw sim meter`, against a simulated
meter served by a real `chargerfw sim meter` process (TCP and RTU over a socat pty pair)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from realstack import socat_pty_pair

from chargerfw.cli import main
from chargerfw.config import known_meter_models
from chargerfw.sim.meter import SimFault, SimulatedMeter, serve_tcp

pytestmark = pytest.mark.timeout(60)
CHARGERFW = [sys.executable, "-m", "chargerfw"]


@contextlib.contextmanager
def sim_meter_process(*args: str):
    """Run `chargerfw sim meter ...`; yield (process, its 'serving ...' line)."""
    proc = subprocess.Popen([*CHARGERFW, "sim", "meter", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with proc:  # closes the pipes at the end
        yield from _started(proc)


def _started(proc: subprocess.Popen):
    try:
        line = proc.stdout.readline()  # printed once the server listens
        if not line.startswith("serving"):
            proc.kill()
            raise AssertionError(f"sim meter did not start: {line}{proc.stderr.read()}")
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def sim_in_thread(model: str, **kwargs):
    """A simulated meter served over TCP from its own thread, so a test can inject faults
    while CliRunner runs the command's own event loop."""
    meter = SimulatedMeter(model, **kwargs)
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        holder["stop"] = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        async with serve_tcp(meter) as (_, port):
            holder["port"] = port
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield meter, holder["port"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(5)


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_meters_lists_every_model_with_vendor_phases_and_serial_defaults():
    result = run("meters")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == known_meter_models()
    em340 = next(line for line in lines if line.startswith("carlo-gavazzi-em340"))
    assert "Carlo Gavazzi" in em340 and "3-phase" in em340 and "9600 8N1 unit 1" in em340
    abb = next(line for line in lines if line.startswith("abb-b23"))
    assert "19200 8E1" in abb
    data = json.loads(run("meters", "--json").output)
    by_model = {m["model"]: m for m in data}
    assert by_model["iskra-wm3m4"]["serial"] == {"baudrate": 115200, "parity": "N",
                                                  "stopbits": 1, "unit_id": 33}
    assert by_model["eastron-sdm120"]["phases"] == 1


def test_meter_read_over_tcp_from_a_real_sim_process():
    with sim_meter_process("--model", "eastron-sdm630-v2", "--tcp", "127.0.0.1:0",
                           "--power", "7400", "--energy", "5000") as (_, line):
        port = re.search(r"127\.0\.0\.1:(\d+)", line).group(1)
        human = run("meter", "read", "--model", "eastron-sdm630-v2", "--tcp", f"127.0.0.1:{port}")
        as_json = run("meter", "read", "--model", "eastron-sdm630-v2",
                      "--tcp", f"127.0.0.1:{port}", "--json")
    assert human.exit_code == 0, human.output
    assert "power          7400.0 W" in human.output
    assert re.search(r"energy import  5\.0\d\d kWh", human.output)
    assert as_json.exit_code == 0
    data = json.loads(as_json.output)
    assert data["transactions"] == 1
    assert data["sample"]["power_w"] == pytest.approx(7400.0)
    assert data["sample"]["energy_import_wh"] == pytest.approx(5000.0, abs=5.0)
    assert data["sample"]["voltage_l2_v"] == pytest.approx(230.0, abs=0.5)


def test_meter_read_over_rtu_pty_from_a_real_sim_process():
    with socat_pty_pair() as pty, \
            sim_meter_process("--model", "iskra-wm3m4", "--port", pty.a, "--power", "-3000",
                              "--unit", "5") as (_, line):
        assert "115200 8N1" in line and "unit 5" in line
        result = run("meter", "read", "--model", "iskra-wm3m4", "--port", pty.b,
                     "--unit", "5", "--json")
    assert result.exit_code == 0, result.output
    sample = json.loads(result.output)["sample"]
    assert sample["power_w"] == pytest.approx(-3000.0)
    assert sample["power_l3_w"] == pytest.approx(-1000.0)


def write_station(path: Path, port: int) -> Path:
    path.write_text(f"""
[station]
id = "CP-TEST"

[[connector]]
id = 1
meter = {{ model = "eastron-sdm630-v2", transport = "tcp", host = "127.0.0.1", tcp_port = {port}, timeout_s = 0.3 }}
contactor = {{ pin = 17 }}
pilot = {{ pwm_pin = 18 }}

[[connector]]
id = 2
meter = {{ model = "abb-b23", transport = "tcp", host = "127.0.0.1", tcp_port = {port}, timeout_s = 0.3 }}
contactor = {{ pin = 22 }}
pilot = {{ pwm_pin = 23 }}
""")
    return path


def test_meter_read_from_station_config_and_its_error_paths(tmp_path):
    with sim_in_thread("eastron-sdm630-v2", energy_import_wh=777.0) as (sim, port):
        config = str(write_station(tmp_path / "station.toml", port))
        sim.set_load(power_w=1500.0)
        ok = run("meter", "read", "--config", config, "--connector", "1", "--json")
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.output)["sample"]["power_w"] == pytest.approx(1500.0)

        # Two connectors and no --connector: a usage error, not a guess.
        ambiguous = run("meter", "read", "--config", config)
        assert ambiguous.exit_code == 2 and "--connector" in ambiguous.output
        missing = run("meter", "read", "--config", config, "--connector", "7")
        assert missing.exit_code == 2 and "no connector 7" in missing.output

        # Connector 2 declares an ABB on the same address: the SDM has no holding registers,
        # so the meter answers with an exception -> exit 4.
        wrong_model = run("meter", "read", "--config", config, "--connector", "2")
        assert wrong_model.exit_code == 4
        assert "exception_reply" in wrong_model.output and "illegal data address" in wrong_model.output

        sim.inject(SimFault.NO_REPLY)
        silent = run("meter", "read", "--config", config, "--connector", "1", "--json")
        assert silent.exit_code == 3
        assert json.loads(silent.stdout)["error"]["kind"] == "timeout"
        assert "timeout: no reply" in silent.stderr
        sim.clear()
        sim.set_raw("voltage_l1", [0x7FC0, 0x0000])  # the meter sends NaN
        nan = run("meter", "read", "--config", config, "--connector", "1")
        assert nan.exit_code == 4 and "bad_value" in nan.stderr and "voltage_l1" in nan.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "abb-b23"], "exactly one of --port"),
    (["--model", "abb-b23", "--port", "/dev/x", "--tcp", "h:1"], "exactly one of --port"),
    (["--model", "abb-b23", "--tcp", "nohost"], "is not HOST:PORT"),
    (["--model", "abb-b23", "--tcp", "h:99999"], "is not HOST:PORT"),
    (["--model", "nope", "--tcp", "h:1"], "Invalid value for '--model'"),
    (["--model", "abb-b23", "--tcp", "h:1", "--unit", "300"], "unit_id"),
    (["--model", "abb-b23", "--tcp", "h:1", "--connector", "1"], "not with --model"),
    (["--port", "/dev/ttyUSB0"], "give --model too"),
])
def test_meter_read_refuses_bad_options(args, message):
    result = run("meter", "read", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_meter_read_missing_config_and_missing_port(tmp_path):
    result = run("meter", "read", "--config", str(tmp_path / "none.toml"))
    assert result.exit_code == 2 and "cannot read file" in result.output
    result = run("meter", "read", "--model", "eastron-sdm630-v2", "--port",
                 str(tmp_path / "ttyUSB9"), "--timeout", "0.2")
    assert result.exit_code == 3
    assert "cannot open rtu" in result.output and "ttyUSB9" in result.output


def test_sim_meter_stops_cleanly_on_ctrl_c_and_refuses_bad_options():
    with sim_meter_process("--model", "abb-b23", "--tcp", "127.0.0.1:0") as (proc, _):
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        assert "stopped" in proc.stdout.read()
    both = subprocess.run([*CHARGERFW, "sim", "meter", "--model", "abb-b23", "--port", "/dev/x",
                           "--tcp", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert both.returncode == 2 and "exactly one of --port" in both.stderr
    bad_port = subprocess.run([*CHARGERFW, "sim", "meter", "--model", "abb-b23", "--port",
                                os.devnull + "/nope"], capture_output=True, text=True, timeout=30)
    assert bad_port.returncode == 3 and "cannot serve abb-b23" in bad_port.stderr
