"""Charging sessions as the station records them: started, metered, stopped (or ended with
``PowerLoss`` after a crash), each change committed together with the outbox message that tells
the backend, so neither exists without the other."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from chargerfw.logs import get_logger
from chargerfw.store.database import Database
from chargerfw.store.outbox import enqueue
from chargerfw.store.records import (
    TX_OPEN,
    StoreError,
    TransactionRecord,
    check_id_tag,
    check_int,
    check_time,
)
from chargerfw.timestamps import iso_utc

log = get_logger(__name__)


class Transactions:
    """The transactions table, its StopTxn data, and the messages their changes queue."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _tx_row(self, conn: sqlite3.Connection, local_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM transactions WHERE local_id = ?", (local_id,)).fetchone()
        if row is None:
            raise StoreError(f"no transaction with local id {local_id}")
        return row

    @staticmethod
    def _tx_record(row: sqlite3.Row) -> TransactionRecord:
        return TransactionRecord(**{k: row[k] for k in row.keys()})

    def start(self, connector_id: int, id_tag: str, meter_start_wh: int,
                          started_at: float, reservation_id: int | None = None,
                          timestamp_iso: str | None = None) -> TransactionRecord:
        """Record a new session and queue its StartTransaction, in one durable commit."""
        check_int("connector_id", connector_id, minimum=1)
        check_id_tag(id_tag)
        check_int("meter_start_wh", meter_start_wh)
        started_at = check_time("started_at", started_at)
        if reservation_id is not None:
            check_int("reservation_id", reservation_id)
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start_wh,
            "timestamp": timestamp_iso or iso_utc(started_at),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        with self._db.tx() as conn:
            busy = conn.execute(
                "SELECT local_id FROM transactions WHERE state = 'open' AND connector_id = ?",
                (connector_id,),
            ).fetchone()
            if busy is not None:
                raise StoreError(
                    f"connector {connector_id} already has open transaction {busy['local_id']}")
            cur = conn.execute(
                "INSERT INTO transactions (connector_id, id_tag, meter_start_wh, started_at, "
                "reservation_id, state, last_meter_wh, last_meter_at) "
                "VALUES (?, ?, ?, ?, ?, 'open', ?, ?)",
                (connector_id, id_tag, meter_start_wh, started_at, reservation_id,
                 meter_start_wh, started_at),
            )
            local_id = int(cur.lastrowid or 0)
            enqueue(conn, local_id, "StartTransaction", payload, started_at)
            return self._tx_record(self._tx_row(conn, local_id))

    def record_meter(self, local_id: int, energy_wh: int, at: float) -> None:
        """Persist the latest energy register of an open transaction (the PowerLoss stop value).

        A reading below the previous one is refused: the meter must stay monotonic."""
        check_int("energy_wh", energy_wh)
        at = check_time("at", at)
        with self._db.tx() as conn:
            row = self._tx_row(conn, local_id)
            if row["state"] != TX_OPEN:
                raise StoreError(f"transaction {local_id} is not open")
            if row["last_meter_wh"] is not None and energy_wh < row["last_meter_wh"]:
                raise StoreError(
                    f"energy {energy_wh} Wh is below the last reading {row['last_meter_wh']} Wh")
            conn.execute(
                "UPDATE transactions SET last_meter_wh = ?, last_meter_at = ? WHERE local_id = ?",
                (energy_wh, at, local_id),
            )

    def add_data(self, local_id: int, meter_value: Mapping[str, Any]) -> None:
        """Keep one MeterValue for StopTransaction.transactionData (StopTxn*Data)."""
        if not isinstance(meter_value, Mapping) or "sampledValue" not in meter_value:
            raise StoreError("a MeterValue needs 'timestamp' and 'sampledValue'")
        with self._db.tx() as conn:
            self._tx_row(conn, local_id)
            conn.execute("INSERT INTO transaction_data (local_id, meter_value) VALUES (?, ?)",
                         (local_id, json.dumps(meter_value, separators=(",", ":"))))

    def data(self, local_id: int) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT meter_value FROM transaction_data WHERE local_id = ? ORDER BY seq",
                (local_id,)).fetchall()
        return [json.loads(r["meter_value"]) for r in rows]

    def enqueue_meter_values(self, local_id: int, connector_id: int,
                             meter_value: list[Mapping[str, Any]]) -> int:
        """Queue a MeterValues about an open transaction (transactionId filled in at send time)."""
        if not meter_value:
            raise StoreError("MeterValues needs at least one meterValue")
        payload = {"connectorId": connector_id, "meterValue": list(meter_value)}
        with self._db.tx() as conn:
            row = self._tx_row(conn, local_id)
            if row["state"] != TX_OPEN:
                raise StoreError(f"transaction {local_id} is not open")
            return enqueue(conn, local_id, "MeterValues", payload, time.time())

    def stop(self, local_id: int, meter_stop_wh: int, stopped_at: float,
                         reason: str, id_tag: str | None = None,
                         transaction_data: list[Mapping[str, Any]] | None = None,
                         timestamp_iso: str | None = None) -> bool:
        """Close a session and queue its StopTransaction in one durable commit.

        Returns False (and changes nothing) if it was already stopped: a stop happens once."""
        check_int("meter_stop_wh", meter_stop_wh)
        stopped_at = check_time("stopped_at", stopped_at)
        if not isinstance(reason, str) or not reason:
            raise StoreError(f"stop reason must be a non-empty string, got {reason!r}")
        if id_tag is not None:
            check_id_tag(id_tag)
        with self._db.tx() as conn:
            row = self._tx_row(conn, local_id)
            if row["state"] != TX_OPEN:
                return False
            self._close(conn, row, meter_stop_wh, stopped_at, reason, id_tag,
                        transaction_data, timestamp_iso)
            return True

    def _close(self, conn: sqlite3.Connection, row: sqlite3.Row, meter_stop_wh: int,
               stopped_at: float, reason: str, id_tag: str | None,
               transaction_data: list[Mapping[str, Any]] | None,
               timestamp_iso: str | None) -> None:
        local_id = row["local_id"]
        if transaction_data is None:
            transaction_data = [
                json.loads(r["meter_value"]) for r in conn.execute(
                    "SELECT meter_value FROM transaction_data WHERE local_id = ? ORDER BY seq",
                    (local_id,))
            ]
        payload: dict[str, Any] = {
            "meterStop": meter_stop_wh,
            "timestamp": timestamp_iso or iso_utc(stopped_at),
            "reason": reason,
        }
        if id_tag is not None:
            payload["idTag"] = id_tag
        if transaction_data:
            payload["transactionData"] = list(transaction_data)
        conn.execute(
            "UPDATE transactions SET state = 'stopped', meter_stop_wh = ?, stopped_at = ?, "
            "stop_reason = ?, stop_id_tag = ? WHERE local_id = ?",
            (meter_stop_wh, stopped_at, reason, id_tag, local_id),
        )
        enqueue(conn, local_id, "StopTransaction", payload, stopped_at)

    def recover_interrupted(self, reason: str = "PowerLoss") -> list[TransactionRecord]:
        """At start-up: end every transaction still open (its process died) with ``reason``, the
        last persisted meter reading and that reading's time, queueing one StopTransaction each.

        Each transaction closes in its own commit together with its StopTransaction, so a crash
        during recovery leaves every transaction either untouched or fully closed; running it
        again closes only the rest. Call it before the station starts new sessions."""
        with self._db.read() as conn:
            ids = [r["local_id"] for r in conn.execute(
                "SELECT local_id FROM transactions WHERE state = 'open' ORDER BY local_id")]
        closed = []
        for local_id in ids:
            with self._db.tx() as conn:
                row = self._tx_row(conn, local_id)
                if row["state"] != TX_OPEN:
                    continue
                meter = row["last_meter_wh"] if row["last_meter_wh"] is not None else row["meter_start_wh"]
                at = row["last_meter_at"] if row["last_meter_at"] is not None else row["started_at"]
                self._close(conn, row, meter, at, reason, None, None, None)
                closed.append(self._tx_record(self._tx_row(conn, local_id)))
            log.warning("transaction.recovered", local_id=local_id, reason=reason,
                        meter_stop_wh=meter)
        return closed

    def set_backend_id(self, local_id: int, backend_tx_id: int,
                                   status: str | None = None) -> None:
        check_int("transactionId", backend_tx_id, minimum=-(2**31))
        with self._db.tx() as conn:
            self._tx_row(conn, local_id)
            conn.execute(
                "UPDATE transactions SET backend_tx_id = ?, start_status = ? WHERE local_id = ?",
                (backend_tx_id, status, local_id),
            )

    def get(self, local_id: int) -> TransactionRecord:
        with self._db.read() as conn:
            return self._tx_record(self._tx_row(conn, local_id))

    def by_backend_id(self, backend_tx_id: int) -> TransactionRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT * FROM transactions WHERE backend_tx_id = ? ORDER BY local_id DESC LIMIT 1",
                (backend_tx_id,)).fetchone()
        return None if row is None else self._tx_record(row)

    def open(self) -> list[TransactionRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM transactions WHERE state = 'open' ORDER BY local_id").fetchall()
        return [self._tx_record(r) for r in rows]

    def recent(self, limit: int = 100) -> list[TransactionRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM transactions ORDER BY local_id DESC LIMIT ?", (limit,)).fetchall()
        return [self._tx_record(r) for r in rows]

    def highest_energy_wh_by_connector(self, recent: int = 50) -> dict[int, float]:
        """The highest energy register each connector's ``recent`` transactions saw: where a
        meter stood when the station last knew it (a start before the first sample, a
        simulated meter that must stay monotonic across restarts)."""
        highest: dict[int, float] = {}
        for record in self.recent(limit=recent):
            readings = [r for r in (record.meter_stop_wh, record.last_meter_wh,
                                    record.meter_start_wh) if r is not None]
            if readings:
                highest[record.connector_id] = max(highest.get(record.connector_id, 0.0),
                                                   float(max(readings)))
        return highest
