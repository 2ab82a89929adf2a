"""The technician's guarded hardware tests (``chargerfw test ...``) run inside the service.

Refused while a vehicle, a transaction or a fault is there; the connector shows Unavailable and
takes no session while the test runs in a thread under the safety supervisor's test rules; pilot
and status are restored after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chargerfw.diagnostics import (
    Refusal,
    run_contactor_sequence,
    run_lock_test,
    run_pilot_test,
    run_rcd_test,
)
from chargerfw.drivers.contactor import Contactor, ContactorFeedback
from chargerfw.drivers.types import PilotState
from chargerfw.runtime.connector import ConnectorController
from chargerfw.runtime.control import InvalidParams, Refused
from chargerfw.station.connector import PLUGGED, PilotMode, TxPhase
from chargerfw.station.faults import FaultKind
from chargerfw.station.safety import STATION_WIDE, FaultChanged, SafetySupervisor

if TYPE_CHECKING:
    from chargerfw.runtime.station import StationRuntime

PILOT_SETTLE_S = 2.0  # for the monitor to confirm the pilot behind our state F


class HardwareTests:
    """One hardware test at a time, over one runtime's parts."""

    def __init__(self, runtime: StationRuntime) -> None:
        self._rt = runtime
        self.running: str | None = None  # the test under way
        self.faults_seen: list[FaultChanged] | None = None  # raised while a test runs

    def note_fault(self, event: FaultChanged) -> None:
        """A fault the supervisor raised (on the loop's thread): a finding of a running test."""
        if event.active and self.faults_seen is not None:
            self.faults_seen.append(event)

    def _test_controller(self, connector: object) -> ConnectorController:
        if not isinstance(connector, int) or isinstance(connector, bool):
            raise InvalidParams(f"connector must be an integer, got {connector!r}")
        controller = self._rt.controllers.get(connector)
        if controller is None:
            raise InvalidParams(f"no connector {connector} (have {sorted(self._rt.controllers)})")
        return controller

    def _test_refusals(self, controllers: list[ConnectorController],
                       allowed_faults: frozenset[FaultKind] = frozenset()) -> None:
        """Refuse (-32000) while a test runs, a transaction runs or waits, a vehicle is
        connected, or a fault is active on the connectors under test (or station-wide)."""
        assert self._rt.supervisor is not None
        if self.running is not None:
            raise Refused(f"a {self.running} test is running: wait for it to end")
        for controller in controllers:
            cid = controller.id
            state = self._rt.connector_state(cid)
            if state.phase is TxPhase.RUNNING or controller.transaction is not None:
                raise Refused(f"a transaction runs on connector {cid}: stop it first")
            if state.phase is TxPhase.AUTHORIZED:
                raise Refused(f"connector {cid} is authorized for {state.id_tag} and waits for "
                              "a vehicle: cancel it (tap the card again) first")
            if state.pilot in PLUGGED:
                raise Refused(f"a vehicle is connected to connector {cid} (pilot "
                              f"{state.pilot.value}): unplug it first")
            # F is what we drive while Unavailable or latched Faulted: _settle_pilots looks
            # behind it. E, a missing diode, or F we do not drive: the pilot line is wrong.
            own_f = (state.pilot is PilotState.F
                     and self._rt.connector_outputs(cid).pilot.mode is PilotMode.STATE_F)
            if state.pilot is not PilotState.A and not own_f:
                raise Refused(f"connector {cid}: the pilot reads {state.pilot.value}: check "
                              "the cable and the pilot wiring first")
            active = sorted(f.kind.value for f in self._rt.supervisor.active_faults(cid)
                            if f.kind not in allowed_faults)
            if active:
                raise Refused(f"connector {cid}: fault(s) {', '.join(active)} active: "
                              "remove the cause (see `chargerfw faults --active`) first")

    async def _run_test(self, name: str, controllers: list[ConnectorController],
                        supervised: int | None, sequence: Callable[[], dict[str, Any]]
                        ) -> dict[str, Any]:
        """Pause the connectors (Unavailable, no session), run the blocking ``sequence`` off
        the loop under the supervisor's test rules, then restore pilot and status."""
        assert self._rt.supervisor is not None
        self.running = name
        self.faults_seen = []
        self._rt.emit("test.started", test=name, connectors=[c.id for c in controllers])
        ids = [c.id for c in controllers]
        self._rt.begin_test(name, ids)
        self._rt.supervisor.begin_test(supervised)
        try:
            await self._settle_pilots(controllers)
            result = await asyncio.to_thread(sequence)
            await asyncio.sleep(0)  # let fault events the monitor sent meanwhile arrive
        except Refusal as exc:
            raise Refused(f"{name} test aborted: {exc}") from None
        finally:
            self._rt.supervisor.end_test(supervised)
            faults, self.faults_seen = self.faults_seen, None
            self.running = None
            self._rt.end_test(ids)
        result["faults_raised"] = sorted({e.fault.kind.value for e in faults})
        self._rt.emit("test.ended", test=name, passed=result.get("passed"))
        return result

    async def _settle_pilots(self, controllers: list[ConnectorController]) -> None:
        """A connector we hold in state F (Unavailable, latched fault) gets +12 V so the
        monitor sees whether a vehicle is behind it; a vehicle refuses the test."""
        def pilot(controller: ConnectorController) -> PilotState:
            return self._rt.connector_state(controller.id).pilot

        held = [c for c in controllers if pilot(c) is PilotState.F]
        for controller in held:
            controller.devices.pilot.set_standby()
        deadline = time.monotonic() + PILOT_SETTLE_S
        while any(pilot(c) is PilotState.F for c in held):
            if time.monotonic() > deadline:
                raise Refused("the pilot stays in F on +12 V: check the pilot generator")
            await asyncio.sleep(0.02)
        for controller in held:
            reading = pilot(controller)
            if reading is not PilotState.A:
                raise Refused(f"connector {controller.id}: pilot reads {reading.value} on +12 V "
                              "(a vehicle or a wiring fault): unplug it first")

    async def test_contactor(self, connector: int = 1) -> dict[str, Any]:
        """Close and open the contactor through the supervisor (pilot A, no fault), checking
        the mirror. A contactor fault of its own does not refuse: the test shows it (a welded
        one is reported without being energised)."""
        controller = self._test_controller(connector)
        contactor = controller.devices.contactor
        if not contactor.has_feedback:
            raise InvalidParams(f"connector {controller.id} has no contactor feedback_pin")
        own = frozenset({FaultKind.CONTACTOR_WELDED, FaultKind.CONTACTOR_FAILED_TO_CLOSE})
        self._test_refusals([controller], allowed_faults=own)
        assert self._rt.supervisor is not None
        stand_in = _SupervisedTestContactor(self._rt.supervisor, controller.id, contactor)
        result = await self._run_test("contactor", [controller], controller.id,
                                      lambda: run_contactor_sequence(stand_in))
        # The monitor may act first (it opens a contactor that failed to close): its faults
        # are findings of the test too.
        raised = set(result["faults_raised"])
        still = {f.kind for f in self._rt.supervisor.active_faults(controller.id)}
        if FaultKind.CONTACTOR_WELDED in still or "contactor_welded" in raised:
            result["result"] = "welded"
        elif "contactor_failed_to_close" in raised and result["result"] == "ok":
            result["result"] = "failed_to_close"
        result["passed"] = result["result"] == "ok" and not raised
        result["connector"] = controller.id
        return result

    async def test_rcd(self) -> dict[str, Any]:
        """Pulse the RCM test output with every connector paused; the trip is seen and clears."""
        assert self._rt.board is not None
        rcm = self._rt.board.rcm
        if rcm is None or self._rt.config.rcm is None or self._rt.config.rcm.test_pin is None:
            raise Refused("the station has no [rcm] with a test_pin")
        controllers = list(self._rt.controllers.values())
        # The RCM's own trip is what the test is about; any other fault refuses.
        self._test_refusals(controllers, allowed_faults=frozenset())
        board = self._rt.board
        result = await self._run_test("rcd", controllers, STATION_WIDE,
                                      lambda: run_rcd_test(board))
        unexpected = set(result["faults_raised"]) - {FaultKind.RCD_TRIP.value}
        result["passed"] = bool(result["passed"]) and not unexpected
        return result

    async def test_pilot(self, connector: int = 1) -> dict[str, Any]:
        """Standby, 6/16/32 A PWM (capped at the connector's rating) and state F, each read
        back; the machine's pilot output is restored after."""
        controller = self._test_controller(connector)
        self._test_refusals([controller])
        devices, max_a = controller.devices, controller.section.max_current_a
        result = await self._run_test("pilot", [controller], controller.id,
                                      lambda: run_pilot_test(devices, max_a))
        result["connector"] = controller.id
        return result

    async def test_lock(self, connector: int = 1) -> dict[str, Any]:
        """Lock, then unlock, each confirmed by the feedback switch if there is one."""
        controller = self._test_controller(connector)
        if controller.devices.lock is None:
            raise InvalidParams(f"connector {controller.id} has no [connector.lock]")
        self._test_refusals([controller])
        devices = controller.devices
        result = await self._run_test("lock", [controller], controller.id,
                                      lambda: run_lock_test(devices))
        result["connector"] = controller.id
        return result


class _SupervisedTestContactor:
    """The contactor as the contactor test sees it in the service: it closes only through
    :meth:`SafetySupervisor.request_test_close` (no fault, no vehicle), never around it."""

    def __init__(self, supervisor: SafetySupervisor, connector_id: int,
                 contactor: Contactor) -> None:
        self._supervisor = supervisor
        self._connector_id = connector_id
        self._contactor = contactor

    @property
    def feedback_timeout_s(self) -> float:
        return self._contactor.feedback_timeout_s

    def close(self) -> None:
        if not self._supervisor.request_test_close(self._connector_id):
            raise Refusal("the safety supervisor refused to close the contactor (a fault, or "
                          "the pilot left A)")

    def open(self) -> None:
        self._supervisor.request_open(self._connector_id)

    def check_feedback(self) -> ContactorFeedback:
        return self._contactor.check_feedback()
