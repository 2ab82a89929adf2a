"""`chargerfw sim fleet` end to end: the command as a child process against the bundled backend
on loopback, its report (human and --json) and exit codes; bad input refused before anything
starts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fleet_helpers import bundled_csms

from chargerfw.cli import main
from chargerfw.sim.scenario import charger_uid

pytestmark = pytest.mark.timeout(90)

TINY = """
name = "tiny"
stagger_s = 0.05

[[step]]
action = "plug_in"

[[step]]
action = "tap"

[[step]]
action = "charge"
duration_s = 1
power_w = 11000

[[step]]
action = "tap"

[[step]]
action = "unplug"
"""

FAST = ["--safety-poll", "0.05", "--meter-interval", "1"]


async def run_cli(*args: str, timeout: float = 60.0,
                  interrupt_when: object = None) -> tuple[int, str, str]:
    """The command as a child process (so this loop keeps serving the backend)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chargerfw", "sim", "fleet", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        if interrupt_when is not None:
            deadline = time.monotonic() + timeout
            while not await interrupt_when():  # type: ignore[operator]
                assert time.monotonic() < deadline, "the fleet never got going"
                assert proc.returncode is None, "the fleet exited early"
                await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()  # only the child this test started
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_scenario_run_reports_json_and_exits_0(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY)
    async with bundled_csms(tmp_path, 2) as csms:
        code, out, err = await run_cli("--count", "2", "--csms", csms.ocpp_url, "--scenario",
                                       str(scenario), "--id-prefix", "CLI-", "--json", *FAST)
        backend = csms.store.transactions_table(limit=10)
    assert code == 0, err
    report = json.loads(out)
    assert report["mode"] == "scenario:tiny" and report["failed"] is False
    totals = report["totals"]
    assert totals["boots_accepted"] == 2 and totals["steps_failed"] == 0
    assert totals["sessions_started"] == totals["sessions_stopped"] == 2
    assert totals["messages"]["StartTransaction"] == {"sent": 2, "confirmed": 2, "errors": 0}
    assert totals["messages"]["StopTransaction"] == {"sent": 2, "confirmed": 2, "errors": 0}
    assert [c["charge_point_id"] for c in report["chargers"]] == ["CLI-001", "CLI-002"]
    assert sorted(t["charge_point_id"] for t in backend) == ["CLI-001", "CLI-002"]
    assert {t["id_tag"] for t in backend} == {charger_uid(1), charger_uid(2)}
    assert "fleet: 2 chargers" in err  # progress goes to stderr with --json


async def test_failed_step_gives_exit_1_and_says_what_failed(tmp_path: Path) -> None:
    scenario = tmp_path / "stranger.toml"
    scenario.write_text('[[step]]\naction = "plug_in"\n[[step]]\naction = "tap"\n'
                        'uid = "0102030405"\ntimeout_s = 10\n')
    async with bundled_csms(tmp_path, 1) as csms:  # the stranger's card is unknown there
        code, out, _ = await run_cli("--count", "1", "--csms", csms.ocpp_url, "--scenario",
                                     str(scenario), *FAST)
    assert code == 1
    assert "boots accepted 1/1" in out
    assert "steps 1 done 1 failed" in out
    assert "FLEET-001: run 1 step 2 (tap): card 0102030405 rejected" in out


async def test_ctrl_c_stops_reports_and_exits_130(tmp_path: Path) -> None:
    scenario = tmp_path / "long.toml"
    scenario.write_text('[[step]]\naction = "plug_in"\n[[step]]\naction = "tap"\n'
                        '[[step]]\naction = "charge"\nduration_s = 600\ncurrent_a = 10\n')
    async with bundled_csms(tmp_path, 1) as csms:
        async def charging() -> bool:
            rows = await asyncio.to_thread(csms.store.transactions_table, 5)
            return bool(rows)

        code, out, _ = await run_cli("--count", "1", "--csms", csms.ocpp_url, "--scenario",
                                     str(scenario), "--json", *FAST, interrupt_when=charging)
        backend = csms.store.transactions_table(limit=5)
    assert code == 130
    report = json.loads(out)
    assert report["interrupted"] is True and report["failed"] is False
    assert report["totals"]["sessions_started"] == 1
    # The station ended the session on the way out and the backend got the stop.
    assert report["totals"]["messages"]["StopTransaction"]["confirmed"] == 1
    assert backend[0]["stop_reason"] == "Reboot"


def test_bad_scenario_file_names_the_key_and_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[step]]\naction = "plug_in"\n[[step]]\naction = "charge"\n'
                   'duration_s = 5\npower = 7000\n')
    result = CliRunner().invoke(main, ["sim", "fleet", "--count", "3", "--csms",
                                       "ws://127.0.0.1:9/ocpp", "--scenario", str(bad),
                                       "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 2
    assert "step[2] (charge).power: unknown key" in result.output
    assert result.output.startswith(f"error: {bad}:")
    assert not (tmp_path / "state").exists()


def test_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(main, ["sim", "fleet", "--count", "1", "--csms", "ws://127.0.0.1:9/x",
                                "--random", "--scenario", str(tmp_path / "x.toml")])
    assert both.exit_code == 2 and "exactly one of --scenario FILE or --random" in both.output
    neither = runner.invoke(main, ["sim", "fleet", "--count", "1", "--csms", "ws://h:9/x"])
    assert neither.exit_code == 2
    http = runner.invoke(main, ["sim", "fleet", "--count", "1", "--csms", "http://h:9/x",
                                "--random"])
    assert http.exit_code == 2 and "must start with ws:// or wss://" in http.output
    zero = runner.invoke(main, ["sim", "fleet", "--count", "0", "--csms", "ws://h:9/x",
                                "--random"])
    assert zero.exit_code == 2 and "--count" in zero.output


def test_packaged_scenario_by_name_and_missing_file(tmp_path: Path) -> None:
    from chargerfw.cli.sim import _packaged_scenario

    assert _packaged_scenario("basic-session").endswith("scenarios/basic-session.toml")
    assert _packaged_scenario("rcd-fault.toml").endswith("scenarios/rcd-fault.toml")
    missing = CliRunner().invoke(main, ["sim", "fleet", "--count", "1", "--csms",
                                        "ws://127.0.0.1:9/ocpp", "--scenario", "no-such-one"])
    assert missing.exit_code == 2 and "no-such-one" in missing.output
    assert "cannot read file" in missing.output
