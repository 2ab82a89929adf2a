"""The firmware's OCPP 1.6J client: registration, heartbeats and the requests the station makes,
over the parts it composes (field lesson 5: everything the ``ocpp`` library leaves to us).

Shape: :class:`OcppClient` lives as long as the firmware. It owns

- the :class:`~chargerfw.ocpp.status.StatusReporter` (connector statuses, MinimumStatusDuration),
- the :class:`~chargerfw.ocpp.sampler.MeterSampler` (runs offline too: transaction values go to
  the store's outbox),
- the :class:`~chargerfw.ocpp.outbox.OutboxPump` (the store's outbox, strictly in order),
- the :class:`~chargerfw.ocpp.v16.commands.BackendCommands` (the backend's commands),

and, for each link the connection opens, a :class:`~chargerfw.ocpp.v16.charge_point.ChargePoint16`
that reads frames. On that link the client boots; once Accepted it heartbeats, and the status
reporter and the outbox pump send through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ocpp.v16 import call

from chargerfw import __version__
from chargerfw.config import StationConfig
from chargerfw.drivers.types import MeterSample
from chargerfw.logs import get_logger
from chargerfw.ocpp.certificates import CertificateStore
from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.ocpp.connection import BackendLink, OcppConnection, Transport
from chargerfw.ocpp.credentials import AuthorizationKeyFile
from chargerfw.ocpp.outbox import OutboxPump
from chargerfw.ocpp.sampler import Measurands, MeterSampler, open_transaction
from chargerfw.ocpp.security_log import (
    ATTEMPTED_REPLAY_ATTACKS,
    FAILED_TO_AUTHENTICATE,
    INVALID_MESSAGES,
    SECURITY_RECONFIGURED,
    record_security_event,
    wake_on_security_events,
)
from chargerfw.ocpp.security_profile import (
    SecurityProfiles,
    authorization_key_applier,
    profile_problem,
    station_keys,
)
from chargerfw.ocpp.station_port import (
    BootInfo,
    FirmwareState,
    LogSource,
    StationPort,
    notify_id_tag_info,
)
from chargerfw.ocpp.status import ConnectorStatusReport, StatusReporter
from chargerfw.ocpp.tls import SecurityEventLimiter, provision_ca_file
from chargerfw.ocpp.v16.certificates import StationCertificates
from chargerfw.ocpp.v16.charge_point import ChargePoint16
from chargerfw.ocpp.v16.commands import BackendCommands, DataTransferHandler
from chargerfw.ocpp.v16.diagnostics import LogUploads
from chargerfw.ocpp.v16.frame_guard import FrameGuard, ThrottledEvent
from chargerfw.ocpp.v16.requests import (
    CALL_FAILURES,
    OutboxSender16,
    boot_notification,
    status_notification,
    wire_id_tag_info,
)
from chargerfw.ocppj.frames import redact_frame
from chargerfw.station.firmware import FirmwareStatus, core_status
from chargerfw.store import Store, TransactionRecord

log = get_logger(__name__)

DEFAULT_BOOT_RETRY_S = 60


class KeyMeteringSettings:
    """The meter sampler's settings, read from the 1.6 configuration keys."""

    _MEASURANDS = {
        Measurands.SAMPLED: "MeterValuesSampledData",
        Measurands.ALIGNED: "MeterValuesAlignedData",
        Measurands.STOP_SAMPLED: "StopTxnSampledData",
        Measurands.STOP_ALIGNED: "StopTxnAlignedData",
    }

    def __init__(self, keys: ConfigurationKeys) -> None:
        self._keys = keys

    def sample_interval_s(self) -> int:
        return self._keys.get_int("MeterValueSampleInterval")

    def aligned_interval_s(self) -> int:
        return self._keys.get_int("ClockAlignedDataInterval")

    def measurands(self, which: Measurands) -> list[str]:
        return self._keys.get_list(self._MEASURANDS[which])


