"""The backend's OCPP 1.6 commands, decided against the station, the configuration keys and the
store. Each returns the 1.6 answer (a status string or the data of the reply); the charge point
puts it on the wire. What a command starts after its reply went out (a reset, the message a
TriggerMessage asked for, a reconnect for new credentials) is the client's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from ocpp.exceptions import (
    FormatViolationError,
    NotSupportedError,
    OccurenceConstraintViolationError,
    PropertyConstraintViolationError,
)
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError

from chargerfw.logs import get_logger
from chargerfw.ocpp.config_keys import ConfigEntry, ConfigurationKeys
from chargerfw.ocpp.station_port import StationPort
from chargerfw.ocpp.v16.certificates import StationCertificates
from chargerfw.ocpp.v16.diagnostics import LogUploads
from chargerfw.ocpp.v16.requests import wire_id_tag_info
from chargerfw.station.auth import IdTagInfo, InvalidIdTagInfoError
from chargerfw.station.charging_profiles import (
    ChargingProfilePurpose,
    ChargingRateUnit,
    ClearCriteria,
    ProfileRejected,
    composite_to_wire,
    profile_from_wire,
)
from chargerfw.station.firmware import DEFAULT_RETRY_INTERVAL_S, DEFAULT_TRIES, FirmwareRequest
from chargerfw.store import Store, StoreError

log = get_logger(__name__)

# Answers a backend DataTransfer of one vendor: (message_id, data) -> (status, data).
DataTransferHandler = Callable[[str | None, str | None], Awaitable[tuple[str, str | None]]]

TRIGGERABLE = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
               "DiagnosticsStatusNotification", "FirmwareStatusNotification")
# ExtendedTriggerMessage (Security Whitepaper); SignChargePointCertificate is Accepted where the
# station has a certificate store (``BackendCommands.certificates``).
EXTENDED_TRIGGERABLE = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
                        "LogStatusNotification", "FirmwareStatusNotification")


class BackendCommands:
    """Answers the backend's commands. ``data_transfer_handlers`` maps a vendorId to its
    handler (the client's dict: handlers added later count)."""

    def __init__(self, *, store: Store, keys: ConfigurationKeys, station: StationPort | None,
                 connector_phases: Mapping[int, int],
                 data_transfer_handlers: dict[str, DataTransferHandler],
                 uploads: LogUploads | None = None) -> None:
        self.store = store
        self.uploads = uploads
        self.keys = keys
        self.station = station
        self.connector_phases = dict(connector_phases)
        self.data_transfer_handlers = data_transfer_handlers
        # Whether the link the backend's commands come over is encrypted (wss://, profile 1+).
        self.link_encrypted: Callable[[], bool] = lambda: True
        # The certificate messages; None where the station has no certificate store.
        self.certificates: StationCertificates | None = None

    def _known_connector(self, connector_id: int) -> bool:
        return connector_id in self.connector_phases

    # -- configuration and authorization data ------------------------------------------------

    def change_configuration(self, key: str, value: str) -> str:
        if key == "AuthorizationKey" and not self.link_encrypted():
            # It would cross the network in the clear (a technician's local change may).
            log.warning("ocpp.authorization_key_refused", reason="unencrypted link")
            return "Rejected"
        status, _reason = self.keys.change(key, value)
        return status.value

    def get_configuration(self, key: list[str] | None) -> tuple[list[ConfigEntry], list[str]]:
        """(known entries, unknown keys); more keys than GetConfigurationMaxKeys is an error."""
        limit = self.keys.get_int("GetConfigurationMaxKeys")
        if key and len(key) > limit:
            raise OccurenceConstraintViolationError(
                details={"cause": f"at most {limit} keys per GetConfiguration"})
        return self.keys.get_configuration(key)

    def clear_cache(self) -> str:
        self.store.cache_clear()
        return "Accepted"

    def get_local_list_version(self) -> int:
        if not self.keys.get_bool("LocalAuthListEnabled"):
            return -1
        return self.store.local_list_version()

    def send_local_list(self, version: int, update_type: str,
                        entries: list[dict[str, Any]]) -> str:
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
                updates[entry["id_tag"]] = (None if info is None
                                            else IdTagInfo.from_wire(wire_id_tag_info(info)))
            except InvalidIdTagInfoError as exc:
                log.warning("ocpp.local_list_refused", error=str(exc))
                return "Failed"
        if len(updates) != len(entries):
            return "Failed"  # the same idTag twice in one update
        kept = 0 if full else self.store.local_list_size()
        added = sum(v is not None for v in updates.values())
        if kept + added > self.keys.get_int("LocalAuthListMaxLength"):
            return "Failed"
        try:
            self.store.local_list_apply(version, updates, full)
        except StoreError as exc:
            log.warning("ocpp.local_list_refused", error=str(exc))
            return "Failed"
        return "Accepted"

    # -- the station -------------------------------------------------------------------------

    def change_availability(self, connector_id: int, kind: str) -> str:
        if self.station is None or not (connector_id == 0 or self._known_connector(connector_id)):
            return "Rejected"
        return self.station.change_availability(connector_id, kind == "Operative")

    def remote_start(self, id_tag: str, connector_id: int | None,
                     charging_profile: dict[str, Any] | None) -> str:
        if self.station is None:
            return "Rejected"
        if connector_id is not None and not self._known_connector(connector_id):
            return "Rejected"
        authorize = self.keys.get_bool("AuthorizeRemoteTxRequests")
        if charging_profile is None:
            ok = self.station.remote_start(id_tag, connector_id, authorize)
            return "Accepted" if ok else "Rejected"
        try:
            profile = profile_from_wire(charging_profile)
            ok = self.station.remote_start(id_tag, connector_id, authorize,
                                           charging_profile=profile)
        except ProfileRejected as exc:
            log.warning("ocpp.remote_start_profile_rejected", reason=str(exc))
            return "Rejected"
        return "Accepted" if ok else "Rejected"

    # -- Smart Charging ------------------------------------------------------------------------

    def set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> str:
        """SetChargingProfile: Accepted or Rejected (the reason is logged)."""
        if self.station is None:
            return "Rejected"
        if connector_id != 0 and not self._known_connector(connector_id):
            log.warning("ocpp.charging_profile_rejected", reason=f"no connector {connector_id}")
            return "Rejected"
        try:
            self.station.set_charging_profile(connector_id, profile_from_wire(cs_charging_profiles))
        except ProfileRejected as exc:
            log.warning("ocpp.charging_profile_rejected", connector=connector_id,
                        reason=str(exc))
            return "Rejected"
        return "Accepted"

    def clear_charging_profile(self, profile_id: int | None, connector_id: int | None,
                               purpose: str | None, stack_level: int | None) -> str:
        """ClearChargingProfile: Accepted (something was cleared) or Unknown."""
        if self.station is None:
            return "Unknown"
        criteria = ClearCriteria(profile_id, connector_id,
                                 None if purpose is None else ChargingProfilePurpose(purpose),
                                 stack_level)
        return "Accepted" if self.station.clear_charging_profile(criteria) else "Unknown"

    def get_composite_schedule(self, connector_id: int, duration: int,
                               unit: str | None) -> tuple[str, dict[str, Any] | None]:
        """GetCompositeSchedule: ("Accepted", the reply's other fields) or ("Rejected", None)
        for an unknown connector."""
        if self.station is None or not (connector_id == 0 or self._known_connector(connector_id)):
            return "Rejected", None
        rate_unit = None if unit is None else ChargingRateUnit(unit)
        try:
            schedule = self.station.composite_schedule(connector_id, duration, rate_unit)
        except ProfileRejected as exc:
            log.warning("ocpp.composite_schedule_rejected", reason=str(exc))
            return "Rejected", None
        wire = composite_to_wire(schedule)
        return "Accepted", {"connector_id": connector_id,
                            "schedule_start": wire["start_schedule"],
                            "charging_schedule": wire}

    def remote_stop(self, transaction_id: int) -> str:
        if self.station is None:
            return "Rejected"
        for record in self.store.open_transactions():
            if record.backend_tx_id == transaction_id:
                return "Accepted" if self.station.remote_stop(record.connector_id) else "Rejected"
        return "Rejected"

    def reset(self) -> str:
        return "Accepted" if self.station else "Rejected"

    async def run_reset(self, kind: str) -> None:
        """The reset itself, after the Accepted reply went out."""
        if self.station is not None:
            await self.station.reset("Hard" if kind == "Hard" else "Soft")

    async def unlock(self, connector_id: int) -> str:
        if self.station is None or not self._known_connector(connector_id):
            return "NotSupported"
        return await self.station.unlock(connector_id)

    def reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
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

    def cancel_reservation(self, reservation_id: int) -> str:
        cancel = getattr(self.station, "cancel_reservation", None)
        if cancel is None:
            return "Rejected"
        return "Accepted" if cancel(reservation_id) else "Rejected"

    async def data_transfer(self, vendor_id: str, message_id: str | None,
                            data: str | None) -> tuple[str, str | None]:
        handler = self.data_transfer_handlers.get(vendor_id)
        if handler is None:
            return "UnknownVendorId", None
        return await handler(message_id, data)

    # -- Firmware Management -----------------------------------------------------------------

    def update_firmware(self, location: str, retrieve_date: str, retries: int | None,
                        retry_interval: int | None) -> None:
        """UpdateFirmware: taken, or a CALLERROR saying why not (its reply has no status)."""
        update = getattr(self.station, "update_firmware", None)
        if update is None:
            raise OcppNotImplementedError(details={"cause": "no firmware updates here"})
        request = _firmware_request(location, retrieve_date, "retrieveDate", retries,
                                    retry_interval)
        refused = update(request)
        if refused is not None:
            raise NotSupportedError(details={"cause": refused})

    def signed_update_firmware(self, request_id: int, firmware: dict[str, Any],
                               retries: int | None, retry_interval: int | None) -> str:
        """SignedUpdateFirmware (Security Whitepaper): its status, or a CALLERROR naming the
        field that cannot be taken (nothing changes then)."""
        update = getattr(self.station, "signed_update_firmware", None)
        if update is None:
            raise OcppNotImplementedError(details={"cause": "no signed firmware updates here"})
        install = firmware.get("install_date_time")
        request = _firmware_request(
            firmware["location"], firmware["retrieve_date_time"], "retrieveDateTime", retries,
            retry_interval, request_id=request_id, signature=firmware["signature"],
            signing_certificate=firmware["signing_certificate"],
            install_at=None if install is None else _aware_time(install, "installDateTime"))
        return str(update(request))

    def firmware_status(self) -> str:
        status = getattr(self.station, "firmware_status", None)
        return "Idle" if status is None else str(status())

    def trigger(self, message: str, connector_id: int | None) -> str:
        """Whether TriggerMessage is Accepted; the client sends the message after the reply."""
        if message not in TRIGGERABLE:
            return "NotImplemented"
        if connector_id is not None and not (connector_id == 0
                                             or self._known_connector(connector_id)):
            return "Rejected"
        return "Accepted"

    def extended_trigger(self, message: str, connector_id: int | None) -> str:
        """Whether ExtendedTriggerMessage is Accepted; the client sends after the reply."""
        if message == "SignChargePointCertificate":
            return "Accepted" if self.certificates is not None else "Rejected"
        if message not in EXTENDED_TRIGGERABLE:
            return "NotImplemented"
        if connector_id is not None and not (connector_id == 0
                                             or self._known_connector(connector_id)):
            return "Rejected"
        return "Accepted"

    # -- diagnostics and logs --------------------------------------------------------------------

    def get_diagnostics(self, location: str, retries: int | None, retry_interval: int | None,
                        start_time: str | None, stop_time: str | None) -> str | None:
        """GetDiagnostics: the fileName, or None when nothing will be uploaded."""
        if self.uploads is None:
            return None
        return self.uploads.get_diagnostics(location, retries, retry_interval, start_time,
                                            stop_time)

    def get_log(self, log_type: str, request_id: int, parameters: dict[str, Any],
                retries: int | None, retry_interval: int | None) -> tuple[str, str | None]:
        """GetLog: (status, filename)."""
        if self.uploads is None:
            return "Rejected", None
        return self.uploads.get_log(log_type, request_id, parameters, retries, retry_interval)


def _aware_time(text: str, field: str) -> float:
    """A wire date-time with its zone as a Unix time; FormatViolation naming ``field``."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FormatViolationError(
            details={"cause": f"{field} {text[:40]!r} is not a date-time"}) from None
    if parsed.tzinfo is None:
        raise FormatViolationError(details={"cause": f"{field} has no time zone"})
    return parsed.timestamp()


def _firmware_request(location: str, retrieve_date: str, retrieve_field: str,
                      retries: int | None, retry_interval: int | None,
                      **signed: Any) -> FirmwareRequest:
    """(Signed)UpdateFirmware's request, with the station's defaults for what it leaves
    out; a CALLERROR naming what is wrong."""
    retrieve_at = _aware_time(retrieve_date, retrieve_field)
    if (retries is not None and retries < 0) or (retry_interval is not None
                                                 and retry_interval < 0):
        raise PropertyConstraintViolationError(
            details={"cause": "retries and retryInterval must not be negative"})
    try:
        return FirmwareRequest(
            location, retrieve_at,
            tries=DEFAULT_TRIES if retries is None else max(1, retries),
            retry_interval_s=DEFAULT_RETRY_INTERVAL_S if retry_interval is None
            else retry_interval, **signed)
    except ValueError as exc:
        raise PropertyConstraintViolationError(details={"cause": str(exc)}) from None
