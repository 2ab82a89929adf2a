"""What a fleet is asked to do: how many chargers against which backend, how fast, with which
random sessions; and the fleet charger's station config built from the packaged simulated
station."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from chargerfw.config import StationConfig, parse_config
from chargerfw.hwdata import data_path
from chargerfw.sim.scenario import Charge, Scenario

NOMINAL_VOLTAGE_V = 230.0
CONNECTOR = 1  # a fleet charger has one connector


class FleetError(ValueError):
    """A fleet that cannot be set up as asked (bad count, prefix, scenario for this station)."""


@dataclass(frozen=True)
class RandomProfile:
    """Plausible random sessions: how long a charger is idle, how long a car charges, at what
    power. Every charger draws from its own generator seeded from the fleet seed."""

    idle_s: tuple[float, float] = (2.0, 20.0)
    plug_to_tap_s: tuple[float, float] = (0.5, 3.0)
    tap_to_unplug_s: tuple[float, float] = (1.0, 5.0)
    charge_s: tuple[float, float] = (20.0, 240.0)
    powers_w: tuple[float, ...] = (3700.0, 7400.0, 11000.0, 16500.0, 22000.0)
    suspend_probability: float = 0.2
    suspend_s: tuple[float, float] = (5.0, 30.0)
    unplug_without_tap_probability: float = 0.25


@dataclass(frozen=True)
class FleetSettings:
    count: int
    csms_url: str
    id_prefix: str = "FLEET-"
    password: str | None = None
    state_dir: Path | None = None  # None: a temporary directory, removed at the end
    seed: int = 0
    duration_s: float | None = None  # scripted: a cap; random: how long (None: until stopped)
    stagger_s: float | None = None  # None: the scenario's (random: 0.1 s)
    safety_poll_s: float = 1.0
    meter_poll_s: float = 1.0
    meter_values_interval_s: int = 10  # OCPP MeterValueSampleInterval
    boot_timeout_s: float = 60.0
    shutdown_flush_s: float = 3.0
    control_sockets: bool = False
    tally_interval_s: float = 1.0
    random_profile: RandomProfile = RandomProfile()

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 10_000:
            raise FleetError(f"count must be between 1 and 10000, got {self.count}")
        if not self.csms_url.startswith(("ws://", "wss://")):
            raise FleetError(f"the CSMS URL must start with ws:// or wss://, got {self.csms_url!r}")
        longest = len(charge_point_id(self.id_prefix, self.count, self.count))
        if not self.id_prefix or longest > 48 or not self.id_prefix.isprintable() \
                or any(c in self.id_prefix for c in "/ ?#%"):
            raise FleetError(f"id prefix {self.id_prefix!r}: a charge point id must be 1-48 "
                             "printable characters without '/', space, '?', '#' or '%'")
        for name in ("safety_poll_s", "meter_poll_s", "boot_timeout_s", "tally_interval_s"):
            if getattr(self, name) <= 0:
                raise FleetError(f"{name} must be > 0")
        if self.meter_values_interval_s < 0:
            raise FleetError("meter_values_interval_s must be >= 0")


def charge_point_id(prefix: str, index: int, count: int) -> str:
    """``FLEET-007``: the prefix and the 1-based number, zero-padded to the fleet's width."""
    return f"{prefix}{index:0{max(3, len(str(count)))}d}"


def station_config(settings: FleetSettings, index: int, state_dir: Path) -> StationConfig:
    """The packaged simulated station as fleet charger ``index``: its id, the backend, its
    store, a transport-less simulated meter."""
    raw = tomllib.loads((data_path("stations") / "sim.toml").read_text())
    raw["station"]["id"] = charge_point_id(settings.id_prefix, index, settings.count)
    raw["station"]["serial_number"] = f"SIMFLEET{index:06d}"
    raw["hardware"] = "sim"
    for connector in raw["connector"]:
        connector["meter"].update(transport="rtu", port="simulated",
                                  poll_interval_s=settings.meter_poll_s)
    raw["ocpp"] = {"url": settings.csms_url, "security_profile": 1 if settings.password else 0}
    if settings.password:
        raw["ocpp"]["password"] = settings.password
    raw["storage"] = {"path": str(state_dir / "state.db")}
    return parse_config(raw, f"fleet charger {index}")


def check_scenario_fits(scenario: Scenario, config: StationConfig) -> None:
    """A scenario asking for more than the fleet's station can give is an error up front."""
    section = config.connector_by_id(CONNECTOR)
    max_power = section.max_current_a * NOMINAL_VOLTAGE_V * section.phases
    problems = []
    for number, step in enumerate(scenario.step, start=1):
        if isinstance(step, Charge):
            current = charge_current_a(step, section.phases)
            if current > section.max_current_a:
                what = f"power_w {step.power_w:g}" if step.power_w else f"current_a {current:g}"
                problems.append(
                    f"step[{number}] (charge): {what} is more than the fleet station gives "
                    f"({section.max_current_a:g} A x {section.phases} phases = {max_power:g} W)")
    if problems:
        raise FleetError("; ".join(problems))


def charge_current_a(step: Charge, phases: int) -> float:
    if step.current_a is not None:
        return step.current_a
    assert step.power_w is not None
    return step.power_w / (NOMINAL_VOLTAGE_V * phases)

