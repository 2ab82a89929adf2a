"""The station's durable state: one SQLite file shared by the station core and the OCPP layer.

What lives here: OCPP configuration keys the backend may change, the authorization cache and
local list, transactions with their last persisted meter reading, the outbox of
transaction-related OCPP messages, fault history, and a small ring of recent OCPP frames.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so every commit is
fsynced to the WAL before :mod:`sqlite3` returns. A transaction start, a meter reading, a stop
and the outbox message about it are therefore on disk before anyone sends them. Writes that are
cheap to lose (cache entries, the frame log) run with ``synchronous=NORMAL`` for that one commit:
they survive a process crash, and after a power cut they are at worst rolled back, never torn.
The next FULL commit fsyncs them too.

Every change runs in one SQLite transaction (``with self._conn``), so bad input raises before
or rolls back with nothing stored. Schema changes are a list of migrations keyed by
``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chargerfw.logs import get_logger
from chargerfw.station.auth import IdTagInfo
from chargerfw.timestamps import iso_utc

log = get_logger(__name__)

# Actions the outbox carries: the OCPP 1.6 transaction-related messages.
OUTBOX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")

# Outbox message states. "dead" = the backend refused it TransactionMessageAttempts times (or it
# depends on a StartTransaction that was refused); kept on disk for a technician, never sent.
OUTBOX_PENDING = "pending"
OUTBOX_DELIVERED = "delivered"
OUTBOX_DEAD = "dead"

TX_OPEN = "open"
TX_STOPPED = "stopped"

FRAME_LOG_SIZE = 200

_MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE config_keys (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY,
        info TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE local_list (
        id_tag TEXT PRIMARY KEY,
        info TEXT NOT NULL
    );
    CREATE TABLE local_list_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO local_list_meta (id, version) VALUES (1, 0);
    CREATE TABLE transactions (
        local_id INTEGER PRIMARY KEY AUTOINCREMENT,
        connector_id INTEGER NOT NULL CHECK (connector_id >= 1),
        id_tag TEXT NOT NULL CHECK (length(id_tag) BETWEEN 1 AND 20),
        meter_start_wh INTEGER NOT NULL CHECK (meter_start_wh >= 0),
        started_at REAL NOT NULL,
        reservation_id INTEGER,
        backend_tx_id INTEGER,
        start_status TEXT,
        state TEXT NOT NULL CHECK (state IN ('open', 'stopped')),
        meter_stop_wh INTEGER,
        stopped_at REAL,
        stop_reason TEXT,
        stop_id_tag TEXT,
        last_meter_wh INTEGER,
        last_meter_at REAL
    );
    CREATE INDEX transactions_open ON transactions (state, connector_id);
    CREATE TABLE transaction_data (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        local_id INTEGER NOT NULL REFERENCES transactions (local_id),
        meter_value TEXT NOT NULL
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        local_tx_id INTEGER NOT NULL REFERENCES transactions (local_id),
        action TEXT NOT NULL CHECK (action IN ('StartTransaction', 'MeterValues', 'StopTransaction')),
        payload TEXT NOT NULL,
        unique_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        sends INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered_at REAL
    );
    CREATE INDEX outbox_pending ON outbox (state, seq);
    CREATE TABLE faults (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        code TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        needs_technician INTEGER NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        raised_at REAL NOT NULL,
        cleared_at REAL
    );
    CREATE INDEX faults_active ON faults (cleared_at, connector_id, code);
    CREATE TABLE frame_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        frame TEXT NOT NULL
    );
    """,
    # 2: ChangeAvailability survives a restart (OCPP 1.6 section 5.2). connector_id 0 = station.
    """
    CREATE TABLE availability (
        connector_id INTEGER PRIMARY KEY CHECK (connector_id >= 0),
        operative INTEGER NOT NULL CHECK (operative IN (0, 1))
    );
    """,
]


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
    """A transaction-related message waiting for (or past) delivery.

    ``payload`` is the OCPP payload (camelCase) without ``transactionId``; the sender adds the
    backend's id from the transaction at send time, so a message queued offline carries the id
    the backend gave once StartTransaction.conf arrived.
    """

    seq: int
    local_tx_id: int
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


