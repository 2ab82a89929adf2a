"""The safety core over a simulated board whose inputs are wired fail-safe (normally closed,
the default): a cut wire or a floating pin is a fault that keeps the contactor open, at
start-up and while charging; a normally-open input is allowed and warned about."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from fakes import wait_until

from chargerfw.config import StationConfig, parse_config
from chargerfw.drivers.board import Board, BoardSim, ConnectorSim, build_board
from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.logs import capture_logs
from chargerfw.safety.core import PilotCommand, SafetyCore
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FaultKind
from chargerfw.station.safety import SafetySettings

SIM_TOML = Path(__file__).resolve().parents[2] / "hw" / "stations" / "sim.toml"

pytestmark = pytest.mark.timeout(30)


def sim_config(**contactor: object) -> StationConfig:
    raw = tomllib.loads(SIM_TOML.read_text())
    raw["connector"][0]["contactor"].update({"feedback_timeout_s": 0.05, **contactor})
    return parse_config(raw)


class Rig:
    """A simulated board and the safety core that guards it (started by :meth:`start`)."""

    def __init__(self, config: StationConfig, board: Board | None = None) -> None:
        self.config = config
        self.board = board or build_board(config)
        self.events: list[object] = []
        self.core = SafetyCore(config, self.board, self.events.append,
                               SafetySettings(poll_interval_s=0.01))

    @property
    def sim(self) -> BoardSim:
        assert self.board.sim is not None
        return self.board.sim

    def connector_sim(self) -> ConnectorSim:
        sim = self.board.connectors[1].sim
        assert sim is not None
        return sim

    def faults(self) -> set[tuple[FaultKind, int]]:
        return {(f.kind, f.connector_id) for f in self.core.active_faults()}

    def vehicle_wants_charge(self) -> None:
        self.core.set_pilot(1, PilotCommand(PilotMode.PWM, 16.0))
        vehicle = self.connector_sim().vehicle
        vehicle.plug_in()
        vehicle.request_charge()

    def contactor_closed(self) -> bool:
        return self.board.connectors[1].contactor.commanded_closed


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.core.stop()
        rig.board.close()


async def test_floating_rcd_input_at_start_up_is_a_fault_and_the_contactor_stays_open(rigs):
    rig = Rig(sim_config())
    rigs.append(rig)
    rig.sim.rcm.cut_wire()  # the RCM's trip wire is broken before the station starts
    rig.core.start()
    assert (FaultKind.RCD_TRIP, STATION) in rig.faults()
    rig.vehicle_wants_charge()
    await wait_until(lambda: rig.core.supervisor.pilot_of(1) is PilotState.C, what="pilot C")
    assert not rig.core.request_close(1)
    assert not rig.contactor_closed() and not rig.connector_sim().contactor.is_closed
    rig.sim.rcm.mend_wire()  # the wire repaired: the trip clears, charging may start
    await wait_until(lambda: (FaultKind.RCD_TRIP, STATION) not in rig.faults(), what="cleared")
    assert rig.core.request_close(1)  # after an RCM self-test
    await wait_until(rig.contactor_closed, what="contactor closed")


async def test_rcd_wire_cut_while_charging_opens_the_contactor(rigs):
    rig = Rig(sim_config())
    rigs.append(rig)
    rig.core.start()
    rig.vehicle_wants_charge()
    await wait_until(lambda: rig.core.supervisor.pilot_of(1) is PilotState.C, what="pilot C")
    assert rig.core.request_close(1)
    await wait_until(rig.contactor_closed, what="contactor closed")
    rig.sim.emergency_stop.cut_wire()  # on the hardware thread: opens at once
    assert not rig.contactor_closed() and not rig.connector_sim().contactor.is_closed
    assert (FaultKind.EMERGENCY_STOP, STATION) in rig.faults()
    assert not rig.core.request_close(1)


async def test_cut_feedback_wire_at_start_up_reads_welded_and_blocks_the_close(rigs):
    rig = Rig(sim_config())
    rigs.append(rig)
    rig.connector_sim().contactor.cut_wire()  # the mirror contact's wire is broken
    rig.core.start()
    await wait_until(lambda: (FaultKind.CONTACTOR_WELDED, 1) in rig.faults(), what="welded")
    rig.vehicle_wants_charge()
    await wait_until(lambda: rig.core.supervisor.pilot_of(1) is PilotState.C, what="pilot C")
    assert not rig.core.request_close(1)
    assert not rig.contactor_closed()
    rig.connector_sim().contactor.mend_wire()
    # Welded latches until a technician clears it, once the mirror reads open again.
    assert not rig.core.request_close(1)
    await wait_until(lambda: rig.core.clear_by_technician(FaultKind.CONTACTOR_WELDED, 1),
                     what="technician clear")
    assert rig.core.request_close(1)
    await wait_until(rig.contactor_closed, what="contactor closed")


async def test_feedback_wire_cut_while_charging_reads_welded_once_open(rigs):
    rig = Rig(sim_config())
    rigs.append(rig)
    rig.core.start(self_test=False)
    rig.vehicle_wants_charge()
    await wait_until(lambda: rig.core.supervisor.pilot_of(1) is PilotState.C, what="pilot C")
    assert rig.core.request_close(1)
    await wait_until(rig.contactor_closed, what="contactor closed")
    rig.connector_sim().contactor.cut_wire()  # reads "closed", as the contacts are: no fault
    rig.core.request_open(1)
    await wait_until(lambda: (FaultKind.CONTACTOR_WELDED, 1) in rig.faults(), what="welded")
    assert not rig.core.request_close(1)


async def test_normally_open_feedback_hides_a_welded_contactor_behind_a_cut_wire(rigs):
    """The danger the default wiring avoids, shown once."""
    rig = Rig(sim_config(feedback_wiring="normally_open"))
    rigs.append(rig)
    contactor = rig.connector_sim().contactor
    contactor.weld()
    contactor.cut_wire()
    rig.core.start(self_test=False)
    await asyncio.sleep(0.3)  # many polls, well past the 50 ms feedback timeout
    assert (FaultKind.CONTACTOR_WELDED, 1) not in rig.faults()
    contactor.mend_wire()
    await wait_until(lambda: (FaultKind.CONTACTOR_WELDED, 1) in rig.faults(), what="welded")


def test_a_pi_with_normally_open_inputs_starts_and_warns(rigs):
    raw = tomllib.loads(SIM_TOML.read_text())
    raw["hardware"] = "pi"
    raw["emergency_stop"]["wiring"] = "normally_open"
    raw["connector"][0]["contactor"]["feedback_wiring"] = "normally_open"
    config = parse_config(raw)
    # The Pi's inputs on simulated pins, wired as its config says.
    rig = Rig(config, build_board(msgspec.structs.replace(config, hardware="sim")))
    rigs.append(rig)
    with capture_logs() as logs:
        rig.core.start(self_test=False)
    warned = [(entry["input"], entry["why"]) for entry in logs
              if entry["event"] == "safety.input_not_fail_safe"]
    assert [key for key, _ in warned] == ["emergency_stop", "connector[1].contactor"]
    assert all(entry["log_level"] == "warning" for entry in logs
               if entry["event"] == "safety.input_not_fail_safe")
    assert warned[0][1].startswith('wiring = "normally_open": a cut wire or a floating pin')
    rig.core.wait_for_first_poll()
    assert rig.core.monitor_current and rig.faults() == set()  # it runs, nothing tripped


def test_a_fail_safe_pi_starts_without_a_warning(rigs):
    raw = tomllib.loads(SIM_TOML.read_text())
    raw["hardware"] = "pi"
    config = parse_config(raw)
    rig = Rig(config, build_board(msgspec.structs.replace(config, hardware="sim")))
    rigs.append(rig)
    with capture_logs() as logs:
        rig.core.start(self_test=False)
    assert [e for e in logs if e["event"] in ("safety.input_not_fail_safe",
                                              "safety.contactor_unmonitored")] == []


def test_a_pi_contactor_without_a_mirror_contact_starts_and_warns(rigs):
    raw = tomllib.loads(SIM_TOML.read_text())
    raw["hardware"] = "pi"
    del raw["connector"][0]["contactor"]["feedback_pin"]
    config = parse_config(raw)
    rig = Rig(config, build_board(msgspec.structs.replace(config, hardware="sim")))
    rigs.append(rig)
    with capture_logs() as logs:
        rig.core.start(self_test=False)
    warned = [entry for entry in logs if entry["event"] == "safety.contactor_unmonitored"]
    assert [(e["contactor"], e["log_level"]) for e in warned] == [
        ("connector[1].contactor", "warning")]
    assert "welded contactor would go unseen" in warned[0]["why"]
