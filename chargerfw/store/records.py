"""What the store hands out and refuses: its records, its error, and the checks every write makes
before it touches the database (so bad input changes nothing)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chargerfw.station.auth import IdTagInfo

# Actions the outbox carries: the OCPP 1.6 transaction-related messages ...
OUTBOX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
# ... and the status notifications that must reach the backend in order, belonging to no
# transaction (Security Whitepaper messages included).
NOTIFICATION_ACTIONS = ("DiagnosticsStatusNotification", "FirmwareStatusNotification",
                        "LogStatusNotification", "SignedFirmwareStatusNotification",
                        "SecurityEventNotification")

# Outbox message states. "dead" = the backend refused it TransactionMessageAttempts times (or it
# depends on a StartTransaction that was refused); kept on disk for a technician, never sent.
OUTBOX_PENDING = "pending"
OUTBOX_DELIVERED = "delivered"
OUTBOX_DEAD = "dead"

TX_OPEN = "open"
TX_STOPPED = "stopped"


class StoreError(ValueError):
    """A request the store refuses (bad input, unknown transaction, ...). Nothing was stored."""


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """One charging session as stored. ``backend_tx_id`` is None until StartTransaction.conf."""

    local_id: int
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_at: float
    reservation_id: int | None
    backend_tx_id: int | None
    start_status: str | None
    state: str
    meter_stop_wh: int | None
    stopped_at: float | None
    stop_reason: str | None
    stop_id_tag: str | None
    last_meter_wh: int | None
    last_meter_at: float | None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message waiting for (or past) delivery.

    ``payload`` is the OCPP payload (camelCase) without ``transactionId``; the sender adds the
    backend's id from the transaction at send time, so a message queued offline carries the id
    the backend gave once StartTransaction.conf arrived. A notification
    (:data:`NOTIFICATION_ACTIONS`) has no transaction: ``local_tx_id`` is None.
    """

    seq: int
    local_tx_id: int | None
    action: str
    payload: dict[str, Any]
    unique_id: str
    state: str
    created_at: float
    attempts: int
    sends: int
    next_attempt_at: float
    last_error: str | None
    backend_tx_id: int | None


@dataclass(frozen=True, slots=True)
class FaultRecord:
    id: int
    code: str
    connector_id: int
    needs_technician: bool
    detail: str
    raised_at: float
    cleared_at: float | None


@dataclass(frozen=True, slots=True)
class FrameRecord:
    seq: int
    at: float
    direction: str
    frame: str


def info_to_json(info: IdTagInfo) -> str:
    if not isinstance(info, IdTagInfo):
        raise StoreError(f"expected an IdTagInfo, got {type(info).__name__}")
    return json.dumps(info.to_wire(), separators=(",", ":"), sort_keys=True)


def info_from_json(text: str) -> IdTagInfo:
    return IdTagInfo.from_wire(json.loads(text))


def check_id_tag(id_tag: object) -> str:
    if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= 20:
        raise StoreError(f"idTag must be a string of 1..20 characters, got {id_tag!r}")
    return id_tag


def check_int(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StoreError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_time(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise StoreError(f"{name} must be a POSIX timestamp, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One entry of the security log (OCPP Security Whitepaper event types)."""

    seq: int
    at: float
    type: str
    tech_info: str | None
