"""The security events a backend's frames can cause (1.6 Security Whitepaper, "Security events"),
decided beside :func:`~chargerfw.ocppj.frames.check_frame` for one link:

- **InvalidMessages**: a CALL refused as malformed (a CALLERROR FormationViolation, a type,
  property or occurrence constraint violation). An action we do not handle is not counted: a
  backend may well try one. At most one event per :data:`INVALID_MESSAGES_EVERY_S`; its
  techInfo counts the frames since the last event, so a flood costs one log line a minute.
- **AttemptedReplayAttacks**: a CALL whose uniqueId the backend already used on this link
  (OCPP-J 1.6 section 4.1.1: a sender never reuses one on the same WebSocket). It is answered
  with a SecurityError CALLERROR and not carried out again; the event is throttled as above.
  The last :data:`REMEMBERED_IDS` uniqueIds are remembered per link.
- **MemoryExhaustion**: a frame whose checking ran out of memory (MemoryError); it is answered
  with a FormationViolation under the id "-1", as a frame that could not be read.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Container

from ocpp.exceptions import FormationViolationError, SecurityError

from chargerfw.logs import get_logger
from chargerfw.ocpp.security_log import (
    MEMORY_EXHAUSTION,
    record_security_event,
)
from chargerfw.ocppj.frames import UNPARSABLE_ID, Answer, FrameVerdict, Route, check_frame
from chargerfw.store import Store

log = get_logger(__name__)

INVALID_MESSAGES_EVERY_S = 60.0
REMEMBERED_IDS = 1000
# CALLERRORs that say a CALL was malformed (not merely an action we do not handle).
MALFORMED_CODES = frozenset({"FormationViolation", "FormatViolation", "TypeConstraintViolation",
                             "PropertyConstraintViolation", "OccurenceConstraintViolation",
                             "OccurrenceConstraintViolation"})


class ThrottledEvent:
    """One security event type recorded at most once per ``every_s``; the occurrences in
    between are counted into the next record. Outlives the links (a backend that reconnects
    does not reset it)."""

    def __init__(self, store: Store, event_type: str, every_s: float = INVALID_MESSAGES_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._type = event_type
        self._every_s = every_s
        self._clock = clock
        self._last_at: float | None = None
        self._unrecorded = 0

    def occurred(self, detail: str) -> bool:
        """One occurrence; True if it was recorded now."""
        now = self._clock()
        self._unrecorded += 1
        if self._last_at is not None and now - self._last_at < self._every_s:
            return False
        count, self._unrecorded, self._last_at = self._unrecorded, 0, now
        more = f" (and {count - 1} more since the last report)" if count > 1 else ""
        record_security_event(self._store, self._type, f"{detail}{more}")
        return True


class FrameGuard:
    """The security checks of one link's incoming frames, around :func:`check_frame`."""

    def __init__(self, store: Store, invalid: ThrottledEvent, replay: ThrottledEvent) -> None:
        self._store = store
        self._invalid = invalid
        self._replay = replay
        self._seen_ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def check(self, raw: str, handled_actions: Container[str], answering: bool,
              awaited_answers: Container[str]) -> FrameVerdict:
        """What :func:`check_frame` says, with the events it causes recorded and a replayed
        CALL turned into a SecurityError answer."""
        try:
            verdict = check_frame(raw, handled_actions, answering, awaited_answers)
        except MemoryError:
            record_security_event(self._store, MEMORY_EXHAUSTION,
                                  f"out of memory reading a {len(raw)}-character frame")
            return Answer(UNPARSABLE_ID, FormationViolationError(
                details={"cause": "the frame could not be read (out of memory)"}))
        if isinstance(verdict, Answer):
            if verdict.error.code in MALFORMED_CODES:
                cause = verdict.error.details.get("cause") if verdict.error.details else None
                self._invalid.occurred(f"{verdict.error.code}: {cause or ''}".rstrip(": "))
            return verdict
        if isinstance(verdict, Route) and verdict.call is not None:
            call = verdict.call
            if call.unique_id in self._seen_ids:
                log.warning("ocpp.replayed_call", action=call.action,
                            unique_id=call.unique_id[:40])
                self._replay.occurred(f"{call.action} with the uniqueId {call.unique_id!r} "
                                      "again on the same connection")
                return Answer(call.unique_id, SecurityError(
                    description="uniqueId already used on this connection",
                    details={"cause": "a CALL is never repeated with the same uniqueId"}))
            self._seen_ids[call.unique_id] = None
            if len(self._seen_ids) > REMEMBERED_IDS:
                self._seen_ids.popitem(last=False)
        return verdict
