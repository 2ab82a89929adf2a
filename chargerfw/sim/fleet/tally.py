"""Counting a charger's OCPP traffic from the frame log its store keeps."""

from __future__ import annotations

import json

from chargerfw.sim.fleet.report import MAX_ERRORS_KEPT, ChargerReport, MessageCount
from chargerfw.store import Store


class FrameTally:
    """Counts OCPP frames from a store's frame log: CALLs we sent per action, their results
    and CALLERRORs (matched by unique id), and the CALLs the backend sent."""

    def __init__(self, report: ChargerReport) -> None:
        self.report = report
        self.last_seq = 0
        self._waiting: dict[str, str] = {}  # unique id -> action of our CALL

    def read(self, store: Store) -> None:
        """Take in the frames logged since the last read."""
        records = store.frame_log(limit=32)
        if records and records[0].seq > self.last_seq + 1 and len(records) == 32:
            records = store.frame_log()  # more than 32 new: the whole ring
        fresh = [r for r in records if r.seq > self.last_seq]
        if fresh and fresh[0].seq > self.last_seq + 1:
            self.report.frames_missed += fresh[0].seq - self.last_seq - 1
        for record in fresh:
            self.last_seq = record.seq
            self._count(record.direction, record.frame)

    def _count(self, direction: str, frame: str) -> None:
        try:
            message = json.loads(frame)
            kind, unique = message[0], str(message[1])
        except (ValueError, TypeError, IndexError, KeyError):
            return
        report = self.report
        if kind == 2 and direction == "out":
            action = str(message[2])
            report.messages.setdefault(action, MessageCount()).sent += 1
            self._waiting[unique] = action
        elif kind == 2:
            action = str(message[2])
            report.backend_calls[action] = report.backend_calls.get(action, 0) + 1
        elif kind == 3 and direction == "in" and unique in self._waiting:
            action = self._waiting.pop(unique)
            report.messages.setdefault(action, MessageCount()).confirmed += 1
            payload = message[2] if len(message) > 2 and isinstance(message[2], dict) else {}
            if action == "BootNotification":
                report.registration = str(payload.get("status"))
                report.boot_accepted = report.boot_accepted or payload.get("status") == "Accepted"
        elif kind == 4 and direction == "in":
            action = self._waiting.pop(unique, "?")
            report.messages.setdefault(action, MessageCount()).errors += 1
            report.call_errors += 1
            if len(report.call_error_details) < MAX_ERRORS_KEPT:
                report.call_error_details.append({
                    "action": action, "code": str(message[2]) if len(message) > 2 else "",
                    "description": str(message[3]) if len(message) > 3 else ""})


