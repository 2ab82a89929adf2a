"""The technician's guarded hardware tests (``chargerfw test ...``) run inside the service.

Refused while a vehicle, a transaction or a fault is there; the connector shows Unavailable and
takes no session while the test runs in a thread under the safety supervisor's test rules; pilot
and status are restored after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec

from chargerfw.control.api import (
    ContactorTestReply,
    ContactorTestRequest,
    ContactorVerdict,
    InvalidParams,
    LockTestReply,
    LockTestRequest,
    Method,
    PilotTestReply,
    PilotTestRequest,
    RcdTestReply,
    RcdTestRequest,
    Refused,
)
from chargerfw.control.sequences import (
    Refusal,
    run_contactor_sequence,
    run_lock_test,
    run_pilot_test,
    run_rcd_test,
)
from chargerfw.control.server import Handler
from chargerfw.drivers.contactor import Contactor, ContactorFeedback
from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.runtime.connector import ConnectorController
from chargerfw.station.enums import STATION, TxPhase
from chargerfw.station.faults import FaultKind
from chargerfw.station.safety import FaultChanged, SafetySupervisor
from chargerfw.station.technician import ConnectorView, HardwareTest, hardware_test_refusal

if TYPE_CHECKING:
    from chargerfw.runtime.station import StationRuntime

PILOT_SETTLE_S = 2.0  # for the monitor to confirm the pilot behind our state F

ResultT = TypeVar("ResultT")


class HardwareTests:
    """One hardware test at a time, over one runtime's parts."""

    def __init__(self, runtime: StationRuntime) -> None:
        self._rt = runtime
        self.running: HardwareTest | None = None  # the test under way
        self.faults_seen: list[FaultChanged] | None = None  # raised while a test runs

    def handlers(self) -> dict[Method, Handler]:
        return {Method.TEST_CONTACTOR: self.test_contactor, Method.TEST_RCD: self.test_rcd,
                Method.TEST_PILOT: self.test_pilot, Method.TEST_LOCK: self.test_lock}

    def note_fault(self, event: FaultChanged) -> None:
        """A fault the supervisor raised (on the loop's thread): a finding of a running test."""
        if event.active and self.faults_seen is not None:
            self.faults_seen.append(event)

    def _test_controller(self, connector: int) -> ConnectorController:
        controller = self._rt.controllers.get(connector)
        if controller is None:
            raise InvalidParams(f"no connector {connector} (have {sorted(self._rt.controllers)})")
        return controller

    def _view(self, controller: ConnectorController) -> ConnectorView:
        """What the refusals look at on one connector, as the station core holds it."""
        cid = controller.id
        state = self._rt.connector_state(cid)
        return ConnectorView(
            cid,
            transaction_running=(state.phase is TxPhase.RUNNING
                                 or controller.transaction is not None),
            authorized_for=state.id_tag if state.phase is TxPhase.AUTHORIZED else None,
            pilot=state.pilot,
            pilot_f_is_ours=self._rt.connector_outputs(cid).pilot.mode is PilotMode.STATE_F,
            active_faults=frozenset(f.kind for f in self._rt.local_safety.supervisor.active_faults(cid)))

    def _refuse(self, test: HardwareTest, controllers: list[ConnectorController]) -> None:
        """Refused (-32000) while a test runs, a transaction runs or waits, a vehicle is
        connected, the pilot reads wrong, or a fault is active on the connectors under test."""
        refusal = hardware_test_refusal(test, [self._view(c) for c in controllers],
                                        self.running)
        if refusal is not None:
            raise Refused(refusal)

    async def _run_test(self, test: HardwareTest, controllers: list[ConnectorController],
                        supervised: int, sequence: Callable[[], ResultT]
                        ) -> tuple[ResultT, list[FaultKind]]:
        """Pause the connectors (Unavailable, no session), run the blocking ``sequence`` off
        the loop under the supervisor's test rules, then restore pilot and status. Returns the
        sequence's result and the faults raised meanwhile."""
        self.running = test
        self.faults_seen = []
        ids = [c.id for c in controllers]
        self._rt.emit("test.started", test=test.value, connectors=ids)
        self._rt.begin_test(test.value, ids)
        self._rt.local_safety.supervisor.begin_test(supervised)
        try:
            await self._settle_pilots(controllers)
            result = await asyncio.to_thread(sequence)
            await asyncio.sleep(0)  # let fault events the monitor sent meanwhile arrive
        except Refusal as exc:
            raise Refused(f"{test.value} test aborted: {exc}") from None
        finally:
            self._rt.local_safety.supervisor.end_test(supervised)
            faults, self.faults_seen = self.faults_seen, None
            self.running = None
            self._rt.end_test(ids)
        self._rt.emit("test.ended", test=test.value, passed=getattr(result, "passed", None))
        return result, sorted({e.fault.kind for e in faults})

    async def _settle_pilots(self, controllers: list[ConnectorController]) -> None:
        """A connector we hold in state F (Unavailable, latched fault) gets +12 V so the
        monitor sees whether a vehicle is behind it; a vehicle refuses the test."""
        def pilot(controller: ConnectorController) -> PilotState:
            return self._rt.connector_state(controller.id).pilot

        held = [c for c in controllers if pilot(c) is PilotState.F]
        for controller in held:
            self._rt.board.connectors[controller.id].pilot.set_standby()
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

    async def test_contactor(self, request: ContactorTestRequest) -> ContactorTestReply:
        """Close and open the contactor through the supervisor (pilot A, no fault), checking
        the mirror. A contactor fault of its own does not refuse: the test shows it (a welded
        one is reported without being energised)."""
        controller = self._test_controller(request.connector)
        contactor = self._rt.board.connectors[controller.id].contactor
        if not contactor.has_feedback:
            raise InvalidParams(f"connector {controller.id} has no contactor feedback_pin")
        self._refuse(HardwareTest.CONTACTOR, [controller])
        cid = controller.id
        stand_in = _SupervisedTestContactor(self._rt.local_safety.supervisor, cid, contactor)
        result, raised = await self._run_test(HardwareTest.CONTACTOR, [controller], cid,
                                              lambda: run_contactor_sequence(stand_in, cid))
        # The monitor may act first (it opens a contactor that failed to close): its faults
        # are findings of the test too.
        still = {f.kind for f in self._rt.local_safety.supervisor.active_faults(cid)}
        verdict = result.result
        if FaultKind.CONTACTOR_WELDED in still or FaultKind.CONTACTOR_WELDED in raised:
            verdict = ContactorVerdict.WELDED
        elif (FaultKind.CONTACTOR_FAILED_TO_CLOSE in raised
              and verdict is ContactorVerdict.OK):
            verdict = ContactorVerdict.FAILED_TO_CLOSE
        return msgspec.structs.replace(result, result=verdict, faults_raised=raised,
                                       passed=verdict is ContactorVerdict.OK and not raised)

    async def test_rcd(self, request: RcdTestRequest) -> RcdTestReply:
        """Pulse the RCM test output with every connector paused; the trip is seen and clears."""
        board = self._rt.board
        assert board is not None
        rcm = board.rcm
        if rcm is None or self._rt.config.rcm is None or self._rt.config.rcm.test_pin is None:
            raise Refused("the station has no [rcm] with a test_pin")
        controllers = list(self._rt.controllers.values())
        # The RCM's own trip is what the test is about; any other fault refuses.
        self._refuse(HardwareTest.RCD, controllers)
        result, raised = await self._run_test(HardwareTest.RCD, controllers, STATION,
                                              lambda: run_rcd_test(board))
        unexpected = set(raised) - {FaultKind.RCD_TRIP}
        return msgspec.structs.replace(result, faults_raised=raised,
                                       passed=result.passed and not unexpected)

    async def test_pilot(self, request: PilotTestRequest) -> PilotTestReply:
        """Standby, 6/16/32 A PWM (capped at the connector's rating) and state F, each read
        back; the machine's pilot output is restored after."""
        controller = self._test_controller(request.connector)
        self._refuse(HardwareTest.PILOT, [controller])
        devices, max_a = self._rt.board.connectors[controller.id], controller.section.max_current_a
        result, raised = await self._run_test(HardwareTest.PILOT, [controller], controller.id,
                                              lambda: run_pilot_test(devices, max_a))
        return msgspec.structs.replace(result, faults_raised=raised)

    async def test_lock(self, request: LockTestRequest) -> LockTestReply:
        """Lock, then unlock, each confirmed by the feedback switch if there is one."""
        controller = self._test_controller(request.connector)
        if self._rt.board.connectors[controller.id].lock is None:
            raise InvalidParams(f"connector {controller.id} has no [connector.lock]")
        self._refuse(HardwareTest.LOCK, [controller])
        devices = self._rt.board.connectors[controller.id]
        result, raised = await self._run_test(HardwareTest.LOCK, [controller], controller.id,
                                              lambda: run_lock_test(devices))
        return msgspec.structs.replace(result, faults_raised=raised)


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
