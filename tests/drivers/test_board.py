"""build_board(): a whole station's GPIO/I2C devices from a TOML config, simulated and real."""

from __future__ import annotations

import time
import tomllib

import pytest
from gpio_fakes import install_fake_gpio

from chargerfw.config import parse_config
from chargerfw.drivers.board import BoardError, build_board
from chargerfw.drivers.contactor import ContactorFeedback, ContactorInterlockedError
from chargerfw.drivers.gpio import RPiGpioPinFactory, SimulatedPinFactory
from chargerfw.drivers.i2c import I2cBus, SimulatedSmbus
from chargerfw.drivers.lock import LockResult
from chargerfw.drivers.temperature import Lm75, Tmp102
from chargerfw.drivers.types import PilotState as S
from chargerfw.station.thermal import ThermalState, thermal_decision

STATION = """
hardware = "{hardware}"

[station]
id = "CP-TEST"

[rcm]
pin = 5
test_pin = 6
test_pulse_ms = 20

[emergency_stop]
pin = 13

[[connector]]
id = 1
max_current_a = 32
[connector.meter]
model = "eastron-sdm630-v2"
transport = "tcp"
[connector.contactor]
pin = 17
feedback_pin = 27
feedback_timeout_s = 0.1
[connector.pilot]
pwm_pin = 18
confirm_reads = 1
[connector.lock]
pin = 22
feedback_pin = 23
feedback_timeout_s = 0.05
[connector.temperature]
sensor = "tmp102"
address = 0x49

[[connector]]
id = 2
max_current_a = 16
phases = 1
[connector.meter]
model = "eastron-sdm120"
transport = "tcp"
tcp_port = 503
[connector.contactor]
pin = 20
active_high = false
[connector.pilot]
pwm_pin = 19
adc_channel = 1
confirm_reads = 1
[connector.temperature]
sensor = "lm75"
address = 0x4a
"""


def config_for(hardware: str, text: str = STATION):
    return parse_config(tomllib.loads(text.replace("{hardware}", hardware)), "test.toml")


@pytest.fixture
def board():
    board = build_board(config_for("sim"))
    yield board
    board.close()


def test_sim_board_has_every_device(board):
    assert board.hardware == "sim"
    assert isinstance(board.pin_factory, SimulatedPinFactory)
    assert sorted(board.connectors) == [1, 2]
    one, two = board.connectors[1], board.connectors[2]
    assert one.lock is not None and two.lock is None
    assert isinstance(one.temperature, Tmp102) and isinstance(two.temperature, Lm75)
    # Both pilots share one ADS1115 (channels 0 and 1) on bus 1.
    assert one.pilot.adc is two.pilot.adc
    assert list(board.sim.adcs) == [(1, 0x48)]
    assert board.rcm is not None and board.emergency_stop is not None
    assert not board.rcm.is_tripped and not board.emergency_stop.is_tripped


def test_sim_vehicles_drive_their_own_pilots(board):
    one, two = board.connectors[1], board.connectors[2]
    assert one.pilot.read().state is S.A and two.pilot.read().state is S.A
    one.sim.vehicle.plug_in()
    one.pilot.set_current_limit(32)
    one.sim.vehicle.request_charge()
    assert one.pilot.read().state is S.C
    assert two.pilot.read().state is S.A  # the other connector is unaffected
    assert one.sim.vehicle.current_a == 0.0  # contactor open
    one.contactor.close()
    assert one.sim.contactor.is_closed
    assert one.sim.vehicle.current_a == pytest.approx(32)
    one.sim.vehicle.unplug()
    assert one.pilot.read().state is S.A


def test_vehicle_limits_come_from_the_connector_config(board):
    two = board.connectors[2]
    assert two.sim.vehicle.max_current_a == 16 and two.sim.vehicle.phases == 1


def test_sim_contactor_weld_and_fail_to_close(board):
    one, two = board.connectors[1], board.connectors[2]
    one.contactor.close()
    one.sim.contactor.weld()
    one.contactor.open()
    assert one.contactor.feedback_closed is True
    time.sleep(0.12)  # past feedback_timeout_s = 0.1
    assert one.contactor.check_feedback() is ContactorFeedback.WELDED
    one.sim.contactor.repair()
    assert one.contactor.check_feedback() is ContactorFeedback.OK
    one.sim.contactor.fail_to_close()
    one.contactor.close()
    assert one.contactor.feedback_closed is False
    time.sleep(0.12)
    assert one.contactor.check_feedback() is ContactorFeedback.FAILED_TO_CLOSE
    # Connector 2 is active-low with no mirror contact: the coil pin goes low to close.
    two.contactor.close()
    assert board.pin_factory.pin(20).state is False and two.sim.contactor.is_closed
    assert two.contactor.check_feedback() is ContactorFeedback.NO_FEEDBACK


