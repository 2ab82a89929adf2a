"""The IEC 61851-1 control pilot: PWM duty from a current limit, and the pilot voltage read
through an ADS1115 over I2C and classified into states A-F (plus the diode check).

The EVSE's generator drives +12 V while the PWM pin is high and -12 V while it is low, so:
steady +12 V (stand-by, no PWM) = duty 100 %, steady -12 V (state F) = duty 0 %.

An ADS1115 at 860 SPS averages over ~1.2 ms and cannot follow a 1 kHz plateau, so a reading is
a burst of samples: the maximum is taken as the high plateau and the minimum as the low one.
(A front end with peak detectors gives the same answer with fewer samples.)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chargerfw.config import PilotSection
from chargerfw.drivers.gpio import PinFactory
from chargerfw.drivers.i2c import I2cBus
from chargerfw.drivers.types import CHARGING_PILOT, PilotMode, PilotState
from chargerfw.logs import get_logger

log = get_logger(__name__)

MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0


class PilotCurrentError(ValueError):
    """A current limit that the pilot cannot signal (IEC 61851-1 allows 6-80 A)."""


# -- duty cycle <-> current (IEC 61851-1 table A.7 / A.8) -------------------------------------------
def duty_for_current(amps: float) -> float:
    """PWM duty in percent that offers ``amps``: 6-51 A: A/0.6; 51-80 A: A/2.5 + 64."""
    if not isinstance(amps, int | float) or math.isnan(amps):
        raise PilotCurrentError(f"current limit must be a number, got {amps!r}")
    if amps < MIN_CURRENT_A:
        raise PilotCurrentError(
            f"{amps} A is below the 6 A minimum the pilot can offer; pause with set_standby()"
        )
    if amps > MAX_CURRENT_A:
        raise PilotCurrentError(f"{amps} A is above the 80 A maximum of IEC 61851-1")
    if amps <= 51.0:
        return amps / 0.6
    return amps / 2.5 + 64.0


def current_for_duty(duty_percent: float) -> float | None:
    """The current a vehicle may draw at ``duty_percent`` (IEC 61851-1 vehicle side), or None
    when the duty does not allow charging (0 %, 100 %, digital communication 3-7 %, gaps)."""
    if math.isnan(duty_percent) or not 0.0 <= duty_percent <= 100.0:
        raise ValueError(f"duty must be within 0..100 %, got {duty_percent}")
    if 8.0 <= duty_percent < 10.0:
        return MIN_CURRENT_A
    if 10.0 <= duty_percent <= 85.0:
        return duty_percent * 0.6
    if 85.0 < duty_percent <= 96.0:
        return (duty_percent - 64.0) * 2.5
    if 96.0 < duty_percent <= 97.0:
        return MAX_CURRENT_A
    return None


# -- classification ---------------------------------------------------------------------------------
# Bands of the HIGH plateau, [low, high): nominal +12/+9/+6/+3/0/-12 V, split half-way.
LEVEL_BANDS: dict[PilotState, tuple[float, float]] = {
    PilotState.A: (10.5, math.inf),
    PilotState.B: (7.5, 10.5),
    PilotState.C: (4.5, 7.5),
    PilotState.D: (1.5, 4.5),
    PilotState.E: (-10.5, 1.5),
    PilotState.F: (-math.inf, -10.5),
}
# While PWM runs and a vehicle is connected, the low plateau must be about -12 V (the vehicle's
# diode blocks the negative half); above this limit the diode is missing or shorted.
DIODE_LOW_LIMIT_V = -10.5
_VEHICLE_STATES = (PilotState.B, PilotState.C, PilotState.D)


def classify_pilot(
    high_v: float,
    low_v: float | None,
    pwm_active: bool,
    previous: PilotState | None = None,
    margin_v: float = 0.5,
) -> PilotState:
    """The pilot state for one pair of plateau voltages. Pure.

    Hysteresis: the ``previous`` state holds while ``high_v`` stays within its band widened by
    ``margin_v`` on both sides; once it leaves, the plain bands decide. The diode check (only
    while PWM runs and a vehicle is connected) trips when ``low_v`` rises above
    ``DIODE_LOW_LIMIT_V + margin_v`` and clears below ``DIODE_LOW_LIMIT_V - margin_v``.
    """
    if math.isnan(high_v) or (low_v is not None and math.isnan(low_v)):
        raise ValueError("pilot voltage is NaN")
    level: PilotState | None = None
    if previous in LEVEL_BANDS:
        lo, hi = LEVEL_BANDS[previous]
        if lo - margin_v <= high_v < hi + margin_v:
            level = previous
    if level is None:
        level = next(s for s, (lo, hi) in LEVEL_BANDS.items() if lo <= high_v < hi)
    if pwm_active and level in _VEHICLE_STATES and low_v is not None:
        limit = DIODE_LOW_LIMIT_V + (-margin_v if previous is PilotState.DIODE_FAULT else margin_v)
        if low_v > limit:
            return PilotState.DIODE_FAULT
    return level


class PilotClassifier:
    """:func:`classify_pilot` with memory: a new state is reported only after ``confirm_reads``
    consecutive reads agree on it. The first read is taken at once, and so is a read that leaves
    C/D: the safe direction (the contactor opens) must not wait for confirmation, while a
    spurious read only costs a nuisance stop; entering C/D is confirmed."""

    def __init__(self, margin_v: float = 0.5, confirm_reads: int = 2) -> None:
        if confirm_reads < 1:
            raise ValueError("confirm_reads must be >= 1")
        self.margin_v = margin_v
        self.confirm_reads = confirm_reads
        self.state: PilotState | None = None
        self._candidate: PilotState | None = None
        self._count = 0

    def update(self, high_v: float, low_v: float | None, pwm_active: bool) -> PilotState:
        seen = classify_pilot(high_v, low_v, pwm_active, self.state, self.margin_v)
        leaves_charging = self.state in CHARGING_PILOT and seen not in CHARGING_PILOT
        if self.state is None or seen == self.state or leaves_charging:
            self.state, self._candidate, self._count = seen, None, 0
            return seen
        if seen == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = seen, 1
        if self._count >= self.confirm_reads:
            self.state, self._candidate, self._count = seen, None, 0
        return self.state


# -- ADS1115 ----------------------------------------------------------------------------------------
class Ads1115:
    """TI ADS1115 16-bit ADC in continuous mode at 860 SPS, single-ended inputs AIN0-3.

    Shared safely by several pilots (one channel each): a burst holds the device lock.
    """

    REG_CONVERSION = 0x00
    REG_CONFIG = 0x01
    SAMPLES_PER_SECOND = 860
    _PGA_BITS = {6.144: 0b000, 4.096: 0b001, 2.048: 0b010, 1.024: 0b011, 0.512: 0b100, 0.256: 0b101}
    _DR_860 = 0b111
    _COMP_DISABLED = 0b11

    def __init__(
        self,
        bus: I2cBus,
        address: int = 0x48,
        *,
        full_scale_v: float = 4.096,
        sample_interval_s: float = 1.0 / 860,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if full_scale_v not in self._PGA_BITS:
            raise ValueError(f"ADS1115 full scale must be one of {sorted(self._PGA_BITS)}")
        self.bus = bus
        self.address = address
        self.full_scale_v = full_scale_v
        self.sample_interval_s = sample_interval_s
        self._sleep = sleep
        self._channel: int | None = None
        self.lock = threading.Lock()

    def config_word(self, channel: int) -> int:
        """OS=0, MUX=AINx vs GND, PGA, MODE=continuous, DR=860 SPS, comparator off."""
        if not 0 <= channel <= 3:
            raise ValueError(f"ADS1115 channel must be 0..3, got {channel}")
        mux = 0b100 | channel
        pga = self._PGA_BITS[self.full_scale_v]
        return (mux << 12) | (pga << 9) | (0 << 8) | (self._DR_860 << 5) | self._COMP_DISABLED

    def select(self, channel: int) -> None:
        """Switch the multiplexer; wait two conversions so the next sample is the new input."""
        if channel == self._channel:
            return
        self.bus.write_u16(self.address, self.REG_CONFIG, self.config_word(channel))
        self._channel = channel
        self._sleep(2 * self.sample_interval_s)

    def read_code(self) -> int:
        """The last conversion as a signed 16-bit code."""
        raw = self.bus.read_u16(self.address, self.REG_CONVERSION)
        return raw - 0x10000 if raw & 0x8000 else raw

    def code_to_volts(self, code: int) -> float:
        return code * self.full_scale_v / 32768.0

    def burst(self, channel: int, count: int) -> list[float]:
        """``count`` samples of ``channel`` in volts, one per conversion period."""
        with self.lock:
            self.select(channel)
            samples = []
            for i in range(count):
                if i:
                    self._sleep(self.sample_interval_s)
                samples.append(self.code_to_volts(self.read_code()))
            return samples


# -- the control pilot ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PilotReading:
    state: PilotState  # after hysteresis and confirmation
    high_v: float  # high plateau (max of the burst), pilot volts
    low_v: float  # low plateau (min of the burst), pilot volts
    output: PilotMode
    duty_percent: float


class ControlPilot:
    """Generates the pilot (PWM pin) and classifies what the vehicle does with it (ADC)."""

    def __init__(
        self,
        pwm_pin: int,
        *,
        factory: PinFactory,
        adc: Ads1115,
        adc_channel: int = 0,
        frequency_hz: float = 1000,
        adc_scale: float = 8.0,
        adc_offset: float = -12.0,
        samples: int = 48,
        hysteresis_v: float = 0.5,
        confirm_reads: int = 2,
        name: str = "pilot",
    ) -> None:
        self.name = name
        self.adc = adc
        self.adc_channel = adc_channel
        self.adc_scale = adc_scale
        self.adc_offset = adc_offset
        self.samples = samples
        self.classifier = PilotClassifier(hysteresis_v, confirm_reads)
        self._output = PilotMode.STANDBY
        self._pin = factory.claim(pwm_pin, name)
        self._pin.setup_pwm(frequency_hz, 100.0)

    @classmethod
    def from_config(
        cls, section: PilotSection, factory: PinFactory, adc: Ads1115, name: str = "pilot"
    ) -> ControlPilot:
        return cls(
            section.pwm_pin,
            factory=factory,
            adc=adc,
            adc_channel=section.adc_channel,
            frequency_hz=section.pwm_frequency_hz,
            adc_scale=section.adc_scale,
            adc_offset=section.adc_offset,
            samples=section.adc_samples,
            hysteresis_v=section.hysteresis_v,
            confirm_reads=section.confirm_reads,
            name=name,
        )

    @property
    def output(self) -> PilotMode:
        return self._output

    @property
    def duty_percent(self) -> float:
        return self._pin.duty_percent

    @property
    def offered_current_a(self) -> float | None:
        if self._output is not PilotMode.PWM:
            return None
        return current_for_duty(self.duty_percent)

    @property
    def state(self) -> PilotState | None:
        """The last classified state (None before the first :meth:`read`)."""
        return self.classifier.state

    def set_current_limit(self, amps: float) -> float:
        """Offer ``amps`` (6-80 A) by PWM; returns the duty. A bad value changes nothing."""
        duty = duty_for_current(amps)
        self._pin.set_duty(duty)
        self._output = PilotMode.PWM
        return duty

    def set_standby(self) -> None:
        """+12 V steady: vehicle may stay connected, no current offered."""
        self._pin.set_duty(100.0)
        self._output = PilotMode.STANDBY

    def set_state_f(self) -> None:
        """-12 V steady: EVSE not available (fault)."""
        self._pin.set_duty(0.0)
        self._output = PilotMode.STATE_F

    def to_pilot_volts(self, adc_volts: float) -> float:
        return adc_volts * self.adc_scale + self.adc_offset

    def read(self) -> PilotReading:
        """One burst, classified. Blocks for ~``samples`` / 860 s: call via asyncio.to_thread.
        Raises :class:`~chargerfw.drivers.i2c.I2cError` if the ADC does not answer."""
        output, duty = self._output, self._pin.duty_percent
        volts = [self.to_pilot_volts(v) for v in self.adc.burst(self.adc_channel, self.samples)]
        high, low = max(volts), min(volts)
        previous = self.classifier.state
        # The diode shows only in a burst the PWM ran through: one the output changed in (the
        # safety loop may stop the PWM from another thread) holds steady volts with no
        # negative half, which is no diode fault.
        pwm_throughout = output is PilotMode.PWM and self._output is PilotMode.PWM
        state = self.classifier.update(high, low, pwm_active=pwm_throughout)
        if state != previous:
            log.info(
                "pilot.state",
                name=self.name,
                state=state.value,
                high_v=round(high, 2),
                low_v=round(low, 2),
            )
        return PilotReading(state, high, low, output, duty)

    def close(self) -> None:
        self._pin.close()
