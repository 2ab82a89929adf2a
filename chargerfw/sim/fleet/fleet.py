"""The fleet: its chargers started staggered, their runners, the tally of their traffic while
they run, the event loop's own lag, and the report at the end."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from chargerfw.sim.fleet.charger import FleetCharger
from chargerfw.sim.fleet.report import FleetReport
from chargerfw.sim.fleet.runners import random_runner, scripted_runner
from chargerfw.sim.fleet.settings import (
    FleetSettings,
    charge_point_id,
    check_scenario_fits,
    station_config,
)
from chargerfw.sim.scenario import Scenario
from chargerfw.sim.workdir import kept_or_temporary_dir


class LoopLag:
    """How late the event loop runs a 100 ms timer: the fleet's own health figure."""

    def __init__(self) -> None:
        self.samples: collections.deque[float] = collections.deque(maxlen=10_000)

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.1)
            self.samples.append(max(0.0, loop.time() - before - 0.1) * 1000)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        ordered = sorted(self.samples)
        return {"median": round(statistics.median(ordered), 1),
                "p95": round(ordered[int(len(ordered) * 0.95) - 1 if len(ordered) > 1 else 0], 1),
                "max": round(ordered[-1], 1)}


class Fleet:
    """The chargers, their runners, the tally, and the report."""

    def __init__(self, settings: FleetSettings, scenario: Scenario | None = None,
                 *, echo: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.scenario = scenario
        self.echo = echo or (lambda _line: None)
        self.chargers: list[FleetCharger] = []
        self._stop = asyncio.Event()
        self.interrupted = False

    def request_stop(self) -> None:
        """Ctrl-C: end the runners, stop the stations, report (any loop callback)."""
        self.interrupted = True
        self._stop.set()

    async def run(self) -> FleetReport:
        settings = self.settings
        if self.scenario is not None:  # before anything is created
            check_scenario_fits(self.scenario, station_config(settings, 1, Path("unused")))
        with kept_or_temporary_dir(settings.state_dir, "chargerfw-fleet-") as root:
            self.chargers = [
                FleetCharger(settings, i, root / charge_point_id(settings.id_prefix, i,
                                                                  settings.count),
                             random.Random(f"{settings.seed}-{i}"))
                for i in range(1, settings.count + 1)]
            for charger in self.chargers:
                await asyncio.to_thread(charger.prepare)
            return await self._run(root)

    async def _run(self, root: Path) -> FleetReport:
        settings, scenario = self.settings, self.scenario
        report = FleetReport(settings.csms_url,
                             f"scenario:{scenario.name}" if scenario else "random",
                             settings.count, settings.seed, time.time())
        started = time.monotonic()
        stagger = settings.stagger_s if settings.stagger_s is not None else (
            scenario.stagger_s if scenario else 0.1)
        lag = LoopLag()
        background = [asyncio.create_task(lag.watch(), name="fleet-lag"),
                      asyncio.create_task(self._tally_forever(), name="fleet-tally")]
        stations: list[asyncio.Task[None]] = []
        runners: list[asyncio.Task[None]] = []
        self.echo(f"fleet: {settings.count} chargers -> {settings.csms_url} "
                  f"({report.mode}, state in {root})")

        async def start_charger(charger: FleetCharger, delay: float) -> None:
            await asyncio.sleep(delay)
            ready = asyncio.Event()
            stations.append(asyncio.create_task(charger.run(ready), name=f"fleet-{charger.id}"))
            await ready.wait()
            if scenario is not None:
                await scripted_runner(charger, scenario)
            else:
                await random_runner(charger, settings.random_profile)

        runners = [asyncio.create_task(start_charger(c, n * stagger), name=f"runner-{c.id}")
                   for n, c in enumerate(self.chargers)]
        all_done = asyncio.gather(*runners, return_exceptions=True)
        stop_wait = asyncio.create_task(self._stop.wait())
        waits: set[asyncio.Future[Any]] = {all_done, stop_wait}
        try:
            done, _ = await asyncio.wait(waits, timeout=settings.duration_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            for task in runners:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await all_done
            onlines = [c.online_at for c in self.chargers if c.online_at is not None]
            if self.chargers and len(onlines) == len(self.chargers):
                report.all_online_after_s = max(onlines) - started
            self.echo("fleet: stopping the stations ...")
            for charger in self.chargers:
                charger.stop()
            if stations:
                await asyncio.wait(stations, timeout=settings.shutdown_flush_s + 15)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        for runner, charger in zip(runners, self.chargers, strict=True):
            if runner.done() and not runner.cancelled() and runner.exception() is not None:
                charger.report.fail(f"runner crashed: {runner.exception()!r}")
        for charger in self.chargers:
            await asyncio.to_thread(charger.final_tally, report.started_at)
        report.elapsed_s = time.monotonic() - started
        report.interrupted = self.interrupted
        report.loop_lag_ms = lag.summary()
        report.chargers = [c.report for c in self.chargers]
        return report

    async def _tally_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tally_interval_s)
            for charger in self.chargers:
                charger.tally_now()


async def run_fleet(settings: FleetSettings, scenario: Scenario | None = None,
                    *, echo: Callable[[str], None] | None = None,
                    on_fleet: Callable[[Fleet], Awaitable[None] | None] | None = None
                    ) -> FleetReport:
    """Run a fleet to the end of its scenario (or ``duration_s``) and report."""
    fleet = Fleet(settings, scenario, echo=echo)
    if on_fleet is not None:
        result = on_fleet(fleet)
        if asyncio.iscoroutine(result):
            await result
    return await fleet.run()