def test_sim_fault_inputs_and_safety_callback(board):
    one = board.connectors[1]
    board.emergency_stop.on_trip(lambda: one.contactor.interlock("emergency_stop"))
    one.contactor.close()
    board.sim.emergency_stop.press()
    assert board.emergency_stop.is_tripped and not one.sim.contactor.is_closed
    with pytest.raises(ContactorInterlockedError):
        one.contactor.close()
    board.sim.emergency_stop.release()
    assert not board.emergency_stop.is_tripped
    board.sim.rcm.trip()
    assert board.rcm.is_tripped
    board.sim.rcm.clear()
    assert board.rcm.self_test().passed
    board.sim.rcm.break_self_test()
    assert not board.rcm.self_test().passed


def test_sim_lock_and_temperature(board):
    one, two = board.connectors[1], board.connectors[2]
    assert one.lock.lock() is LockResult.LOCKED
    one.sim.lock.jam()
    assert one.lock.unlock() is LockResult.FAILED
    one.sim.temperature.temperature_c = 67.5
    assert one.temperature.read_celsius() == 67.5
    config = config_for("sim").connector_by_id(1).temperature
    assert thermal_decision(one.temperature.read_celsius(), config).state is ThermalState.STOPPED
    two.sim.temperature.temperature_c = -12.25
    assert two.temperature.read_celsius() == -12.25


def test_close_opens_contactors_and_frees_pins():
    board = build_board(config_for("sim"))
    board.connectors[1].contactor.close()
    board.close()
    assert board.pin_factory.pin(17).state is False
    board.pin_factory.claim(17, "reuse")  # released


def test_adc_and_sensor_on_one_address_is_refused():
    text = STATION.replace("address = 0x49", "address = 0x48")
    with pytest.raises(
        BoardError, match="address 0x48 is used by both connector\\[1\\].pilot.adc_address"
    ):
        build_board(config_for("sim", text))


def test_two_pilots_on_one_adc_channel_are_refused():
    text = STATION.replace("adc_channel = 1", "adc_channel = 0")
    with pytest.raises(
        BoardError,
        match="ADC channel 0 is used by both connector\\[1\\].pilot and connector\\[2\\].pilot",
    ):
        build_board(config_for("sim", text))


def test_shipped_sim_station_builds():
    from chargerfw.config import load_config
    from chargerfw.hwdata import data_path

    board = build_board(load_config(str(data_path("stations", "sim.toml"))))
    try:
        c = board.connectors[1]
        c.sim.vehicle.plug_in()
        assert c.pilot.read().state in (S.A, S.B)  # default confirm_reads = 2
        assert c.pilot.read().state is S.B
    finally:
        board.close()


def test_pi_board_uses_rpi_gpio_and_smbus(monkeypatch):
    gpio = install_fake_gpio(monkeypatch)
    opened: list[int] = []

    def open_bus(number: int) -> I2cBus:
        opened.append(number)
        return I2cBus(SimulatedSmbus(), f"fake-{number}")

    board = build_board(config_for("pi"), open_bus=open_bus)
    assert board.hardware == "pi" and board.sim is None
    assert isinstance(board.pin_factory, RPiGpioPinFactory)
    assert opened == [1]  # one bus shared by the ADC and both sensors
    assert ("setup", 17, gpio.OUT, None, gpio.LOW) in gpio.calls  # active-high coil, open
    assert ("setup", 20, gpio.OUT, None, gpio.HIGH) in gpio.calls  # active-low coil, open
    assert ("setup", 5, gpio.IN, gpio.PUD_UP, None) in gpio.calls  # RCM trip, active low
    assert ("setup", 6, gpio.OUT, None, gpio.LOW) in gpio.calls  # RCM test output
    assert ("PWM", 18, 1000) in gpio.calls and ("PWM", 19, 1000) in gpio.calls
    assert ("add_event_detect", 13, gpio.BOTH, 20) in gpio.calls  # e-stop, default debounce
    board.connectors[1].contactor.close()
    assert ("output", 17, gpio.HIGH) in gpio.calls
    board.close()
    assert ("output", 17, gpio.LOW) in gpio.calls
    assert ("cleanup", 17) in gpio.calls
