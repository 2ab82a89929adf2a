"""Simulated parts on the GPIO pins: the contactor's mirror contact, the lock mechanism, an
emergency stop or other trip contact, and the residual-current monitor.

Each follows the outputs the real drivers set on :class:`~chargerfw.drivers.gpio.SimulatedPin`
and drives the inputs they read, so a test can weld a contactor or trip the RCM and watch the
real driver notice.
"""

from __future__ import annotations

from chargerfw.drivers.gpio import SimulatedPin


class SimulatedContactorMirror:
    """The contactor's mirror contact follows its coil unless a test welds it or makes it fail
    to close. ``is_closed`` (the main contacts) also tells the pilot line whether power flows."""

    def __init__(
        self,
        coil: SimulatedPin,
        feedback: SimulatedPin | None = None,
        *,
        coil_active_high: bool = True,
        feedback_active_high: bool = True,
    ) -> None:
        self.coil = coil
        self.feedback = feedback
        self.coil_active_high = coil_active_high
        self.feedback_active_high = feedback_active_high
        self.welded = False
        self.stuck_open = False
        self.is_closed = False
        coil.on_output_change(lambda _pin: self._follow())
        self._follow()

    @property
    def energised(self) -> bool:
        return self.coil.state == self.coil_active_high

    def weld(self) -> None:
        """Contacts stuck closed (whatever the coil does)."""
        self.welded, self.stuck_open = True, False
        self._follow()

    def fail_to_close(self) -> None:
        """Contacts stay open even when the coil is energised."""
        self.stuck_open, self.welded = True, False
        self._follow()

    def repair(self) -> None:
        self.welded = self.stuck_open = False
        self._follow()

    def _follow(self) -> None:
        closed = self.welded or (self.energised and not self.stuck_open)
        self.is_closed = closed
        if self.feedback is not None:
            self.feedback.drive(closed == self.feedback_active_high)


class SimulatedLockMechanism:
    """A lock actuator whose feedback switch follows the output unless it is jammed."""

    def __init__(
        self,
        out: SimulatedPin,
        feedback: SimulatedPin | None = None,
        *,
        active_high: bool = True,
        feedback_active_high: bool = True,
    ) -> None:
        self.out = out
        self.feedback = feedback
        self.active_high = active_high
        self.feedback_active_high = feedback_active_high
        self.jammed = False
        self.is_locked = False
        out.on_output_change(lambda _pin: self._follow())
        self._follow()

    def jam(self) -> None:
        """The bolt stays where it is."""
        self.jammed = True

    def repair(self) -> None:
        self.jammed = False
        self._follow()

    def _follow(self) -> None:
        if not self.jammed:
            self.is_locked = self.out.state == self.active_high
        if self.feedback is not None:
            self.feedback.drive(self.is_locked == self.feedback_active_high)


class SimulatedFaultSwitch:
    """An emergency stop button or any trip contact on an input pin."""

    def __init__(self, pin: SimulatedPin, *, active_low: bool = True) -> None:
        self.pin = pin
        self.active_low = active_low
        self.clear()

    def trip(self) -> None:
        self.pin.drive(not self.active_low)

    def clear(self) -> None:
        self.pin.drive(self.active_low)

    # An emergency stop reads better as press/release.
    press = trip
    release = clear


class SimulatedRcm(SimulatedFaultSwitch):
    """A residual-current monitor: trips on :meth:`trip` (a residual current) or while its test
    input is driven, unless :meth:`break_self_test` made it deaf to the test."""

    def __init__(
        self, pin: SimulatedPin, test_pin: SimulatedPin | None = None, *, active_low: bool = True
    ) -> None:
        self.residual_fault = False
        self.self_test_works = True
        self.test_pin = test_pin
        super().__init__(pin, active_low=active_low)
        if test_pin is not None:
            test_pin.on_output_change(lambda _pin: self._update())

    def trip(self) -> None:
        self.residual_fault = True
        self._update()

    def clear(self) -> None:
        self.residual_fault = False
        self._update()

    def break_self_test(self) -> None:
        self.self_test_works = False

    def _update(self) -> None:
        testing = self.test_pin is not None and self.test_pin.state and self.self_test_works
        tripped = self.residual_fault or bool(testing)
        self.pin.drive(tripped != self.active_low)
