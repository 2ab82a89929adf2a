"""One link's OCPP 1.6 endpoint: the ``ocpp`` library's ChargePoint with our handlers.

Every frame from the backend passes :func:`~chargerfw.ocppj.frames.check_frame` first; a
well-formed CALL for an action we handle goes to the library's ``route_message``, which runs
the handlers registered with ``@on``/``@after`` and hands answers to our CALLs to ``call()``.
The handlers only translate between the wire and :class:`BackendCommands`.

One outstanding CALL at a time: every CALL goes through the library's ``call()``, which
sends the next one only after the answer to the last (or its timeout). When the link closes
(:meth:`ChargePoint16.link_closed`), a CALL still waiting for its answer ends at once with
:class:`LinkClosed` instead of waiting out its timeout: a card tap's Authorize falls back to
the offline rules then and there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as LibraryChargePoint
from ocpp.v16 import call_result
from ocpp.v16.datatypes import KeyValue
from ocpp.v16.enums import Action

from chargerfw.logs import get_logger
from chargerfw.ocpp.connection import Transport
from chargerfw.ocpp.v16.certificates import StationCertificates
from chargerfw.ocpp.v16.commands import BackendCommands
from chargerfw.ocpp.v16.frame_guard import FrameGuard
from chargerfw.ocppj.frames import Answer, FrameVerdict, Ignore, Route, check_frame
from chargerfw.ocppj.library_log import LIBRARY_LOGGER

log = get_logger(__name__)

_T = TypeVar("_T")


class LinkClosed(ConnectionError):
    """The link closed while a CALL waited for its answer (or before it was sent)."""


class LinkOwner(Protocol):
    """What a link's charge point needs from the client that owns it."""

    def may_answer_backend(self) -> bool:
        """False while the backend has Rejected us: its CALLs get no answer."""
        ...

    def after_configuration_change(self) -> None:
        """Runs after a ChangeConfiguration reply went out."""
        ...

    async def run_trigger(self, cp: ChargePoint16, message: str,
                          connector_id: int | None) -> None:
        """Send what an Accepted TriggerMessage asked for, after the reply went out."""
        ...

    async def run_extended_trigger(self, cp: ChargePoint16, message: str,
                                   connector_id: int | None) -> None:
        """Send what an Accepted ExtendedTriggerMessage asked for, after the reply went out."""
        ...


