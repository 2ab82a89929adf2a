"""The firmware update's state (:class:`~chargerfw.station.firmware.FirmwareState`), saved
with the FirmwareStatusNotifications its step queued in one durable commit: after a power cut
the state and the notifications about it agree."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from chargerfw.station.firmware import FirmwareState, FirmwareStatus
from chargerfw.store.database import Database
from chargerfw.store.outbox import enqueue_notification

FIRMWARE_STATUS_NOTIFICATION = "FirmwareStatusNotification"


class FirmwareUpdates:
    def __init__(self, db: Database) -> None:
        self._db = db

    def state(self) -> FirmwareState:
        """The saved state; Idle when none was ever saved."""
        with self._db.read() as conn:
            row = conn.execute("SELECT state FROM firmware_update WHERE id = 1").fetchone()
        return FirmwareState() if row is None else FirmwareState.from_json(json.loads(row[0]))

    def save(self, state: FirmwareState, statuses: Sequence[FirmwareStatus] = (),
             now: float | None = None) -> list[int]:
        """Save ``state`` and queue a FirmwareStatusNotification for each of ``statuses`` (in
        order) in one commit; the outbox sequence numbers."""
        now = time.time() if now is None else now
        with self._db.tx() as conn:
            conn.execute("INSERT INTO firmware_update (id, state) VALUES (1, ?) "
                         "ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                         (json.dumps(state.to_json(), separators=(",", ":")),))
            return [enqueue_notification(conn, FIRMWARE_STATUS_NOTIFICATION,
                                         {"status": status.value}, now)
                    for status in statuses]
