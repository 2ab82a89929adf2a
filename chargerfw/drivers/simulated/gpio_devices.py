"""Simulated parts on the GPIO pins: the contactor's mirror contact, the lock mechanism, an
emergency stop or other trip contact, and the residual-current monitor.

Each follows the outputs the real drivers set on :class:`~chargerfw.drivers.gpio.SimulatedPin`
and drives the inputs they read, so a test can weld a contactor or trip the RCM and watch the
real driver notice.

The trip contacts and the mirror contact are wired as the config says
(:class:`~chargerfw.config.wiring.ContactWiring`): a closed contact holds its pin away from the
pull, an open one lets the pin float to its pull. ``cut_wire()`` lets the pin float whatever the
contact does, until ``mend_wire()``.
"""

from __future__ import annotations

from chargerfw.config.wiring import FAIL_SAFE_WIRING, ContactWiring
from chargerfw.drivers.gpio import SimulatedPin


class SimulatedContact:
    """A contact between an input pin and the opposite of its pull, wired as ``wiring`` says;
    ``active`` is what its device signals (a trip, main contacts closed)."""

    def __init__(self, pin: SimulatedPin, wiring: ContactWiring = FAIL_SAFE_WIRING) -> None:
        self.pin = pin
        self.wiring = wiring
        self.active = False
        self.wire_cut = False
        self._apply()

    @property
    def closed(self) -> bool:
        return self.wiring.contact_closed(self.active)

    def set_active(self, active: bool) -> None:
        self.active = active
        self._apply()

    def cut_wire(self) -> None:
        """The wire to the pin is broken: the pin floats to its pull."""
        self.wire_cut = True
        self._apply()

    def mend_wire(self) -> None:
        self.wire_cut = False
        self._apply()

    def _apply(self) -> None:
        if self.closed and not self.wire_cut:
            self.pin.drive(self.wiring.closed_level)
        else:
            self.pin.release()


class SimulatedContactorMirror:
    """The contactor's mirror contact follows its coil unless a test welds it or makes it fail
    to close. ``is_closed`` (the main contacts) also tells the pilot line whether power flows.
    :meth:`cut_wire` breaks the feedback wire."""

    def __init__(
        self,
        coil: SimulatedPin,
        feedback: SimulatedPin | None = None,
        *,
        coil_active_high: bool = True,
        feedback_wiring: ContactWiring = FAIL_SAFE_WIRING,
    ) -> None:
        self.coil = coil
        self.feedback = feedback
        self.coil_active_high = coil_active_high
        self.feedback_contact = (
            SimulatedContact(feedback, feedback_wiring) if feedback is not None else None
        )
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

    def cut_wire(self) -> None:
        """The feedback wire is broken (the main contacts go on as before)."""
        self._feedback_contact().cut_wire()

    def mend_wire(self) -> None:
        self._feedback_contact().mend_wire()

    def _feedback_contact(self) -> SimulatedContact:
        if self.feedback_contact is None:
            raise RuntimeError("this contactor has no feedback pin")
        return self.feedback_contact

    def _follow(self) -> None:
        closed = self.welded or (self.energised and not self.stuck_open)
        self.is_closed = closed
        if self.feedback_contact is not None:
            self.feedback_contact.set_active(closed)


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

    def __init__(self, pin: SimulatedPin, *, wiring: ContactWiring = FAIL_SAFE_WIRING) -> None:
        self.pin = pin
        self.contact = SimulatedContact(pin, wiring)

    def trip(self) -> None:
        self.contact.set_active(True)

    def clear(self) -> None:
        self.contact.set_active(False)

    # An emergency stop reads better as press/release.
    press = trip
    release = clear

    def cut_wire(self) -> None:
        """The wire to the pin is broken: the pin floats to its pull until :meth:`mend_wire`."""
        self.contact.cut_wire()

    def mend_wire(self) -> None:
        self.contact.mend_wire()


class SimulatedRcm(SimulatedFaultSwitch):
    """A residual-current monitor: trips on :meth:`trip` (a residual current) or while its test
    input is driven, unless :meth:`break_self_test` made it deaf to the test."""

    def __init__(
        self,
        pin: SimulatedPin,
        test_pin: SimulatedPin | None = None,
        *,
        wiring: ContactWiring = FAIL_SAFE_WIRING,
    ) -> None:
        self.residual_fault = False
        self.self_test_works = True
        self.test_pin = test_pin
        super().__init__(pin, wiring=wiring)
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
        self.contact.set_active(self.residual_fault or bool(testing))