def _info_to_json(info: IdTagInfo) -> str:
    if not isinstance(info, IdTagInfo):
        raise StoreError(f"expected an IdTagInfo, got {type(info).__name__}")
    return json.dumps(info.to_wire(), separators=(",", ":"), sort_keys=True)


def _info_from_json(text: str) -> IdTagInfo:
    return IdTagInfo.from_wire(json.loads(text))


def _check_id_tag(id_tag: object) -> str:
    if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= 20:
        raise StoreError(f"idTag must be a string of 1..20 characters, got {id_tag!r}")
    return id_tag


def _check_int(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StoreError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_time(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise StoreError(f"{name} must be a POSIX timestamp, got {value!r}")
    return float(value)


class Store:
    """The SQLite store. Thread-safe (one connection behind a lock); calls are short and
    synchronous: a FULL commit costs one fsync of the WAL."""

    def __init__(self, path: str | Path, frame_log_size: int = FRAME_LOG_SIZE) -> None:
        self.path = Path(path)
        self.frame_log_size = frame_log_size
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # isolation_level=None: we issue BEGIN ourselves so a `with self._tx()` block is exactly
        # one SQLite transaction (BEGIN IMMEDIATE takes the write lock up front).
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction: committed on success, rolled back on any exception."""
        with self._lock:
            if not durable:
                self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # also a COMMIT that failed (disk full, I/O)
                        self._conn.execute("ROLLBACK")
                    raise
            finally:
                if not durable:
                    self._conn.execute("PRAGMA synchronous=FULL")

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(_MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this firmware "
                    f"({len(_MIGRATIONS)}); refusing to touch it"
                )
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                # executescript commits first; run the statements inside one transaction so a
                # crash mid-migration leaves the old version intact.
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in script.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version={number}")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                log.info("store.migrated", path=str(self.path), version=number)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # -- configuration keys -----------------------------------------------------------------

    def config_get(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM config_keys WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def config_all(self) -> dict[str, str]:
        with self._lock:
            rows = self._conn.execute("SELECT key, value FROM config_keys").fetchall()
        return {r["key"]: r["value"] for r in rows}

    def config_set(self, key: str, value: str) -> None:
        """Persist one key; callers validate (see :mod:`chargerfw.ocpp.config_keys`)."""
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise StoreError(f"config key and value must be strings, got {key!r}={value!r}")
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO config_keys (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- availability -----------------------------------------------------------------------

    def availability_set(self, changes: Mapping[int, bool]) -> None:
        """Persist the availability of connectors (0 = the station), all in one commit."""
        rows = []
        for connector_id, operative in changes.items():
            _check_int("connector_id", connector_id)
            if not isinstance(operative, bool):
                raise StoreError(f"operative must be true or false, got {operative!r}")
            rows.append((connector_id, int(operative)))
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO availability (connector_id, operative) VALUES (?, ?) "
                "ON CONFLICT (connector_id) DO UPDATE SET operative = excluded.operative", rows)

    def availability_all(self) -> dict[int, bool]:
        """What was persisted: connector id (0 = station) -> operative. Absent = operative."""
        with self._lock:
            rows = self._conn.execute("SELECT connector_id, operative FROM availability").fetchall()
        return {int(r["connector_id"]): bool(r["operative"]) for r in rows}

    # -- authorization (the station's AuthStore protocol) -----------------------------------

    def cache_get(self, id_tag: str) -> IdTagInfo | None:
        """The cached IdTagInfo for ``id_tag``, or None."""
        with self._lock:
            row = self._conn.execute("SELECT info FROM auth_cache WHERE id_tag = ?", (id_tag,)).fetchone()
        return None if row is None else _info_from_json(row["info"])

    def cache_put(self, id_tag: str, info: IdTagInfo) -> None:
        _check_id_tag(id_tag)
        text = _info_to_json(info)
        with self._tx(durable=False) as conn:
            conn.execute(
                "INSERT INTO auth_cache (id_tag, info, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id_tag) DO UPDATE SET info = excluded.info, updated_at = excluded.updated_at",
                (id_tag, text, time.time()),
            )

    def cache_clear(self) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM auth_cache")

    def local_list_get(self, id_tag: str) -> IdTagInfo | None:
        """The local authorization list entry for ``id_tag``, or None."""
        with self._lock:
            row = self._conn.execute("SELECT info FROM local_list WHERE id_tag = ?", (id_tag,)).fetchone()
        return None if row is None else _info_from_json(row["info"])

    def local_list_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT version FROM local_list_meta").fetchone()[0])

    def local_list_size(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM local_list").fetchone()[0])

    def local_list_apply(self, version: int, entries: Mapping[str, IdTagInfo | None],
                         full: bool) -> None:
        """SendLocalList: ``full`` replaces the list; otherwise a differential update where an
        entry of None removes the tag. All-or-nothing."""
        _check_int("listVersion", version, minimum=1)
        rows = []
        for id_tag, info in entries.items():
            _check_id_tag(id_tag)
            rows.append((id_tag, None if info is None else _info_to_json(info)))
        if full and any(text is None for _, text in rows):
            raise StoreError("a full local list update must give idTagInfo for every entry")
        with self._tx() as conn:
            if full:
                conn.execute("DELETE FROM local_list")
            for id_tag, text in rows:
                if text is None:
                    conn.execute("DELETE FROM local_list WHERE id_tag = ?", (id_tag,))
                else:
                    conn.execute(
                        "INSERT INTO local_list (id_tag, info) VALUES (?, ?) "
                        "ON CONFLICT (id_tag) DO UPDATE SET info = excluded.info",
                        (id_tag, text),
                    )
            conn.execute("UPDATE local_list_meta SET version = ?", (version,))

    # -- transactions -----------------------------------------------------------------------

    def _tx_row(self, conn: sqlite3.Connection, local_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM transactions WHERE local_id = ?", (local_id,)).fetchone()
        if row is None:
            raise StoreError(f"no transaction with local id {local_id}")
        return row

    @staticmethod
    def _tx_record(row: sqlite3.Row) -> TransactionRecord:
        return TransactionRecord(**{k: row[k] for k in row.keys()})

    def _enqueue(self, conn: sqlite3.Connection, local_id: int, action: str,
                 payload: Mapping[str, Any], now: float) -> int:
        if action not in OUTBOX_ACTIONS:
            raise StoreError(f"{action} is not a transaction-related message")
        # The unique id stays the same for every resend so a backend can recognise a duplicate.
        unique_id = str(uuid.uuid4())  # OCPP-J: at most 36 characters
        cur = conn.execute(
            "INSERT INTO outbox (local_tx_id, action, payload, unique_id, state, created_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?)",
            (local_id, action, json.dumps(payload, separators=(",", ":")), unique_id, now),
        )
        return int(cur.lastrowid or 0)

    def start_transaction(self, connector_id: int, id_tag: str, meter_start_wh: int,
                          started_at: float, reservation_id: int | None = None,
                          timestamp_iso: str | None = None) -> TransactionRecord:
        """Record a new session and queue its StartTransaction, in one durable commit."""
        _check_int("connector_id", connector_id, minimum=1)
        _check_id_tag(id_tag)
        _check_int("meter_start_wh", meter_start_wh)
        started_at = _check_time("started_at", started_at)
        if reservation_id is not None:
            _check_int("reservation_id", reservation_id)
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start_wh,
            "timestamp": timestamp_iso or iso_utc(started_at),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        with self._tx() as conn:
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
            self._enqueue(conn, local_id, "StartTransaction", payload, started_at)
            return self._tx_record(self._tx_row(conn, local_id))

    def record_meter(self, local_id: int, energy_wh: int, at: float) -> None:
        """Persist the latest energy register of an open transaction (the PowerLoss stop value).

        A reading below the previous one is refused: the meter must stay monotonic."""
        _check_int("energy_wh", energy_wh)
        at = _check_time("at", at)
        with self._tx() as conn:
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

    def add_transaction_data(self, local_id: int, meter_value: Mapping[str, Any]) -> None:
        """Keep one MeterValue for StopTransaction.transactionData (StopTxn*Data)."""
        if not isinstance(meter_value, Mapping) or "sampledValue" not in meter_value:
            raise StoreError("a MeterValue needs 'timestamp' and 'sampledValue'")
        with self._tx() as conn:
            self._tx_row(conn, local_id)
            conn.execute("INSERT INTO transaction_data (local_id, meter_value) VALUES (?, ?)",
                         (local_id, json.dumps(meter_value, separators=(",", ":"))))

    def transaction_data(self, local_id: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT meter_value FROM transaction_data WHERE local_id = ? ORDER BY seq",
                (local_id,)).fetchall()
        return [json.loads(r["meter_value"]) for r in rows]

    def enqueue_meter_values(self, local_id: int, connector_id: int,
                             meter_value: list[Mapping[str, Any]]) -> int:
        """Queue a MeterValues about an open transaction (transactionId filled in at send time)."""
        if not meter_value:
            raise StoreError("MeterValues needs at least one meterValue")
        payload = {"connectorId": connector_id, "meterValue": list(meter_value)}
        with self._tx() as conn:
            row = self._tx_row(conn, local_id)
            if row["state"] != TX_OPEN:
                raise StoreError(f"transaction {local_id} is not open")
            return self._enqueue(conn, local_id, "MeterValues", payload, time.time())

    def stop_transaction(self, local_id: int, meter_stop_wh: int, stopped_at: float,
                         reason: str, id_tag: str | None = None,
                         transaction_data: list[Mapping[str, Any]] | None = None,
                         timestamp_iso: str | None = None) -> bool:
        """Close a session and queue its StopTransaction in one durable commit.

        Returns False (and changes nothing) if it was already stopped: a stop happens once."""
        _check_int("meter_stop_wh", meter_stop_wh)
        stopped_at = _check_time("stopped_at", stopped_at)
        if not isinstance(reason, str) or not reason:
            raise StoreError(f"stop reason must be a non-empty string, got {reason!r}")
        if id_tag is not None:
            _check_id_tag(id_tag)
        with self._tx() as conn:
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
        self._enqueue(conn, local_id, "StopTransaction", payload, stopped_at)

    def recover_interrupted(self, reason: str = "PowerLoss") -> list[TransactionRecord]:
        """At start-up: end every transaction still open (its process died) with ``reason``, the
        last persisted meter reading and that reading's time, queueing one StopTransaction each.

        Each transaction closes in its own commit together with its StopTransaction, so a crash
        during recovery leaves every transaction either untouched or fully closed; running it
        again closes only the rest. Call it before the station starts new sessions."""
        with self._lock:
            ids = [r["local_id"] for r in self._conn.execute(
                "SELECT local_id FROM transactions WHERE state = 'open' ORDER BY local_id")]
        closed = []
        for local_id in ids:
            with self._tx() as conn:
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

    def set_backend_transaction_id(self, local_id: int, backend_tx_id: int,
                                   status: str | None = None) -> None:
        _check_int("transactionId", backend_tx_id, minimum=-(2**31))
        with self._tx() as conn:
            self._tx_row(conn, local_id)
            conn.execute(
                "UPDATE transactions SET backend_tx_id = ?, start_status = ? WHERE local_id = ?",
                (backend_tx_id, status, local_id),
            )

    def transaction(self, local_id: int) -> TransactionRecord:
        with self._lock:
            return self._tx_record(self._tx_row(self._conn, local_id))

    def transaction_by_backend_id(self, backend_tx_id: int) -> TransactionRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM transactions WHERE backend_tx_id = ? ORDER BY local_id DESC LIMIT 1",
                (backend_tx_id,)).fetchone()
        return None if row is None else self._tx_record(row)

    def open_transactions(self) -> list[TransactionRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM transactions WHERE state = 'open' ORDER BY local_id").fetchall()
        return [self._tx_record(r) for r in rows]

    def transactions(self, limit: int = 100) -> list[TransactionRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM transactions ORDER BY local_id DESC LIMIT ?", (limit,)).fetchall()
        return [self._tx_record(r) for r in rows]

    def highest_energy_wh_by_connector(self, recent: int = 50) -> dict[int, float]:
        """The highest energy register each connector's ``recent`` transactions saw: where a
        meter stood when the station last knew it (a start before the first sample, a
        simulated meter that must stay monotonic across restarts)."""
        highest: dict[int, float] = {}
        for record in self.transactions(limit=recent):
            readings = [r for r in (record.meter_stop_wh, record.last_meter_wh,
                                    record.meter_start_wh) if r is not None]
            if readings:
                highest[record.connector_id] = max(highest.get(record.connector_id, 0.0),
                                                   float(max(readings)))
        return highest

    # -- outbox -----------------------------------------------------------------------------

    def _outbox_message(self, row: sqlite3.Row) -> OutboxMessage:
        return OutboxMessage(
            seq=row["seq"], local_tx_id=row["local_tx_id"], action=row["action"],
            payload=json.loads(row["payload"]), unique_id=row["unique_id"], state=row["state"],
            created_at=row["created_at"], attempts=row["attempts"], sends=row["sends"],
            next_attempt_at=row["next_attempt_at"], last_error=row["last_error"],
            backend_tx_id=row["backend_tx_id"],
        )

    _OUTBOX_SELECT = (
        "SELECT o.*, t.backend_tx_id FROM outbox o JOIN transactions t ON t.local_id = o.local_tx_id "
    )

    def outbox_head(self) -> OutboxMessage | None:
        """The oldest undelivered message: the only one that may be sent (strict order)."""
        with self._lock:
            row = self._conn.execute(
                self._OUTBOX_SELECT + "WHERE o.state = 'pending' ORDER BY o.seq LIMIT 1").fetchone()
        return None if row is None else self._outbox_message(row)

    def outbox_pending(self) -> list[OutboxMessage]:
        with self._lock:
            rows = self._conn.execute(
                self._OUTBOX_SELECT + "WHERE o.state = 'pending' ORDER BY o.seq").fetchall()
        return [self._outbox_message(r) for r in rows]

    def outbox_all(self, limit: int = 200) -> list[OutboxMessage]:
        with self._lock:
            rows = self._conn.execute(
                self._OUTBOX_SELECT + "ORDER BY o.seq DESC LIMIT ?", (limit,)).fetchall()
        return [self._outbox_message(r) for r in reversed(rows)]

    def outbox_note_send(self, seq: int) -> None:
        """Count a transmission (whatever its outcome) before the frame goes out."""
        with self._tx(durable=False) as conn:
            conn.execute("UPDATE outbox SET sends = sends + 1 WHERE seq = ?", (seq,))

    def outbox_delivered(self, seq: int, backend_tx_id: int | None = None,
                         start_status: str | None = None) -> None:
        """The backend answered with a CALLRESULT. For a StartTransaction, also store the
        backend's transactionId on the transaction in the same commit."""
        with self._tx() as conn:
            row = conn.execute("SELECT local_tx_id, action FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                raise StoreError(f"no outbox message {seq}")
            if backend_tx_id is not None:
                if row["action"] != "StartTransaction":
                    raise StoreError("only a StartTransaction answer carries a transactionId")
                _check_int("transactionId", backend_tx_id, minimum=-(2**31))
                conn.execute(
                    "UPDATE transactions SET backend_tx_id = ?, start_status = ? WHERE local_id = ?",
                    (backend_tx_id, start_status, row["local_tx_id"]),
                )
            conn.execute(
                "UPDATE outbox SET state = 'delivered', delivered_at = ?, last_error = NULL "
                "WHERE seq = ?", (time.time(), seq))

    def outbox_failed(self, seq: int, error: str, max_attempts: int,
                      retry_interval_s: float, now: float | None = None) -> OutboxMessage:
        """The backend answered with a CALLERROR ("failure to process").

        OCPP 1.6 (4.8): resend after TransactionMessageRetryInterval times the number of
        failed attempts so far; after TransactionMessageAttempts failures the message may be
        skipped. We mark it dead (kept on disk, never deleted); if it was a StartTransaction,
        the later messages of that transaction die with it: without the backend's
        transactionId they could only carry a made-up id (field lesson: never send -1)."""
        now = time.time() if now is None else now
        with self._tx() as conn:
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
                    "UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE seq = ?",
                    (attempts, error, now + retry_interval_s * attempts, seq))
            full = conn.execute(self._OUTBOX_SELECT + "WHERE o.seq = ?", (seq,)).fetchone()
        log.warning("outbox.call_error", seq=seq, action=row["action"], attempts=attempts,
                    error=error, dead=full["state"] == OUTBOX_DEAD)
        return self._outbox_message(full)

    def outbox_defer(self, seq: int, until: float, error: str) -> None:
        """A delivery failure (timeout, lost link): not counted as an attempt, just retried."""
        with self._tx(durable=False) as conn:
            conn.execute("UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE seq = ?",
                         (until, error, seq))

    def outbox_prune(self, keep_delivered: int = 500) -> int:
        """Forget delivered messages beyond the newest ``keep_delivered`` (dead ones stay for a
        technician), and the StopTxn data of transactions whose StopTransaction was delivered.
        Returns how many outbox rows went."""
        with self._tx(durable=False) as conn:
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

    # -- faults -----------------------------------------------------------------------------

    def fault_raise(self, code: str, connector_id: int, needs_technician: bool,
                    detail: str = "", at: float | None = None) -> FaultRecord:
        """Record a fault; an identical active one (code, connector) is returned, not doubled."""
        if not isinstance(code, str) or not code:
            raise StoreError(f"fault code must be a non-empty string, got {code!r}")
        _check_int("connector_id", connector_id)
        at = time.time() if at is None else _check_time("at", at)
        with self._tx() as conn:
            row = conn.execute(
                "SELECT * FROM faults WHERE code = ? AND connector_id = ? AND cleared_at IS NULL",
                (code, connector_id)).fetchone()
            if row is None:
                cur = conn.execute(
                    "INSERT INTO faults (code, connector_id, needs_technician, detail, raised_at) "
                    "VALUES (?, ?, ?, ?, ?)", (code, connector_id, int(needs_technician), detail, at))
                row = conn.execute("SELECT * FROM faults WHERE id = ?", (cur.lastrowid,)).fetchone()
        return self._fault(row)

    def fault_clear(self, code: str, connector_id: int, at: float | None = None) -> int:
        """Clear the active fault (code, connector); returns how many were cleared (0 or 1)."""
        at = time.time() if at is None else _check_time("at", at)
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE faults SET cleared_at = ? WHERE code = ? AND connector_id = ? "
                "AND cleared_at IS NULL", (at, code, connector_id))
            return cur.rowcount

    def faults(self, active_only: bool = False, limit: int = 200) -> list[FaultRecord]:
        where = "WHERE cleared_at IS NULL " if active_only else ""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT * FROM faults {where}ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [self._fault(r) for r in rows]

    @staticmethod
    def _fault(row: sqlite3.Row) -> FaultRecord:
        return FaultRecord(id=row["id"], code=row["code"], connector_id=row["connector_id"],
                           needs_technician=bool(row["needs_technician"]), detail=row["detail"],
                           raised_at=row["raised_at"], cleared_at=row["cleared_at"])

    # -- OCPP frame log ---------------------------------------------------------------------

    def frame_log_add(self, direction: str, frame: str, at: float | None = None) -> None:
        """Append one frame (the caller redacts secrets) and keep only the newest N."""
        if direction not in ("in", "out"):
            raise StoreError(f"direction must be 'in' or 'out', got {direction!r}")
        with self._tx(durable=False) as conn:
            cur = conn.execute("INSERT INTO frame_log (at, direction, frame) VALUES (?, ?, ?)",
                               (time.time() if at is None else at, direction, frame))
            conn.execute("DELETE FROM frame_log WHERE seq <= ?",
                         (int(cur.lastrowid or 0) - self.frame_log_size,))

    def frame_log(self, limit: int | None = None) -> list[FrameRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM frame_log ORDER BY seq DESC LIMIT ?",
                (limit or self.frame_log_size,)).fetchall()
        return [FrameRecord(seq=r["seq"], at=r["at"], direction=r["direction"], frame=r["frame"])
                for r in reversed(rows)]
