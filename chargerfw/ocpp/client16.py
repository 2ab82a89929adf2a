"""The OCPP 1.6J charge point: the ``ocpp`` library's ChargePoint plus everything it leaves to us
(field lesson 5): registration, heartbeats, status, the durable outbox pump, meter sampling,
strict CALLERRORs for bad backend frames, and the backend's commands routed to the station.

Shape: :class:`OcppClient` lives as long as the firmware. It owns the meter sampler (which runs
offline too: transaction messages go to the store's outbox) and, for each WebSocket session the
:class:`~chargerfw.ocpp.connection.OcppConnection` opens, a :class:`ChargePoint16` that reads
frames, boots, heartbeats, sends status and drains the outbox strictly in order.

One outstanding CALL at a time: every CALL goes through ``ocpp.ChargePoint.call``, which holds
the library's ``_call_lock`` from sending until the answer (or the timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.exceptions import (
    FormationViolationError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
    UnknownCallErrorCodeError,
)
from ocpp.messages import Call, CallError, CallResult, MessageType, get_validator
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as _LibChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.datatypes import KeyValue
from ocpp.v16.enums import Action

from chargerfw import __version__
from chargerfw.config import StationConfig
from chargerfw.drivers.types import MeterSample
from chargerfw.logs import get_logger
from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.ocpp.connection import OcppConnection, WsTransport, redact_frame
from chargerfw.ocpp.metering import meter_value
from chargerfw.ocpp.station_port import StationPort
from chargerfw.station.auth import IdTagInfo, InvalidIdTagInfoError
from chargerfw.store import OutboxMessage, Store, StoreError, TransactionRecord, iso_utc

log = get_logger(__name__)

DEFAULT_BOOT_RETRY_S = 60
CALL_ERROR_UNPARSABLE_ID = "-1"  # 1.6 names none for a frame we cannot parse; 2.0.1 uses "-1"


@dataclass(frozen=True)
class BootInfo:
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None


@dataclass
class ConnectorStatusReport:
    status: str
    error_code: str = "NoError"
    info: str | None = None
    vendor_error_code: str | None = None
    timestamp: float = field(default_factory=time.time)


def _same_status(a: ConnectorStatusReport, b: ConnectorStatusReport) -> bool:
    """Whether two reports say the same thing to the backend (timestamps aside)."""
    return (a.status, a.error_code, a.info) == (b.status, b.error_code, b.info)


def _wire_info(info: Any) -> dict[str, str]:
    """A backend idTagInfo (snake-case dict from the library) in wire spelling."""
    if not isinstance(info, dict):
        return {}
    out = {"status": str(info.get("status"))}
    if info.get("expiry_date"):
        out["expiryDate"] = str(info["expiry_date"])
    if info.get("parent_id_tag"):
        out["parentIdTag"] = str(info["parent_id_tag"])
    return out


def _schema_error_to_ocpp(error: SchemaValidationError) -> OCPPError:
    """OCPP-J 1.6 section 4.2.3 error codes for a payload that fails its JSON schema."""
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    details = {"cause": f"{where}: {error.message}"}
    if error.validator in ("type", "maxLength"):
        return TypeConstraintViolationError(details=details)
    if error.validator in ("required", "minItems", "maxItems"):
        return OccurenceConstraintViolationError(details=details)
    if error.validator == "additionalProperties":
        return FormationViolationError(details=details)
    return PropertyConstraintViolationError(details=details)


class _RedactingLibLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The ``ocpp`` library logs every frame at INFO, secrets included; we keep its lines at
    DEBUG with frames redacted (our own structured log says what matters)."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        def scrub(arg: object) -> object:
            if hasattr(arg, "to_json"):
                arg = arg.to_json()
            return redact_frame(arg) if isinstance(arg, str) else arg

        self.logger.log(min(level, logging.DEBUG) if level <= logging.INFO else level, msg,
                        *(scrub(a) for a in args), **kwargs)


_LIB_LOGGER = _RedactingLibLogger(logging.getLogger("ocpp"), {})


class ChargePoint16(_LibChargePoint):
    """One WebSocket session's OCPP 1.6 endpoint. Handlers delegate to the owning client."""

    def __init__(self, charge_point_id: str, transport: WsTransport, client: OcppClient,
                 response_timeout: float) -> None:
        super().__init__(charge_point_id, transport, response_timeout=response_timeout,
                         logger=_LIB_LOGGER)
        self._client = client

    async def route_message(self, raw_msg: str) -> None:
        """Like the library's, but every malformed CALL gets a CALLERROR (the library only logs
        frames it cannot unpack) with the OCPP 1.6 codes (FormationViolation, not 2.0.1's
        FormatViolation; OccurenceConstraintViolation for a missing field)."""
        try:
            message = json.loads(raw_msg)
        except ValueError:
            await self._reply_error(CALL_ERROR_UNPARSABLE_ID, FormationViolationError(
                details={"cause": "frame is not valid JSON"}))
            return
        if not isinstance(message, list) or not message or not isinstance(message[0], int):
            unique = (message[1] if isinstance(message, list) and len(message) > 1
                      and isinstance(message[1], str) else CALL_ERROR_UNPARSABLE_ID)
            await self._reply_error(unique, FormationViolationError(
                details={"cause": "frame is not an OCPP-J array [MessageTypeId, UniqueId, ...]"}))
            return
        kind = message[0]
        if kind in (MessageType.CallResult, MessageType.CallError):
            try:
                msg = (CallResult(*message[1:]) if kind == MessageType.CallResult
                       else CallError(*message[1:]))
            except TypeError:
                log.warning("ocpp.bad_response_frame", frame=redact_frame(raw_msg)[:200])
                return
            self._response_queue.put_nowait(msg)
            return
        unique = message[1] if len(message) > 1 and isinstance(message[1], str) else None
        if kind != MessageType.Call or unique is None or len(message) != 4 \
                or not isinstance(message[2], str) or not isinstance(message[3], dict):
            await self._reply_error(unique or CALL_ERROR_UNPARSABLE_ID, FormationViolationError(
                details={"cause": "a CALL is [2, \"<uniqueId>\", \"<Action>\", {<payload>}]"}))
            return
        if not self._client.may_answer_backend():
            # OCPP 1.6 4.2: while Rejected the charge point does not respond at all.
            log.info("ocpp.call_ignored_while_rejected", action=message[2])
            return
        msg = Call(unique, message[2], message[3])
        if msg.action in self.route_map:
            try:
                get_validator(MessageType.Call, msg.action, "1.6").validate(msg.payload)
            except SchemaValidationError as exc:
                await self._reply_error(unique, _schema_error_to_ocpp(exc))
                return
            except OSError:
                pass  # no schema shipped: the library reports it below
        try:
            await self._handle_call(msg)
        except OCPPError as error:
            await self._reply_error(unique, error)
        except Exception:  # a handler bug: answer InternalError, keep the session
            log.exception("ocpp.handler_failed", action=msg.action)
            await self._send(msg.create_call_error(Exception()).to_json())

    async def _reply_error(self, unique_id: str, error: OCPPError) -> None:
        frame = CallError(unique_id, error.code, error.description, error.details).to_json()
        log.warning("ocpp.call_error_sent", code=error.code, cause=error.details.get("cause"))
        await self._send(frame)

    async def _send(self, message: str) -> None:
        await self._connection.send(message)

    # -- backend -> charge point -------------------------------------------------------------

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> call_result.ChangeAvailability:
        return call_result.ChangeAvailability(
            status=self._client.handle_change_availability(connector_id, type))

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        status, _reason = self._client.keys.change(key, value)
        return call_result.ChangeConfiguration(status=status.value)

    @after(Action.change_configuration)
    def after_change_configuration(self, key: str, value: str) -> None:
        self._client.after_configuration_change()

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        limit = self._client.keys.get_int("GetConfigurationMaxKeys")
        if key and len(key) > limit:
            raise OccurenceConstraintViolationError(
                details={"cause": f"at most {limit} keys per GetConfiguration"})
        entries, unknown = self._client.keys.get_configuration(key)
        return call_result.GetConfiguration(
            configuration_key=[KeyValue(key=e.key, readonly=e.readonly, value=e.value) for e in entries],
            unknown_key=unknown or None,
        )

    @on(Action.clear_cache)
    def on_clear_cache(self) -> call_result.ClearCache:
        self._client.store.cache_clear()
        return call_result.ClearCache(status="Accepted")

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                    charging_profile: dict | None = None) -> call_result.RemoteStartTransaction:
        return call_result.RemoteStartTransaction(
            status=self._client.handle_remote_start(id_tag, connector_id, charging_profile))

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        return call_result.RemoteStopTransaction(
            status=self._client.handle_remote_stop(transaction_id))

    @on(Action.reset)
    def on_reset(self, type: str) -> call_result.Reset:
        return call_result.Reset(status="Accepted" if self._client.station else "Rejected")

    @after(Action.reset)
    async def after_reset(self, type: str) -> None:
        await self._client.handle_reset(type)

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, connector_id: int) -> call_result.UnlockConnector:
        return call_result.UnlockConnector(status=await self._client.handle_unlock(connector_id))

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
                       reservation_id: int, parent_id_tag: str | None = None,
                       ) -> call_result.ReserveNow:
        return call_result.ReserveNow(status=self._client.handle_reserve_now(
            connector_id, expiry_date, id_tag, reservation_id, parent_id_tag))

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int) -> call_result.CancelReservation:
        return call_result.CancelReservation(
            status=self._client.handle_cancel_reservation(reservation_id))

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                               data: str | None = None) -> call_result.DataTransfer:
        status, reply = await self._client.handle_data_transfer(vendor_id, message_id, data)
        return call_result.DataTransfer(status=status, data=reply)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str,
                           connector_id: int | None = None) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(
            status=self._client.handle_trigger(requested_message, connector_id))

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message: str,
                                    connector_id: int | None = None) -> None:
        await self._client.run_trigger(self, requested_message, connector_id)

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self) -> call_result.GetLocalListVersion:
        keys = self._client.keys
        version = self._client.store.local_list_version() if keys.get_bool("LocalAuthListEnabled") else -1
        return call_result.GetLocalListVersion(list_version=version)

    @on(Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str,
                           local_authorization_list: list | None = None) -> call_result.SendLocalList:
        return call_result.SendLocalList(status=self._client.handle_send_local_list(
            list_version, update_type, local_authorization_list or []))


