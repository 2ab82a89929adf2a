"""The fault history: what was raised, on which connector (0: the station), and when it cleared."""

from __future__ import annotations

import sqlite3
import time

from chargerfw.store.database import Database
from chargerfw.store.records import FaultRecord, StoreError, check_int, check_time


class FaultHistory:
    """Faults as a technician reads them (``chargerfw faults``); technician faults come back from
    here at start-up."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, code: str, connector_id: int, needs_technician: bool,
               detail: str = "", at: float | None = None) -> FaultRecord:
        """Record a fault; an identical active one (code, connector) is returned, not doubled."""
        if not isinstance(code, str) or not code:
            raise StoreError(f"fault code must be a non-empty string, got {code!r}")
        check_int("connector_id", connector_id)
        at = time.time() if at is None else check_time("at", at)
        with self._db.tx() as conn:
            row = conn.execute(
                "SELECT * FROM faults WHERE code = ? AND connector_id = ? AND cleared_at IS NULL",
                (code, connector_id)).fetchone()
            if row is None:
                cur = conn.execute(
                    "INSERT INTO faults (code, connector_id, needs_technician, detail, raised_at) "
                    "VALUES (?, ?, ?, ?, ?)", (code, connector_id, int(needs_technician), detail, at))
                row = conn.execute("SELECT * FROM faults WHERE id = ?", (cur.lastrowid,)).fetchone()
        return self._fault(row)

    def clear(self, code: str, connector_id: int, at: float | None = None) -> int:
        """Clear the active fault (code, connector); returns how many were cleared (0 or 1)."""
        at = time.time() if at is None else check_time("at", at)
        with self._db.tx() as conn:
            cur = conn.execute(
                "UPDATE faults SET cleared_at = ? WHERE code = ? AND connector_id = ? "
                "AND cleared_at IS NULL", (at, code, connector_id))
            return cur.rowcount

    def entries(self, active_only: bool = False, limit: int = 200) -> list[FaultRecord]:
        where = "WHERE cleared_at IS NULL " if active_only else ""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT * FROM faults {where}ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [self._fault(r) for r in rows]

    @staticmethod
    def _fault(row: sqlite3.Row) -> FaultRecord:
        return FaultRecord(id=row["id"], code=row["code"], connector_id=row["connector_id"],
                           needs_technician=bool(row["needs_technician"]), detail=row["detail"],
                           raised_at=row["raised_at"], cleared_at=row["cleared_at"])
