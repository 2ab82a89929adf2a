"""`chargerfw selftest` with the service stopped (real simulated meter over Modbus TCP, the
test CSMS on loopback for the backend check), its pure checks, `support-bundle`, and the
hardware lock across processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tarfile
import threading
from datetime import UTC, datetime, timedelta

import pytest
from diag_support import (
    PreparedBoard,
    as_json,
    invoke,
    sim_meter_thread,
    write_station,
)
from ocpp_testcsms import TestCsms

from chargerfw.cli import diag
from chargerfw.diagnostics import CheckStatus, check_clock, check_disk, check_meter_sample
from chargerfw.drivers.types import MeterSample
from chargerfw.hwlock import HardwareBusy, HardwareLock, HardwareLockError, is_locked
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def csms():
    """The test CSMS in its own thread (the CLI runs its own event loop)."""
    ready = threading.Event()
    holder = {}

    async def serve() -> None:
        async with TestCsms(password="sim-secret") as server:
            holder["server"], holder["loop"] = server, asyncio.get_running_loop()
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    yield holder["server"]
    holder["loop"].call_soon_threadsafe(holder["stop"].set)
    thread.join(5)


def checks_of(result) -> dict[str, dict]:
    return {c["name"]: c for c in as_json(result)["checks"]}


def test_selftest_all_pass_against_sim_meter_and_backend(tmp_path, runtime_dir, csms):
    with sim_meter_thread(power_w=3000, voltage_v=230.0) as (_, port):
        path = write_station(tmp_path, meter_port=port, ocpp_url=csms.url)
        Store(tmp_path / "state.db").close()
        result = invoke("selftest", "-c", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["passed"] is True
    checks = checks_of(result)
    assert [c["name"] for c in report["checks"]] == [
        "config", "ocpp keys", "service", "meter 1", "reader", "pins readable",
        "contactor 1 feedback", "backend reachable", "clock", "disk space"]
    assert checks["service"]["status"] == "skip"
    assert checks["meter 1"]["status"] == "pass" and "230/230/230 V" in checks["meter 1"]["detail"]
    assert "pilot 1 A" in checks["pins readable"]["detail"]
    assert "handshake" in checks["backend reachable"]["detail"]
    assert "against the backend" in checks["clock"]["detail"]  # the server's Date header
    assert csms.received == []  # the probe sends no CALL


def test_selftest_reports_each_failure_with_a_hint(tmp_path, runtime_dir, monkeypatch):
    monkeypatch.setattr(diag, "open_board", PreparedBoard(
        lambda board: (board.connectors[1].sim.contactor.weld(), board.sim.rcm.trip())))
    path = write_station(tmp_path)  # no meter, no backend listening
    result = invoke("selftest", "-c", str(path))
    assert result.exit_code == 1
    out = result.stdout
    assert "FAIL  meter 1" in out and "Modbus TCP gateway" in out
    assert "FAIL  backend reachable" in out and "ConnectionRefused" in out
    assert "FAIL  fault inputs" in out and "rcm TRIPPED" in out
    assert "FAIL  contactor 1 feedback" in out and "welded" in out
    assert "PASS  disk space" in out and out.rstrip().endswith("selftest FAILED")


def test_selftest_backend_refuses_credentials(tmp_path, runtime_dir, csms):
    path = write_station(tmp_path, ocpp_url=csms.url,
                         edit=lambda doc: doc["ocpp"].__setitem__("password", "wrong-secret"))
    checks = checks_of(invoke("selftest", "-c", str(path), "--json"))
    assert checks["backend reachable"]["status"] == "fail"
    assert "HTTP 401 (credentials refused)" in checks["backend reachable"]["detail"]


def test_selftest_with_an_invalid_config(tmp_path, runtime_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text('hardware = "sim"\n[station]\nid = "X"\n')
    result = invoke("selftest", "-c", str(bad), "--json")
    assert result.exit_code == 1
    checks = checks_of(result)
    assert checks["config"]["status"] == "fail" and "connector" in checks["config"]["detail"]


def test_clock_disk_and_meter_checks():
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert check_clock(now).status is CheckStatus.PASS
    assert check_clock(datetime(1970, 1, 1, tzinfo=UTC)).status is CheckStatus.FAIL
    assert check_clock(now, now - timedelta(seconds=30)).status is CheckStatus.PASS
    off = check_clock(now, now + timedelta(seconds=300))
    assert off.status is CheckStatus.FAIL and "-300 s" in off.detail and "NTP" in off.hint
    assert check_disk(__import__("pathlib").Path("/tmp/x/y.db")).status is CheckStatus.PASS
    assert check_disk(__import__("pathlib").Path("/tmp"), min_free_bytes=1 << 62).status \
        is CheckStatus.FAIL
    good = MeterSample(1.0, 1000.0, voltage_l1_v=231.0, frequency_hz=50.0)
    assert check_meter_sample(good).status is CheckStatus.PASS
    assert check_meter_sample(MeterSample(1.0, 1000.0, voltage_l1_v=290.0)).status \
        is CheckStatus.FAIL
    assert check_meter_sample(MeterSample(1.0, float("nan"))).status is CheckStatus.FAIL
    assert check_meter_sample(MeterSample(1.0, 5.0, frequency_hz=45.0)).status is CheckStatus.FAIL


def test_support_bundle_contents_are_redacted(tmp_path, runtime_dir, csms):
    path = write_station(tmp_path, ocpp_url=csms.url)
    with Store(tmp_path / "state.db") as store:
        store.config_set("AuthorizationKey", "0123456789abcdef")
        store.fault_raise("contactor_welded", 1, True, "mirror closed")
        store.frame_log_add("in", '[2,"1","ChangeConfiguration",{"key":"AuthorizationKey",'
                                  '"value":"0123456789abcdef"}]')
        store.start_transaction(1, "04A1B2C3", 100, 1_700_000_000.0)
    out = tmp_path / "bundle.tar.gz"
    result = invoke("support-bundle", "-c", str(path), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert as_json(result)["path"] == str(out)
    with tarfile.open(out) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()
                 for m in tar.getmembers()}
    assert set(files) >= {"config.toml", "selftest.json", "versions.json", "logs.txt",
                          "status.json", "faults.json", "ocpp-frames.json", "outbox.json",
                          "transactions.json", "ocpp-keys.json"}
    everything = "\n".join(files.values())
    assert "sim-secret" not in everything and "0123456789abcdef" not in everything
    assert 'password = "***"' in files["config.toml"]
    assert json.loads(files["faults.json"])[0]["code"] == "contactor_welded"
    assert json.loads(files["outbox.json"])["pending"] == 1
    assert json.loads(files["status.json"]) == {"service": "not running"}
    assert json.loads(files["versions.json"])["python"].startswith(sys.version.split()[0])
    selftest = json.loads(files["selftest.json"])
    assert {c["name"] for c in selftest["checks"]} >= {"config", "backend reachable"}
    assert files["logs.txt"]  # journal lines or a note why there are none
    assert not list(tmp_path.glob("*.partial"))


def test_support_bundle_unwritable_output(tmp_path, runtime_dir):
    path = write_station(tmp_path)
    result = invoke("support-bundle", "-c", str(path), "-o", str(tmp_path / "no" / "b.tgz"))
    assert result.exit_code == 2 and "cannot write" in result.stderr


def test_hardware_lock_across_processes(runtime_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom chargerfw.hwlock import HardwareLock\n"
         "lock = HardwareLock('chargerfw run'); lock.acquire()\n"
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "CHARGERFW_RUNTIME_DIR": str(runtime_dir)})
    try:
        assert holder.stdout.readline().strip() == "held"
        seen = is_locked(runtime_dir)
        assert seen is not None and seen.pid == holder.pid and seen.owner == "chargerfw run"
        with pytest.raises(HardwareBusy) as busy:
            HardwareLock("chargerfw test").acquire()
        assert f"pid {holder.pid}" in str(busy.value)
    finally:
        holder.stdin.close()  # the holder exits: the kernel drops its lock
        holder.wait(timeout=10)
    assert is_locked(runtime_dir) is None
    with HardwareLock("chargerfw test") as lock:
        assert lock.held and is_locked(runtime_dir).owner == "chargerfw test"
    assert is_locked(runtime_dir) is None


def test_hardware_lock_in_an_unusable_directory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CHARGERFW_RUNTIME_DIR", str(blocker / "run"))
    with pytest.raises(HardwareLockError, match="cannot open the hardware lock"):
        HardwareLock("x").acquire()
