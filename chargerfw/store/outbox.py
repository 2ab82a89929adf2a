"""The outbox: transaction-related OCPP messages, and the status notifications that must not be
lost (diagnostics, log, firmware, security), on disk before they are sent, delivered strictly in
order, at least once, with TransactionMessageAttempts and TransactionMessageRetryInterval."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Mapping
from typing import Any

from chargerfw.logs import get_logger
from chargerfw.store.database import Database
from chargerfw.store.records import (
    NOTIFICATION_ACTIONS,
    OUTBOX_ACTIONS,
    OUTBOX_DEAD,
    OutboxMessage,
    StoreError,
    check_int,
)

log = get_logger(__name__)

_SELECT = (
    "SELECT o.*, t.backend_tx_id FROM outbox o "
    "LEFT JOIN transactions t ON t.local_id = o.local_tx_id "
)


def enqueue(conn: sqlite3.Connection, local_id: int | None, action: str,
            payload: Mapping[str, Any], now: float) -> int:
    """Queue one message about a transaction (``local_id``), or a notification (``local_id``
    None), inside the caller's SQLite transaction (the change it reports commits with it)."""
    if local_id is None and action not in NOTIFICATION_ACTIONS:
        raise StoreError(f"{action} is not a notification the outbox carries; one of "
                         f"{', '.join(NOTIFICATION_ACTIONS)}")
    if local_id is not None and action not in OUTBOX_ACTIONS:
        raise StoreError(f"{action} is not a transaction-related message")
    # The unique id stays the same for every resend so a backend can recognise a duplicate.
    unique_id = str(uuid.uuid4())  # OCPP-J: at most 36 characters
    cur = conn.execute(
        "INSERT INTO outbox (local_tx_id, action, payload, unique_id, state, created_at) "
        "VALUES (?, ?, ?, ?, 'pending', ?)",
        (local_id, action, json.dumps(payload, separators=(",", ":")), unique_id, now),
    )
    return int(cur.lastrowid or 0)


def enqueue_notification(conn: sqlite3.Connection, action: str, payload: Mapping[str, Any],
                         now: float) -> int:
    """Queue a status notification that belongs to no transaction, inside the caller's SQLite
    transaction (the state it reports commits with it)."""
    return enqueue(conn, None, action, payload, now)


def _message(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        seq=row["seq"], local_tx_id=row["local_tx_id"], action=row["action"],
        payload=json.loads(row["payload"]), unique_id=row["unique_id"], state=row["state"],
        created_at=row["created_at"], attempts=row["attempts"], sends=row["sends"],
        next_attempt_at=row["next_attempt_at"], last_error=row["last_error"],
        backend_tx_id=row["backend_tx_id"],
    )


