"""The real ControlPilot classifying what a simulated vehicle does on a simulated pilot line."""

from __future__ import annotations

import pytest

from chargerfw.config import PilotSection
from chargerfw.drivers.gpio import SimulatedPinFactory
from chargerfw.drivers.i2c import I2cBus, I2cError, SimulatedSmbus
from chargerfw.drivers.pilot import Ads1115, ControlPilot, PilotCurrentError
from chargerfw.drivers.simulated.i2c_devices import SimulatedAds1115
from chargerfw.drivers.simulated.vehicle import (
    SimulatedPilotLine,
    SimulatedVehicle,
    VehicleNotPluggedError,
    VehicleState,
)
from chargerfw.drivers.types import PilotMode
from chargerfw.drivers.types import PilotState as S


class Rig:
    def __init__(self, confirm_reads: int = 1, max_current_a: float = 16.0) -> None:
        self.factory = SimulatedPinFactory()
        self.raw = SimulatedSmbus()
        self.chip = SimulatedAds1115()
        self.raw.attach(0x48, self.chip)
        adc = Ads1115(I2cBus(self.raw, "sim"), 0x48, sample_interval_s=0.0)
        self.pilot = ControlPilot(18, factory=self.factory, adc=adc, confirm_reads=confirm_reads)
        self.power = False
        self.line = SimulatedPilotLine(self.factory.pin(18), power_on=lambda: self.power)
        self.chip.connect(0, self.line.adc_volts)
        self.vehicle = SimulatedVehicle(self.line, max_current_a=max_current_a)

    def state(self) -> S:
        return self.pilot.read().state


@pytest.fixture
def rig():
    return Rig()


def test_plug_charge_unplug(rig):
    assert rig.state() is S.A
    rig.vehicle.plug_in()
    assert rig.state() is S.B
    assert rig.vehicle.offered_current_a is None  # stand-by: no PWM yet
    rig.pilot.set_current_limit(32)
    reading = rig.pilot.read()
    assert reading.state is S.B
    assert reading.high_v == pytest.approx(9.0, abs=0.01)
    assert reading.low_v == pytest.approx(-12.0, abs=0.01)  # the diode is there
    assert rig.vehicle.offered_current_a == pytest.approx(32)
    rig.vehicle.request_charge()
    assert rig.state() is S.C
    assert rig.vehicle.current_a == 0.0  # contactor still open: no power, no current
    rig.power = True
    assert rig.vehicle.current_a == pytest.approx(16)  # its own max is below the offer
    rig.vehicle.request_ventilation()
    assert rig.state() is S.D
    rig.vehicle.stop_charging()
    assert rig.state() is S.B
    assert rig.vehicle.current_a == 0.0
    rig.vehicle.unplug()
    assert rig.state() is S.A


def test_vehicle_draws_the_offer_when_below_its_maximum(rig):
    rig.vehicle.plug_in()
    rig.vehicle.request_charge()
    rig.power = True
    rig.pilot.set_current_limit(10)
    assert rig.vehicle.current_a == pytest.approx(10)
    assert rig.vehicle.power_w(230) == pytest.approx(10 * 230 * 3)
    rig.pilot.set_standby()  # pause: no offer, no current
    assert rig.vehicle.current_a == 0.0


def test_a_slow_vehicle_follows_a_lower_offer_after_its_delay_and_a_higher_one_at_once():
    rig = Rig(max_current_a=32.0)
    now = [100.0]
    rig.vehicle = SimulatedVehicle(rig.line, max_current_a=32.0, follow_delay_s=2.0,
                                   clock=lambda: now[0])
    rig.vehicle.plug_in()
    rig.vehicle.request_charge()
    rig.power = True
    rig.pilot.set_current_limit(16)
    assert rig.vehicle.current_a == pytest.approx(16)
    rig.pilot.set_current_limit(8)
    assert rig.vehicle.current_a == pytest.approx(16)  # still ramping down
    now[0] += 1.9
    assert rig.vehicle.current_a == pytest.approx(16)
    now[0] += 0.1
    assert rig.vehicle.current_a == pytest.approx(8)
    rig.pilot.set_current_limit(20)
    assert rig.vehicle.current_a == pytest.approx(20)  # more is taken at once
    rig.pilot.set_standby()  # the offer goes: nothing drawn, whatever the delay
    assert rig.vehicle.current_a == 0.0


@pytest.mark.parametrize("amps", [6, 16, 51, 80])
def test_both_plateaus_are_seen_at_extreme_duty(amps):
    rig = Rig()
    rig.vehicle.plug_in()
    rig.pilot.set_current_limit(amps)
    reading = rig.pilot.read()
    assert reading.state is S.B
    assert reading.high_v == pytest.approx(9.0, abs=0.01)
    assert reading.low_v == pytest.approx(-12.0, abs=0.01)


