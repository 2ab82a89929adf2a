"""Data the drivers hand upwards. Drivers know nothing of OCPP; the station and the OCPP
layer read these."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field


def whole_wh(energy_wh: float) -> int:
    """The one rule by which an energy reading becomes the whole Wh that OCPP sends and the
    store keeps: to the nearest Wh (half up), never truncated (a register read as
    167.99999 Wh is 168 Wh)."""
    return math.floor(energy_wh + 0.5)


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One reading of an energy meter. ``None`` means the model does not measure it."""

    timestamp: float  # time.time() when the last register block arrived
    energy_import_wh: float
    energy_export_wh: float | None = None
    power_w: float | None = None
    power_l1_w: float | None = None
    power_l2_w: float | None = None
    power_l3_w: float | None = None
    voltage_l1_v: float | None = None
    voltage_l2_v: float | None = None
    voltage_l3_v: float | None = None
    current_l1_a: float | None = None
    current_l2_a: float | None = None
    current_l3_a: float | None = None
    frequency_hz: float | None = None

    def max_current_a(self) -> float | None:
        currents = [c for c in (self.current_l1_a, self.current_l2_a, self.current_l3_a) if c is not None]
        return max(currents) if currents else None

    def mean_voltage_v(self) -> float | None:
        """The mean of the phase voltages measured (above 0 V and finite); None: none."""
        volts = [v for v in (self.voltage_l1_v, self.voltage_l2_v, self.voltage_l3_v)
                 if v is not None and 0 < v < float("inf")]
        return sum(volts) / len(volts) if volts else None


class MeterFaultKind(enum.StrEnum):
    TIMEOUT = "timeout"  # no reply in time
    CRC_ERROR = "crc_error"  # a corrupted frame (RTU CRC or framing)
    EXCEPTION_REPLY = "exception_reply"  # a Modbus exception code
    STALE = "stale"  # no fresh sample for longer than allowed
    FROZEN = "frozen"  # every value identical across samples while power flows
    ENERGY_BACKWARDS = "energy_backwards"  # import register decreased
    VOLTAGE_OUT_OF_RANGE = "voltage_out_of_range"
    FREQUENCY_OUT_OF_RANGE = "frequency_out_of_range"
    BAD_VALUE = "bad_value"  # NaN marker, infinity, undecodable


@dataclass(frozen=True, slots=True)
class MeterFault:
    """A typed meter problem; ``active=False`` reports its recovery."""

    kind: MeterFaultKind
    active: bool
    detail: str = ""
    timestamp: float = 0.0


class TagEventKind(enum.StrEnum):
    PRESENTED = "presented"  # a card arrived (reported once while it stays)
    REMOVED = "removed"
    READER_LOST = "reader_lost"
    READER_BACK = "reader_back"


@dataclass(frozen=True, slots=True)
class TagEvent:
    """A token reader event. ``id_tag`` is the UID as OCPP idTag: uppercase hex, byte 0 first."""

    kind: TagEventKind
    reader: str
    id_tag: str | None = None
    uid: bytes = field(default=b"", repr=False)
    timestamp: float = 0.0


class PilotState(enum.StrEnum):
    """IEC 61851-1 control pilot states, plus the diode check result."""

    A = "A"  # +12 V: no vehicle
    B = "B"  # +9 V: vehicle connected, not ready
    C = "C"  # +6 V: charging
    D = "D"  # +3 V: charging, ventilation required
    E = "E"  # 0 V: short / no pilot (error)
    F = "F"  # -12 V: EVSE not available / fault
    DIODE_FAULT = "diode_fault"  # low half of the PWM not at -12 V


# The states in which a vehicle is plugged in.
PLUGGED = frozenset({PilotState.B, PilotState.C, PilotState.D})
# The states in which the vehicle asks for energy: the only ones a contactor may be closed in.
CHARGING_PILOT = frozenset({PilotState.C, PilotState.D})


class PilotMode(enum.StrEnum):
    """What the EVSE puts on the control pilot."""

    STANDBY = "standby"  # +12 V steady (states A1/B1): no current offered
    PWM = "pwm"  # 1 kHz PWM: the duty offers a current
    STATE_F = "state_f"  # -12 V steady: EVSE not available


class ContactorFeedback(enum.StrEnum):
    """What a contactor's mirror contact says about the last command."""

    OK = "ok"  # the mirror contact agrees with the command
    PENDING = "pending"  # disagrees, but the last command is younger than the timeout
    WELDED = "welded"  # closed while commanded open
    FAILED_TO_CLOSE = "failed_to_close"  # open while commanded closed
    NO_FEEDBACK = "no_feedback"  # no mirror contact configured


class LockResult(enum.StrEnum):
    """How a lock or unlock command ended."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"
    FAILED = "failed"  # the feedback did not follow within the timeout
