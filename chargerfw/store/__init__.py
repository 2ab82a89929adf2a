"""The station's durable state: one SQLite file shared by the station core and the OCPP layer.

What lives here: OCPP configuration keys the backend may change, the availability it set, the
authorization cache and local list, transactions with their last persisted meter reading, the
outbox of transaction-related OCPP messages and notifications, fault history, the security log, and a small ring of recent OCPP
frames. A transaction start, a meter reading, a stop and the outbox message about it are on
disk (fsynced) before anyone sends them. See :mod:`~chargerfw.store.facade`.
"""

from chargerfw.store.facade import Store
from chargerfw.store.frames import FRAME_LOG_SIZE
from chargerfw.store.records import (
    NOTIFICATION_ACTIONS,
    OUTBOX_ACTIONS,
    OUTBOX_DEAD,
    OUTBOX_DELIVERED,
    OUTBOX_PENDING,
    TX_OPEN,
    TX_STOPPED,
    FaultRecord,
    FrameRecord,
    OutboxMessage,
    SecurityEvent,
    StoreError,
    TransactionRecord,
)

__all__ = [
    "FRAME_LOG_SIZE", "NOTIFICATION_ACTIONS", "OUTBOX_ACTIONS", "OUTBOX_DEAD",
    "OUTBOX_DELIVERED", "OUTBOX_PENDING", "TX_OPEN", "TX_STOPPED", "FaultRecord", "FrameRecord",
    "OutboxMessage", "SecurityEvent", "Store", "StoreError", "TransactionRecord",
]
