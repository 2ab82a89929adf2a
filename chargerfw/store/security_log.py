"""The security log: security-relevant events the station records (start-up, reset, firmware
changes, failed authentication, ...), uploaded by GetLog(SecurityLog). Appending is one call,
:meth:`SecurityLog.add`, which also queues the event's SecurityEventNotification in the outbox
when asked to (in the same SQLite transaction: both or neither survive a power cut); the oldest
entries go beyond :data:`SECURITY_LOG_SIZE`."""

from __future__ import annotations

import time

from chargerfw.store.database import Database
from chargerfw.store.outbox import enqueue_notification
from chargerfw.store.records import SecurityEvent, StoreError
from chargerfw.timestamps import iso_utc

SECURITY_LOG_SIZE = 10_000
TYPE_MAX = 50  # SecurityEventNotification.type
TECH_INFO_MAX = 255  # SecurityEventNotification.techInfo
SECURITY_EVENT_NOTIFICATION = "SecurityEventNotification"


class SecurityLog:
    """Append-only, newest ``size`` entries kept."""

    def __init__(self, db: Database, size: int = SECURITY_LOG_SIZE) -> None:
        self._db = db
        self.size = size

    def add(self, event_type: str, tech_info: str | None = None,
            at: float | None = None, notify: bool = False) -> SecurityEvent:
        """Record one event (durable when this returns). ``event_type`` is a Security
        Whitepaper type such as ``StartupOfTheDevice``; ``tech_info`` is cut to 255 characters.
        ``notify``: also queue its SecurityEventNotification (timestamp = ``at``) in the outbox,
        committed with the entry."""
        if not 1 <= len(event_type) <= TYPE_MAX:
            raise StoreError(f"security event type must be 1-{TYPE_MAX} characters, "
                             f"got {event_type!r}")
        info = None if tech_info is None else tech_info[:TECH_INFO_MAX]
        at = time.time() if at is None else at
        with self._db.tx() as conn:
            cur = conn.execute("INSERT INTO security_log (at, type, tech_info) VALUES (?, ?, ?)",
                               (at, event_type, info))
            seq = int(cur.lastrowid or 0)
            conn.execute("DELETE FROM security_log WHERE seq <= ?", (seq - self.size,))
            if notify:
                payload = {"type": event_type, "timestamp": iso_utc(at)}
                if info is not None:
                    payload["techInfo"] = info
                enqueue_notification(conn, SECURITY_EVENT_NOTIFICATION, payload, time.time())
        return SecurityEvent(seq=seq, at=at, type=event_type, tech_info=info)

    def entries(self, since: float | None = None, until: float | None = None,
                ) -> list[SecurityEvent]:
        """The events between ``since`` and ``until`` (Unix times, inclusive), oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM security_log WHERE at >= ? AND at <= ? ORDER BY seq",
                (float("-inf") if since is None else since,
                 float("inf") if until is None else until)).fetchall()
        return [SecurityEvent(seq=r["seq"], at=r["at"], type=r["type"], tech_info=r["tech_info"])
                for r in rows]

    def clear(self) -> int:
        """Forget every entry (a technician's ``security-log clear``); how many went. The
        caller records SecurityLogWasCleared afterwards, so the log starts with it."""
        with self._db.tx() as conn:
            return conn.execute("DELETE FROM security_log").rowcount
