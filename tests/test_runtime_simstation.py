"""``chargerfw sim station --demo`` as a subprocess with the bundled backend (``chargerfw csms``
in the same process): it boots, takes the demo card, charges with meter values, stops, and
answers on its control socket; Ctrl-C (SIGINT) ends it cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from runtime_helpers import SIM_TOML, dump_toml, free_port

from chargerfw.runtime import control

pytestmark = pytest.mark.timeout(60)


def test_sim_station_demo_with_the_bundled_backend(tmp_path):
    import tomllib

    raw = tomllib.loads(SIM_TOML.read_text())
    raw["storage"] = {"path": str(tmp_path / "state" / "chargerfw.db")}
    raw["connector"][0]["meter"]["tcp_port"] = free_port()
    config = tmp_path / "sim.toml"
    config.write_text(dump_toml(raw))
    sock_dir = Path(tempfile.mkdtemp(prefix="cfw-"))
    sock = sock_dir / "control.sock"
    out = tmp_path / "out.txt"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chargerfw", "sim", "station", "--config", str(config),
             "--demo", "--demo-seconds", "2", "--backend-ocpp-port", "0",
             "--backend-api-port", "0", "--control-socket", str(sock)],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 40
        while "demo: done" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        text = out.read_text()
        assert "backend: bundled chargerfw csms" in text
        assert "transaction.confirmed connector=1" in text
        assert "status=Charging" in text and "reason=Local" in text
        status = control.call(sock, "status")
        assert status["station"] == "SIM-CP-1" and status["backend"]["online"] is True
        assert status["connectors"][0]["status"] == "Available"
        assert status["outbox"]["pending"] == 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(sock_dir, ignore_errors=True)
    log = (tmp_path / "state" / "station.log").read_text()
    assert "event='station.stopped'" in log and "sim-secret" not in log
