"""The main contactor, with an optional mirror (auxiliary) contact that tells a welded contactor
from one that failed to close.

The mirror contact's wiring (:class:`~chargerfw.config.wiring.ContactWiring`, ``feedback_wiring``
and ``feedback_pull``) sets the pin's pull and the level that means "main contacts closed". A
true mirror contact is normally closed (closed while the main contacts are open): a cut feedback
wire then reads as main contacts closed, a welded contactor while commanded open.

Safety code opens the contactor from whatever thread it runs on (RPi.GPIO's event thread for a
fault input), so :meth:`Contactor.open` takes only a short thread lock around one pin write and
never touches asyncio. :meth:`Contactor.interlock` opens and keeps it open until every named
interlock is released, so a late ``close()`` from the station cannot undo a safety trip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from chargerfw.config.wiring import FAIL_SAFE_WIRING, ContactWiring
from chargerfw.drivers.gpio import PinFactory, Pull, monotonic
from chargerfw.drivers.types import ContactorFeedback
from chargerfw.logs import get_logger

if TYPE_CHECKING:
    from chargerfw.config import ContactorSection

log = get_logger(__name__)


class ContactorInterlockedError(RuntimeError):
    """``close()`` refused: a safety interlock holds the contactor open."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__(f"contactor held open by interlock(s): {', '.join(reasons)}")


class Contactor:
    """The coil output and, optionally, its mirror contact input."""

    def __init__(
        self,
        pin: int,
        *,
        factory: PinFactory,
        active_high: bool = True,
        feedback_pin: int | None = None,
        feedback_wiring: ContactWiring = FAIL_SAFE_WIRING,
        feedback_timeout_s: float = 0.5,
        name: str = "contactor",
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.name = name
        self.active_high = active_high
        self.feedback_wiring = feedback_wiring
        self.feedback_timeout_s = feedback_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._commanded_closed = False
        self._commanded_at = clock()
        self._interlocks: set[str] = set()
        self._coil = factory.claim(pin, name)
        # Open (de-energised) from the very first instant.
        self._coil.setup_output(initial=not active_high)
        self._feedback = None
        if feedback_pin is not None:
            self._feedback = factory.claim(feedback_pin, f"{name} feedback")
            self._feedback.setup_input(Pull(feedback_wiring.pull))

    @classmethod
    def from_config(
        cls, section: ContactorSection, factory: PinFactory, name: str = "contactor"
    ) -> Contactor:
        return cls(
            section.pin,
            factory=factory,
            active_high=section.active_high,
            feedback_pin=section.feedback_pin,
            feedback_wiring=section.feedback_contact_wiring,
            feedback_timeout_s=section.feedback_timeout_s,
            name=name,
        )

    @property
    def commanded_closed(self) -> bool:
        return self._commanded_closed

    @property
    def has_feedback(self) -> bool:
        return self._feedback is not None

    @property
    def feedback_closed(self) -> bool | None:
        """What the mirror contact says (None without one)."""
        if self._feedback is None:
            return None
        return self._feedback.read() == self.feedback_wiring.active_level

    @property
    def interlocks(self) -> frozenset[str]:
        return frozenset(self._interlocks)

    def close(self) -> None:
        """Energise the coil; raises :class:`ContactorInterlockedError` while interlocked."""
        with self._lock:
            if self._interlocks:
                raise ContactorInterlockedError(sorted(self._interlocks))
            if not self._commanded_closed:
                self._coil.write(self.active_high)
                self._commanded_closed = True
                self._commanded_at = self._clock()
        log.info("contactor.close", name=self.name)

    def open(self) -> None:
        """De-energise the coil. Any thread, idempotent, one pin write."""
        with self._lock:
            self._coil.write(not self.active_high)
            if self._commanded_closed:
                self._commanded_closed = False
                self._commanded_at = self._clock()

    def interlock(self, reason: str) -> None:
        """Open at once and refuse ``close()`` until :meth:`release_interlock` for ``reason``."""
        with self._lock:
            self._interlocks.add(reason)
            self._coil.write(not self.active_high)
            if self._commanded_closed:
                self._commanded_closed = False
                self._commanded_at = self._clock()

    def release_interlock(self, reason: str) -> None:
        """Release one interlock; the contactor stays open until the next ``close()``."""
        with self._lock:
            self._interlocks.discard(reason)

    def check_feedback(self) -> ContactorFeedback:
        """Compare the mirror contact with the command, allowing ``feedback_timeout_s`` for the
        contacts to move after the last command."""
        if self._feedback is None:
            return ContactorFeedback.NO_FEEDBACK
        with self._lock:
            commanded, since = self._commanded_closed, self._commanded_at
        closed = self.feedback_closed
        if closed == commanded:
            return ContactorFeedback.OK
        if self._clock() - since < self.feedback_timeout_s:
            return ContactorFeedback.PENDING
        return ContactorFeedback.FAILED_TO_CLOSE if commanded else ContactorFeedback.WELDED

    def release(self) -> None:
        """Open and give the pins back (shutdown)."""
        self.open()
        self._coil.close()
        if self._feedback is not None:
            self._feedback.close()
