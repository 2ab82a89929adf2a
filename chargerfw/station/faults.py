"""Named, typed station faults and the rule that clears each one.

Every fault maps to the OCPP 1.6 ChargePointErrorCode it is reported with, a
``vendorErrorCode`` that names it exactly (StatusNotification.req carries one), whether it
opens the contactor, whether it puts the connector in Faulted ("not available for energy
delivery"), whether it ends a running transaction, what it means and what a technician
checks or does about it (``description``, ``hint``: ``chargerfw faults`` and ``status`` show
them), and how it clears:

* ``CONDITION_GONE`` — clears itself once the source reports the condition gone (fault input
  released, temperature back below the resume threshold, meter or reader back).
* ``VEHICLE_UNPLUGGED`` — the condition must be gone *and* the vehicle unplugged (pilot A), so a
  misbehaving vehicle or plug cannot restart a session by itself.
* ``TECHNICIAN`` — latched until ``chargerfw`` is told by a technician (welded contactor,
  repeated RCD trips, internal error). A welded contactor cannot be checked by software.

Decisions (why): an emergency-stop button is latching and needs a human to twist it free, so its
release *is* the human action: it clears on release. A single RCD/RCM trip clears on release (an
RCM trips on a vehicle's DC leakage that goes with the vehicle), but ``rcd_trips_to_latch``
trips within ``rcd_trip_window_s`` latch it for a technician (IEC 61851-1 cl. 14 only allows
automatic reclosing of a protective device in limited cases). A contactor that failed to close is
safe (no power flows), so it clears when the vehicle leaves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chargerfw.drivers.types import PilotState
from chargerfw.station.enums import STATION, ChargePointErrorCode, StopReason


class FaultKind(enum.StrEnum):
    RCD_TRIP = "rcd_trip"
    RCD_TRIP_REPEATED = "rcd_trip_repeated"  # the latched form of RCD_TRIP
    EMERGENCY_STOP = "emergency_stop"
    OVER_TEMPERATURE = "over_temperature"
    PILOT_ERROR = "pilot_error"  # pilot state E (short) or F not driven by us
    DIODE_FAULT = "diode_fault"
    CONTACTOR_WELDED = "contactor_welded"
    CONTACTOR_FAILED_TO_CLOSE = "contactor_failed_to_close"
    OVER_CURRENT = "over_current"
    OVER_VOLTAGE = "over_voltage"
    UNDER_VOLTAGE = "under_voltage"
    LOCK_FAILURE = "lock_failure"
    METER_FAILURE = "meter_failure"
    READER_FAILURE = "reader_failure"
    PILOT_READ_FAILURE = "pilot_read_failure"  # the pilot ADC does not answer
    TEMPERATURE_SENSOR_FAILURE = "temperature_sensor_failure"
    RCM_SELF_TEST_FAILED = "rcm_self_test_failed"  # the RCM did not follow its test pulse
    SUPERVISION_LOST = "supervision_lost"  # the station process stopped its heartbeat
    INTERNAL_ERROR = "internal_error"


class ClearRule(enum.StrEnum):
    CONDITION_GONE = "condition_gone"
    VEHICLE_UNPLUGGED = "vehicle_unplugged"
    TECHNICIAN = "technician"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    error_code: ChargePointErrorCode
    vendor_error_code: str
    opens_contactor: bool
    faulted: bool  # connector status becomes Faulted while it is active
    ends_transaction: bool
    clear_rule: ClearRule
    description: str  # what the fault means, for the technician
    hint: str  # what to check or do about it, and how it clears
    stop_reason: StopReason = StopReason.OTHER


_E = ChargePointErrorCode
FAULT_SPECS: dict[FaultKind, FaultSpec] = {
    FaultKind.RCD_TRIP: FaultSpec(
        _E.GROUND_FAILURE,
        "RcdTrip",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.CONDITION_GONE,
        description=(
            "The residual current monitor tripped: current leaks to earth (in the vehicle, the "
            "cable or the installation)."),
        hint=(
            "Unplug the vehicle and look at its cable and plug; if it trips again without a "
            "vehicle, check the installation and test the RCD (`chargerfw test rcd`). It clears "
            "by itself when the RCM releases."),
    ),
    FaultKind.RCD_TRIP_REPEATED: FaultSpec(
        _E.GROUND_FAILURE,
        "RcdTripRepeated",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.TECHNICIAN,
        description=(
            "The residual current monitor tripped again and again within a short time: latched "
            "until a technician clears it."),
        hint=(
            "Check the vehicle and the installation for an earth leak; test the RCD (`chargerfw "
            "test rcd`); clear with `chargerfw faults clear rcd_trip_repeated` once fixed."),
    ),
    FaultKind.EMERGENCY_STOP: FaultSpec(
        _E.OTHER_ERROR,
        "EmergencyStop",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.CONDITION_GONE,
        description="The emergency stop button is pressed.",
        hint=(
            "Find out why it was pressed and make the site safe, then twist the button free: the "
            "fault clears on release."),
        stop_reason=StopReason.EMERGENCY_STOP,
    ),
    # Over-temperature keeps the transaction: charging resumes when the station has cooled.
    FaultKind.OVER_TEMPERATURE: FaultSpec(
        _E.HIGH_TEMPERATURE,
        "OverTemperature",
        opens_contactor=True,
        faulted=True,
        ends_transaction=False,
        clear_rule=ClearRule.CONDITION_GONE,
        description=(
            "The connector's temperature sensor reads above its stop limit: charging pauses."),
        hint=(
            "Look for a loose or corroded terminal, a damaged plug or a blocked vent; charging "
            "resumes by itself once the connector has cooled below its resume limit."),
    ),
    # OCPP 1.6 says EVCommunicationError need not be Faulted; pilot E/F and diode faults are
    # Faulted with the matching code, as IEC 61851-1 treats them as errors.
    FaultKind.PILOT_ERROR: FaultSpec(
        _E.EV_COMMUNICATION_ERROR,
        "PilotError",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.VEHICLE_UNPLUGGED,
        description=(
            "The control pilot reads E (shorted) or an F the station does not drive: the vehicle "
            "or the cable is faulty."),
        hint=(
            "Unplug the vehicle and inspect the cable and the plug; `chargerfw test pilot` "
            "without a vehicle checks the station's side. It clears once the vehicle is "
            "unplugged."),
    ),
    FaultKind.DIODE_FAULT: FaultSpec(
        _E.EV_COMMUNICATION_ERROR,
        "DiodeFault",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.VEHICLE_UNPLUGGED,
        description=(
            "The vehicle's pilot diode is missing: the low half of the pilot PWM is not at -12 "
            "V."),
        hint=(
            "Try another cable or vehicle; `chargerfw test pilot` checks the station's side. It "
            "clears once the vehicle is unplugged."),
    ),
    FaultKind.CONTACTOR_WELDED: FaultSpec(
        _E.POWER_SWITCH_FAILURE,
        "ContactorWelded",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.TECHNICIAN,
        description=(
            "The contactor's mirror contact stays closed with the coil off: the contacts are "
            "welded and the outlet may be live."),
        hint=(
            "Isolate the supply, inspect and replace the contactor, check it with `chargerfw "
            "test contactor`; clear with `chargerfw faults clear contactor_welded` once "
            "repaired."),
    ),
    FaultKind.CONTACTOR_FAILED_TO_CLOSE: FaultSpec(
        _E.POWER_SWITCH_FAILURE,
        "ContactorFailedToClose",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.VEHICLE_UNPLUGGED,
        description=(
            "The contactor's mirror contact stayed open with the coil on: no energy flowed."),
        hint=(
            "Check the coil supply, its wiring and the mirror contact wiring (`chargerfw test "
            "contactor`). It clears once the vehicle is unplugged."),
    ),
    FaultKind.OVER_CURRENT: FaultSpec(
        _E.OVER_CURRENT_FAILURE,
        "OverCurrent",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.VEHICLE_UNPLUGGED,
        description=(
            "The vehicle drew more current than the pilot offered, for longer than allowed."),
        hint=(
            "The vehicle ignores the pilot's limit, or the meter reads wrong (CT direction, "
            "phase wiring): compare with `chargerfw meter`. It clears once the vehicle is "
            "unplugged."),
    ),
    FaultKind.OVER_VOLTAGE: FaultSpec(
        _E.OVER_VOLTAGE,
        "OverVoltage",
        opens_contactor=True,
        faulted=True,
        ends_transaction=False,
        clear_rule=ClearRule.CONDITION_GONE,
        description="The meter measures a supply voltage above the allowed range.",
        hint=(
            "Check the supply and the meter's voltage wiring (`chargerfw meter`). It clears by "
            "itself once the voltage is back in range."),
    ),
    FaultKind.UNDER_VOLTAGE: FaultSpec(
        _E.UNDER_VOLTAGE,
        "UnderVoltage",
        opens_contactor=True,
        faulted=True,
        ends_transaction=False,
        clear_rule=ClearRule.CONDITION_GONE,
        description=(
            "The meter measures a supply voltage below the allowed range (or a phase is "
            "missing)."),
        hint=(
            "Check the supply, its fuses and the meter's voltage wiring (`chargerfw meter`). It "
            "clears by itself once the voltage is back in range."),
    ),
    FaultKind.LOCK_FAILURE: FaultSpec(
        _E.CONNECTOR_LOCK_FAILURE,
        "LockFailure",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.VEHICLE_UNPLUGGED,
        description="The cable lock did not confirm locking or unlocking.",
        hint=(
            "Check the lock actuator, its supply and its feedback switch, and whether a plug is "
            "jammed (`chargerfw test lock`). It clears once the vehicle is unplugged."),
    ),
    # Not a hazard: reported with the normal status (OCPP allows an error code beside a status),
    # the session goes on; over-current detection pauses while the meter is out.
    FaultKind.METER_FAILURE: FaultSpec(
        _E.POWER_METER_FAILURE,
        "MeterFailure",
        opens_contactor=False,
        faulted=False,
        ends_transaction=False,
        clear_rule=ClearRule.CONDITION_GONE,
        description=(
            "The energy meter does not answer or gives implausible values: sessions go on, but "
            "over-current detection pauses."),
        hint=(
            "Check the meter's bus wiring, unit id and baud rate (`chargerfw meter read`). It "
            "clears by itself once the meter answers again."),
    ),
    FaultKind.READER_FAILURE: FaultSpec(
        _E.READER_FAILURE,
        "ReaderFailure",
        opens_contactor=False,
        faulted=False,
        ends_transaction=False,
        clear_rule=ClearRule.CONDITION_GONE,
        description="The RFID/NFC reader is gone: cards can neither start nor stop sessions.",
        hint=(
            "Check the reader's cable and USB hub; for PC/SC `systemctl status pcscd`. It clears "
            "by itself once the reader is back."),
    ),
    # Without a pilot reading we cannot tell a vehicle that left; without a temperature we
    # cannot protect against heat: both stop energy until the sensor answers again.
    FaultKind.PILOT_READ_FAILURE: FaultSpec(
        _E.INTERNAL_ERROR,
        "PilotReadFailure",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.CONDITION_GONE,
        description=(
            "The pilot ADC does not answer: the station cannot tell whether a vehicle is there, "
            "so it stops energy."),
        hint=(
            "Check the I2C bus (`i2cdetect -y 1`), the HAT and its power. It clears by itself "
            "once the ADC answers."),
    ),
    FaultKind.TEMPERATURE_SENSOR_FAILURE: FaultSpec(
        _E.INTERNAL_ERROR,
        "TemperatureSensorFailure",
        opens_contactor=True,
        faulted=True,
        ends_transaction=False,
        clear_rule=ClearRule.CONDITION_GONE,
        description=(
            "The connector's temperature sensor does not answer: energy stops until it does."),
        hint=(
            "Check the sensor's wiring and the I2C bus (`i2cdetect -y 1`). It clears by itself "
            "once the sensor answers."),
    ),
    # IEC 62955 (RDC-DD): no charging on an RCM that failed its self-test; the next test that
    # passes (at start-up, before a close, or `chargerfw test rcd`) clears it.
    FaultKind.RCM_SELF_TEST_FAILED: FaultSpec(
        _E.GROUND_FAILURE,
        "RcmSelfTestFailed",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.CONDITION_GONE,
        description=(
            "The residual current monitor did not trip on its test pulse (or did not release "
            "after it): earth-leakage protection cannot be trusted, so no energy is offered."),
        hint=(
            "Check the RCM module, its supply and the wiring of its trip and test lines; run "
            "`chargerfw test rcd`. It clears once a self-test passes."),
    ),
    # The safety process opens every contactor when the station process goes silent (crashed,
    # killed, frozen or restarting); a session resumes once the heartbeat is back.
    FaultKind.SUPERVISION_LOST: FaultSpec(
        _E.INTERNAL_ERROR,
        "SupervisionLost",
        opens_contactor=True,
        faulted=False,
        ends_transaction=False,
        clear_rule=ClearRule.CONDITION_GONE,
        description=(
            "The safety process heard nothing from the station process for longer than its "
            "heartbeat bound and opened every contactor."),
        hint=(
            "Look at `journalctl -u chargerfw` for a crash, a restart or an overloaded CPU. It "
            "clears by itself when the station's heartbeat is back."),
    ),
    FaultKind.INTERNAL_ERROR: FaultSpec(
        _E.INTERNAL_ERROR,
        "InternalError",
        opens_contactor=True,
        faulted=True,
        ends_transaction=True,
        clear_rule=ClearRule.TECHNICIAN,
        description="The firmware met an error it could not handle safely: energy stops.",
        hint=(
            "Collect `chargerfw support-bundle` and send it to support; clear with `chargerfw "
            "faults clear internal_error` once it has been looked at."),
    ),
}

# Which error code wins when several faults are active (first = most important).
FAULT_PRIORITY: tuple[FaultKind, ...] = (
    FaultKind.CONTACTOR_WELDED,
    FaultKind.EMERGENCY_STOP,
    FaultKind.RCD_TRIP_REPEATED,
    FaultKind.RCD_TRIP,
    FaultKind.RCM_SELF_TEST_FAILED,
    FaultKind.OVER_CURRENT,
    FaultKind.CONTACTOR_FAILED_TO_CLOSE,
    FaultKind.OVER_VOLTAGE,
    FaultKind.UNDER_VOLTAGE,
    FaultKind.OVER_TEMPERATURE,
    FaultKind.PILOT_ERROR,
    FaultKind.DIODE_FAULT,
    FaultKind.LOCK_FAILURE,
    FaultKind.PILOT_READ_FAILURE,
    FaultKind.TEMPERATURE_SENSOR_FAILURE,
    FaultKind.INTERNAL_ERROR,
    FaultKind.SUPERVISION_LOST,
    FaultKind.METER_FAILURE,
    FaultKind.READER_FAILURE,
)
assert set(FAULT_PRIORITY) == set(FaultKind), "every fault kind needs a priority"


@dataclass(frozen=True, slots=True)
class Fault:
    """An active fault. ``connector_id`` 0 (:data:`STATION`) is the whole station (RCD,
    e-stop)."""

    kind: FaultKind
    connector_id: int = STATION
    detail: str = ""
    timestamp: float = 0.0

    @property
    def spec(self) -> FaultSpec:
        return FAULT_SPECS[self.kind]


def may_clear(
    kind: FaultKind, *, condition_present: bool, pilot: PilotState | None, by_technician: bool
) -> bool:
    """Whether an active fault of ``kind`` may clear now.

    A technician may clear any fault whose condition is gone; nobody clears a fault whose
    condition is still there (a welded contactor still reads closed, a button still pressed).
    """
    if condition_present:
        return False
    if by_technician:
        return True
    rule = FAULT_SPECS[kind].clear_rule
    if rule is ClearRule.CONDITION_GONE:
        return True
    if rule is ClearRule.VEHICLE_UNPLUGGED:
        return pilot is PilotState.A
    return False


def most_important(kinds: frozenset[FaultKind] | set[FaultKind]) -> FaultKind | None:
    for kind in FAULT_PRIORITY:
        if kind in kinds:
            return kind
    return None
