"""`chargerfw rfid watch` against real readers: the vpcd PC/SC stack, and an RDM6300 simulator
on a socat pty pair read by the command in its own process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from realstack import socat_pty_pair

from chargerfw.cli import main
from chargerfw.sim.rdm6300 import Rdm6300Simulator
from chargerfw.sim.vcard import VirtualCard

pytestmark = pytest.mark.timeout(40)

STATION = """
[station]
id = "CP1"

[reader]
type = "rdm6300"
port = "{port}"
removal_timeout_s = 0.3
poll_interval_s = 0.05

[[connector]]
id = 1
[connector.meter]
model = "eastron-sdm630-v2"
transport = "tcp"
[connector.contactor]
pin = 17
[connector.pilot]
pwm_pin = 18
"""


def test_watch_json_prints_taps_and_stops_after_count(vpcd):
    def two_taps() -> None:
        time.sleep(0.5)
        for uid in ("04A1B2C3", "01020304050607"):
            with VirtualCard(uid, port=vpcd.port):
                time.sleep(0.8)
            time.sleep(0.5)

    tapper = threading.Thread(target=two_taps, daemon=True)
    tapper.start()
    result = CliRunner().invoke(main, [
        "rfid", "watch", "--type", "pcsc", "--reader-name", vpcd.reader_name,
        "--poll-interval", "0.1", "--json", "--count", "2"])
    tapper.join(timeout=10)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["event"], e["id_tag"]) for e in lines] == [
        ("presented", "04A1B2C3"), ("removed", "04A1B2C3"), ("presented", "01020304050607")]
    assert all(e["reader"] == "pcsc:" + vpcd.reader_name and e["time"].endswith("Z") for e in lines)


def test_watch_missing_pcsc_reader_exits_non_zero(vpcd):
    result = CliRunner().invoke(main, ["rfid", "watch", "--type", "pcsc", "--reader-name", "Nope"])
    assert result.exit_code == 1
    assert "not available" in result.output and "Nope" in result.output


def test_watch_bad_ad_hoc_options_are_named():
    result = CliRunner().invoke(main, ["rfid", "watch", "--type", "rdm6300"])
    assert result.exit_code == 2
    assert "needs 'port'" in result.output
    result = CliRunner().invoke(main, ["rfid", "watch", "--port", "/dev/ttyS0"])
    assert result.exit_code == 2
    assert "--type" in result.output
    result = CliRunner().invoke(main, ["rfid", "watch", "--type", "pn532-i2c", "--i2c-address", "zz"])
    assert result.exit_code == 2
    assert "not a number" in result.output


def test_watch_from_station_config_in_its_own_process(tmp_path):
    with socat_pty_pair(tmp_path) as pair, Rdm6300Simulator(pair.b, repeat_interval_s=0.05) as device:
        config = tmp_path / "station.toml"
        config.write_text(STATION.format(port=pair.a))
        proc = subprocess.Popen(
            [sys.executable, "-m", "chargerfw", "rfid", "watch", "--config", str(config), "--count", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)
            device.present("0A00F3C2B1")
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    (line,) = out.splitlines()
    stamp, event, id_tag = line.split()
    assert (event, id_tag) == ("presented", "0A00F3C2B1")
    assert stamp.endswith("Z")


def test_watch_config_without_reader_section(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(STATION.split("[reader]")[0] + "[[connector]]" + STATION.split("[[connector]]")[1])
    result = CliRunner().invoke(main, ["rfid", "watch", "--config", str(config)])
    assert result.exit_code == 2
    assert "no [reader] section" in result.output


def test_watch_missing_serial_port_exits_non_zero(tmp_path):
    result = CliRunner().invoke(main, ["rfid", "watch", "--type", "rdm6300", "--port",
                                       str(tmp_path / "ttyNothing")])
    assert result.exit_code == 1
    assert "cannot open" in result.output


def test_watch_ends_cleanly_on_ctrl_c(tmp_path):
    with socat_pty_pair(tmp_path) as pair, Rdm6300Simulator(pair.b, repeat_interval_s=0.05) as device:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chargerfw", "rfid", "watch", "--type", "rdm6300",
             "--port", pair.a, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            device.present("0A00F3C2B1")
            first = json.loads(proc.stdout.readline())  # the watch is up and reading
            assert (first["event"], first["id_tag"]) == ("presented", "0A00F3C2B1")
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err
