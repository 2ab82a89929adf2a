"""A stand-in for the RPi.GPIO module: records every call and lets a test fire edge events."""

from __future__ import annotations

import sys
import types

import pytest


class FakePwm:
    def __init__(self, calls: list, pin: int, frequency: float) -> None:
        self.calls, self.pin = calls, pin
        calls.append(("PWM", pin, frequency))

    def start(self, duty: float) -> None:
        self.calls.append(("PWM.start", self.pin, duty))

    def ChangeDutyCycle(self, duty: float) -> None:
        self.calls.append(("ChangeDutyCycle", self.pin, duty))

    def stop(self) -> None:
        self.calls.append(("PWM.stop", self.pin))


def make_fake_gpio() -> types.ModuleType:
    """A stand-in for RPi.GPIO that records every call and lets a test fire edge events."""
    mod = types.ModuleType("RPi.GPIO")
    mod.calls = []
    mod.levels = {}
    mod.callbacks = {}
    mod.BCM, mod.BOARD = 11, 10
    mod.IN, mod.OUT = 1, 0
    mod.HIGH, mod.LOW = 1, 0
    mod.PUD_UP, mod.PUD_DOWN, mod.PUD_OFF = 22, 21, 20
    mod.RISING, mod.FALLING, mod.BOTH = 31, 32, 33

    def record(name):
        def fn(*args, **kwargs):
            mod.calls.append((name, *args, *sorted(kwargs.items())))

        return fn

    mod.setwarnings = record("setwarnings")
    mod.setmode = record("setmode")
    mod.cleanup = record("cleanup")
    mod.remove_event_detect = record("remove_event_detect")

    def setup(pin, direction, pull_up_down=None, initial=None):
        mod.calls.append(("setup", pin, direction, pull_up_down, initial))
        if direction == mod.IN:
            mod.levels[pin] = 1 if pull_up_down == mod.PUD_UP else 0
        else:
            mod.levels[pin] = initial

    def output(pin, level):
        mod.calls.append(("output", pin, level))
        mod.levels[pin] = level

    def add_event_detect(pin, edge, callback=None, bouncetime=None):
        mod.calls.append(("add_event_detect", pin, edge, bouncetime))
        mod.callbacks[pin] = callback

    mod.setup, mod.output, mod.add_event_detect = setup, output, add_event_detect
    mod.input = lambda pin: mod.levels[pin]
    mod.PWM = lambda pin, frequency: FakePwm(mod.calls, pin, frequency)
    return mod


def install_fake_gpio(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Put a fresh fake in sys.modules as ``RPi.GPIO`` for the duration of a test."""
    module = make_fake_gpio()
    package = types.ModuleType("RPi")
    package.GPIO = module
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", module)
    return module