DataTransferHandler = Callable[[str | None, str | None], Awaitable[tuple[str, str | None]]]


class OcppClient:
    """The firmware's OCPP 1.6J side. Create once; ``await run()`` for the life of the process.

    The station calls :meth:`start_transaction`, :meth:`stop_transaction`,
    :meth:`update_meter`, :meth:`set_status`, :meth:`authorize`, :meth:`data_transfer`.
    Backend commands reach the station through ``station`` (a :class:`StationPort`)."""

    def __init__(self, *, store: Store, keys: ConfigurationKeys, connection: OcppConnection,
                 boot: BootInfo, connector_phases: dict[int, int],
                 station: StationPort | None = None, call_timeout_s: float = 30.0,
                 tick_s: float = 1.0, meter_persist_interval_s: float = 10.0) -> None:
        self.store = store
        self.keys = keys
        self.connection = connection
        self.boot = boot
        self.connector_phases = dict(connector_phases)
        self.station = station
        self.call_timeout_s = call_timeout_s
        self.tick_s = tick_s
        self.meter_persist_interval_s = meter_persist_interval_s
        self.registration: str | None = None  # None until a BootNotification was answered
        self.clock_offset_s: float | None = None  # backend time minus ours
        self.data_transfer_handlers: dict[str, DataTransferHandler] = {}
        self._cp: ChargePoint16 | None = None
        self._accepted = asyncio.Event()
        self._outbox_wakeup = asyncio.Event()
        self._status_wakeup = asyncio.Event()
        self._heartbeat_wakeup = asyncio.Event()
        self._settle_wakeup = asyncio.Event()
        # Per connector: the station's latest report; the latest one that counts as stable
        # (MinimumStatusDuration), i.e. what the backend is told; a report still settling with
        # the monotonic time it began; and the stable reports not yet sent.
        self._statuses: dict[int, ConnectorStatusReport] = {}
        self._stable_status: dict[int, ConnectorStatusReport] = {}
        self._settling_status: dict[int, tuple[ConnectorStatusReport, float]] = {}
        self._unsent_status: dict[int, ConnectorStatusReport] = {}
        self._last_call_at = 0.0
        self._latest_sample: dict[int, tuple[MeterSample, float | None]] = {}
        self._last_persist: dict[int, float] = {}
        self._last_sampled: dict[int, float] = {}
        self._last_aligned_slot: int | None = None
        self._stopping = False
        self._reconnect_for: str | None = None
        self._deliveries = 0
        keys.add_listener(self._on_key_changed)
        connection._sink = self._log_frame  # the frame log ring, secrets redacted

    # -- life cycle -------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Connected and registered (BootNotification Accepted on this connection)."""
        return self._cp is not None and self._accepted.is_set()

    def status_snapshot(self) -> dict[str, Any]:
        """What a technician's status command shows about the OCPP side."""
        outbox = self.store.outbox_all(limit=1000)
        return {
            "online": self.online,
            "registration": self.registration,
            "link": self.connection.health.as_dict(),
            "clock_offset_s": self.clock_offset_s,
            "outbox_pending": sum(m.state == "pending" for m in outbox),
            "outbox_dead": sum(m.state == "dead" for m in outbox),
            "open_transactions": [t.local_id for t in self.store.open_transactions()],
        }

    def may_answer_backend(self) -> bool:
        return self.registration != "Rejected"

    async def run(self) -> None:
        background = [asyncio.create_task(self._sampler(), name="ocpp-sampler"),
                      asyncio.create_task(self._status_settler(), name="ocpp-status-settler")]
        try:
            await self.connection.run(self._session)
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def flush(self, timeout_s: float) -> bool:
        """Wait (up to ``timeout_s``) until the outbox is empty, e.g. on SIGTERM after the
        Reboot stop was queued, and, while online, until the latest connector statuses went
        out (the backend should not keep showing Charging for a station that stopped). A status
        still within MinimumStatusDuration counts as stable at once: the station is stopping,
        so it will not change back, and waiting out the duration could outlast the shutdown.
        True if everything was delivered; what is left of the outbox stays on disk."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._settle_statuses(everything=True)
            if self.store.outbox_head() is None and not (self.online and self._unsent_status):
                return True
            if time.monotonic() >= deadline:
                return False
            self._outbox_wakeup.set()
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._stopping = True
        await self.connection.close()

    def _log_frame(self, direction: str, frame: str) -> None:
        try:
            self.store.frame_log_add(direction, redact_frame(frame))
        except Exception:  # the log must never break the link
            log.exception("ocpp.frame_log_failed")

    async def _session(self, transport: WsTransport) -> None:
        cp = ChargePoint16(self.connection.charge_point_id, transport, self, self.call_timeout_s)
        self._cp = cp
        self._accepted.clear()
        self.registration = None
        reader = asyncio.create_task(cp.start(), name="ocpp-reader")
        workers: list[asyncio.Task[Any]] = []
        try:
            booted = asyncio.create_task(self._boot(cp), name="ocpp-boot")
            done, _ = await asyncio.wait({reader, booted}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                booted.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await booted
                reader.result()  # raises ConnectionClosed
                return
            booted.result()
            # Everything the station reported so far, then the outbox and heartbeats.
            self._unsent_status = dict(sorted(self._stable_status.items()))
            workers = [asyncio.create_task(self._status_sender(cp), name="ocpp-status"),
                       asyncio.create_task(self._outbox_pump(cp), name="ocpp-outbox"),
                       asyncio.create_task(self._heartbeat(cp), name="ocpp-heartbeat")]
            done, _ = await asyncio.wait({reader, *workers}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            self._cp = None
            self._accepted.clear()
            for task in (reader, *workers):
                task.cancel()
            for task in (reader, *workers):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _call(self, cp: ChargePoint16, payload: Any, unique_id: str | None = None) -> Any:
        self._last_call_at = time.monotonic()
        return await cp.call(payload, suppress=False, unique_id=unique_id)

    def _note_time(self, current_time: str | None) -> None:
        if not current_time:
            return
        with contextlib.suppress(ValueError):
            backend = datetime.fromisoformat(current_time.replace("Z", "+00:00")).timestamp()
            self.clock_offset_s = round(backend - time.time(), 3)

    def _boot_request(self) -> call.BootNotification:
        return call.BootNotification(
            charge_point_vendor=self.boot.vendor, charge_point_model=self.boot.model,
            charge_point_serial_number=self.boot.serial_number,
            firmware_version=self.boot.firmware_version, meter_type=self.boot.meter_type,
            meter_serial_number=self.boot.meter_serial_number)

    async def _boot(self, cp: ChargePoint16) -> None:
        request = self._boot_request()
        while True:
            try:
                result = await self._call(cp, request)
            except (TimeoutError, OCPPError, UnknownCallErrorCodeError) as exc:
                log.warning("ocpp.boot_failed", error=str(exc))
                await asyncio.sleep(DEFAULT_BOOT_RETRY_S)
                continue
            self.registration = str(result.status)
            self._note_time(result.current_time)
            log.info("ocpp.boot", status=self.registration, interval=result.interval)
            if self.registration == "Accepted":
                if result.interval > 0:
                    self.keys.change("HeartbeatInterval", str(min(result.interval, 86400)))
                self._accepted.set()
                return
            # Pending: answer the backend's calls meanwhile. Rejected: stay silent. Either way
            # no other CALL until the interval has passed, then boot again.
            await asyncio.sleep(result.interval if result.interval > 0 else DEFAULT_BOOT_RETRY_S)

    async def _heartbeat(self, cp: ChargePoint16) -> None:
        while True:
            interval = self.keys.get_int("HeartbeatInterval")
            due = self._last_call_at + interval
            wait = due - time.monotonic()
            if wait > 0:
                self._heartbeat_wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._heartbeat_wakeup.wait(), wait)
                continue
            try:
                result = await self._call(cp, call.Heartbeat())
                self._note_time(result.current_time)
            except (TimeoutError, OCPPError, UnknownCallErrorCodeError) as exc:
                log.warning("ocpp.heartbeat_failed", error=str(exc))

    # -- status ----------------------------------------------------------------------------

    def set_status(self, connector_id: int, status: str, error_code: str = "NoError",
                   info: str | None = None, vendor_error_code: str | None = None) -> None:
        """The station reports a connector status (0 = the charge point). Sent when online;
        while offline only the latest per connector is kept and sent after the next boot.

        With MinimumStatusDuration > 0 a change is sent only once it has lasted that long (a
        status that changes back sooner is never sent), except Faulted, which is sent at
        once, and a connector's first status, which has nothing to settle against."""
        report = ConnectorStatusReport(status, error_code, info, vendor_error_code)
        previous = self._statuses.get(connector_id)
        self._statuses[connector_id] = report
        if previous and _same_status(previous, report):
            return
        stable = self._stable_status.get(connector_id)
        if (stable is None or status == "Faulted" or _same_status(stable, report)
                or self._minimum_status_duration_s() <= 0):
            self._settling_status.pop(connector_id, None)
            self._make_stable(connector_id, report)
            return
        self._settling_status[connector_id] = (report, time.monotonic())
        self._settle_wakeup.set()

    def _minimum_status_duration_s(self) -> int:
        return self.keys.get_int("MinimumStatusDuration")

    def _make_stable(self, connector_id: int, report: ConnectorStatusReport) -> None:
        """``report`` is what the backend should now see; queue it unless it already does."""
        stable = self._stable_status.get(connector_id)
        if stable is not None and _same_status(stable, report):
            return
        self._stable_status[connector_id] = report
        self._unsent_status.pop(connector_id, None)
        self._unsent_status[connector_id] = report
        self._status_wakeup.set()

    def _settle_statuses(self, everything: bool = False) -> float | None:
        """Make stable every settling status that has lasted MinimumStatusDuration (all of
        them if ``everything``); the seconds until the next one is due, or None."""
        duration = self._minimum_status_duration_s()
        now = time.monotonic()
        next_due: float | None = None
        for connector_id, (report, began) in sorted(self._settling_status.items()):
            due = began + duration
            if everything or due <= now:
                del self._settling_status[connector_id]
                self._make_stable(connector_id, report)
            else:
                next_due = due - now if next_due is None else min(next_due, due - now)
        return next_due

    async def _status_settler(self) -> None:
        """Runs online and offline, so a reconnect sends what is stable by then."""
        while True:
            self._settle_wakeup.clear()
            wait = self._settle_statuses()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settle_wakeup.wait(), wait)

    async def _status_sender(self, cp: ChargePoint16) -> None:
        while True:
            while self._unsent_status:
                connector_id = next(iter(self._unsent_status))
                report = self._unsent_status[connector_id]
                try:
                    await self._call(cp, call.StatusNotification(
                        connector_id=connector_id, error_code=report.error_code,
                        status=report.status, timestamp=iso_utc(report.timestamp),
                        info=report.info, vendor_error_code=report.vendor_error_code))
                except (TimeoutError, OCPPError, UnknownCallErrorCodeError) as exc:
                    log.warning("ocpp.status_failed", error=str(exc))
                    await asyncio.sleep(5)
                    continue
                if self._unsent_status.get(connector_id) is report:
                    del self._unsent_status[connector_id]
            self._status_wakeup.clear()
            await self._status_wakeup.wait()

    # -- requests the station makes --------------------------------------------------------

    async def authorize(self, id_tag: str) -> dict[str, str] | None:
        """Authorize.req when online; the idTagInfo in wire keys, or None when offline or the
        backend did not answer (the station then applies its offline rules)."""
        cp = self._cp
        if cp is None or not self.online:
            return None
        try:
            result = await asyncio.wait_for(self._call(cp, call.Authorize(id_tag=id_tag)),
                                            self.call_timeout_s)
        except (TimeoutError, OCPPError, UnknownCallErrorCodeError) as exc:
            log.warning("ocpp.authorize_failed", error=str(exc))
            return None
        info = _wire_info(result.id_tag_info)
        self._tell_station_info(id_tag, info)
        return info

    async def data_transfer(self, vendor_id: str, message_id: str | None = None,
                            data: str | None = None) -> tuple[str, str | None] | None:
        """DataTransfer.req to the backend: (status, data), or None when offline/failed."""
        cp = self._cp
        if cp is None or not self.online:
            return None
        try:
            result = await self._call(cp, call.DataTransfer(vendor_id=vendor_id,
                                                            message_id=message_id, data=data))
        except (TimeoutError, OCPPError, UnknownCallErrorCodeError) as exc:
            log.warning("ocpp.data_transfer_failed", error=str(exc))
            return None
        return str(result.status), result.data

    def start_transaction(self, connector_id: int, id_tag: str, meter_start_wh: int,
                          started_at: float | None = None, reservation_id: int | None = None,
                          sample: MeterSample | None = None) -> TransactionRecord:
        """Record a session and queue its StartTransaction (durable before this returns)."""
        started_at = time.time() if started_at is None else started_at
        record = self.store.start_transaction(connector_id, id_tag, meter_start_wh, started_at,
                                              reservation_id)
        self._last_sampled[connector_id] = time.monotonic()
        self._last_persist[connector_id] = time.monotonic()
        if sample is not None:
            self._add_stop_txn_data(record.local_id, sample, None, "Transaction.Begin",
                                    "StopTxnSampledData")
        self._outbox_wakeup.set()
        return record

    def stop_transaction(self, connector_id: int, meter_stop_wh: int, reason: str,
                         id_tag: str | None = None, stopped_at: float | None = None,
                         sample: MeterSample | None = None) -> bool:
        """End the session on ``connector_id`` and queue its StopTransaction (durable).
        False if no session was open there."""
        open_tx = self._open_tx(connector_id)
        if open_tx is None:
            return False
        if sample is not None:
            self._add_stop_txn_data(open_tx.local_id, sample, None, "Transaction.End",
                                    "StopTxnSampledData")
        stopped = self.store.stop_transaction(
            open_tx.local_id, meter_stop_wh, time.time() if stopped_at is None else stopped_at,
            reason, id_tag=id_tag)
        self._last_sampled.pop(connector_id, None)
        self._outbox_wakeup.set()
        return stopped

    def _open_tx(self, connector_id: int) -> TransactionRecord | None:
        for record in self.store.open_transactions():
            if record.connector_id == connector_id:
                return record
        return None

    # -- metering --------------------------------------------------------------------------

    def update_meter(self, connector_id: int, sample: MeterSample,
                     temperature_c: float | None = None) -> None:
        """The latest meter sample of a connector. Persists the energy register of a running
        transaction at most every ``meter_persist_interval_s`` (the PowerLoss stop value; a
        bounded loss of a few seconds of energy instead of an fsync per poll)."""
        self._latest_sample[connector_id] = (sample, temperature_c)
        now = time.monotonic()
        if now - self._last_persist.get(connector_id, 0.0) >= self.meter_persist_interval_s:
            self._persist_meter(connector_id, sample)

    def _persist_meter(self, connector_id: int, sample: MeterSample) -> TransactionRecord | None:
        open_tx = self._open_tx(connector_id)
        if open_tx is None:
            return None
        try:
            self.store.record_meter(open_tx.local_id, int(sample.energy_import_wh), sample.timestamp)
            self._last_persist[connector_id] = time.monotonic()
        except StoreError as exc:
            log.warning("meter.not_persisted", connector_id=connector_id, error=str(exc))
        return open_tx

    def _add_stop_txn_data(self, local_id: int, sample: MeterSample, temperature_c: float | None,
                           context: str, key: str) -> None:
        measurands = self.keys.get_list(key)
        if not measurands:
            return
        connector_id = self.store.transaction(local_id).connector_id
        value = meter_value(sample, measurands, context, self.connector_phases.get(connector_id, 3),
                            temperature_c)
        if value is not None:
            self.store.add_transaction_data(local_id, value)

    async def _sampler(self) -> None:
        while True:
            try:
                self.sample_due()
            except Exception:  # keep sampling whatever one bad sample did
                log.exception("meter.sampling_failed")
            await asyncio.sleep(self.tick_s)

    def sample_due(self, now_wall: float | None = None) -> None:
        """Queue the MeterValues that are due now (called every tick)."""
        now_wall = time.time() if now_wall is None else now_wall
        now = time.monotonic()
        interval = self.keys.get_int("MeterValueSampleInterval")
        for connector_id, (sample, temperature) in list(self._latest_sample.items()):
            last = self._last_sampled.get(connector_id)
            if interval <= 0 or last is None or now - last < interval:
                continue
            open_tx = self._persist_meter(connector_id, sample)
            if open_tx is None:
                self._last_sampled.pop(connector_id, None)
                continue
            self._last_sampled[connector_id] = now
            self._queue_tx_values(open_tx, sample, temperature, "Sample.Periodic",
                                  "MeterValuesSampledData", "StopTxnSampledData")
        aligned = self.keys.get_int("ClockAlignedDataInterval")
        if aligned > 0:
            slot = int(now_wall // aligned)
            if self._last_aligned_slot is None:
                self._last_aligned_slot = slot
            elif slot != self._last_aligned_slot:
                self._last_aligned_slot = slot
                for connector_id, (sample, temperature) in list(self._latest_sample.items()):
                    self._send_aligned(connector_id, sample, temperature, slot * aligned)

    def _queue_tx_values(self, open_tx: TransactionRecord, sample: MeterSample,
                         temperature: float | None, context: str, key: str, stop_key: str,
                         at: float | None = None) -> None:
        phases = self.connector_phases.get(open_tx.connector_id, 3)
        value = meter_value(sample, self.keys.get_list(key), context, phases, temperature, at)
        if value is not None:
            self.store.enqueue_meter_values(open_tx.local_id, open_tx.connector_id, [value])
            self._outbox_wakeup.set()
        stop_value = meter_value(sample, self.keys.get_list(stop_key), context, phases, temperature, at)
        if stop_value is not None:
            self.store.add_transaction_data(open_tx.local_id, stop_value)

    def _send_aligned(self, connector_id: int, sample: MeterSample, temperature: float | None,
                      at: float) -> None:
        open_tx = self._persist_meter(connector_id, sample)
        if open_tx is not None:
            self._queue_tx_values(open_tx, sample, temperature, "Sample.Clock",
                                  "MeterValuesAlignedData", "StopTxnAlignedData", at)
            return
        # Outside a transaction clock-aligned values are not transaction-related: best effort.
        value = meter_value(sample, self.keys.get_list("MeterValuesAlignedData"), "Sample.Clock",
                            self.connector_phases.get(connector_id, 3), temperature, at)
        cp = self._cp
        if value is not None and cp is not None and self.online:
            asyncio.ensure_future(self._send_untracked_values(cp, connector_id, value))

    async def _send_untracked_values(self, cp: ChargePoint16, connector_id: int,
                                     value: dict[str, Any]) -> None:
        try:
            await self._call(cp, call.MeterValues(connector_id=connector_id, meter_value=[value]))
        except (TimeoutError, OCPPError, UnknownCallErrorCodeError, Exception) as exc:
            log.warning("ocpp.meter_values_failed", error=str(exc))

    # -- the outbox pump -------------------------------------------------------------------

    def _request_for(self, message: OutboxMessage) -> Any:
        p = message.payload
        if message.action == "StartTransaction":
            return call.StartTransaction(connector_id=p["connectorId"], id_tag=p["idTag"],
                                         meter_start=p["meterStart"], timestamp=p["timestamp"],
                                         reservation_id=p.get("reservationId"))
        if message.backend_tx_id is None:
            raise StoreError(f"outbox {message.seq}: no transactionId known for transaction "
                             f"{message.local_tx_id}")
        if message.action == "MeterValues":
            return call.MeterValues(connector_id=p["connectorId"], meter_value=p["meterValue"],
                                    transaction_id=message.backend_tx_id)
        return call.StopTransaction(meter_stop=p["meterStop"], timestamp=p["timestamp"],
                                    transaction_id=message.backend_tx_id, reason=p.get("reason"),
                                    id_tag=p.get("idTag"), transaction_data=p.get("transactionData"))

    async def _outbox_pump(self, cp: ChargePoint16) -> None:
        while True:
            message = self.store.outbox_head()
            if message is None:
                self._outbox_wakeup.clear()
                await self._outbox_wakeup.wait()
                continue
            wait = message.next_attempt_at - time.time()
            if wait > 0:
                self._outbox_wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox_wakeup.wait(), wait)
                continue
            await self._deliver(cp, message)

    async def _deliver(self, cp: ChargePoint16, message: OutboxMessage) -> None:
        try:
            request = self._request_for(message)
        except StoreError as exc:
            log.error("outbox.undeliverable", seq=message.seq, error=str(exc))
            self.store.outbox_failed(message.seq, str(exc), max_attempts=1, retry_interval_s=0)
            return
        self.store.outbox_note_send(message.seq)
        try:
            result = await self._call(cp, request, unique_id=message.unique_id)
        except (OCPPError, UnknownCallErrorCodeError) as exc:
            code = getattr(exc, "code", "GenericError")
            self.store.outbox_failed(
                message.seq, f"{code}: {getattr(exc, 'description', exc)}",
                max_attempts=self.keys.get_int("TransactionMessageAttempts"),
                retry_interval_s=self.keys.get_int("TransactionMessageRetryInterval"))
            return
        except TimeoutError:
            # Not a "failure to process": keep it at the head and resend; a dead link is found
            # by the ping and the message goes out again on the next connection.
            self.store.outbox_defer(message.seq, time.time() + 5, "timeout")
            return
        if message.action == "StartTransaction":
            info = _wire_info(result.id_tag_info)
            self.store.outbox_delivered(message.seq, backend_tx_id=int(result.transaction_id),
                                        start_status=info.get("status"))
            log.info("transaction.confirmed", local_id=message.local_tx_id,
                     transaction_id=result.transaction_id, status=info.get("status"))
            p = message.payload
            self._tell_station_info(p["idTag"], info)
            if self.station is not None:
                try:
                    self.station.transaction_confirmed(p["connectorId"], message.local_tx_id,
                                                       int(result.transaction_id), p["idTag"], info)
                except Exception:
                    log.exception("station.transaction_confirmed_failed")
        else:
            self.store.outbox_delivered(message.seq)
            if message.action == "StopTransaction" and getattr(result, "id_tag_info", None):
                tag = message.payload.get("idTag") or self.store.transaction(message.local_tx_id).id_tag
                self._tell_station_info(tag, _wire_info(result.id_tag_info))
        self._deliveries += 1
        if self._deliveries % 100 == 0:
            self.store.outbox_prune()

    def _tell_station_info(self, id_tag: str, info: dict[str, str]) -> None:
        if self.station is not None and info:
            try:
                self.station.id_tag_info_received(id_tag, info)
            except Exception:
                log.exception("station.id_tag_info_failed")

    # -- backend commands ------------------------------------------------------------------

    def _known_connector(self, connector_id: int) -> bool:
        return connector_id in self.connector_phases

    def handle_change_availability(self, connector_id: int, kind: str) -> str:
        if self.station is None or not (connector_id == 0 or self._known_connector(connector_id)):
            return "Rejected"
        return self.station.change_availability(connector_id, kind == "Operative")

    def handle_remote_start(self, id_tag: str, connector_id: int | None,
                            charging_profile: dict | None) -> str:
        if self.station is None:
            return "Rejected"
        if connector_id is not None and not self._known_connector(connector_id):
            return "Rejected"
        if charging_profile is not None:
            log.info("ocpp.remote_start_profile_ignored")  # no Smart Charging profile support
        ok = self.station.remote_start(id_tag, connector_id,
                                       self.keys.get_bool("AuthorizeRemoteTxRequests"))
        return "Accepted" if ok else "Rejected"

    def handle_remote_stop(self, transaction_id: int) -> str:
        if self.station is None:
            return "Rejected"
        for record in self.store.open_transactions():
            if record.backend_tx_id == transaction_id:
                return "Accepted" if self.station.remote_stop(record.connector_id) else "Rejected"
        return "Rejected"

    async def handle_reset(self, kind: str) -> None:
        if self.station is not None:
            await self.station.reset("Hard" if kind == "Hard" else "Soft")

    async def handle_unlock(self, connector_id: int) -> str:
        if self.station is None or not self._known_connector(connector_id):
            return "NotSupported"
        return await self.station.unlock(connector_id)

    def handle_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
                           reservation_id: int, parent_id_tag: str | None) -> str:
        """ReserveNow (Reservation profile). Connector 0 is refused unless
        ReserveConnectorZeroSupported; an expiry already past or unreadable is Rejected."""
        reserve = getattr(self.station, "reserve_now", None)
        if reserve is None:
            return "Rejected"
        if connector_id == 0 and not self.keys.get_bool("ReserveConnectorZeroSupported"):
            return "Rejected"
        if connector_id != 0 and not self._known_connector(connector_id):
            return "Rejected"
        try:
            expiry = datetime.fromisoformat(expiry_date.replace("Z", "+00:00")).timestamp()
        except ValueError:
            log.warning("ocpp.reserve_bad_expiry", expiry_date=expiry_date)
            return "Rejected"
        if expiry <= time.time():
            return "Rejected"
        return str(reserve(connector_id, expiry, id_tag, reservation_id, parent_id_tag))

    def handle_cancel_reservation(self, reservation_id: int) -> str:
        cancel = getattr(self.station, "cancel_reservation", None)
        if cancel is None:
            return "Rejected"
        return "Accepted" if cancel(reservation_id) else "Rejected"

    async def handle_data_transfer(self, vendor_id: str, message_id: str | None,
                                   data: str | None) -> tuple[str, str | None]:
        handler = self.data_transfer_handlers.get(vendor_id)
        if handler is None:
            return "UnknownVendorId", None
        return await handler(message_id, data)

    TRIGGERABLE = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues")

    def handle_trigger(self, message: str, connector_id: int | None) -> str:
        if message not in self.TRIGGERABLE:
            return "NotImplemented"  # no firmware update / diagnostics upload support
        if connector_id is not None and not (connector_id == 0 or self._known_connector(connector_id)):
            return "Rejected"
        return "Accepted"

    async def run_trigger(self, cp: ChargePoint16, message: str, connector_id: int | None) -> None:
        """Send what TriggerMessage asked for, after its Accepted reply went out."""
        if self.handle_trigger(message, connector_id) != "Accepted":
            return
        try:
            if message == "BootNotification":
                result = await self._call(cp, self._boot_request())
                self._note_time(result.current_time)
            elif message == "Heartbeat":
                self._note_time((await self._call(cp, call.Heartbeat())).current_time)
            elif message == "StatusNotification":
                for cid, report in sorted(self._statuses.items()):
                    if connector_id is None or cid == connector_id:
                        # The backend asked for the current status: it is sent even if still
                        # settling, and becomes what the backend is known to have.
                        self._settling_status.pop(cid, None)
                        self._stable_status[cid] = report
                        # A fresh object: the sender drops an entry only if it is still the
                        # very report it just sent.
                        self._unsent_status.pop(cid, None)
                        self._unsent_status[cid] = replace(report)
                self._status_wakeup.set()
            elif message == "MeterValues":
                for cid, (sample, temperature) in sorted(self._latest_sample.items()):
                    if connector_id not in (None, cid):
                        continue
                    value = meter_value(sample, self.keys.get_list("MeterValuesSampledData"),
                                        "Trigger", self.connector_phases.get(cid, 3), temperature)
                    if value is None:
                        continue
                    open_tx = self._open_tx(cid)
                    await self._call(cp, call.MeterValues(
                        connector_id=cid, meter_value=[value],
                        transaction_id=open_tx.backend_tx_id if open_tx else None))
        except (TimeoutError, OCPPError, UnknownCallErrorCodeError) as exc:
            log.warning("ocpp.trigger_failed", message=message, error=str(exc))

    def handle_send_local_list(self, version: int, update_type: str, entries: list) -> str:
        if not self.keys.get_bool("LocalAuthListEnabled"):
            return "NotSupported"
        if len(entries) > self.keys.get_int("SendLocalListMaxLength"):
            return "Failed"
        full = update_type == "Full"
        if not full and version <= self.store.local_list_version():
            return "VersionMismatch"
        updates: dict[str, IdTagInfo | None] = {}
        for entry in entries:
            info = entry.get("id_tag_info")
            try:
                updates[entry["id_tag"]] = None if info is None else IdTagInfo.from_wire(_wire_info(info))
            except InvalidIdTagInfoError as exc:
                log.warning("ocpp.local_list_refused", error=str(exc))
                return "Failed"
        if len(updates) != len(entries):
            return "Failed"  # the same idTag twice in one update
        kept = 0 if full else self.store.local_list_size()
        if kept + sum(v is not None for v in updates.values()) > self.keys.get_int("LocalAuthListMaxLength"):
            return "Failed"
        try:
            self.store.local_list_apply(version, updates, full)
        except StoreError as exc:
            log.warning("ocpp.local_list_refused", error=str(exc))
            return "Failed"
        return "Accepted"

    def after_configuration_change(self) -> None:
        if self._reconnect_for:
            # New credentials apply by reconnecting, after the reply went out on the old link.
            key, self._reconnect_for = self._reconnect_for, None
            self.connection.reconnect(f"{key} changed")

    def _on_key_changed(self, key: str, value: str) -> None:
        if key == "HeartbeatInterval":
            self._heartbeat_wakeup.set()
        elif key == "WebSocketPingInterval":
            self.connection.set_ping_interval(int(value))
        elif key == "AuthorizationKey":
            self._reconnect_for = key
        elif key in ("TransactionMessageRetryInterval", "TransactionMessageAttempts"):
            self._outbox_wakeup.set()
        elif key == "MinimumStatusDuration":
            self._settle_wakeup.set()  # settling statuses are due by the new duration


