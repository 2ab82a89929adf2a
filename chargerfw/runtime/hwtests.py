"""The technician's guarded hardware tests (``chargerfw test ...``) asked of the running service.

Refused while a vehicle, a transaction or a fault is there (:mod:`chargerfw.station.technician`,
the same rules as with the service stopped); the connectors show Unavailable and take no session
while the safety core runs the test under its interlocks (:meth:`SafetyPort.run_test`, in this
process or in the safety process); their pilot and status are restored after.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypeVar, cast

from chargerfw.control.api import (
    ContactorTestReply,
    ContactorTestRequest,
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
from chargerfw.control.server import Handler
from chargerfw.drivers.types import PilotMode
from chargerfw.runtime.connector import ConnectorController
from chargerfw.safety.results import HardwareTestReply
from chargerfw.safety.sequences import Refusal
from chargerfw.station.enums import STATION, TxPhase
from chargerfw.station.technician import ConnectorView, HardwareTest, hardware_test_refusal

if TYPE_CHECKING:
    from chargerfw.runtime.station import StationRuntime

ReplyT = TypeVar("ReplyT", bound=HardwareTestReply)


class HardwareTests:
    """One hardware test at a time, over one runtime's parts."""

    def __init__(self, runtime: StationRuntime) -> None:
        self._rt = runtime
        self.running: HardwareTest | None = None  # the test under way

    def handlers(self) -> dict[Method, Handler]:
        return {
            Method.TEST_CONTACTOR: self.test_contactor,
            Method.TEST_RCD: self.test_rcd,
            Method.TEST_PILOT: self.test_pilot,
            Method.TEST_LOCK: self.test_lock,
        }

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
            transaction_running=(
                state.phase is TxPhase.RUNNING or controller.transaction is not None
            ),
            authorized_for=state.id_tag if state.phase is TxPhase.AUTHORIZED else None,
            pilot=state.pilot,
            pilot_f_is_ours=self._rt.connector_outputs(cid).pilot.mode is PilotMode.STATE_F,
            active_faults=frozenset(f.kind for f in self._rt.safety.active_faults(cid)),
        )

    async def _run(
        self,
        test: HardwareTest,
        controllers: list[ConnectorController],
        connector_id: int,
        reply_type: type[ReplyT],
    ) -> ReplyT:
        """Refuse (-32000) what the technician rules refuse; pause the connectors; run the
        test off the loop in the safety core; restore the connectors."""
        refusal = hardware_test_refusal(test, [self._view(c) for c in controllers], self.running)
        if refusal is not None:
            raise Refused(refusal)
        self.running = test
        ids = [c.id for c in controllers]
        self._rt.emit("test.started", test=test.value, connectors=ids)
        self._rt.begin_test(test.value, ids)
        try:
            result = await asyncio.to_thread(self._rt.safety.run_test, test, connector_id)
        except Refusal as exc:
            raise Refused(f"{test.value} test aborted: {exc}") from None
        finally:
            self.running = None
            self._rt.end_test(ids)
        self._rt.emit("test.ended", test=test.value, passed=result.passed)
        return cast(ReplyT, result)

    async def test_contactor(self, request: ContactorTestRequest) -> ContactorTestReply:
        """Close and open the contactor through the interlocks (pilot A, no fault), checking
        the mirror. A contactor fault of its own does not refuse: the test shows it (a welded
        one is reported without being energised)."""
        controller = self._test_controller(request.connector)
        if controller.section.contactor.feedback_pin is None:
            raise InvalidParams(f"connector {controller.id} has no contactor feedback_pin")
        return await self._run(
            HardwareTest.CONTACTOR, [controller], controller.id, ContactorTestReply
        )

    async def test_rcd(self, request: RcdTestRequest) -> RcdTestReply:
        """Pulse the RCM test output with every connector paused; the trip is seen and clears."""
        rcm = self._rt.config.rcm
        if rcm is None or rcm.test_pin is None:
            raise Refused("the station has no [rcm] with a test_pin")
        return await self._run(
            HardwareTest.RCD, list(self._rt.controllers.values()), STATION, RcdTestReply
        )

    async def test_pilot(self, request: PilotTestRequest) -> PilotTestReply:
        """Standby, 6/16/32 A PWM (capped at the connector's rating) and state F, each read
        back; the machine's pilot output is restored after."""
        controller = self._test_controller(request.connector)
        return await self._run(HardwareTest.PILOT, [controller], controller.id, PilotTestReply)

    async def test_lock(self, request: LockTestRequest) -> LockTestReply:
        """Lock, then unlock, each confirmed by the feedback switch if there is one."""
        controller = self._test_controller(request.connector)
        if controller.section.lock is None:
            raise InvalidParams(f"connector {controller.id} has no [connector.lock]")
        return await self._run(HardwareTest.LOCK, [controller], controller.id, LockTestReply)
