"""A simulated vehicle on a simulated pilot line: the EVSE's generator, the cable and the EV.

The real drivers run unchanged on top: the pilot line turns the PWM duty that
:class:`~chargerfw.drivers.pilot.ControlPilot` sets on a simulated pin, and what the vehicle does,
into ADC input voltages for a :class:`~chargerfw.drivers.simulated.i2c_devices.SimulatedAds1115`,
so the real classification code decides the state.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from chargerfw.drivers.gpio import PinMode, SimulatedPin
from chargerfw.drivers.pilot import Ads1115, current_for_duty

GENERATOR_V = 12.0


class VehicleState(enum.StrEnum):
    UNPLUGGED = "unplugged"  # A
    CONNECTED = "connected"  # B: 2.74 kOhm -> +9 V
    CHARGING = "charging"  # C: +882 Ohm -> +6 V
    VENTILATION = "ventilation"  # D: +246 Ohm -> +3 V


_PLATEAU_V = {
    VehicleState.CONNECTED: 9.0,
    VehicleState.CHARGING: 6.0,
    VehicleState.VENTILATION: 3.0,
}


class VehicleNotPluggedError(RuntimeError):
    """The vehicle was asked to do something that needs the cable plugged in."""


class SimulatedPilotLine:
    """The pilot wire of one connector: the EVSE's ±12 V generator (switched by the PWM pin),
    the vehicle plugged in (if any), and the front end that scales it for the ADC."""

    def __init__(
        self,
        pwm_pin: SimulatedPin,
        *,
        frequency_hz: float = 1000.0,
        adc_scale: float = 8.0,
        adc_offset: float = -12.0,
        samples_per_second: float = Ads1115.SAMPLES_PER_SECOND,
        power_on: Callable[[], bool] = lambda: True,
    ) -> None:
        self.pwm_pin = pwm_pin
        self.frequency_hz = frequency_hz
        self.adc_scale = adc_scale
        self.adc_offset = adc_offset
        self.samples_per_second = samples_per_second
        self.power_on = power_on  # whether the contactor feeds the cable (set by the board)
        self.vehicle: SimulatedVehicle | None = None
        self.shorted = False  # pilot shorted to PE: state E

    @property
    def duty_percent(self) -> float:
        """The generator's duty: 100 = +12 V steady, 0 = -12 V steady."""
        if self.pwm_pin.mode is PinMode.PWM:
            return self.pwm_pin.duty_percent
        return 100.0 if self.pwm_pin.state else 0.0

    @property
    def pwm_running(self) -> bool:
        return 0.0 < self.duty_percent < 100.0

    def generator_high(self, conversion: int) -> bool:
        """Whether conversion number ``conversion`` falls on the high part of the PWM period:
        the ADC samples at its own rate, so the phase walks through the period."""
        phase = (conversion * self.frequency_hz / self.samples_per_second) % 1.0
        return phase < self.duty_percent / 100.0

    def pilot_volts(self, conversion: int) -> float:
        if self.shorted:
            return 0.0
        high = self.generator_high(conversion)
        vehicle = self.vehicle
        if vehicle is None or vehicle.state is VehicleState.UNPLUGGED:
            return GENERATOR_V if high else -GENERATOR_V
        plateau = _PLATEAU_V[vehicle.state]
        if high:
            return plateau
        # The vehicle's diode blocks the negative half; without it the resistor loads it too.
        return -GENERATOR_V if vehicle.has_diode else -plateau

    def adc_volts(self, conversion: int) -> float:
        """What the ADC input sees (the source to connect to a SimulatedAds1115 channel)."""
        return (self.pilot_volts(conversion) - self.adc_offset) / self.adc_scale


class SimulatedVehicle:
    """An EV at the end of the cable. It asks for states B/C/D by switching its resistors,
    reads the offered current from the PWM duty, and draws min(its maximum, the offer) while
    charging with power on. A lower offer is followed after ``follow_delay_s`` (a real
    vehicle's charger takes a moment to ramp down; IEC 61851-1 allows for it)."""

    def __init__(
        self, line: SimulatedPilotLine, *, max_current_a: float = 32.0, phases: int = 3,
        follow_delay_s: float = 0.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.line = line
        self.max_current_a = max_current_a
        self.phases = phases
        self.follow_delay_s = follow_delay_s
        self.state = VehicleState.UNPLUGGED
        self.has_diode = True
        self._clock = clock
        self._drawing_a: float | None = None  # what the charger was last set to draw
        self._lowered_at: float | None = None  # when the offer fell below that

    # -- what a test or the bench does ----------------------------------------------------------
    def plug_in(self) -> None:
        if self.line.vehicle not in (None, self):
            raise RuntimeError("another vehicle is plugged into this connector")
        self.line.vehicle = self
        self.state = VehicleState.CONNECTED

    def request_charge(self) -> None:
        self._set(VehicleState.CHARGING)

    def request_ventilation(self) -> None:
        self._set(VehicleState.VENTILATION)

    def stop_charging(self) -> None:
        self._set(VehicleState.CONNECTED)

    def unplug(self) -> None:
        self.state = VehicleState.UNPLUGGED
        if self.line.vehicle is self:
            self.line.vehicle = None
        self.line.shorted = False

    def short_pilot(self) -> None:
        """Pilot shorted to PE (state E)."""
        self.line.shorted = True

    def clear_short(self) -> None:
        self.line.shorted = False

    def remove_diode(self) -> None:
        self.has_diode = False

    def restore_diode(self) -> None:
        self.has_diode = True

    # -- what the vehicle sees and does ----------------------------------------------------------
    @property
    def plugged_in(self) -> bool:
        return self.state is not VehicleState.UNPLUGGED

    @property
    def offered_current_a(self) -> float | None:
        """The current the EVSE offers on the PWM (None: no PWM, no charging allowed)."""
        if not self.plugged_in or self.line.shorted:
            return None
        return current_for_duty(self.line.duty_percent)

    @property
    def current_a(self) -> float:
        """Per-phase current drawn now, for a simulated meter."""
        offered = self.offered_current_a
        if self.state not in (VehicleState.CHARGING, VehicleState.VENTILATION):
            return 0.0
        if offered is None or not self.line.power_on():
            self._drawing_a = self._lowered_at = None
            return 0.0
        return self._follow(min(self.max_current_a, offered))

    def _follow(self, target_a: float) -> float:
        """What the vehicle draws on its way to ``target_a``: a lower target only once it has
        stood for ``follow_delay_s``, a higher one at once."""
        now = self._clock()
        if self._drawing_a is not None and target_a < self._drawing_a:
            if self._lowered_at is None:
                self._lowered_at = now
            if now - self._lowered_at < self.follow_delay_s:
                return self._drawing_a
        self._drawing_a, self._lowered_at = target_a, None
        return target_a

    def power_w(self, voltage_v: float = 230.0) -> float:
        return self.current_a * voltage_v * self.phases

    def _set(self, state: VehicleState) -> None:
        if not self.plugged_in:
            raise VehicleNotPluggedError(f"vehicle is unplugged; cannot go to {state.value}")
        self.state = state
