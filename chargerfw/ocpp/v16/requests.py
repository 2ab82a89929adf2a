"""OCPP 1.6 requests built from what the station and the store hold, and their answers read.

The outbox's messages become StartTransaction, MeterValues and StopTransaction CALLs, and the
status notifications (diagnostics, log, firmware, security) theirs, here
(:class:`OutboxSender16`); a message queued offline gets the backend's transactionId at send
time, and a message of a transaction the backend never gave an id is never sent with a made-up
one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.v16 import call

from chargerfw.logs import get_logger
from chargerfw.ocpp.outbox import Delivered, Refused, Undeliverable
from chargerfw.ocpp.station_port import BootInfo, StationPort, notify_id_tag_info
from chargerfw.ocpp.status import ConnectorStatusReport
from chargerfw.ocppj.frames import integer_out_of_range
from chargerfw.store import OutboxMessage, Store
from chargerfw.timestamps import iso_utc

log = get_logger(__name__)

# What a CALL can end in besides its answer: a CALLERROR (as the library raises it), an error
# code 1.6 does not know, or no answer within the call timeout.
CALL_FAILURES = (TimeoutError, OCPPError, UnknownCallErrorCodeError)

# CALLERROR codes that say the backend does not handle the action at all (OCPP-J 1.6 4.2.3; the
# library may swap the two): a notification refused so is never resent.
UNHANDLED_ACTION_CODES = frozenset({"NotImplemented", "NotSupported"})

# Sends one CALL on the current link and returns the library's answer object; the unique id
# is the outbox message's own, so a resend keeps it.
SendCall = Callable[[Any, str | None], Awaitable[Any]]


def wire_id_tag_info(info: Any) -> dict[str, str]:
    """A backend idTagInfo (the library's snake-case dict) in wire spelling."""
    if not isinstance(info, dict):
        return {}
    out = {"status": str(info.get("status"))}
    if info.get("expiry_date"):
        out["expiryDate"] = str(info["expiry_date"])
    if info.get("parent_id_tag"):
        out["parentIdTag"] = str(info["parent_id_tag"])
    return out


def boot_notification(boot: BootInfo) -> call.BootNotification:
    return call.BootNotification(
        charge_point_vendor=boot.vendor, charge_point_model=boot.model,
        charge_point_serial_number=boot.serial_number,
        firmware_version=boot.firmware_version, meter_type=boot.meter_type,
        meter_serial_number=boot.meter_serial_number)


def status_notification(connector_id: int, report: ConnectorStatusReport,
                        ) -> call.StatusNotification:
    return call.StatusNotification(
        connector_id=connector_id, error_code=report.error_code, status=report.status,
        timestamp=iso_utc(report.timestamp), info=report.info,
        vendor_error_code=report.vendor_error_code)


NOTIFICATION_CALLS: dict[str, Any] = {
    "DiagnosticsStatusNotification": call.DiagnosticsStatusNotification,
    "FirmwareStatusNotification": call.FirmwareStatusNotification,
    "LogStatusNotification": call.LogStatusNotification,
    "SignedFirmwareStatusNotification": call.SignedFirmwareStatusNotification,
    "SecurityEventNotification": call.SecurityEventNotification,
}


def outbox_request(message: OutboxMessage) -> Any:
    """The CALL for an outbox message; :class:`Undeliverable` if it needs the backend's
    transactionId and none is known, or its payload does not fit its notification."""
    p = message.payload
    notification = NOTIFICATION_CALLS.get(message.action)
    if notification is not None:
        try:
            return notification(**camel_to_snake_case(p))
        except TypeError as exc:
            raise Undeliverable(f"outbox {message.seq}: {message.action} payload {p}: {exc}"
                                ) from None
    if message.action == "StartTransaction":
        return call.StartTransaction(connector_id=p["connectorId"], id_tag=p["idTag"],
                                     meter_start=p["meterStart"], timestamp=p["timestamp"],
                                     reservation_id=p.get("reservationId"))
    if message.backend_tx_id is None:
        raise Undeliverable(f"outbox {message.seq}: no transactionId known for transaction "
                            f"{message.local_tx_id}")
    if message.action == "MeterValues":
        return call.MeterValues(connector_id=p["connectorId"], meter_value=p["meterValue"],
                                transaction_id=message.backend_tx_id)
    return call.StopTransaction(meter_stop=p["meterStop"], timestamp=p["timestamp"],
                                transaction_id=message.backend_tx_id, reason=p.get("reason"),
                                id_tag=p.get("idTag"), transaction_data=p.get("transactionData"))


class OutboxSender16:
    """Delivers outbox messages as 1.6 CALLs with ``send_call`` (one link), and tells the
    station what the answers said about transactions and idTags."""

    def __init__(self, send_call: SendCall, store: Store, station: StationPort | None) -> None:
        self._send_call = send_call
        self._store = store
        self._station = station

    def request_for(self, message: OutboxMessage) -> Any:
        return outbox_request(message)

    async def send(self, message: OutboxMessage, request: Any) -> Delivered:
        try:
            result = await self._send_call(request, message.unique_id)
        except (OCPPError, UnknownCallErrorCodeError) as exc:
            code = getattr(exc, "code", "GenericError")
            raise Refused(f"{code}: {getattr(exc, 'description', exc)}",
                          final=message.local_tx_id is None and code in UNHANDLED_ACTION_CODES,
                          ) from exc
        if message.action == "StartTransaction":
            if integer_out_of_range(result.transaction_id) is not None:
                # No id we could send back (1.6 integers are 32-bit): a refused answer, retried
                # as TransactionMessageAttempts allows; the transaction stays local meanwhile.
                log.warning("transaction.bad_transaction_id", local_id=message.local_tx_id,
                            transaction_id=str(result.transaction_id)[:40])
                raise Refused(f"transactionId {str(result.transaction_id)[:40]} is not a 32-bit "
                              "integer")
            info = wire_id_tag_info(result.id_tag_info)
            return Delivered(backend_tx_id=int(result.transaction_id),
                             start_status=info.get("status"), id_tag_info=info)
        if message.action == "StopTransaction" and getattr(result, "id_tag_info", None):
            return Delivered(id_tag_info=wire_id_tag_info(result.id_tag_info))
        return Delivered()

    def delivered(self, message: OutboxMessage, answer: Delivered) -> None:
        info = dict(answer.id_tag_info or {})
        if message.action == "StartTransaction":
            p = message.payload
            assert message.local_tx_id is not None
            log.info("transaction.confirmed", local_id=message.local_tx_id,
                     transaction_id=answer.backend_tx_id, status=info.get("status"))
            notify_id_tag_info(self._station, p["idTag"], info)
            if (self._station is not None and answer.backend_tx_id is not None
                    and message.local_tx_id is not None):
                try:
                    self._station.transaction_confirmed(p["connectorId"], message.local_tx_id,
                                                        answer.backend_tx_id, p["idTag"], info)
                except Exception:
                    log.exception("station.transaction_confirmed_failed")
        elif message.action == "StopTransaction" and answer.id_tag_info is not None:
            tag = message.payload.get("idTag")
            if not tag and message.local_tx_id is not None:
                tag = self._store.transaction(message.local_tx_id).id_tag
            if tag:
                notify_id_tag_info(self._station, tag, info)
