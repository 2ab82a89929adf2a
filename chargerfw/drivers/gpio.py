"""GPIO pins behind one small interface, in the spirit of gpiozero's pin factories.

Devices (:class:`~chargerfw.drivers.contactor.Contactor`, fault inputs, the pilot PWM, the lock)
take a :class:`PinFactory` and pin numbers (BCM). Two factories exist:

- :class:`RPiGpioPinFactory` drives real pins through the ``RPi.GPIO`` API (the classic module on
  a Pi 1-4, or ``rpi-lgpio`` which provides the same API on a Pi 5). The module is imported only
  when the factory is created, so the package imports on a PC. Edge callbacks run on RPi.GPIO's
  own thread.
- :class:`SimulatedPinFactory` keeps pin levels in memory. A test drives an input
  (``factory.pin(5).drive_low()``) and asserts an output (``factory.pin(17).state``); edge
  callbacks run synchronously inside ``drive_*``.

Every backend implements the private hooks of :class:`Pin`; the public methods check the pin's
mode and do the bookkeeping once.
"""

from __future__ import annotations

import abc
import enum
import importlib
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from chargerfw.logs import get_logger

log = get_logger(__name__)

EdgeCallback = Callable[[bool], None]
"""Called with the pin's level (True = high) after an edge."""


class GpioError(RuntimeError):
    """A pin used in a way its set-up does not allow, or a backend that cannot start."""


class PinInUseError(GpioError):
    """The pin is already claimed by another device."""


class PinMode(enum.StrEnum):
    UNSET = "unset"
    INPUT = "input"
    OUTPUT = "output"
    PWM = "pwm"


