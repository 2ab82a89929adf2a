"""``chargerfw sim station --demo`` as a subprocess with the bundled backend (``chargerfw csms``
in the same process): it boots, takes the demo card, charges with meter values, stops, and
answers on its control socket; Ctrl-C (SIGINT) ends it cleanly."""

from __future__ import annotations

import json
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

from chargerfw import control
from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)


def test_sim_station_demo_with_the_bundled_backend(tmp_path):
    import tomllib

    raw = tomllib.loads(SIM_TOML.read_text())
    raw["storage"] = {"path": str(tmp_path / "state" / "chargerfw.db")}
    raw["connector"][0]["meter"]["tcp_port"] = free_port()
    raw["ocpp"]["keys"]["MeterValueSampleInterval"] = 1
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
        # Meter values flow while it charges (MeterValueSampleInterval 1 s in this config).
        delivered = [int(line.split("MeterValues delivered ")[1].split()[0])
                     for line in text.splitlines() if line.startswith("demo: Charging")]
        assert delivered and delivered[-1] >= 1
        status = control.call(sock, "status")
        assert status["station"] == "SIM-CP-1" and status["backend"]["online"] is True
        assert status["connectors"][0]["status"] == "Available"
        assert status["outbox"]["pending"] == 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        # The bundled backend registered the station at its bench location: the session and
        # its CDR are OCPI objects, billed by the demo tariff.
        db = str(tmp_path / "state" / "csms.sqlite3")
        sessions = json.loads(subprocess.run(
            [sys.executable, "-m", "chargerfw", "csms", "sessions", "--db", db, "--json"],
            check=True, capture_output=True, text=True).stdout)
        (session,) = [m.Session.model_validate(s) for s in sessions]
        assert (session.status, session.location_id, session.cdr_token.uid) == (
            "COMPLETED", "SIM-BENCH", "04A1B2C3D4E5F6")
        assert session.kwh > 0 and len(session.charging_periods) >= 2  # meter values flowed
        cdrs = json.loads(subprocess.run(
            [sys.executable, "-m", "chargerfw", "csms", "cdrs", "--db", db, "--json"],
            check=True, capture_output=True, text=True).stdout)
        (cdr,) = [m.CDR.model_validate(c) for c in cdrs]
        assert cdr.total_energy == session.kwh
        # SIM-T1: 0.30 per kWh + 0.50 per session, excl. VAT
        expected = round(0.30 * float(cdr.total_energy) + 0.50, 2)
        assert float(cdr.total_cost.excl_vat) == pytest.approx(expected, abs=0.01)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(sock_dir, ignore_errors=True)
    log = (tmp_path / "state" / "station.log").read_text()
    assert "event='station.stopped'" in log and "sim-secret" not in log
