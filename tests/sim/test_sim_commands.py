"""`chargerfw sim tap|plug|charge|...`: one command per action on a running simulated station,
run as a separate process against the real runtime, as a newcomer does from the README."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from ocpp_testcsms import TestCsms
from runtime_helpers import running_station, sim_station_config, wait_status

pytestmark = pytest.mark.timeout(60)

TAG = "04A1B2C3D4E5F6"


async def sim_cli(sock: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chargerfw", "sim", *args, "--control-socket", str(sock),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


def connector(status: dict) -> dict:
    return status["connectors"][0]


async def test_a_session_driven_by_one_command_per_step(tmp_path: Path) -> None:
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        sock = tmp_path / "control.sock"
        async with running_station(config, sock):
            code, out, err = await sim_cli(sock, "plug", "--json")
            assert code == 0, err
            assert json.loads(out) == {"connector": 1, "vehicle": "connected"}
            await wait_status(sock, lambda s: connector(s)["status"] == "Preparing")

            code, out, err = await sim_cli(sock, "tap", TAG)
            assert code == 0, err
            assert out.strip() == f"presented: {TAG}"
            assert (await sim_cli(sock, "charge"))[0] == 0
            status = await wait_status(sock, lambda s: connector(s)["status"] == "Charging")
            assert connector(status)["transaction"]["id_tag"] == TAG
            await csms.wait_for(lambda: csms.of("StartTransaction"))
            assert [m.payload["idTag"] for m in csms.of("StartTransaction")] == [TAG]

            # The station refuses what the simulated hardware cannot do, with its reason.
            code, _, err = await sim_cli(sock, "tap", "not-hex")
            assert code == 1 and "refused sim.tap" in err and "uid" in err

            await asyncio.sleep(0.4)  # the previous card leaves the reader
            assert (await sim_cli(sock, "tap", TAG))[0] == 0
            await wait_status(sock, lambda s: connector(s)["status"] == "Finishing")
            assert (await sim_cli(sock, "unplug"))[0] == 0
            await wait_status(sock, lambda s: connector(s)["status"] == "Available")
            await csms.wait_for(lambda: csms.of("StopTransaction"))
            assert csms.of("StopTransaction")[0].payload["reason"] == "Local"


async def test_fault_commands_reach_the_safety_path(tmp_path: Path) -> None:
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        sock = tmp_path / "control.sock"
        async with running_station(config, sock):
            assert (await sim_cli(sock, "estop-press"))[0] == 0
            status = await wait_status(sock, lambda s: connector(s)["status"] == "Faulted")
            assert connector(status)["error_code"] == "OtherError"
            assert (await sim_cli(sock, "estop-release"))[0] == 0
            await wait_status(sock, lambda s: connector(s)["status"] == "Available")


async def test_no_station_says_how_to_start_one(tmp_path: Path) -> None:
    code, _, err = await sim_cli(tmp_path / "absent.sock", "tap", TAG)
    assert code == 3
    assert "no simulated station answers" in err and "make sim" in err
