"""``chargerfw sim fleet``: N simulated chargers in one process, for load-testing any OCPP 1.6J
backend.

Each charger is a whole station: a :class:`~chargerfw.runtime.station.StationRuntime` on
simulated hardware (its own simulated meter, reader, pilot, contactor, RCM, e-stop and
temperature sensor, built from the packaged ``hw/stations/sim.toml``), its own SQLite store in
``<state dir>/<charge point id>/``, its own OCPP connection. A runner per charger plays a
scenario (:mod:`chargerfw.sim.scenario`) or random sessions against it through the typed
control API (:mod:`chargerfw.control.api`), answered in this process by the same handlers the
control socket serves.

The rooms: :mod:`.settings` (what a fleet is asked to do, a charger's station config),
:mod:`.report` (what each charger and the fleet did), :mod:`.tally` (counting OCPP frames),
:mod:`.charger` (one charger and its steps), :mod:`.runners` (scenario and random runs),
:mod:`.fleet` (all of them together).

Choices (why):
- The simulated meter has no transport (``transport = "rtu"`` on a simulated station gives
  :class:`~chargerfw.sim.meter.SimulatedMeterBackend`): no port per charger, the real decoding
  and plausibility code still runs.
- No control socket by default (nothing to clean up, no 108-byte path limit);
  ``control_sockets=True`` puts one per charger in its state directory, so
  ``CHARGERFW_RUNTIME_DIR=<state dir>/<id> chargerfw status`` shows that charger.
- The safety monitor thread polls every ``safety_poll_s`` (1 s by default instead of the
  firmware's 0.1 s): one thread per charger, each pass an ADC burst on the simulated pilot,
  all under one GIL. Measured with 200 chargers and the backend in another process: at 0.5 s
  the event loop ran late by 18 ms median / 0.5 s p95, at 1 s by 2 ms / 74 ms. A pilot change
  is then seen within about two seconds, which a backend cannot tell from a slow driver.
- What was sent and confirmed is counted from each charger's OCPP frame log in its store (the
  firmware logs every frame in and out): read every ``tally_interval_s``, well before the ring
  of :data:`~chargerfw.store.FRAME_LOG_SIZE` frames wraps; frames lost to a wrap are counted
  as ``frames_missed`` rather than guessed.
"""

from chargerfw.sim.fleet.charger import FleetCharger, StepFailed
from chargerfw.sim.fleet.fleet import Fleet, run_fleet
from chargerfw.sim.fleet.report import ChargerReport, FleetReport, MessageCount, render_report
from chargerfw.sim.fleet.runners import random_runner, random_session, scripted_runner
from chargerfw.sim.fleet.settings import (
    FleetError,
    FleetSettings,
    RandomProfile,
    charge_point_id,
    check_scenario_fits,
    station_config,
)
from chargerfw.sim.fleet.tally import FrameTally

__all__ = [
    "ChargerReport", "Fleet", "FleetCharger", "FleetError", "FleetReport", "FleetSettings",
    "FrameTally", "MessageCount", "RandomProfile", "StepFailed", "charge_point_id",
    "check_scenario_fits", "random_runner", "random_session", "render_report", "run_fleet",
    "scripted_runner", "station_config",
]