class Outbox:
    """The queue of transaction messages and their delivery state."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def notify(self, action: str, payload: Mapping[str, Any]) -> int:
        """Queue a notification (one of :data:`NOTIFICATION_ACTIONS`, ``payload`` in wire
        spelling) behind everything already queued; durable when this returns. Its seq."""
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{action} payload is not JSON: {exc}") from None
        with self._db.tx() as conn:
            return enqueue(conn, None, action, payload, time.time())

    def head(self) -> OutboxMessage | None:
        """The oldest undelivered message: the only one that may be sent (strict order)."""
        with self._db.read() as conn:
            row = conn.execute(
                _SELECT + "WHERE o.state = 'pending' ORDER BY o.seq LIMIT 1").fetchone()
        return None if row is None else _message(row)

    def stop_pending(self, connector_id: int) -> bool:
        """Whether a StopTransaction of a transaction on ``connector_id`` is still to be
        delivered."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT 1 FROM outbox o JOIN transactions t ON t.local_id = o.local_tx_id "
                "WHERE o.state = 'pending' AND o.action = 'StopTransaction' "
                "AND t.connector_id = ? LIMIT 1", (connector_id,)).fetchone()
        return row is not None

    def pending(self) -> list[OutboxMessage]:
        with self._db.read() as conn:
            rows = conn.execute(_SELECT + "WHERE o.state = 'pending' ORDER BY o.seq").fetchall()
        return [_message(r) for r in rows]

    def all(self, limit: int = 200) -> list[OutboxMessage]:
        with self._db.read() as conn:
            rows = conn.execute(_SELECT + "ORDER BY o.seq DESC LIMIT ?", (limit,)).fetchall()
        return [_message(r) for r in reversed(rows)]

    def note_send(self, seq: int) -> None:
        """Count a transmission (whatever its outcome) before the frame goes out."""
        with self._db.tx(durable=False) as conn:
            conn.execute("UPDATE outbox SET sends = sends + 1 WHERE seq = ?", (seq,))

    def delivered(self, seq: int, backend_tx_id: int | None = None,
                  start_status: str | None = None) -> None:
        """The backend answered with a CALLRESULT. For a StartTransaction, also store the
        backend's transactionId on the transaction in the same commit."""
        with self._db.tx() as conn:
            row = conn.execute("SELECT local_tx_id, action FROM outbox WHERE seq = ?",
                               (seq,)).fetchone()
            if row is None:
                raise StoreError(f"no outbox message {seq}")
            if backend_tx_id is not None:
                if row["action"] != "StartTransaction":
                    raise StoreError("only a StartTransaction answer carries a transactionId")
                check_int("transactionId", backend_tx_id, minimum=-(2**31))
                conn.execute(
                    "UPDATE transactions SET backend_tx_id = ?, start_status = ? "
                    "WHERE local_id = ?",
                    (backend_tx_id, start_status, row["local_tx_id"]),
                )
            conn.execute(
                "UPDATE outbox SET state = 'delivered', delivered_at = ?, last_error = NULL "
                "WHERE seq = ?", (time.time(), seq))

    def failed(self, seq: int, error: str, max_attempts: int,
               retry_interval_s: float, now: float | None = None) -> OutboxMessage:
        """The backend answered with a CALLERROR ("failure to process").

        OCPP 1.6 (4.8): resend after TransactionMessageRetryInterval times the number of
        failed attempts so far; after TransactionMessageAttempts failures the message may be
        skipped. We mark it dead (kept on disk, never deleted); if it was a StartTransaction,
        the later messages of that transaction die with it: without the backend's
        transactionId they could only carry a made-up id (field lesson: never send -1)."""
        now = time.time() if now is None else now
        with self._db.tx() as conn:
            row = conn.execute("SELECT * FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                raise StoreError(f"no outbox message {seq}")
            attempts = row["attempts"] + 1
            if attempts >= max(1, max_attempts):
                conn.execute("UPDATE outbox SET state = 'dead', attempts = ?, last_error = ? "
                             "WHERE seq = ?", (attempts, error, seq))
                if row["action"] == "StartTransaction":
                    conn.execute(
                        "UPDATE outbox SET state = 'dead', last_error = ? "
                        "WHERE local_tx_id = ? AND state = 'pending'",
                        (f"StartTransaction {seq} was refused", row["local_tx_id"]))
                    conn.execute("UPDATE transactions SET start_status = 'Refused' "
                                 "WHERE local_id = ?", (row["local_tx_id"],))
            else:
                conn.execute(
                    "UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = ? "
                    "WHERE seq = ?",
                    (attempts, error, now + retry_interval_s * attempts, seq))
            full = conn.execute(_SELECT + "WHERE o.seq = ?", (seq,)).fetchone()
        log.warning("outbox.call_error", seq=seq, action=row["action"], attempts=attempts,
                    error=error, dead=full["state"] == OUTBOX_DEAD)
        return _message(full)

    def defer(self, seq: int, until: float, error: str) -> None:
        """A delivery failure (timeout, lost link): not counted as an attempt, just retried."""
        with self._db.tx(durable=False) as conn:
            conn.execute("UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE seq = ?",
                         (until, error, seq))

    def prune(self, keep_delivered: int = 500) -> int:
        """Forget delivered messages beyond the newest ``keep_delivered`` (dead ones stay for a
        technician), and the StopTxn data of transactions whose StopTransaction was delivered.
        Returns how many outbox rows went."""
        with self._db.tx(durable=False) as conn:
            cur = conn.execute(
                "DELETE FROM outbox WHERE state = 'delivered' AND seq NOT IN "
                "(SELECT seq FROM outbox WHERE state = 'delivered' ORDER BY seq DESC LIMIT ?)",
                (keep_delivered,))
            conn.execute(
                "DELETE FROM transaction_data WHERE local_id IN (SELECT t.local_id FROM "
                "transactions t WHERE t.state = 'stopped' AND NOT EXISTS (SELECT 1 FROM outbox o "
                "WHERE o.local_tx_id = t.local_id AND o.action = 'StopTransaction' "
                "AND o.state = 'pending'))")
            return cur.rowcount