def client_from_config(config: StationConfig, store: Store, station: StationPort | None = None,
                       firmware_version: str = __version__) -> OcppClient:
    """The OCPP client for a station config (its ``[ocpp]`` section must be present).

    The password is the AuthorizationKey the backend set, else the config's ``ocpp.password``;
    WebSocketPingInterval is read at every (re)connect and applied live on change."""
    if config.ocpp is None:
        raise ValueError("the station config has no [ocpp] section")
    ocpp_cfg = config.ocpp
    keys = ConfigurationKeys(store, number_of_connectors=len(config.connector),
                             overrides={k: str(v) for k, v in ocpp_cfg.keys.items()},
                             security_profile=ocpp_cfg.security_profile)
    connection = OcppConnection(
        ocpp_cfg.url, config.station.id, security_profile=ocpp_cfg.security_profile,
        password=lambda: keys.raw("AuthorizationKey") or ocpp_cfg.password,
        ca_file=ocpp_cfg.ca_file, ping_interval_s=lambda: keys.get_int("WebSocketPingInterval"))
    boot = BootInfo(vendor=config.station.vendor, model=config.station.model,
                    serial_number=config.station.serial_number, firmware_version=firmware_version,
                    meter_type=config.connector[0].meter.model[:25])
    return OcppClient(store=store, keys=keys, connection=connection, boot=boot,
                      connector_phases={c.id: c.phases for c in config.connector}, station=station)
