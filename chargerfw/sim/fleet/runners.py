"""What a charger plays: the steps of a scenario, or random plausible sessions, run after run;
a failed step is noted and the next run starts clean."""

from __future__ import annotations

import asyncio
import random

from chargerfw.sim.fleet.charger import FleetCharger, StepFailed
from chargerfw.sim.fleet.settings import CONNECTOR, NOMINAL_VOLTAGE_V, RandomProfile
from chargerfw.sim.scenario import (
    Charge,
    PlugIn,
    Resume,
    Scenario,
    Step,
    Suspend,
    Tap,
    Unplug,
    Wait,
)


def random_session(rng: random.Random, profile: RandomProfile, max_power_w: float) -> list[Step]:
    """One plausible session: idle, plug in, tap, charge (maybe a pause), stop, unplug."""
    power = min(rng.choice(profile.powers_w), max_power_w)
    steps: list[Step] = [Wait(duration_s=round(rng.uniform(*profile.idle_s), 1)),
                         PlugIn(),
                         Wait(duration_s=round(rng.uniform(*profile.plug_to_tap_s), 1)),
                         Tap()]
    charge_s = rng.uniform(*profile.charge_s)
    if rng.random() < profile.suspend_probability:
        first = round(charge_s * rng.uniform(0.2, 0.8), 1)
        steps += [Charge(duration_s=first, power_w=power),
                  Suspend(),
                  Wait(duration_s=round(rng.uniform(*profile.suspend_s), 1)),
                  Resume(),
                  Wait(duration_s=round(charge_s - first, 1))]
    else:
        steps.append(Charge(duration_s=round(charge_s, 1), power_w=power))
    if rng.random() >= profile.unplug_without_tap_probability:
        steps += [Tap(),
                  Wait(duration_s=round(rng.uniform(*profile.tap_to_unplug_s), 1))]
    steps.append(Unplug())
    return steps


async def _play_run(charger: FleetCharger, steps: list[Step], run: int) -> bool:
    """Play one run of steps; on a failure note it, reset the hardware and give up the run."""
    for number, step in enumerate(steps, start=1):
        try:
            await charger.play(step)
        except StepFailed as exc:
            charger.report.fail(f"run {run} step {number} ({step.action}): {exc}")
            await charger.reset_hardware()
            return False
        charger.report.steps_done += 1
    return True


async def scripted_runner(charger: FleetCharger, scenario: Scenario) -> None:
    try:
        await charger.wait_online()
    except StepFailed as exc:
        charger.report.fail(f"boot: {exc}")
        return
    for run in range(1, scenario.repeat + 1):
        if await _play_run(charger, list(scenario.step), run):
            charger.report.runs_completed += 1
        if run < scenario.repeat:
            await asyncio.sleep(scenario.pause_s)


async def random_runner(charger: FleetCharger, profile: RandomProfile) -> None:
    try:
        await charger.wait_online()
    except StepFailed as exc:
        charger.report.fail(f"boot: {exc}")
        return
    section = charger.config.connector_by_id(CONNECTOR)
    max_power = section.max_current_a * NOMINAL_VOLTAGE_V * section.phases
    run = 0
    while True:
        run += 1
        if await _play_run(charger, random_session(charger.rng, profile, max_power), run):
            charger.report.runs_completed += 1


