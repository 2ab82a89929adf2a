"""The connector (cable) lock actuator, with an optional feedback switch."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from chargerfw.drivers.gpio import PinFactory, Pull
from chargerfw.drivers.types import LockResult
from chargerfw.logs import get_logger

if TYPE_CHECKING:
    from chargerfw.config import LockSection

log = get_logger(__name__)


class ConnectorLock:
    """Energised output = locked. With a feedback input, ``lock()``/``unlock()`` wait (up to
    ``feedback_timeout_s``) for the switch to confirm; without one they report the command.

    They block while waiting: call them via ``asyncio.to_thread``. The output stays as
    commanded after FAILED; the station decides (for example: do not start charging).
    """

    def __init__(
        self,
        pin: int,
        *,
        factory: PinFactory,
        active_high: bool = True,
        feedback_pin: int | None = None,
        feedback_active_high: bool = True,
        feedback_timeout_s: float = 1.0,
        name: str = "lock",
    ) -> None:
        self.name = name
        self.active_high = active_high
        self.feedback_active_high = feedback_active_high
        self.feedback_timeout_s = feedback_timeout_s
        self._changed = threading.Event()
        self._commanded_locked = False
        self._out = factory.claim(pin, name)
        self._out.setup_output(initial=not active_high)
        self._feedback = None
        if feedback_pin is not None:
            self._feedback = factory.claim(feedback_pin, f"{name} feedback")
            self._feedback.setup_input(Pull.DOWN if feedback_active_high else Pull.UP)
            self._feedback.add_edge_callback(lambda _level: self._changed.set())

    @classmethod
    def from_config(
        cls, section: LockSection, factory: PinFactory, name: str = "lock"
    ) -> ConnectorLock:
        return cls(
            section.pin,
            factory=factory,
            active_high=section.active_high,
            feedback_pin=section.feedback_pin,
            feedback_active_high=section.feedback_active_high,
            feedback_timeout_s=section.feedback_timeout_s,
            name=name,
        )

    @property
    def has_feedback(self) -> bool:
        return self._feedback is not None

    @property
    def commanded_locked(self) -> bool:
        return self._commanded_locked

    @property
    def feedback_locked(self) -> bool | None:
        if self._feedback is None:
            return None
        return self._feedback.read() == self.feedback_active_high

    def lock(self) -> LockResult:
        return self._drive(True)

    def unlock(self) -> LockResult:
        return self._drive(False)

    def _drive(self, locked: bool) -> LockResult:
        self._changed.clear()
        self._out.write(locked == self.active_high)
        self._commanded_locked = locked
        want = LockResult.LOCKED if locked else LockResult.UNLOCKED
        if self._feedback is None:
            return want
        if self.feedback_locked != locked:
            # Wait for an edge; re-read after it in case of bounce, until the timeout.
            self._changed.wait(self.feedback_timeout_s)
        if self.feedback_locked == locked:
            return want
        log.error("lock.failed", name=self.name, wanted=want.value)
        return LockResult.FAILED

    def close(self) -> None:
        self._out.close()
        if self._feedback is not None:
            self._feedback.close()
