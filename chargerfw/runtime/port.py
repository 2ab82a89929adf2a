"""The OCPP port: backend commands turned into station-core events, answers in wire spelling.

:class:`BackendPort` implements the OCPP client's
:class:`~chargerfw.ocpp.station_port.StationPort`. The decisions are the core's
(:mod:`chargerfw.station.station`); what is left here is what only the runtime can do: drive the
lock for UnlockConnector, restart for Reset, and remember the backend's idTagInfo.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from chargerfw.logs import get_logger
from chargerfw.ocpp.station_port import (
    AvailabilityAnswer,
    ReservationAnswer,
    ResetKind,
    SignedUpdateAnswer,
    UnlockAnswer,
)
from chargerfw.runtime.core import CoreRunner, Emit
from chargerfw.runtime.firmware import FirmwareUpdater
from chargerfw.runtime.smart_charging import SmartCharging
from chargerfw.station import connector as cn
from chargerfw.station.auth import IdTagInfo, InvalidIdTagError, InvalidIdTagInfoError
from chargerfw.station.charging_profiles import (
    ChargingProfile,
    ChargingRateUnit,
    ClearCriteria,
    CompositeSchedule,
    ProfileRejected,
)
from chargerfw.station.enums import AuthorizationStatus, Availability, StopReason
from chargerfw.station.firmware import FirmwareRequest
from chargerfw.station.station import (
    AvailabilityOutcome,
    AvailabilityRequested,
    CancelOutcome,
    ConnectorEvent,
    RemoteStartOutcome,
    RemoteStartRequested,
    RemoteStopOutcome,
    RemoteStopRequested,
    ReservationCancelRequested,
    ReservationOutcome,
    ReservationRequested,
    StopAll,
    UnlockRequested,
)

log = get_logger(__name__)


T = TypeVar("T")


def _answer(actions: Sequence[object], kind: type[T]) -> T:
    """The core's answer to a request among the actions it returned."""
    return next(a for a in actions if isinstance(a, kind))