class OcppClient:
    """The firmware's OCPP 1.6J side. Create once; ``await run()`` for the life of the process.

    The station calls :meth:`start_transaction`, :meth:`stop_transaction`,
    :meth:`update_meter`, :meth:`set_status`, :meth:`authorize`, :meth:`data_transfer`.
    Backend commands reach the station through ``station`` (a :class:`StationPort`)."""

    def __init__(self, *, store: Store, keys: ConfigurationKeys, connection: BackendLink,
                 boot: BootInfo, connector_phases: Mapping[int, int],
                 station: StationPort | None = None, call_timeout_s: float = 30.0,
                 tick_s: float = 1.0, meter_persist_interval_s: float = 10.0,
                 certificates: StationCertificates | None = None) -> None:
        self.store = store
        self.keys = keys
        self.connection = connection
        self.boot = boot
        self.connector_phases = dict(connector_phases)
        self.call_timeout_s = call_timeout_s
        self.registration: str | None = None  # None until a BootNotification was answered
        self.clock_offset_s: float | None = None  # backend time minus ours
        self.data_transfer_handlers: dict[str, DataTransferHandler] = {}
        self.statuses = StatusReporter(lambda: keys.get_int("MinimumStatusDuration"))
        self.outbox = OutboxPump(
            store, max_attempts=lambda: keys.get_int("TransactionMessageAttempts"),
            retry_interval_s=lambda: keys.get_int("TransactionMessageRetryInterval"))
        wake_on_security_events(store, self.outbox.wake)
        self._invalid_frames = ThrottledEvent(store, INVALID_MESSAGES)
        self._replayed_calls = ThrottledEvent(store, ATTEMPTED_REPLAY_ATTACKS)
        self.uploads = LogUploads(store, connection.charge_point_id, self.outbox.wake)
        self.commands = BackendCommands(store=store, keys=keys, station=station,
                                        connector_phases=self.connector_phases,
                                        data_transfer_handlers=self.data_transfer_handlers,
                                        uploads=self.uploads)
        self.commands.certificates = certificates
        # Where a firmware update stands, for triggered Firmware status notifications: what the
        # station's update reports (a signed update may replace it with its request id).
        self.firmware_state: Callable[[], FirmwareState] = (
            lambda: FirmwareState(self.commands.firmware_status()))
        self.sampler = MeterSampler(
            store, KeyMeteringSettings(keys), connector_phases=self.connector_phases,
            wake_outbox=self.outbox.wake, send_untracked=self._send_untracked_values,
            tick_s=tick_s, persist_interval_s=meter_persist_interval_s)
        self._cp: ChargePoint16 | None = None
        self._accepted = asyncio.Event()
        self._heartbeat_wakeup = asyncio.Event()
        self._last_call_at = 0.0
        self._reconnect_for: str | None = None
        self._untracked_sends: set[asyncio.Future[None]] = set()
        keys.add_listener(self._on_key_changed)
        connection.frame_sink = self._log_frame  # the frame log ring, secrets redacted
        # A reconnect loop repeats the same refusal: each kind is recorded at most every
        # ten minutes.
        self.link_security_events = SecurityEventLimiter(
            functools.partial(record_security_event, store))
        connection.auth_failed = functools.partial(self.link_security_events,
                                                   FAILED_TO_AUTHENTICATE)
        connection.security_event = self.link_security_events
        self.security_profiles: SecurityProfiles | None = None

    @property
    def station(self) -> StationPort | None:
        return self.commands.station

    def attach_security(self, profiles: SecurityProfiles,
                        authorization_keys: AuthorizationKeyFile,
                        over_tls: Callable[[], bool]) -> None:
        """SecurityProfile raised on trial by ``profiles``; AuthorizationKey kept in its file
        with a fallback, refused from the backend unless ``over_tls``; both learn of every
        connection attempt. Before :meth:`run`, on an :class:`OcppConnection`."""
        assert isinstance(self.connection, OcppConnection)
        self.security_profiles = profiles
        self.keys.set_applier("SecurityProfile", profiles.apply)
        self.keys.set_applier("AuthorizationKey", authorization_key_applier(authorization_keys))
        self.commands.link_encrypted = over_tls

        def attempt(profile: int, password: str | None, error: BaseException | None) -> None:
            profiles.observe(profile, error)
            if error is None and password is not None:
                authorization_keys.worked(password)

        self.connection.attempt_observer = attempt

    def attach_logs(self, source: LogSource) -> None:
        """What GetDiagnostics and GetLog upload; without it they upload nothing."""
        self.uploads.source = source

    def attach_station(self, station: StationPort) -> None:
        """The station backend commands go to, when it is built after the client (the station
        core needs the client to send with). Before :meth:`run`."""
        self.commands.station = station

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
        background = [asyncio.create_task(self.sampler.run(), name="ocpp-sampler"),
                      asyncio.create_task(self.statuses.run_settler(), name="ocpp-status-settler")]
        if self.commands.certificates is not None:
            background.append(asyncio.create_task(
                self.commands.certificates.run(self._send_when_online), name="ocpp-certificates"))
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
            self.statuses.settle(everything=True)
            if self.store.outbox_head() is None and not (self.online and self.statuses.has_unsent):
                return True
            if time.monotonic() >= deadline:
                return False
            self.outbox.wake()
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.uploads.close()
        await self.connection.close()

    def _log_frame(self, direction: str, frame: str) -> None:
        try:
            self.store.frame_log_add(direction, redact_frame(frame))
        except Exception:  # the log must never break the link
            log.exception("ocpp.frame_log_failed")

    async def _session(self, transport: Transport) -> None:
        cp = ChargePoint16(self.connection.charge_point_id, transport, self.commands, self,
                           self.call_timeout_s, FrameGuard(self.store, self._invalid_frames,
                                                           self._replayed_calls))
        self._cp = cp
        self._accepted.clear()
        self.registration = None
        reader = asyncio.create_task(cp.start(), name="ocpp-reader")
        booted = asyncio.create_task(self._boot(cp), name="ocpp-boot")
        workers: list[asyncio.Task[Any]] = []
        try:
            done, _ = await asyncio.wait({reader, booted}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                reader.result()  # raises ConnectionClosed
                return
            booted.result()
            # Everything the station reported so far, then the outbox and heartbeats.
            self.statuses.resend_all()
            sender = OutboxSender16(functools.partial(self._call, cp), self.store, self.station)
            workers = [
                # A connector's status waits for its queued StopTransaction.
                asyncio.create_task(self.statuses.run_sender(
                    functools.partial(self._send_status, cp), self.store.outbox_stop_pending),
                    name="ocpp-status"),
                asyncio.create_task(self.outbox.run(sender), name="ocpp-outbox"),
                asyncio.create_task(self._heartbeat(cp), name="ocpp-heartbeat")]
            done, _ = await asyncio.wait({reader, *workers}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            self._cp = None
            self._accepted.clear()
            for task in (reader, booted, *workers):
                task.cancel()
            # CALLs made from outside the session (an Authorize for a card tap, a trigger)
            # end now rather than at their timeout.
            cp.link_closed()
            for task in (reader, booted, *workers):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _call(self, cp: ChargePoint16, payload: Any, unique_id: str | None = None) -> Any:
        self._last_call_at = time.monotonic()
        result = await cp.call(payload, suppress=False, unique_id=unique_id)
        # The library waits for the answer with asyncio.wait_for, which (Python 3.11) returns
        # the answer and drops a cancellation that comes in the same instant; a session
        # closing then would wait forever for this task. Keep the cancellation.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return result

    def _note_time(self, current_time: str | None) -> None:
        if not current_time:
            return
        with contextlib.suppress(ValueError):
            backend = datetime.fromisoformat(current_time.replace("Z", "+00:00")).timestamp()
            self.clock_offset_s = round(backend - time.time(), 3)

    async def _boot(self, cp: ChargePoint16) -> None:
        request = boot_notification(self.boot)
        while True:
            try:
                result = await self._call(cp, request)
            except CALL_FAILURES as exc:
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
                self._connection_verified()
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
                    async with asyncio.timeout(wait):
                        await self._heartbeat_wakeup.wait()
                continue
            try:
                result = await self._call(cp, call.Heartbeat())
                self._note_time(result.current_time)
            except CALL_FAILURES as exc:
                log.warning("ocpp.heartbeat_failed", error=str(exc))

    def _connection_verified(self) -> None:
        """Registered over TLS: the backend's certificate chained to the current roots, so
        roots kept as a fallback (AdditionalRootCertificateCheck) are no longer needed."""
        certificates = self.commands.certificates
        if certificates is None or self.keys.get_int("SecurityProfile") < 2:
            return
        try:
            certificates.certificates.central_system_confirmed()
        except OSError as exc:
            log.warning("certificates.fallback_not_removed", error=str(exc))

    async def _send_when_online(self, payload: Any) -> Any:
        """A CALL on the current link once registered; None while not."""
        cp = self._cp
        if cp is None or not self.online:
            return None
        return await self._call(cp, payload)

    # -- status ----------------------------------------------------------------------------

    def set_status(self, connector_id: int, status: str, error_code: str = "NoError",
                   info: str | None = None, vendor_error_code: str | None = None) -> None:
        """The station reports a connector status (0 = the charge point). Sent when online;
        while offline only the latest per connector is kept and sent after the next boot.

        With MinimumStatusDuration > 0 a change is sent only once it has lasted that long (a
        status that changes back sooner is never sent), except Faulted, which is sent at
        once, and a connector's first status, which has nothing to settle against."""
        self.statuses.report(connector_id,
                             ConnectorStatusReport(status, error_code, info, vendor_error_code))

    async def _send_status(self, cp: ChargePoint16, connector_id: int,
                           report: ConnectorStatusReport) -> bool:
        try:
            await self._call(cp, status_notification(connector_id, report))
        except CALL_FAILURES as exc:
            log.warning("ocpp.status_failed", error=str(exc))
            return False
        return True

    # -- requests the station makes --------------------------------------------------------

    async def authorize(self, id_tag: str) -> dict[str, str] | None:
        """Authorize.req when online; the idTagInfo in wire keys, or None when offline or the
        backend did not answer, however the link failed (a timeout, a CALLERROR, a connection
        closed under the request): the station then applies its offline rules."""
        cp = self._cp
        if cp is None or not self.online:
            return None
        try:
            async with asyncio.timeout(self.call_timeout_s):
                result = await self._call(cp, call.Authorize(id_tag=id_tag))
        except Exception as exc:  # the link's own errors (websockets, OSError) included
            log.warning("ocpp.authorize_failed", error=f"{type(exc).__name__}: {exc}")
            return None
        info = wire_id_tag_info(result.id_tag_info)
        notify_id_tag_info(self.station, id_tag, info)
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
        except CALL_FAILURES as exc:
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
        self.sampler.transaction_started(record, sample)
        self.outbox.wake()
        return record

    def stop_transaction(self, connector_id: int, meter_stop_wh: int, reason: str,
                         id_tag: str | None = None, stopped_at: float | None = None,
                         sample: MeterSample | None = None) -> bool:
        """End the session on ``connector_id`` and queue its StopTransaction (durable).
        False if no session was open there."""
        open_tx = open_transaction(self.store, connector_id)
        if open_tx is None:
            return False
        self.sampler.transaction_ending(open_tx, sample)
        stopped = self.store.stop_transaction(
            open_tx.local_id, meter_stop_wh, time.time() if stopped_at is None else stopped_at,
            reason, id_tag=id_tag)
        self.sampler.transaction_ended(connector_id)
        self.outbox.wake()
        return stopped

    def update_meter(self, connector_id: int, sample: MeterSample,
                     temperature_c: float | None = None,
                     offered_current_a: float | None = None) -> None:
        """The latest meter sample of a connector (see :meth:`MeterSampler.update`)."""
        self.sampler.update(connector_id, sample, temperature_c, offered_current_a)

    def _send_untracked_values(self, connector_id: int, value: dict[str, Any]) -> None:
        cp = self._cp
        if cp is not None and self.online:
            task = asyncio.ensure_future(self._send_meter_values(cp, connector_id, value))
            self._untracked_sends.add(task)  # keep a reference until done
            task.add_done_callback(self._untracked_sends.discard)

    async def _send_meter_values(self, cp: ChargePoint16, connector_id: int,
                                 value: dict[str, Any]) -> None:
        try:
            await self._call(cp, call.MeterValues(connector_id=connector_id, meter_value=[value]))
        except Exception as exc:  # best effort, whatever went wrong
            log.warning("ocpp.meter_values_failed", error=str(exc))

    # -- what backend commands start -------------------------------------------------------

    async def run_trigger(self, cp: ChargePoint16, message: str, connector_id: int | None) -> None:
        """Send what TriggerMessage asked for, after its Accepted reply went out."""
        if self.commands.trigger(message, connector_id) != "Accepted":
            return
        try:
            if message == "BootNotification":
                result = await self._call(cp, boot_notification(self.boot))
                self._note_time(result.current_time)
            elif message == "Heartbeat":
                self._note_time((await self._call(cp, call.Heartbeat())).current_time)
            elif message == "StatusNotification":
                self.statuses.send_current(connector_id)
            elif message == "FirmwareStatusNotification":
                await self._call(cp, call.FirmwareStatusNotification(
                    status=core_status(FirmwareStatus(self.firmware_state().status)).value))
            elif message == "MeterValues":
                for cid, value in self.sampler.values_now("Trigger", connector_id):
                    open_tx = open_transaction(self.store, cid)
                    await self._call(cp, call.MeterValues(
                        connector_id=cid, meter_value=[value],
                        transaction_id=open_tx.backend_tx_id if open_tx else None))
            elif message == "DiagnosticsStatusNotification":
                await self._call(cp, call.DiagnosticsStatusNotification(
                    status=self.uploads.diagnostics_status()))
        except CALL_FAILURES as exc:
            log.warning("ocpp.trigger_failed", message=message, error=str(exc))

    async def run_extended_trigger(self, cp: ChargePoint16, message: str,
                                   connector_id: int | None) -> None:
        """Send what ExtendedTriggerMessage asked for, after its Accepted reply went out: the
        current log upload state, the firmware state (signed when a SignedUpdateFirmware runs),
        or what TriggerMessage sends for the same message."""
        if self.commands.extended_trigger(message, connector_id) != "Accepted":
            return
        try:
            if message == "SignChargePointCertificate" and self.commands.certificates:
                self.commands.certificates.request_signing()
            elif message == "LogStatusNotification":
                status, request_id = self.uploads.log_status()
                await self._call(cp, call.LogStatusNotification(status=status,
                                                                request_id=request_id))
            elif message == "FirmwareStatusNotification":
                state = self.firmware_state()
                if state.request_id is None:
                    await self._call(cp, call.FirmwareStatusNotification(status=state.status))
                else:
                    await self._call(cp, call.SignedFirmwareStatusNotification(
                        status=state.status, request_id=state.request_id))
            else:
                await self.run_trigger(cp, message, connector_id)
        except CALL_FAILURES as exc:
            log.warning("ocpp.trigger_failed", message=message, error=str(exc))

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
            record_security_event(self.store, SECURITY_RECONFIGURED, "AuthorizationKey changed")
        elif key == "SecurityProfile":
            if self.security_profiles is not None and self.security_profiles.trial is not None:
                self._reconnect_for = key
        elif key in ("TransactionMessageRetryInterval", "TransactionMessageAttempts"):
            self.outbox.wake()
        elif key == "MinimumStatusDuration":
            self.statuses.duration_changed()


def client_from_config(config: StationConfig, store: Store, station: StationPort | None = None,
                       firmware_version: str = __version__) -> OcppClient:
    """The OCPP client for a station config (its ``[ocpp]`` section must be present).

    The password is the AuthorizationKey the backend set (in its file, with a fallback until a
    new one worked), else the config's ``ocpp.password``; the security profile is the one the
    station last connected with, raised on trial by SecurityProfile; a ``[ocpp] ca_file`` is
    installed as a CentralSystemRootCertificate when none is; WebSocketPingInterval is read at
    every (re)connect and applied live on change."""
    if config.ocpp is None:
        raise ValueError("the station config has no [ocpp] section")
    ocpp_cfg = config.ocpp
    keys, authorization_keys = station_keys(config, store, provision=True)
    if ocpp_cfg.ca_file is not None:
        provision_ca_file(ocpp_cfg.ca_file, config.security.central_system_roots_dir)
    profiles = SecurityProfiles(
        store, ocpp_cfg.security_profile,
        problem=functools.partial(profile_problem, config, passwords=authorization_keys.passwords),
        record_event=functools.partial(record_security_event, store))
    connection = OcppConnection(
        ocpp_cfg.url, config.station.id, security_profile=profiles.current,
        passwords=authorization_keys.passwords, security=config.security,
        secure_url=ocpp_cfg.secure_url,
        ping_interval_s=lambda: keys.get_int("WebSocketPingInterval"))
    boot = BootInfo(vendor=config.station.vendor, model=config.station.model,
                    serial_number=config.station.serial_number, firmware_version=firmware_version,
                    meter_type=config.connector[0].meter.model[:25])
    certificates = StationCertificates(
        certificates=CertificateStore(config.security), keys=keys, store=store,
        charge_point_id=config.station.id, renew_before_days=config.security.renew_before_days)
    client = OcppClient(store=store, keys=keys, connection=connection, boot=boot,
                        connector_phases={c.id: c.phases for c in config.connector},
                        station=station, certificates=certificates)

    def over_tls() -> bool:
        profile = profiles.current()
        return profile >= 1 and connection.url_for(profile).startswith("wss://")

    client.attach_security(profiles, authorization_keys, over_tls)
    return client
