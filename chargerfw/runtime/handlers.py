"""The control socket's methods as the running service answers them: status, faults and fault
clearing, the latest meter sample, the next card on the reader, OCPP key changes, and the
technician's hardware tests (:mod:`chargerfw.runtime.hwtests`). Each takes its method's
request and returns its reply (:mod:`chargerfw.control.api`); the socket serves
:meth:`ControlHandlers.handlers`, and code in the same process (the fleet, the demo) calls
:meth:`ControlHandlers.call` with the same typed requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import time
import typing
from typing import TYPE_CHECKING, Any

from chargerfw import __version__
from chargerfw.control.api import (
    METHOD_NOT_FOUND,
    ActiveFault,
    BackendStatus,
    ChargingProfilesReply,
    ChargingProfilesRequest,
    CompositeScheduleStatus,
    ConfigSetReply,
    ConfigSetRequest,
    ConnectorMeter,
    ConnectorStatus,
    ControlError,
    CurrentLimitStatus,
    FaultClearReply,
    FaultClearRequest,
    FaultHistoryEntry,
    FaultsReply,
    FaultsRequest,
    FirmwareUpdateStatus,
    InvalidParams,
    LinkStatus,
    MeterSampleReply,
    MeterSampleRequest,
    Method,
    OutboxStatus,
    ReaderStatus,
    Refused,
    ReplyT,
    Request,
    ReservationStatus,
    RfidNextReply,
    RfidNextRequest,
    StatusReply,
    StatusRequest,
    TransactionStatus,
)
from chargerfw.control.server import Handler
from chargerfw.drivers.types import TagEvent
from chargerfw.ocpp.config_keys import ChangeStatus
from chargerfw.runtime.hwtests import HardwareTests
from chargerfw.station.charging_profiles import ChargingRateUnit, ProfileRejected
from chargerfw.station.enums import STATION
from chargerfw.station.technician import STILL_PRESENT, clear_refusal, condition_refusal

if TYPE_CHECKING:
    from chargerfw.runtime.station import StationRuntime


class ControlHandlers:
    """The service's answers to the control socket, over one runtime's parts."""

    def __init__(self, runtime: StationRuntime) -> None:
        self._rt = runtime
        self.tests = HardwareTests(runtime)
        self._served: dict[Method, Handler] | None = None  # for call(), once the station runs

    def handlers(self) -> dict[Method, Handler]:
        """Method -> handler, as the control socket serves them (``sim.*`` only on simulated
        hardware)."""
        handlers: dict[Method, Handler] = {
            Method.STATUS: self.status,
            Method.CHARGING_PROFILES: self.charging_profiles,
            Method.FAULTS: self.faults,
            Method.FAULT_CLEAR: self.clear_fault,
            Method.METER_SAMPLE: self.meter_sample,
            Method.RFID_NEXT: self.next_tap,
            Method.CONFIG_SET: self.set_ocpp_key,
            **self.tests.handlers(),
        }
        if self._rt.sim is not None:
            handlers.update(self._rt.sim.control_handlers())
        return handlers

    async def call(self, request: Request[ReplyT]) -> ReplyT:
        """Answer a request made in this process, as the socket would (its errors raised)."""
        if self._served is None:
            self._served = self.handlers()
        handler = self._served.get(request.method)
        if handler is None:
            raise ControlError(METHOD_NOT_FOUND, f"unknown method {request.method.value!r}")
        reply: Any = handler(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return typing.cast(ReplyT, reply)

    # -- status ---------------------------------------------------------------------------

    def status(self, request: StatusRequest) -> StatusReply:
        rt = self._rt
        assert rt.client is not None
        snapshot = rt.client.status_snapshot()
        return StatusReply(
            station=rt.config.station.id,
            firmware_version=__version__,
            hardware=rt.config.hardware,
            started_at=rt.started_at,
            available=rt.station_available,
            connectors=[self.connector_status(cid) for cid in rt.controllers],
            backend=BackendStatus(
                url=rt.config.ocpp.url if rt.config.ocpp else None,
                online=snapshot["online"],
                registration=snapshot["registration"],
                link=LinkStatus(**snapshot["link"]),
                clock_offset_s=snapshot["clock_offset_s"],
            ),
            outbox=OutboxStatus(snapshot["outbox_pending"], snapshot["outbox_dead"]),
            faults=self._active_faults(),
            reader=None if rt.reader is None else ReaderStatus(rt.reader.name,
                                                                 rt.reader.available),
            firmware=FirmwareUpdateStatus(**rt.firmware.snapshot()),
        )

    def connector_status(self, connector_id: int) -> ConnectorStatus:
        """One connector as the status shows it (KeyError if there is no such connector)."""
        controller = self._rt.controllers[connector_id]
        state = self._rt.connector_state(connector_id)
        out = self._rt.connector_outputs(connector_id)
        tx = controller.transaction
        sample = controller.latest_sample
        transaction = None
        if tx is not None:
            energy_now = sample.energy_import_wh if sample is not None else tx.meter_start_wh
            transaction = TransactionStatus(
                local_id=tx.local_id, transaction_id=tx.backend_tx_id, id_tag=tx.id_tag,
                started_at=tx.started_at, meter_start_wh=tx.meter_start_wh,
                energy_wh=round(max(0.0, energy_now - tx.meter_start_wh), 1))
        return ConnectorStatus(
            id=connector_id,
            status=out.status,
            error_code=out.error_code,
            vendor_error_code=out.vendor_error_code,
            pilot=state.pilot,
            pilot_output=out.pilot.mode,
            current_limit_a=out.offered_current_a,
            contactor_closed=self._rt.safety.contactor_closed(controller.id),
            availability=state.availability,
            scheduled_availability=state.scheduled_availability,
            phase=state.phase,
            reservation=None if state.reservation is None else ReservationStatus(
                state.reservation.reservation_id, state.reservation.id_tag),
            transaction=transaction,
            starting=controller.starting,
            under_test=state.under_test,
            temperature_c=controller.temperature_c,
            limit=CurrentLimitStatus(**self._rt.smart_charging.snapshot(connector_id)),
            meter=None if sample is None else ConnectorMeter(
                age_s=round(time.time() - sample.timestamp, 1),
                energy_import_wh=sample.energy_import_wh,
                power_w=sample.power_w,
                voltage_v=[sample.voltage_l1_v, sample.voltage_l2_v, sample.voltage_l3_v],
                current_a=[sample.current_l1_a, sample.current_l2_a, sample.current_l3_a],
                frequency_hz=sample.frequency_hz,
            ),
        )

    def charging_profiles(self, request: ChargingProfilesRequest) -> ChargingProfilesReply:
        smart = self._rt.smart_charging
        ids = [0, *self._rt.controllers] if request.connector is None else [request.connector]
        unit = ChargingRateUnit.AMPS if request.unit == "A" else ChargingRateUnit.WATTS
        try:
            schedules = [smart.composite(cid, request.duration_s, unit) for cid in ids]
        except ProfileRejected as exc:
            raise InvalidParams(str(exc)) from None
        return ChargingProfilesReply(smart.profiles_snapshot(),
                                     [CompositeScheduleStatus.of(s) for s in schedules])

    def _active_faults(self) -> list[ActiveFault]:
        return [ActiveFault.of(f) for f in sorted(self._rt.safety.active_faults(),
                                                   key=lambda f: (f.timestamp, f.kind.value))]

    # -- faults ---------------------------------------------------------------------------

    def faults(self, request: FaultsRequest) -> FaultsReply:
        assert self._rt.store is not None
        history = None
        if request.history:
            history = [FaultHistoryEntry(r.code, r.connector_id, r.detail, r.raised_at,
                                         r.cleared_at, r.needs_technician)
                       for r in self._rt.store.faults(limit=request.limit)]
        return FaultsReply(self._active_faults(), history)

    def clear_fault(self, request: FaultClearRequest) -> FaultClearReply:
        """A technician's clear (:func:`~chargerfw.station.technician.clear_refusal`); the
        supervisor clears only once the condition is gone."""
        safety = self._rt.safety
        kind, connector = request.kind, request.connector
        if connector != STATION and connector not in self._rt.controllers:
            raise InvalidParams(f"no connector {connector}")
        where = "the station" if connector == STATION else f"connector {connector}"
        active = any(f.kind is kind and f.connector_id == connector
                     for f in safety.active_faults())
        refusal = clear_refusal(kind, where, active=active)
        if refusal is None and not safety.clear_by_technician(kind, connector):
            refusal = condition_refusal(kind, STILL_PRESENT)
        if refusal is not None:
            raise Refused(refusal)
        return FaultClearReply(kind, connector)

    # -- meter, reader, keys --------------------------------------------------------------

    def meter_sample(self, request: MeterSampleRequest) -> MeterSampleReply | None:
        """The connector's latest meter sample and its age, or None."""
        controller = self._rt.controllers.get(request.connector)
        if controller is None:
            raise InvalidParams(f"no connector {request.connector!r}")
        sample = controller.latest_sample
        if sample is None:
            return None
        return MeterSampleReply(**dataclasses.asdict(sample),
                                age_s=round(time.time() - sample.timestamp, 1))

    async def next_tap(self, request: RfidNextRequest) -> RfidNextReply:
        """Wait for the next card presented to the station's reader (the station handles it as
        usual too); ``id_tag`` None if none came within ``wait_s``."""
        reader = self._rt.reader
        if reader is None:
            raise Refused("the station has no [reader]")
        if not 0 < request.wait_s <= 3600:
            raise InvalidParams("wait_s must be > 0 and <= 3600")
        future: asyncio.Future[TagEvent] = asyncio.get_running_loop().create_future()
        self._rt.tap_waiters.append(future)
        try:
            event = await asyncio.wait_for(future, request.wait_s)
        except TimeoutError:
            return RfidNextReply(None, reader.name)
        finally:
            with contextlib.suppress(ValueError):
                self._rt.tap_waiters.remove(future)
        return RfidNextReply(event.id_tag, event.reader, event.uid.hex().upper(),
                             event.timestamp)

    def set_ocpp_key(self, request: ConfigSetRequest) -> ConfigSetReply:
        """ChangeConfiguration from the technician: validated and persisted like the
        backend's, applied at once (the same listeners run)."""
        client = self._rt.client
        assert client is not None
        status, reason = client.keys.change(request.key, request.value)
        if status in (ChangeStatus.ACCEPTED, ChangeStatus.REBOOT_REQUIRED):
            client.after_configuration_change()
        return ConfigSetReply(request.key, status, reason)
