"""The safety core on a simulated board: the RCM self-test at start-up and before a close, and
what a failing one refuses."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_helpers import sim_station_config

from chargerfw.drivers.board import Board, build_board
from chargerfw.drivers.gpio import SimulatedPin
from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.safety.core import PilotCommand, SafetyCore
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FAULT_SPECS, FaultKind
from chargerfw.station.safety import FaultChanged, SafetyEvent, SafetySettings
from chargerfw.station.technician import HardwareTest

pytestmark = pytest.mark.timeout(30)


def settle(predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.005)


@contextlib.contextmanager
def core_on(tmp_path: Path, prepare: Callable[[Board], None] | None = None
            ) -> Iterator[tuple[SafetyCore, Board, list[SafetyEvent]]]:
    _, config = sim_station_config(tmp_path, "ws://127.0.0.1:9/ocpp")
    board = build_board(config)
    if prepare is not None:
        prepare(board)
    events: list[SafetyEvent] = []
    core = SafetyCore(config, board, events.append, SafetySettings(poll_interval_s=0.02))
    core.start()
    try:
        yield core, board, events
    finally:
        core.stop()
        board.close()


def rcm_test_pulses(core: SafetyCore) -> list[bool]:
    """Every level the RCM's test output is driven to."""
    assert core.config.rcm is not None and core.config.rcm.test_pin is not None
    pin = core.board.pin_factory.pin(core.config.rcm.test_pin)
    assert isinstance(pin, SimulatedPin)
    levels: list[bool] = []
    pin.on_output_change(lambda p: levels.append(p.state))
    return levels


def vehicle_asks(core: SafetyCore, board: Board) -> None:
    parts = board.connectors[1].sim
    assert parts is not None
    parts.vehicle.plug_in()
    core.set_pilot(1, PilotCommand(PilotMode.PWM, 16.0))
    parts.vehicle.request_charge()
    settle(lambda: core.pilot(1) is PilotState.C, "pilot C")


def faults(events: list[SafetyEvent]) -> list[tuple[FaultKind, int, bool]]:
    return [(e.fault.kind, e.fault.connector_id, e.active) for e in events
            if isinstance(e, FaultChanged)]


def test_an_rcm_deaf_to_its_test_at_start_up_refuses_charging(tmp_path):
    def deaf(board: Board) -> None:
        assert board.sim is not None and board.sim.rcm is not None
        board.sim.rcm.break_self_test()

    with core_on(tmp_path, deaf) as (core, board, events):
        # start() returned after the start-up test: the fault is there already.
        assert faults(events) == [(FaultKind.RCM_SELF_TEST_FAILED, STATION, True)]
        spec = FAULT_SPECS[FaultKind.RCM_SELF_TEST_FAILED]
        assert spec.opens_contactor and spec.error_code.value == "GroundFailure"
        vehicle_asks(core, board)
        assert core.request_close(1) is False
        time.sleep(0.1)
        assert not core.contactor_closed(1)


def test_every_close_is_preceded_by_a_passing_self_test(tmp_path):
    with core_on(tmp_path) as (core, board, events):
        pulses = rcm_test_pulses(core)
        vehicle_asks(core, board)
        assert core.request_close(1)
        settle(lambda: core.contactor_closed(1), "contactor closed")
        assert pulses == [True, False]  # one pulse, before the coil closed
        assert faults(events) == []  # the test's own trip is no RCD fault


def test_an_rcm_that_stops_following_its_test_refuses_the_next_close(tmp_path):
    with core_on(tmp_path) as (core, board, events):
        assert board.sim is not None and board.sim.rcm is not None
        board.sim.rcm.break_self_test()
        vehicle_asks(core, board)
        core.request_close(1)  # accepted for testing; the test fails
        settle(lambda: (FaultKind.RCM_SELF_TEST_FAILED, STATION, True) in faults(events),
               "rcm_self_test_failed raised")
        time.sleep(0.1)
        assert not core.contactor_closed(1)
        assert core.request_close(1) is False  # and every request after


def test_a_passing_technician_rcd_test_clears_the_self_test_fault(tmp_path):
    def deaf(board: Board) -> None:
        assert board.sim is not None and board.sim.rcm is not None
        board.sim.rcm.break_self_test()

    with core_on(tmp_path, deaf) as (core, board, events):
        assert board.sim is not None and board.sim.rcm is not None
        failed = core.run_test(HardwareTest.RCD)
        assert failed.passed is False
        board.sim.rcm.self_test_works = True  # the RCM replaced
        repaired = core.run_test(HardwareTest.RCD)
        assert repaired.passed is True
        assert faults(events)[-1] == (FaultKind.RCM_SELF_TEST_FAILED, STATION, False)
        vehicle_asks(core, board)
        assert core.request_close(1)
        settle(lambda: core.contactor_closed(1), "contactor closed")