class BackendPort:
    """What the backend asks of the station, carried out through the core."""

    def __init__(self, core: CoreRunner, smart_charging: SmartCharging,
                 firmware: FirmwareUpdater, *, emit: Emit,
                 restart: Callable[[ResetKind], None]) -> None:
        self._core = core
        self._smart = smart_charging
        self._firmware = firmware
        self._emit = emit
        self._restart = restart

    def update_firmware(self, request: FirmwareRequest) -> str | None:
        if not self._firmware.section.allow_unsigned_update_firmware:
            log.warning("firmware.unsigned_update_refused")
            return "unsigned UpdateFirmware is disabled on this station"
        self._firmware.request(request)
        self._emit("firmware.update_requested", retrieve_at=request.retrieve_at, log_it=False)
        return None

    def signed_update_firmware(self, request: FirmwareRequest) -> SignedUpdateAnswer:
        # Not subject to allow_unsigned_update_firmware: this is the update it leaves allowed.
        answer = self._firmware.signed_request(request)
        self._emit("firmware.signed_update_requested", request_id=request.request_id,
                   answer=answer, log_it=False)
        return cast(SignedUpdateAnswer, answer)

    def firmware_status(self) -> str:
        return self._firmware.status

    def remote_start(self, id_tag: str, connector_id: int | None, authorize: bool,
                     charging_profile: ChargingProfile | None = None) -> bool:
        if charging_profile is not None:
            # Refused before anything starts: a start is never accepted without its profile.
            self._smart.check_remote_start_profile(connector_id, charging_profile)
        outcome = _answer(self._core.apply(RemoteStartRequested(id_tag, connector_id, authorize)),
                          RemoteStartOutcome)
        if outcome.accepted and charging_profile is not None:
            assert outcome.connector_id is not None
            try:
                self._smart.remote_start_profile(outcome.connector_id, charging_profile)
            except ProfileRejected:
                # Not expected after the check; the start is withdrawn rather than run
                # without its profile.
                self._core.apply(ConnectorEvent(outcome.connector_id,
                                                cn.StopRequested(StopReason.REMOTE)))
                raise
        if outcome.accepted:
            self._emit("remote.start", id_tag=id_tag, connector=outcome.connector_id)
        return outcome.accepted

    def set_charging_profile(self, connector_id: int, profile: ChargingProfile) -> None:
        self._smart.set_profile(connector_id, profile)

    def clear_charging_profile(self, criteria: ClearCriteria) -> bool:
        return self._smart.clear(criteria)

    def composite_schedule(self, connector_id: int, duration_s: int,
                           unit: ChargingRateUnit | None) -> CompositeSchedule:
        return self._smart.composite(connector_id, duration_s, unit)

    def remote_stop(self, connector_id: int) -> bool:
        outcome = _answer(self._core.apply(RemoteStopRequested(connector_id)), RemoteStopOutcome)
        if outcome.accepted:
            self._emit("remote.stop", connector=connector_id)
        return outcome.accepted

    def change_availability(self, connector_id: int, operative: bool) -> AvailabilityAnswer:
        availability = Availability.OPERATIVE if operative else Availability.INOPERATIVE
        actions = self._core.apply(AvailabilityRequested(connector_id, availability))
        status = _answer(actions, AvailabilityOutcome).status
        self._emit("availability.changed", connector=connector_id, operative=operative,
                   answer=status.value)
        return status.value

    async def unlock(self, connector_id: int) -> UnlockAnswer:
        controller = self._core.controllers.get(connector_id)
        if controller is None:
            return "NotSupported"
        self._core.apply(UnlockRequested(connector_id))
        if not controller.safety.has_lock(connector_id):
            return "NotSupported"
        result = await asyncio.to_thread(controller.safety.drive_lock, connector_id, False)
        return "Unlocked" if str(result) == "unlocked" else "UnlockFailed"

    async def reset(self, kind: ResetKind) -> None:
        self._emit("station.reset", kind=kind)
        self._core.apply(StopAll(StopReason.HARD_RESET if kind == "Hard"
                                 else StopReason.SOFT_RESET))
        self._restart(kind)

    def reserve_now(self, connector_id: int, expires_at: float, id_tag: str,
                    reservation_id: int, parent_id_tag: str | None) -> ReservationAnswer:
        reservation = cn.Reservation(reservation_id, id_tag, parent_id_tag, expires_at)
        actions = self._core.apply(ReservationRequested(connector_id, reservation, time.time()))
        status = _answer(actions, ReservationOutcome).status
        self._emit("reservation.requested", connector=connector_id, id_tag=id_tag,
                   reservation_id=reservation_id, status=status.value)
        return status.value

    def cancel_reservation(self, reservation_id: int) -> bool:
        return _answer(self._core.apply(ReservationCancelRequested(reservation_id)),
                       CancelOutcome).cancelled

    def transaction_confirmed(self, connector_id: int, local_id: int, transaction_id: int,
                              id_tag: str, id_tag_info: dict[str, str]) -> None:
        controller = self._core.controllers.get(connector_id)
        if controller is None:
            return
        tx = controller.transaction
        if tx is None or tx.local_id != local_id:
            return  # confirmed after it ended (delivered late from the outbox)
        tx.backend_tx_id = transaction_id
        self._emit("transaction.confirmed", connector=connector_id, local_id=local_id,
                   transaction_id=transaction_id, status=id_tag_info.get("status"))
        try:
            status = AuthorizationStatus(id_tag_info.get("status", ""))
        except ValueError:
            log.warning("station.bad_start_status", status=id_tag_info.get("status"))
            return
        self._core.apply(ConnectorEvent(connector_id, cn.StartConfirmed(status)))

    def id_tag_info_received(self, id_tag: str, id_tag_info: dict[str, str]) -> None:
        try:
            self._core.authorizer.remember(id_tag, IdTagInfo.from_wire(id_tag_info))
        except (InvalidIdTagInfoError, InvalidIdTagError) as exc:
            log.warning("auth.bad_id_tag_info", error=str(exc))