def test_missing_diode_is_a_diode_fault_while_pwm_runs(rig):
    rig.vehicle.plug_in()
    rig.vehicle.remove_diode()
    assert rig.state() is S.B  # stand-by +12 V: no negative half to check
    rig.pilot.set_current_limit(16)
    assert rig.state() is S.DIODE_FAULT
    rig.vehicle.restore_diode()
    assert rig.state() is S.B


def test_short_is_state_e_and_state_f_output_reads_f(rig):
    rig.vehicle.plug_in()
    rig.pilot.set_current_limit(16)
    rig.vehicle.short_pilot()
    assert rig.state() is S.E
    assert rig.vehicle.offered_current_a is None
    rig.vehicle.clear_short()
    assert rig.state() is S.B
    rig.pilot.set_state_f()
    assert rig.pilot.output is PilotMode.STATE_F
    assert rig.factory.pin(18).duty_percent == 0.0
    assert rig.state() is S.F


def test_confirmation_delays_a_change():
    rig = Rig(confirm_reads=2)
    assert rig.state() is S.A
    rig.vehicle.plug_in()
    assert rig.state() is S.A
    assert rig.state() is S.B


def test_pilot_outputs_drive_the_pwm_pin(rig):
    pin = rig.factory.pin(18)
    assert pin.frequency_hz == 1000 and pin.duty_percent == 100.0  # starts in stand-by
    assert rig.pilot.set_current_limit(16) == pytest.approx(26.6667, abs=1e-4)
    assert pin.duty_percent == pytest.approx(26.6667, abs=1e-4)
    assert rig.pilot.offered_current_a == pytest.approx(16)
    with pytest.raises(PilotCurrentError):
        rig.pilot.set_current_limit(5)
    assert pin.duty_percent == pytest.approx(26.6667, abs=1e-4)  # unchanged by bad input
    rig.pilot.set_standby()
    assert pin.duty_percent == 100.0 and rig.pilot.offered_current_a is None


def test_vehicle_refuses_to_charge_unplugged(rig):
    with pytest.raises(VehicleNotPluggedError):
        rig.vehicle.request_charge()
    assert rig.vehicle.state is VehicleState.UNPLUGGED


def test_adc_failure_surfaces_as_i2c_error(rig):
    rig.raw.failing.add(0x48)
    with pytest.raises(I2cError):
        rig.pilot.read()


def test_pilot_from_config_uses_every_key():
    factory = SimulatedPinFactory()
    raw = SimulatedSmbus()
    chip = SimulatedAds1115()
    raw.attach(0x48, chip)
    chip.connect(2, lambda n: 2.1)  # 2.1 V * 10 - 15 = 6 V: state C
    section = PilotSection(
        pwm_pin=12,
        pwm_frequency_hz=1050,
        adc_channel=2,
        adc_scale=10.0,
        adc_offset=-15.0,
        adc_samples=16,
        hysteresis_v=0.2,
        confirm_reads=3,
    )
    pilot = ControlPilot.from_config(
        section, factory, Ads1115(I2cBus(raw, "sim"), sample_interval_s=0)
    )
    assert factory.pin(12).frequency_hz == 1050
    reading = pilot.read()
    assert reading.state is S.C and reading.high_v == pytest.approx(6.0, abs=0.01)
    assert chip.conversions == 16 and chip.channel == 2
    assert pilot.classifier.margin_v == 0.2 and pilot.classifier.confirm_reads == 3


def test_a_burst_the_pwm_stopped_in_is_no_diode_fault():
    """The safety loop may set stand-by from another thread while a burst runs: the burst then
    holds the vehicle's steady +6 V without a negative half, which must not read as a missing
    diode (a diode fault ends the session)."""
    rig = Rig()
    rig.vehicle.plug_in()
    rig.pilot.set_current_limit(16)
    rig.vehicle.request_charge()
    assert rig.state() is S.C
    burst = rig.pilot.adc.burst

    def stopped_during(channel: int, samples: int) -> list[float]:
        rig.pilot.set_standby()
        return burst(channel, samples)

    rig.pilot.adc.burst = stopped_during  # type: ignore[method-assign]
    reading = rig.pilot.read()
    assert reading.low_v > -10.5  # the burst saw no negative half...
    assert reading.state is S.C  # ...and that is not a diode fault
    rig.pilot.adc.burst = burst  # type: ignore[method-assign]
    # A diode really missing while the PWM runs through the burst still trips.
    rig.pilot.set_current_limit(16)
    assert rig.state() is S.C
    rig.vehicle.remove_diode()
    assert rig.state() is S.DIODE_FAULT
