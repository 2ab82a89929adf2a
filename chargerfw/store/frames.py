"""A small ring of the latest OCPP frames (redacted by the caller), for ``chargerfw ocpp log`` and
the support bundle."""

from __future__ import annotations

import time

from chargerfw.store.database import Database
from chargerfw.store.records import FrameRecord, StoreError

FRAME_LOG_SIZE = 200


class FrameLog:
    """The newest ``size`` frames in and out."""

    def __init__(self, db: Database, size: int = FRAME_LOG_SIZE) -> None:
        self._db = db
        self.size = size

    def add(self, direction: str, frame: str, at: float | None = None) -> None:
        """Append one frame (the caller redacts secrets) and keep only the newest N."""
        if direction not in ("in", "out"):
            raise StoreError(f"direction must be 'in' or 'out', got {direction!r}")
        with self._db.tx(durable=False) as conn:
            cur = conn.execute("INSERT INTO frame_log (at, direction, frame) VALUES (?, ?, ?)",
                               (time.time() if at is None else at, direction, frame))
            conn.execute("DELETE FROM frame_log WHERE seq <= ?",
                         (int(cur.lastrowid or 0) - self.size,))

    def recent(self, limit: int | None = None) -> list[FrameRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM frame_log ORDER BY seq DESC LIMIT ?",
                (limit or self.size,)).fetchall()
        return [FrameRecord(seq=r["seq"], at=r["at"], direction=r["direction"], frame=r["frame"])
                for r in reversed(rows)]