class ChargePoint16(LibraryChargePoint):
    """The endpoint of one WebSocket session; :class:`LinkOwner` outlives it."""

    def __init__(self, charge_point_id: str, transport: Transport, commands: BackendCommands,
                 owner: LinkOwner, response_timeout: float,
                 guard: FrameGuard | None = None) -> None:
        super().__init__(charge_point_id, transport, response_timeout=response_timeout,
                         logger=LIBRARY_LOGGER)
        self._transport = transport  # for the CALLERRORs we answer before the library
        self._commands = commands
        self._owner = owner
        self._awaited: set[str] = set()  # unique ids of our CALLs waiting for their answer
        self._answering = 0  # backend CALLs being handled whose answer is not out yet
        self._answered = asyncio.Event()
        self._answered.set()
        self._closed = asyncio.Event()
        # The security events of incoming frames (invalid, replayed); None: check only.
        self._check_frame = check_frame if guard is None else guard.check

    def link_closed(self) -> None:
        """The link is gone: CALLs waiting on it end with :class:`LinkClosed`."""
        self._closed.set()

    async def call(self, payload: Any, suppress: bool = True, unique_id: str | None = None,
                   skip_schema_validation: bool = False) -> Any:
        """The library's ``call()``, after the answers to the backend's CALLs being handled
        went out (what a command causes, a StatusNotification after RemoteStartTransaction
        say, must follow its answer), and with the CALL's unique id noted while its answer
        is due: only such answers reach the library's response queue."""
        while self._answering and not self._closed.is_set():
            await self._until_closed(self._answered.wait())
        if self._closed.is_set():
            raise LinkClosed("the link to the backend closed")
        unique_id = unique_id or str(uuid.uuid4())
        self._awaited.add(unique_id)
        try:
            return await self._until_closed(super().call(
                payload, suppress=suppress, unique_id=unique_id,
                skip_schema_validation=skip_schema_validation))
        finally:
            self._awaited.discard(unique_id)

    async def _until_closed(self, awaitable: Coroutine[Any, Any, _T]) -> _T:
        """``awaitable``'s result, or :class:`LinkClosed` as soon as the link closes."""
        work = asyncio.ensure_future(awaitable)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({work, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not work.done():
                work.cancel()
        if work.done() and not work.cancelled():
            return work.result()
        raise LinkClosed("the link to the backend closed while a CALL waited for its answer")

    async def route_message(self, raw_msg: str) -> None:
        verdict = self._check_frame(raw_msg, self.route_map, self._owner.may_answer_backend(),
                                    self._awaited)
        if isinstance(verdict, Route) and verdict.call is not None:
            self._answering += 1
            self._answered.clear()
            try:
                await self._route(raw_msg, verdict)
            finally:
                self._answering -= 1
                if not self._answering:
                    self._answered.set()
            return
        await self._route(raw_msg, verdict)

    async def _route(self, raw_msg: str, verdict: FrameVerdict) -> None:
        if isinstance(verdict, Ignore):
            return
        if isinstance(verdict, Answer):
            log.warning("ocpp.call_error_sent", code=verdict.error.code,
                        cause=verdict.error.details.get("cause"))
            await self._transport.send(verdict.frame())
            return
        try:
            await super().route_message(raw_msg)
        except Exception:  # a bug past the handler (its reply, its after-hook): keep the link
            if verdict.call is None:
                raise
            log.exception("ocpp.handler_failed", action=verdict.call.action)
            await self._transport.send(verdict.call.create_call_error(Exception()).to_json())

    # -- backend -> charge point -------------------------------------------------------------

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> call_result.ChangeAvailability:
        return call_result.ChangeAvailability(
            status=self._commands.change_availability(connector_id, type))

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        return call_result.ChangeConfiguration(
            status=self._commands.change_configuration(key, value))

    @after(Action.change_configuration)
    def after_change_configuration(self, key: str, value: str) -> None:
        self._owner.after_configuration_change()

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        entries, unknown = self._commands.get_configuration(key)
        return call_result.GetConfiguration(
            configuration_key=[KeyValue(key=e.key, readonly=e.readonly, value=e.value)
                               for e in entries],
            unknown_key=unknown or None,
        )

    @on(Action.clear_cache)
    def on_clear_cache(self) -> call_result.ClearCache:
        return call_result.ClearCache(status=self._commands.clear_cache())

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                    charging_profile: dict[str, Any] | None = None,
                                    ) -> call_result.RemoteStartTransaction:
        return call_result.RemoteStartTransaction(
            status=self._commands.remote_start(id_tag, connector_id, charging_profile))

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        return call_result.RemoteStopTransaction(
            status=self._commands.remote_stop(transaction_id))

    @on(Action.reset)
    def on_reset(self, type: str) -> call_result.Reset:
        return call_result.Reset(status=self._commands.reset())

    @after(Action.reset)
    async def after_reset(self, type: str) -> None:
        await self._commands.run_reset(type)

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, connector_id: int) -> call_result.UnlockConnector:
        return call_result.UnlockConnector(status=await self._commands.unlock(connector_id))

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, retries: int | None = None,
                           retry_interval: int | None = None) -> call_result.UpdateFirmware:
        self._commands.update_firmware(location, retrieve_date, retries, retry_interval)
        return call_result.UpdateFirmware()

    @on(Action.signed_update_firmware)
    def on_signed_update_firmware(self, request_id: int, firmware: dict[str, Any],
                                  retries: int | None = None, retry_interval: int | None = None,
                                  ) -> call_result.SignedUpdateFirmware:
        return call_result.SignedUpdateFirmware(status=self._commands.signed_update_firmware(
            request_id, firmware, retries, retry_interval))

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
                       reservation_id: int, parent_id_tag: str | None = None,
                       ) -> call_result.ReserveNow:
        return call_result.ReserveNow(status=self._commands.reserve_now(
            connector_id, expiry_date, id_tag, reservation_id, parent_id_tag))

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int) -> call_result.CancelReservation:
        return call_result.CancelReservation(
            status=self._commands.cancel_reservation(reservation_id))

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                               data: str | None = None) -> call_result.DataTransfer:
        status, reply = await self._commands.data_transfer(vendor_id, message_id, data)
        return call_result.DataTransfer(status=status, data=reply)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str,
                           connector_id: int | None = None) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(
            status=self._commands.trigger(requested_message, connector_id))

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message: str,
                                    connector_id: int | None = None) -> None:
        await self._owner.run_trigger(self, requested_message, connector_id)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any],
                                ) -> call_result.SetChargingProfile:
        return call_result.SetChargingProfile(
            status=self._commands.set_charging_profile(connector_id, cs_charging_profiles))

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                  charging_profile_purpose: str | None = None,
                                  stack_level: int | None = None,
                                  ) -> call_result.ClearChargingProfile:
        return call_result.ClearChargingProfile(status=self._commands.clear_charging_profile(
            id, connector_id, charging_profile_purpose, stack_level))

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int,
                                  charging_rate_unit: str | None = None,
                                  ) -> call_result.GetCompositeSchedule:
        status, reply = self._commands.get_composite_schedule(connector_id, duration,
                                                              charging_rate_unit)
        return call_result.GetCompositeSchedule(status=status, **(reply or {}))

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(
            list_version=self._commands.get_local_list_version())

    @on(Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str,
                           local_authorization_list: list[dict[str, Any]] | None = None,
                           ) -> call_result.SendLocalList:
        return call_result.SendLocalList(status=self._commands.send_local_list(
            list_version, update_type, local_authorization_list or []))

    # -- diagnostics and logs (GetDiagnostics; GetLog, ExtendedTriggerMessage of the Security
    # Whitepaper) -------------------------------------------------------------------------------

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, retries: int | None = None,
                           retry_interval: int | None = None, start_time: str | None = None,
                           stop_time: str | None = None) -> call_result.GetDiagnostics:
        return call_result.GetDiagnostics(file_name=self._commands.get_diagnostics(
            location, retries, retry_interval, start_time, stop_time))

    @on(Action.get_log)
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int,
                   retries: int | None = None, retry_interval: int | None = None,
                   ) -> call_result.GetLog:
        status, filename = self._commands.get_log(log_type, request_id, log, retries,
                                                  retry_interval)
        return call_result.GetLog(status=status, filename=filename)

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(self, requested_message: str, connector_id: int | None = None,
                                    ) -> call_result.ExtendedTriggerMessage:
        return call_result.ExtendedTriggerMessage(
            status=self._commands.extended_trigger(requested_message, connector_id))

    @after(Action.extended_trigger_message)
    async def after_extended_trigger_message(self, requested_message: str,
                                             connector_id: int | None = None) -> None:
        await self._owner.run_extended_trigger(self, requested_message, connector_id)

    # -- certificates (Security Whitepaper) ------------------------------------------------------

    def _certificates(self) -> StationCertificates:
        if self._commands.certificates is None:
            raise NotSupportedError(description="this station has no certificate store")
        return self._commands.certificates

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str,
                               certificate: str) -> call_result.InstallCertificate:
        return call_result.InstallCertificate(
            status=self._certificates().install_certificate(certificate_type, certificate))

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any],
                              ) -> call_result.DeleteCertificate:
        return call_result.DeleteCertificate(
            status=self._certificates().delete_certificate(certificate_hash_data))

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str,
                                         ) -> call_result.GetInstalledCertificateIds:
        status, hash_data = self._certificates().installed_certificate_ids(certificate_type)
        return call_result.GetInstalledCertificateIds(status=status,
                                                      certificate_hash_data=hash_data)

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str) -> call_result.CertificateSigned:
        return call_result.CertificateSigned(
            status=self._certificates().certificate_signed(certificate_chain))
