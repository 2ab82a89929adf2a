"""``chargerfw run`` across resets: a soft reset whose fresh runtime fails to start is tried
again ResetRetries times, then becomes a hard reset; a start that fails other than after a
reset is not retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ocpp.v16 import call
from ocpp_testcsms import TestCsms
from runtime_helpers import sim_station_config

from chargerfw.cli.service import run_station
from chargerfw.config import StationConfig
from chargerfw.runtime.station import HARD_RESET_EXIT_CODE, RunOutcome, StationRuntime
from chargerfw.sim.hardware import simulated_hardware

pytestmark = pytest.mark.timeout(30)


class StartFailed(RuntimeError):
    pass


class ScriptedRuntime:
    """A runtime whose run() ends as scripted: an outcome, or a failure before it is ready."""

    def __init__(self, ending: RunOutcome | Exception, reset_retries: int = 0) -> None:
        self.ending = ending
        self.reset_retries = reset_retries
        self.ready = asyncio.Event()

    def request_stop(self) -> None:
        pass

    async def run(self) -> RunOutcome:
        if isinstance(self.ending, Exception):
            raise self.ending
        self.ready.set()
        return self.ending


def scripted(*endings: RunOutcome | Exception, reset_retries: int = 0):
    runtimes = [ScriptedRuntime(e, reset_retries) for e in endings]
    made: list[ScriptedRuntime] = []

    def make_runtime() -> ScriptedRuntime:
        made.append(runtimes[len(made)])
        return made[-1]

    return make_runtime, made


@pytest.fixture
def config(tmp_path: Path) -> StationConfig:
    return sim_station_config(tmp_path, "ws://127.0.0.1:9/ocpp")[1]


async def run(config: StationConfig, make_runtime) -> int:
    return await run_station(config, Path("unused.sock"), make_runtime=make_runtime,
                             reset_retry_delay_s=0)


async def test_a_failed_restart_after_a_soft_reset_is_retried(config):
    make, made = scripted(RunOutcome.SOFT_RESET, StartFailed("meter port gone"),
                          StartFailed("meter port gone"), RunOutcome.STOPPED, reset_retries=2)
    assert await run(config, make) == 0
    assert len(made) == 4  # the reset, two failed starts, the third one ran


async def test_a_soft_reset_becomes_a_hard_one_when_every_retry_failed(config):
    make, made = scripted(RunOutcome.SOFT_RESET, *[StartFailed("store locked")] * 3,
                          reset_retries=2)
    assert await run(config, make) == HARD_RESET_EXIT_CODE
    assert len(made) == 4  # the first restart and its two retries


async def test_reset_retries_zero_escalates_at_the_first_failure(config):
    make, made = scripted(RunOutcome.SOFT_RESET, StartFailed("x"), RunOutcome.STOPPED,
                          reset_retries=0)
    assert await run(config, make) == HARD_RESET_EXIT_CODE
    assert len(made) == 2


async def test_a_start_failure_without_a_reset_is_not_retried(config):
    make, made = scripted(StartFailed("bad wiring"), RunOutcome.STOPPED, reset_retries=3)
    with pytest.raises(StartFailed):
        await run(config, make)
    assert len(made) == 1


async def test_a_soft_reset_keeps_reset_retries_as_the_key_said(tmp_path, short_dir):
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url, keys={"ResetRetries": "5"})
        runtime = StationRuntime(config, control_socket=short_dir / "control.sock",
                                 shutdown_flush_s=0.5, simulator=simulated_hardware)
        task = asyncio.create_task(runtime.run())
        try:
            await asyncio.wait_for(runtime.ready.wait(), 10)
            await csms.wait_for(lambda: csms.of("StatusNotification"))
            assert runtime.client.keys.change("ResetRetries", "2")[0].value == "Accepted"
            result = await csms.server_side.call(call.Reset(type="Soft"))
            assert result.status == "Accepted"
            assert await asyncio.wait_for(task, 10) is RunOutcome.SOFT_RESET
        finally:
            runtime.request_stop()
            await asyncio.wait_for(task, 10)
        assert runtime.reset_retries == 2  # readable after the runtime (and its store) closed