class Pull(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    OFF = "off"


class Pin(abc.ABC):
    """One GPIO pin (BCM number). Set it up once as input, output or PWM output."""

    def __init__(self, factory: PinFactory, number: int) -> None:
        self.factory = factory
        self.number = number
        self.mode = PinMode.UNSET
        self.pull = Pull.OFF
        self.frequency_hz: float | None = None
        self._duty = 0.0
        self._callbacks: list[EdgeCallback] = []
        self._edge_detect_on = False
        self._lock = threading.Lock()

    # -- public API ------------------------------------------------------------------------------
    def setup_input(self, pull: Pull = Pull.OFF) -> None:
        self._require(PinMode.UNSET)
        self._setup_input(pull)
        self.mode, self.pull = PinMode.INPUT, pull

    def setup_output(self, initial: bool = False) -> None:
        self._require(PinMode.UNSET)
        self._setup_output(initial)
        self.mode = PinMode.OUTPUT

    def setup_pwm(self, frequency_hz: float, duty_percent: float = 0.0) -> None:
        self._require(PinMode.UNSET)
        _check_duty(duty_percent)
        if frequency_hz <= 0:
            raise GpioError(f"GPIO {self.number}: PWM frequency must be > 0, got {frequency_hz}")
        self._setup_pwm(frequency_hz, duty_percent)
        self.mode, self.frequency_hz, self._duty = PinMode.PWM, frequency_hz, duty_percent

    def read(self) -> bool:
        """The pin's level (True = high). Outputs read back what they drive."""
        if self.mode is PinMode.UNSET:
            raise GpioError(f"GPIO {self.number} is not set up")
        return self._read()

    def write(self, level: bool) -> None:
        self._require(PinMode.OUTPUT)
        self._write(level)

    @property
    def duty_percent(self) -> float:
        self._require(PinMode.PWM)
        return self._duty

    def set_duty(self, duty_percent: float) -> None:
        self._require(PinMode.PWM)
        _check_duty(duty_percent)
        self._set_duty(duty_percent)
        self._duty = duty_percent

    def add_edge_callback(self, callback: EdgeCallback, bounce_ms: int = 0) -> None:
        """Call ``callback(level)`` on both edges; edges within ``bounce_ms`` of the last
        accepted one are dropped (RPi.GPIO semantics). Several callbacks may share a pin; the
        first registration's ``bounce_ms`` applies to all of them."""
        self._require(PinMode.INPUT)
        with self._lock:
            self._callbacks.append(callback)
            if not self._edge_detect_on:
                self._enable_edge_detect(bounce_ms)
                self._edge_detect_on = True

    def close(self) -> None:
        if self.mode is not PinMode.UNSET:
            self._close()
        self.mode = PinMode.UNSET
        self._callbacks.clear()
        self._edge_detect_on = False
        self.factory._release(self.number)

    # -- for backends ----------------------------------------------------------------------------
    def _dispatch_edge(self) -> None:
        """Read the level and hand it to every callback; one failing callback must not keep
        the others (the safety path) from running."""
        level = self._read()
        for callback in list(self._callbacks):
            try:
                callback(level)
            except Exception:
                log.exception("gpio.callback_failed", pin=self.number)

    def _require(self, mode: PinMode) -> None:
        if self.mode is not mode:
            raise GpioError(f"GPIO {self.number} is {self.mode.value}, needs {mode.value}")

    # -- hooks -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def _setup_input(self, pull: Pull) -> None: ...

    @abc.abstractmethod
    def _setup_output(self, initial: bool) -> None: ...

    @abc.abstractmethod
    def _setup_pwm(self, frequency_hz: float, duty_percent: float) -> None: ...

    @abc.abstractmethod
    def _read(self) -> bool: ...

    @abc.abstractmethod
    def _write(self, level: bool) -> None: ...

    @abc.abstractmethod
    def _set_duty(self, duty_percent: float) -> None: ...

    @abc.abstractmethod
    def _enable_edge_detect(self, bounce_ms: int) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...


def _check_duty(duty_percent: float) -> None:
    if not 0.0 <= duty_percent <= 100.0:
        raise GpioError(f"PWM duty must be within 0..100 %, got {duty_percent}")


class PinFactory(abc.ABC):
    """Hands out pins and makes sure each is claimed by one device only."""

    def __init__(self) -> None:
        self._pins: dict[int, Pin] = {}
        self._claimed: dict[int, str] = {}
        self._lock = threading.Lock()

    def pin(self, number: int) -> Pin:
        """The pin object for ``number`` (the same object every time)."""
        if not 0 <= number <= 27:
            raise GpioError(f"BCM GPIO number must be within 0..27, got {number}")
        with self._lock:
            if number not in self._pins:
                self._pins[number] = self._make_pin(number)
            return self._pins[number]

    def claim(self, number: int, owner: str) -> Pin:
        """The pin for a device; raises :class:`PinInUseError` if another device holds it."""
        pin = self.pin(number)
        with self._lock:
            if number in self._claimed:
                raise PinInUseError(f"GPIO {number} is already used by {self._claimed[number]}")
            self._claimed[number] = owner
        return pin

    def _release(self, number: int) -> None:
        with self._lock:
            self._claimed.pop(number, None)

    def close(self) -> None:
        for pin in list(self._pins.values()):
            pin.close()
        self._close()

    @abc.abstractmethod
    def _make_pin(self, number: int) -> Pin: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass


# -- real backend: the RPi.GPIO API -----------------------------------------------------------------
class RPiGpioPin(Pin):
    factory: RPiGpioPinFactory

    def __init__(self, factory: RPiGpioPinFactory, number: int) -> None:
        super().__init__(factory, number)
        self._pwm: Any = None

    @property
    def _gpio(self) -> ModuleType:
        return self.factory.gpio

    def _setup_input(self, pull: Pull) -> None:
        pud = {
            Pull.UP: self._gpio.PUD_UP,
            Pull.DOWN: self._gpio.PUD_DOWN,
            Pull.OFF: self._gpio.PUD_OFF,
        }
        self._gpio.setup(self.number, self._gpio.IN, pull_up_down=pud[pull])

    def _setup_output(self, initial: bool) -> None:
        level = self._gpio.HIGH if initial else self._gpio.LOW
        self._gpio.setup(self.number, self._gpio.OUT, initial=level)

    def _setup_pwm(self, frequency_hz: float, duty_percent: float) -> None:
        self._gpio.setup(self.number, self._gpio.OUT, initial=self._gpio.LOW)
        self._pwm = self._gpio.PWM(self.number, frequency_hz)
        self._pwm.start(duty_percent)

    def _read(self) -> bool:
        return bool(self._gpio.input(self.number))

    def _write(self, level: bool) -> None:
        self._gpio.output(self.number, self._gpio.HIGH if level else self._gpio.LOW)

    def _set_duty(self, duty_percent: float) -> None:
        self._pwm.ChangeDutyCycle(duty_percent)

    def _enable_edge_detect(self, bounce_ms: int) -> None:
        kwargs: dict[str, Any] = {"callback": self._on_gpio_event}
        if bounce_ms > 0:  # RPi.GPIO rejects bouncetime <= 0
            kwargs["bouncetime"] = bounce_ms
        try:
            self._gpio.add_event_detect(self.number, self._gpio.BOTH, **kwargs)
        except RuntimeError as exc:  # "Failed to add edge detection": old RPi.GPIO, new kernel
            raise GpioError(
                f"GPIO {self.number}: cannot watch edges ({exc}); try rpi-lgpio"
            ) from exc

    def _on_gpio_event(self, channel: int) -> None:
        # Runs on RPi.GPIO's event thread.
        self._dispatch_edge()

    def _close(self) -> None:
        if self._edge_detect_on:
            self._gpio.remove_event_detect(self.number)
        if self._pwm is not None:
            self._pwm.stop()
            self._pwm = None
        self._gpio.cleanup(self.number)


class RPiGpioPinFactory(PinFactory):
    """Pins through the ``RPi.GPIO`` API with BCM numbering (``pip install chargerfw[pi]``)."""

    def __init__(self, module_name: str = "RPi.GPIO") -> None:
        super().__init__()
        try:
            self.gpio: ModuleType = importlib.import_module(module_name)
        except ImportError as exc:
            raise GpioError(
                f"cannot import {module_name} ({exc}); install the 'pi' extra (rpi-lgpio) "
                'or use hardware = "sim"'
            ) from exc
        except RuntimeError as exc:  # RPi.GPIO on a Pi 5: "Cannot determine SOC peripheral base"
            raise GpioError(f"{module_name} cannot start: {exc}; on a Pi 5 use rpi-lgpio") from exc
        self.gpio.setwarnings(False)
        self.gpio.setmode(self.gpio.BCM)

    def _make_pin(self, number: int) -> Pin:
        return RPiGpioPin(self, number)


# -- simulated backend ------------------------------------------------------------------------------
class SimulatedPin(Pin):
    """A pin in memory. Inputs are driven by a test (or a simulated part); outputs and PWM duty
    are recorded so a test can assert them; output listeners let simulated parts follow them."""

    factory: SimulatedPinFactory

    def __init__(self, factory: SimulatedPinFactory, number: int) -> None:
        super().__init__(factory, number)
        self._level = False
        self._driven: bool | None = None  # level forced from outside, None = floating
        self._last_edge_at: float | None = None
        self._bounce_s = 0.0
        self.duty_history: list[float] = []
        self._output_listeners: list[Callable[[SimulatedPin], None]] = []

    # -- driving from outside (tests and simulated parts) ----------------------------------------
    def drive_high(self) -> None:
        self.drive(True)

    def drive_low(self) -> None:
        self.drive(False)

    def drive(self, level: bool) -> None:
        """Force the input level; an edge runs the callbacks synchronously, here."""
        self._driven = level
        if self.mode is PinMode.INPUT:
            self._settle()

    def release(self) -> None:
        """Stop driving: the pin floats to its pull (low without one)."""
        self._driven = None
        if self.mode is PinMode.INPUT:
            self._settle()

    @property
    def state(self) -> bool:
        """The level the pin is at (outputs: what the device drives)."""
        return self._level

    def on_output_change(self, listener: Callable[[SimulatedPin], None]) -> None:
        """Call ``listener(pin)`` after every write or duty change of this output."""
        self._output_listeners.append(listener)

    # -- hooks -----------------------------------------------------------------------------------
    def _setup_input(self, pull: Pull) -> None:
        self.pull = pull
        self._level = self._idle_level()

    def _idle_level(self) -> bool:
        return self._driven if self._driven is not None else self.pull is Pull.UP

    def _settle(self) -> None:
        level = self._idle_level()
        if level == self._level:
            return
        self._level = level
        if not self._edge_detect_on:
            return
        clock = self.factory.clock
        if clock is not None and self._bounce_s > 0:
            now = clock()
            if self._last_edge_at is not None and now - self._last_edge_at < self._bounce_s:
                return  # dropped like RPi.GPIO's bouncetime does
            self._last_edge_at = now
        self._dispatch_edge()

    def _setup_output(self, initial: bool) -> None:
        self._level = initial
        self._notify()

    def _setup_pwm(self, frequency_hz: float, duty_percent: float) -> None:
        self._level = duty_percent > 0
        self.duty_history.append(duty_percent)
        # Listeners read duty_percent while notified: set what the base would set afterwards.
        self._duty, self.frequency_hz, self.mode = duty_percent, frequency_hz, PinMode.PWM
        self._notify()

    def _read(self) -> bool:
        return self._level

    def _write(self, level: bool) -> None:
        self._level = level
        self._notify()

    def _set_duty(self, duty_percent: float) -> None:
        self.duty_history.append(duty_percent)
        self._level = duty_percent > 0
        self._duty = duty_percent
        self._notify()

    def _enable_edge_detect(self, bounce_ms: int) -> None:
        self._bounce_s = bounce_ms / 1000.0

    def _close(self) -> None:
        self._output_listeners.clear()

    def _notify(self) -> None:
        for listener in list(self._output_listeners):
            listener(self)


class SimulatedPinFactory(PinFactory):
    """Pins in memory, like gpiozero's MockFactory.

    ``clock`` (for example a fake monotonic clock) turns on RPi.GPIO-like bounce dropping;
    without it every edge is delivered, which is what most tests want.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.clock = clock

    def pin(self, number: int) -> SimulatedPin:
        pin = super().pin(number)
        assert isinstance(pin, SimulatedPin)
        return pin

    def _make_pin(self, number: int) -> Pin:
        return SimulatedPin(self, number)


def monotonic() -> float:
    """The clock devices use unless given another (tests pass a fake one)."""
    return time.monotonic()
