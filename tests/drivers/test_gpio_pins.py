"""Pin factories: the simulated one, and the RPi.GPIO backend against a fake RPi.GPIO module."""

from __future__ import annotations

import subprocess
import sys

import pytest
from gpio_fakes import install_fake_gpio

from chargerfw.drivers.gpio import (
    GpioError,
    PinInUseError,
    Pull,
    RPiGpioPinFactory,
    SimulatedPinFactory,
)


# -- simulated factory --------------------------------------------------------------------------
def test_simulated_input_follows_drive_and_pull():
    factory = SimulatedPinFactory()
    up = factory.pin(5)
    up.setup_input(Pull.UP)
    assert up.read() is True  # floats to its pull-up
    up.drive_low()
    assert up.read() is False
    up.release()
    assert up.read() is True
    down = factory.pin(6)
    down.setup_input(Pull.DOWN)
    assert down.read() is False


def test_simulated_edge_callbacks_run_synchronously_with_level():
    factory = SimulatedPinFactory()
    pin = factory.pin(5)
    pin.setup_input(Pull.UP)
    seen: list[bool] = []
    pin.add_edge_callback(seen.append)
    pin.drive_low()
    pin.drive_low()  # no edge: no call
    pin.drive_high()
    assert seen == [False, True]


def test_failing_callback_does_not_stop_the_next_one():
    factory = SimulatedPinFactory()
    pin = factory.pin(5)
    pin.setup_input(Pull.UP)
    seen: list[bool] = []

    def broken(level: bool) -> None:
        raise RuntimeError("boom")

    pin.add_edge_callback(broken)
    pin.add_edge_callback(seen.append)
    pin.drive_low()
    assert seen == [False]


def test_simulated_bounce_drops_edges_within_bouncetime_when_clocked():
    now = [0.0]
    factory = SimulatedPinFactory(clock=lambda: now[0])
    pin = factory.pin(5)
    pin.setup_input(Pull.UP)
    seen: list[bool] = []
    pin.add_edge_callback(seen.append, bounce_ms=20)
    pin.drive_low()
    now[0] = 0.005
    pin.drive_high()  # bounce: dropped
    now[0] = 0.010
    pin.drive_low()  # level is low again, but within bouncetime: dropped
    now[0] = 0.050
    pin.drive_high()
    assert seen == [False, True]


def test_simulated_outputs_and_pwm_are_recorded():
    factory = SimulatedPinFactory()
    out = factory.pin(17)
    out.setup_output(initial=False)
    changes: list[bool] = []
    out.on_output_change(lambda p: changes.append(p.state))
    out.write(True)
    assert out.state is True and out.read() is True
    pwm = factory.pin(18)
    pwm.setup_pwm(1000, 100.0)
    pwm.set_duty(53.3)
    assert pwm.duty_percent == 53.3
    assert pwm.duty_history == [100.0, 53.3]
    assert changes == [True]


def test_mode_misuse_is_refused():
    factory = SimulatedPinFactory()
    pin = factory.pin(4)
    with pytest.raises(GpioError, match="not set up"):
        pin.read()
    pin.setup_input()
    with pytest.raises(GpioError, match="is input, needs output"):
        pin.write(True)
    with pytest.raises(GpioError, match="is input, needs unset"):
        pin.setup_output()
    pwm = factory.pin(18)
    pwm.setup_pwm(1000)
    with pytest.raises(GpioError, match="0..100"):
        pwm.set_duty(101)
    assert pwm.duty_percent == 0.0
    with pytest.raises(GpioError, match="0..27"):
        factory.pin(28)


def test_claim_refuses_a_second_owner_until_released():
    factory = SimulatedPinFactory()
    pin = factory.claim(17, "contactor")
    with pytest.raises(PinInUseError, match="GPIO 17 is already used by contactor"):
        factory.claim(17, "lock")
    pin.close()
    factory.claim(17, "lock")


# -- RPi.GPIO backend ---------------------------------------------------------------------------
@pytest.fixture
def fake_gpio(monkeypatch):
    return install_fake_gpio(monkeypatch)


def test_rpi_factory_sets_bcm_mode(fake_gpio):
    RPiGpioPinFactory()
    assert ("setmode", fake_gpio.BCM) in fake_gpio.calls


def test_rpi_backend_calls(fake_gpio):
    factory = RPiGpioPinFactory()
    rcm = factory.pin(5)
    rcm.setup_input(Pull.UP)
    coil = factory.pin(17)
    coil.setup_output(initial=False)
    coil.write(True)
    pwm = factory.pin(18)
    pwm.setup_pwm(1000, 100.0)
    pwm.set_duty(26.7)
    seen: list[bool] = []
    rcm.add_edge_callback(seen.append, bounce_ms=20)
    rcm.add_edge_callback(seen.append, bounce_ms=20)  # second callback: no second detect

    g = fake_gpio
    assert ("setup", 5, g.IN, g.PUD_UP, None) in g.calls
    assert ("setup", 17, g.OUT, None, g.LOW) in g.calls
    assert ("output", 17, g.HIGH) in g.calls
    assert ("PWM", 18, 1000) in g.calls
    assert ("PWM.start", 18, 100.0) in g.calls
    assert ("ChangeDutyCycle", 18, 26.7) in g.calls
    assert [c for c in g.calls if c[0] == "add_event_detect"] == [
        ("add_event_detect", 5, g.BOTH, 20)
    ]

    # RPi.GPIO calls back with the channel on its own thread; the level is read then.
    g.levels[5] = 0
    g.callbacks[5](5)
    assert seen == [False, False]

    factory.close()
    assert ("remove_event_detect", 5) in g.calls
    assert ("PWM.stop", 18) in g.calls
    for pin in (5, 17, 18):
        assert ("cleanup", pin) in g.calls


def test_rpi_backend_omits_zero_bouncetime(fake_gpio):
    pin = RPiGpioPinFactory().pin(6)
    pin.setup_input(Pull.DOWN)
    pin.add_edge_callback(lambda level: None, bounce_ms=0)
    assert ("setup", 6, fake_gpio.IN, fake_gpio.PUD_DOWN, None) in fake_gpio.calls
    assert ("add_event_detect", 6, fake_gpio.BOTH, None) in fake_gpio.calls


def test_rpi_factory_without_module_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "RPi", None)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
    with pytest.raises(GpioError, match="rpi-lgpio"):
        RPiGpioPinFactory()


def test_package_imports_without_touching_rpi_gpio():
    # RPi.GPIO is imported only when a real factory is made, so the package loads on a PC.
    code = (
        "import sys, chargerfw.drivers.board, chargerfw.drivers.simulated.vehicle;"
        "print(any(m.startswith('RPi') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
