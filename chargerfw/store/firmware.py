"""The firmware update's state (:class:`~chargerfw.station.firmware.FirmwareState`), saved
with the FirmwareStatusNotifications (SignedFirmwareStatusNotifications for a signed update)
its step queued in one durable commit: after a power cut the state and the notifications about
it agree."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from chargerfw.station.firmware import FirmwareState, FirmwareStatus, Notify
from chargerfw.store.database import Database
from chargerfw.store.outbox import enqueue_notification

FIRMWARE_STATUS_NOTIFICATION = "FirmwareStatusNotification"
SIGNED_FIRMWARE_STATUS_NOTIFICATION = "SignedFirmwareStatusNotification"


def _notification(item: FirmwareStatus | Notify) -> tuple[str, dict[str, object]]:
    """The outbox action and wire payload of one status to report."""
    notify = item if isinstance(item, Notify) else Notify(item)
    if notify.request_id is None:
        return FIRMWARE_STATUS_NOTIFICATION, {"status": notify.status.value}
    return SIGNED_FIRMWARE_STATUS_NOTIFICATION, {"status": notify.status.value,
                                                 "requestId": notify.request_id}


class FirmwareUpdates:
    def __init__(self, db: Database) -> None:
        self._db = db

    def state(self) -> FirmwareState:
        """The saved state; Idle when none was ever saved."""
        with self._db.read() as conn:
            row = conn.execute("SELECT state FROM firmware_update WHERE id = 1").fetchone()
        return FirmwareState() if row is None else FirmwareState.from_json(json.loads(row[0]))

    def save(self, state: FirmwareState, statuses: Sequence[FirmwareStatus | Notify] = (),
             now: float | None = None) -> list[int]:
        """Save ``state`` and queue a FirmwareStatusNotification for each of ``statuses`` (in
        order; a :class:`Notify` with a request id: SignedFirmwareStatusNotification) in one
        commit; the outbox sequence numbers."""
        now = time.time() if now is None else now
        with self._db.tx() as conn:
            conn.execute("INSERT INTO firmware_update (id, state) VALUES (1, ?) "
                         "ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                         (json.dumps(state.to_json(), separators=(",", ":")),))
            return [enqueue_notification(conn, *_notification(status), now)
                    for status in statuses]
