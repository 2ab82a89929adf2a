"""Fault inputs: RCD/RCM trip and emergency stop, and the RCM self-test output.

``on_trip`` / ``on_clear`` callbacks run on the hardware thread (RPi.GPIO's event thread; in
simulation, synchronously inside the test's ``drive_*`` call). Safety code opens contactors
directly in them, without waiting for the asyncio loop; to tell the loop, use
``loop.call_soon_threadsafe`` inside the callback.

The contact's wiring (:class:`~chargerfw.config.wiring.ContactWiring`, ``[rcm]`` /
``[emergency_stop]`` ``wiring`` and ``pull``) sets the pin's pull and the level that means a
trip; normally closed (the default) reads a cut wire or a floating pin as a trip.

Edges are debounced by the backend (RPi.GPIO ``bouncetime``). Because bounce dropping can lose
the last edge of a burst, each callback reads the level again, and :meth:`FaultInput.refresh`
re-reads it on demand (the station polls it as a backstop).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chargerfw.config import FaultInputSection, RcmSection
from chargerfw.config.wiring import FAIL_SAFE_WIRING, ContactWiring
from chargerfw.drivers.gpio import PinFactory, Pull
from chargerfw.logs import get_logger

log = get_logger(__name__)

FaultCallback = Callable[[], None]


class FaultInput:
    """A trip input (by default a normally-closed contact to ground on a pulled-up line: the
    line goes high on a trip, and with a cut wire)."""

    def __init__(
        self,
        pin: int,
        *,
        factory: PinFactory,
        wiring: ContactWiring = FAIL_SAFE_WIRING,
        debounce_ms: int = 20,
        name: str = "fault",
    ) -> None:
        self.name = name
        self.wiring = wiring
        self._trip_level = wiring.active_level
        self._on_trip: list[FaultCallback] = []
        self._on_clear: list[FaultCallback] = []
        self._state_lock = threading.Lock()
        self._pin = factory.claim(pin, name)
        self._pin.setup_input(Pull(wiring.pull))
        # Listen first, then read: an edge between the two cannot be lost.
        self._tripped = False
        self._pin.add_edge_callback(self._on_edge, bounce_ms=debounce_ms)
        self._update(self._pin.read())

    @classmethod
    def from_config(cls, section: FaultInputSection, factory: PinFactory, name: str) -> FaultInput:
        return cls(
            section.pin,
            factory=factory,
            wiring=section.contact_wiring,
            debounce_ms=section.debounce_ms,
            name=name,
        )

    @property
    def is_tripped(self) -> bool:
        """The last debounced state (call :meth:`refresh` to re-read the pin)."""
        return self._tripped

    def on_trip(self, callback: FaultCallback) -> None:
        """Run ``callback()`` on every trip, on the hardware thread, in registration order.
        It is not called for a trip already active: check :attr:`is_tripped` after registering."""
        self._on_trip.append(callback)

    def on_clear(self, callback: FaultCallback) -> None:
        self._on_clear.append(callback)

    def refresh(self) -> bool:
        """Re-read the pin, fire callbacks if the state changed, return :attr:`is_tripped`."""
        self._update(self._pin.read())
        return self._tripped

    def close(self) -> None:
        self._pin.close()

    def _level_means_trip(self, level: bool) -> bool:
        return level == self._trip_level

    def _on_edge(self, level: bool) -> None:
        self._update(level)

    def _update(self, level: bool) -> None:
        tripped = self._level_means_trip(level)
        with self._state_lock:
            if tripped == self._tripped:
                return
            self._tripped = tripped
        log.warning("fault_input.trip" if tripped else "fault_input.clear", name=self.name)
        for callback in list(self._on_trip if tripped else self._on_clear):
            try:
                callback()
            except Exception:
                log.exception("fault_input.callback_failed", name=self.name)


@dataclass(frozen=True, slots=True)
class RcmSelfTestResult:
    tripped: bool  # the trip input followed the test pulse
    cleared: bool  # and went back once the pulse ended
    trip_time_s: float | None = None

    @property
    def passed(self) -> bool:
        return self.tripped and self.cleared


class RcmSelfTestUnavailableError(RuntimeError):
    """No test output configured, or the RCM is already tripped."""


class Rcm(FaultInput):
    """A residual-current monitor: trip input plus an optional self-test output."""

    def __init__(
        self,
        pin: int,
        *,
        factory: PinFactory,
        test_pin: int | None = None,
        test_pulse_ms: int = 100,
        clear_timeout_s: float = 1.0,
        wiring: ContactWiring = FAIL_SAFE_WIRING,
        debounce_ms: int = 20,
        name: str = "rcm",
    ) -> None:
        super().__init__(pin, factory=factory, wiring=wiring, debounce_ms=debounce_ms, name=name)
        self.test_pulse_ms = test_pulse_ms
        self.clear_timeout_s = clear_timeout_s
        self.self_test_running = False
        self._trip_seen = threading.Event()
        self._clear_seen = threading.Event()
        self.on_trip(self._trip_seen.set)
        self.on_clear(self._clear_seen.set)
        self._test_pin = None
        if test_pin is not None:
            self._test_pin = factory.claim(test_pin, f"{name} test")
            self._test_pin.setup_output(initial=False)

    @classmethod
    def from_config(cls, section: RcmSection, factory: PinFactory, name: str = "rcm") -> Rcm:  # type: ignore[override]
        return cls(
            section.pin,
            factory=factory,
            test_pin=section.test_pin,
            test_pulse_ms=section.test_pulse_ms,
            wiring=section.contact_wiring,
            debounce_ms=section.debounce_ms,
            name=name,
        )

    @property
    def has_self_test(self) -> bool:
        return self._test_pin is not None

    def self_test(self) -> RcmSelfTestResult:
        """Pulse the test output and report whether the trip input followed and came back.

        Blocks for up to the pulse plus ``clear_timeout_s`` (call it via ``asyncio.to_thread``).
        The trip callbacks fire as for a real fault (contactors open): check
        :attr:`self_test_running` there to tell a test trip from a real one.
        """
        if self._test_pin is None:
            raise RcmSelfTestUnavailableError(f"{self.name}: no test_pin configured")
        if self.refresh():
            raise RcmSelfTestUnavailableError(f"{self.name}: already tripped")
        self._trip_seen.clear()
        self._clear_seen.clear()
        self.self_test_running = True
        started = time.monotonic()
        try:
            self._test_pin.write(True)
            tripped = self._trip_seen.wait(self.test_pulse_ms / 1000.0) or self.refresh()
            trip_time = time.monotonic() - started if tripped else None
        finally:
            self._test_pin.write(False)
        try:
            cleared = tripped and (
                self._clear_seen.wait(self.clear_timeout_s) or not self.refresh()
            )
        finally:
            self.self_test_running = False
        result = RcmSelfTestResult(tripped=tripped, cleared=bool(cleared), trip_time_s=trip_time)
        log.info(
            "rcm.self_test",
            name=self.name,
            passed=result.passed,
            tripped=tripped,
            cleared=result.cleared,
        )
        return result

    def close(self) -> None:
        super().close()
        if self._test_pin is not None:
            self._test_pin.close()
