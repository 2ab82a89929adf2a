"""Connector state machine: status tables, transitions and the contactor invariant."""

from __future__ import annotations

import itertools
from dataclasses import replace

import ocpp.v16.enums as ocpp_enums
import pytest

from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.station.connector import (
    Action,
    AuthorizationRefused,
    Authorized,
    AvailabilityAnswer,
    CableReleased,
    CancelReservation,
    ChangeAvailability,
    ConnectionTimedOut,
    ConnectorOutputs,
    ConnectorSettings,
    ConnectorState,
    CurrentLimitChanged,
    EnergyMeasured,
    EnteredTestMode,
    Event,
    FaultCleared,
    FaultRaised,
    LeftTestMode,
    LimitSource,
    PilotChanged,
    PilotOutput,
    RefusalReason,
    Reservation,
    ReservationAnswer,
    Reserve,
    SetContactor,
    SetLock,
    SetPilot,
    SettingsChanged,
    StartConfirmed,
    StartTransaction,
    StatusChanged,
    StopRequested,
    StopTransaction,
    TxPhase,
    outputs,
    step,
)
from chargerfw.station.enums import (
    AuthorizationStatus,
    Availability,
    AvailabilityChange,
    ChangeStatus,
    ChargePointErrorCode,
    ChargePointStatus,
    StopReason,
)
from chargerfw.station.faults import FaultKind


class ConnectorMachine:
    """A test's holder for one connector's state: each event goes through ``step()``."""

    def __init__(self, connector_id: int, settings: ConnectorSettings | None = None) -> None:
        self.state = ConnectorState(connector_id, settings or ConnectorSettings())

    @property
    def outputs(self) -> ConnectorOutputs:
        return outputs(self.state)

    def handle(self, event: Event) -> list[Action]:
        self.state, actions = step(self.state, event)
        return actions


S = ChargePointStatus
E = ChargePointErrorCode
P = PilotState


def st(**kw) -> ConnectorState:
    settings = kw.pop("settings", ConnectorSettings(max_current_a=16.0))
    return ConnectorState(1, settings, **kw)


RUN_C = {"phase": TxPhase.RUNNING, "pilot": P.C, "id_tag": "AA"}

# (name, state, status, error code, contactor closed, pilot output)
OUTPUT_TABLE = [
    ("idle", st(), S.AVAILABLE, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("plugged, no auth", st(pilot=P.B), S.PREPARING, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("plugged in C, no auth", st(pilot=P.C), S.PREPARING, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("authorized, no plug", st(phase=TxPhase.AUTHORIZED, id_tag="AA"), S.PREPARING, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("charging", st(**RUN_C), S.CHARGING, E.NO_ERROR, True, PilotOutput.pwm(16.0)),
    ("EV not ready (B)", st(**{**RUN_C, "pilot": P.B}), S.SUSPENDED_EV, E.NO_ERROR, False, PilotOutput.pwm(16.0)),
    ("EV unplugged, tx kept", st(**{**RUN_C, "pilot": P.A}), S.SUSPENDED_EV, E.NO_ERROR, False, PilotOutput.pwm(16.0)),
    ("limit 0 A", st(**RUN_C, limits=((LimitSource.SMART_CHARGING, 0.0),)), S.SUSPENDED_EVSE, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("limit 5.9 A", st(**RUN_C, limits=((LimitSource.SMART_CHARGING, 5.9),)), S.SUSPENDED_EVSE, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("limit exactly 6 A", st(**RUN_C, limits=((LimitSource.SMART_CHARGING, 6.0),)), S.CHARGING, E.NO_ERROR, True, PilotOutput.pwm(6.0)),
    ("lowest limit wins", st(**RUN_C, limits=((LimitSource.SMART_CHARGING, 20.0), (LimitSource.THERMAL, 10.0))), S.CHARGING, E.NO_ERROR, True, PilotOutput.pwm(10.0)),
    ("limit above rating", st(**RUN_C, limits=((LimitSource.SMART_CHARGING, 32.0),)), S.CHARGING, E.NO_ERROR, True, PilotOutput.pwm(16.0)),
    ("D without ventilation", st(**{**RUN_C, "pilot": P.D}), S.SUSPENDED_EVSE, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("D with ventilation", st(**{**RUN_C, "pilot": P.D}, settings=ConnectorSettings(ventilation_available=True)), S.CHARGING, E.NO_ERROR, True, PilotOutput.pwm(16.0)),
    ("invalid id, energy suspended", st(**RUN_C, invalid_id=True, deauthorized=True), S.SUSPENDED_EVSE, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("finishing", st(phase=TxPhase.FINISHED, pilot=P.B), S.FINISHING, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("reserved", st(reservation=Reservation(7, "AA")), S.RESERVED, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("reserved, someone plugs", st(pilot=P.B, reservation=Reservation(7, "AA")), S.RESERVED, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("reserved, holder authorized", st(phase=TxPhase.AUTHORIZED, id_tag="AA", reservation=Reservation(7, "AA")), S.PREPARING, E.NO_ERROR, False, PilotOutput(PilotMode.STANDBY)),
    ("inoperative", st(availability=Availability.INOPERATIVE), S.UNAVAILABLE, E.NO_ERROR, False, PilotOutput(PilotMode.STATE_F)),
    ("inoperative, plugged", st(availability=Availability.INOPERATIVE, pilot=P.C), S.UNAVAILABLE, E.NO_ERROR, False, PilotOutput(PilotMode.STATE_F)),
    ("inoperative after tx", st(availability=Availability.INOPERATIVE, phase=TxPhase.FINISHED, pilot=P.B), S.UNAVAILABLE, E.NO_ERROR, False, PilotOutput(PilotMode.STATE_F)),
    ("inoperative scheduled", st(**RUN_C, scheduled_availability=Availability.INOPERATIVE), S.CHARGING, E.NO_ERROR, True, PilotOutput.pwm(16.0)),
    ("hot, tx kept", st(**RUN_C, faults=frozenset({FaultKind.OVER_TEMPERATURE})), S.FAULTED, E.HIGH_TEMPERATURE, False, PilotOutput(PilotMode.STANDBY)),
    ("welded", st(faults=frozenset({FaultKind.CONTACTOR_WELDED})), S.FAULTED, E.POWER_SWITCH_FAILURE, False, PilotOutput(PilotMode.STATE_F)),
    ("welded beats RCD", st(faults=frozenset({FaultKind.RCD_TRIP, FaultKind.CONTACTOR_WELDED})), S.FAULTED, E.POWER_SWITCH_FAILURE, False, PilotOutput(PilotMode.STATE_F)),
    ("RCD beats meter", st(faults=frozenset({FaultKind.RCD_TRIP, FaultKind.METER_FAILURE})), S.FAULTED, E.GROUND_FAILURE, False, PilotOutput(PilotMode.STANDBY)),
    ("fault beats inoperative", st(availability=Availability.INOPERATIVE, faults=frozenset({FaultKind.RCD_TRIP})), S.FAULTED, E.GROUND_FAILURE, False, PilotOutput(PilotMode.STANDBY)),
    ("meter out while charging", st(**RUN_C, faults=frozenset({FaultKind.METER_FAILURE})), S.CHARGING, E.POWER_METER_FAILURE, True, PilotOutput.pwm(16.0)),
    ("reader out while idle", st(faults=frozenset({FaultKind.READER_FAILURE})), S.AVAILABLE, E.READER_FAILURE, False, PilotOutput(PilotMode.STANDBY)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "status", "error", "closed", "pilot"),
    [row[1:] for row in OUTPUT_TABLE],
    ids=[row[0] for row in OUTPUT_TABLE],
)
def test_outputs_table(state, status, error, closed, pilot):
    out = outputs(state)
    assert (out.status, out.error_code, out.contactor_closed, out.pilot) == (
        status,
        error,
        closed,
        pilot,
    )


def test_output_table_covers_every_status():
    assert {row[2] for row in OUTPUT_TABLE} == set(ChargePointStatus)


# Every fault while charging: (status, error code, vendor code, contactor stays closed).
FAULT_TABLE = {
    FaultKind.RCD_TRIP: (S.FAULTED, E.GROUND_FAILURE, "RcdTrip", False),
    FaultKind.RCD_TRIP_REPEATED: (S.FAULTED, E.GROUND_FAILURE, "RcdTripRepeated", False),
    FaultKind.EMERGENCY_STOP: (S.FAULTED, E.OTHER_ERROR, "EmergencyStop", False),
    FaultKind.OVER_TEMPERATURE: (S.FAULTED, E.HIGH_TEMPERATURE, "OverTemperature", False),
    FaultKind.PILOT_ERROR: (S.FAULTED, E.EV_COMMUNICATION_ERROR, "PilotError", False),
    FaultKind.DIODE_FAULT: (S.FAULTED, E.EV_COMMUNICATION_ERROR, "DiodeFault", False),
    FaultKind.CONTACTOR_WELDED: (S.FAULTED, E.POWER_SWITCH_FAILURE, "ContactorWelded", False),
    FaultKind.CONTACTOR_FAILED_TO_CLOSE: (
        S.FAULTED,
        E.POWER_SWITCH_FAILURE,
        "ContactorFailedToClose",
        False,
    ),
    FaultKind.OVER_CURRENT: (S.FAULTED, E.OVER_CURRENT_FAILURE, "OverCurrent", False),
    FaultKind.OVER_VOLTAGE: (S.FAULTED, E.OVER_VOLTAGE, "OverVoltage", False),
    FaultKind.UNDER_VOLTAGE: (S.FAULTED, E.UNDER_VOLTAGE, "UnderVoltage", False),
    FaultKind.LOCK_FAILURE: (S.FAULTED, E.CONNECTOR_LOCK_FAILURE, "LockFailure", False),
    FaultKind.METER_FAILURE: (S.CHARGING, E.POWER_METER_FAILURE, "MeterFailure", True),
    FaultKind.READER_FAILURE: (S.CHARGING, E.READER_FAILURE, "ReaderFailure", True),
    FaultKind.PILOT_READ_FAILURE: (S.FAULTED, E.INTERNAL_ERROR, "PilotReadFailure", False),
    FaultKind.TEMPERATURE_SENSOR_FAILURE: (
        S.FAULTED,
        E.INTERNAL_ERROR,
        "TemperatureSensorFailure",
        False,
    ),
    FaultKind.INTERNAL_ERROR: (S.FAULTED, E.INTERNAL_ERROR, "InternalError", False),
    FaultKind.RCM_SELF_TEST_FAILED: (S.FAULTED, E.GROUND_FAILURE, "RcmSelfTestFailed", False),
    # Not Faulted: the safety process holds energy off until the station is heard again.
    FaultKind.SUPERVISION_LOST: (S.SUSPENDED_EVSE, E.INTERNAL_ERROR, "SupervisionLost", False),
}


@pytest.mark.parametrize("kind", list(FaultKind))
def test_each_fault_while_charging(kind):
    out = outputs(st(**RUN_C, faults=frozenset({kind})))
    assert (out.status, out.error_code, out.vendor_error_code, out.contactor_closed) == FAULT_TABLE[
        kind
    ]


def test_contactor_invariant_over_all_inputs():
    """Closed only in C/D, running tx, energy offered, no opening fault, operative."""
    fault_sets = [frozenset()] + [frozenset({k}) for k in FaultKind]
    checked = 0
    for pilot, phase, avail, faults, limit in itertools.product(
        list(PilotState), list(TxPhase), list(Availability), fault_sets, [None, 0.0, 10.0]
    ):
        limits = ((LimitSource.SMART_CHARGING, limit),) if limit is not None else ()
        state = st(pilot=pilot, phase=phase, availability=avail, faults=faults, limits=limits)
        out = outputs(state)
        if out.contactor_closed:
            checked += 1
            assert pilot in (P.C, P.D) and phase is TxPhase.RUNNING
            assert avail is Availability.OPERATIVE and limit != 0.0
            assert faults <= {FaultKind.METER_FAILURE, FaultKind.READER_FAILURE}
            assert out.status is S.CHARGING
            assert out.pilot.mode is PilotMode.PWM
    assert checked > 0


def run(machine: ConnectorMachine, *events):
    actions = []
    for ev in events:
        actions.extend(machine.handle(ev))
    return actions


def status(cp: S, err: E = E.NO_ERROR, vendor: str | None = None) -> StatusChanged:
    return StatusChanged(1, cp, err, vendor)


def test_plug_then_tap_then_charge_then_local_stop_then_unplug():
    m = ConnectorMachine(1, ConnectorSettings(max_current_a=32.0))
    assert m.handle(PilotChanged(P.B)) == [status(S.PREPARING)]
    assert m.handle(Authorized("AA", "PARENT")) == [
        SetPilot(PilotOutput.pwm(32.0)),
        SetLock(True),
        StartTransaction(1, "AA", None),
        status(S.SUSPENDED_EV),
    ]
    assert m.handle(PilotChanged(P.C)) == [SetContactor(True), status(S.CHARGING)]
    assert m.handle(StartConfirmed(AuthorizationStatus.ACCEPTED)) == []
    assert m.handle(Authorized("BB")) == [AuthorizationRefused("BB", RefusalReason.OCCUPIED)]
    assert m.handle(StopRequested(StopReason.LOCAL)) == [
        SetContactor(False),
        SetPilot(PilotOutput(PilotMode.STANDBY)),
        StopTransaction(1, StopReason.LOCAL),
        SetLock(False),
        status(S.FINISHING),
    ]
    assert m.state.id_tag is None
    assert m.handle(PilotChanged(P.A)) == [status(S.AVAILABLE)]
    assert m.state.phase is TxPhase.IDLE


def test_tap_then_plug_in_c_starts_and_closes_in_one_step():
    m = ConnectorMachine(1)
    assert m.handle(Authorized("AA")) == [status(S.PREPARING)]
    assert m.handle(PilotChanged(P.C)) == [
        SetPilot(PilotOutput.pwm(16.0)),
        SetLock(True),
        StartTransaction(1, "AA", None),
        SetContactor(True),
        status(S.CHARGING),
    ]


def test_connection_timeout_cancels_authorization():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"))
    assert m.handle(ConnectionTimedOut()) == [status(S.AVAILABLE)]
    assert m.handle(PilotChanged(P.B)) == [status(S.PREPARING)]  # no transaction started


def test_timeout_after_start_is_ignored():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C))
    assert m.handle(ConnectionTimedOut()) == []
    assert m.state.phase is TxPhase.RUNNING


def test_finishing_then_new_tap_starts_new_transaction():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C), StopRequested(StopReason.REMOTE))
    assert m.outputs.status is S.FINISHING
    actions = m.handle(Authorized("BB"))
    assert StartTransaction(1, "BB", None) in actions
    assert actions[-1] == status(S.CHARGING)


def test_ev_disconnect_stops_with_evdisconnected():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C))
    assert m.handle(PilotChanged(P.A)) == [
        SetContactor(False),
        SetPilot(PilotOutput(PilotMode.STANDBY)),
        StopTransaction(1, StopReason.EV_DISCONNECTED),
        SetLock(False),
        status(S.AVAILABLE),
    ]


def test_ev_disconnect_suspends_when_stop_on_ev_side_disconnect_false():
    m = ConnectorMachine(1, ConnectorSettings(stop_on_ev_side_disconnect=False))
    run(m, Authorized("AA"), PilotChanged(P.C))
    # UnlockConnectorOnEVSideDisconnect (true): the cable unlocks while the vehicle is away,
    # and locks again when it is back.
    assert m.handle(PilotChanged(P.A)) == [SetContactor(False), SetLock(False),
                                           status(S.SUSPENDED_EV)]
    assert m.handle(PilotChanged(P.C)) == [SetLock(True), SetContactor(True), status(S.CHARGING)]


def test_ev_disconnect_keeps_the_cable_locked_when_unlock_on_ev_side_disconnect_false():
    m = ConnectorMachine(1, ConnectorSettings(stop_on_ev_side_disconnect=False,
                                              unlock_on_ev_side_disconnect=False))
    run(m, Authorized("AA"), PilotChanged(P.C))
    assert m.handle(PilotChanged(P.A)) == [SetContactor(False), status(S.SUSPENDED_EV)]
    assert m.outputs.cable_locked
    assert m.handle(PilotChanged(P.C)) == [SetContactor(True), status(S.CHARGING)]


def test_cable_held_after_ev_disconnect_until_released():
    m = ConnectorMachine(1, ConnectorSettings(unlock_on_ev_side_disconnect=False))
    run(m, Authorized("AA", "PARENT"), PilotChanged(P.C))
    # The transaction ends (StopTransactionOnEVSideDisconnect) but the cable stays locked,
    # held for its tag: Finishing, and no one else may start here.
    assert m.handle(PilotChanged(P.A)) == [
        SetContactor(False),
        SetPilot(PilotOutput(PilotMode.STANDBY)),
        StopTransaction(1, StopReason.EV_DISCONNECTED),
        status(S.FINISHING),
    ]
    assert (m.state.held_for, m.state.held_for_parent) == ("AA", "PARENT")
    assert m.outputs.cable_locked and m.state.phase is TxPhase.FINISHED
    assert m.handle(Authorized("BB")) == [AuthorizationRefused("BB", RefusalReason.OCCUPIED)]
    assert m.handle(PilotChanged(P.B)) == []  # the held cable plugged into a vehicle again
    assert m.handle(PilotChanged(P.A)) == []
    assert m.handle(CableReleased()) == [SetLock(False), status(S.AVAILABLE)]
    assert m.state.held_for is None and m.state.phase is TxPhase.IDLE
    assert m.handle(CableReleased()) == []  # nothing held: nothing to do


@pytest.mark.parametrize("reason", [StopReason.LOCAL, StopReason.REMOTE,
                                    StopReason.UNLOCK_COMMAND])
def test_only_an_ev_side_disconnect_holds_the_cable(reason):
    m = ConnectorMachine(1, ConnectorSettings(unlock_on_ev_side_disconnect=False))
    run(m, Authorized("AA"), PilotChanged(P.C))
    assert SetLock(False) in m.handle(StopRequested(reason))
    assert m.state.held_for is None


def test_unlock_key_is_read_from_its_wire_value():
    settings = ConnectorSettings().with_keys({"UnlockConnectorOnEVSideDisconnect": "false"})
    assert settings.unlock_on_ev_side_disconnect is False
    with pytest.raises(ValueError, match="UnlockConnectorOnEVSideDisconnect"):
        ConnectorSettings().with_keys({"UnlockConnectorOnEVSideDisconnect": "maybe"})


def test_ev_pauses_in_b_and_resumes():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C))
    assert m.handle(PilotChanged(P.B)) == [SetContactor(False), status(S.SUSPENDED_EV)]
    assert m.handle(PilotChanged(P.C)) == [SetContactor(True), status(S.CHARGING)]


def test_limit_below_6a_suspends_and_pwm_follows_limit():
    m = ConnectorMachine(1, ConnectorSettings(max_current_a=32.0))
    run(m, Authorized("AA"), PilotChanged(P.C))
    assert m.handle(CurrentLimitChanged(LimitSource.SMART_CHARGING, 10.0)) == [
        SetPilot(PilotOutput.pwm(10.0))
    ]
    assert m.handle(CurrentLimitChanged(LimitSource.THERMAL, 3.0)) == [
        SetContactor(False),
        SetPilot(PilotOutput(PilotMode.STANDBY)),
        status(S.SUSPENDED_EVSE),
    ]
    assert m.handle(CurrentLimitChanged(LimitSource.THERMAL, None)) == [
        SetPilot(PilotOutput.pwm(10.0)),
        SetContactor(True),
        status(S.CHARGING),
    ]


def test_negative_limit_is_rejected_without_state_change():
    m = ConnectorMachine(1)
    before = m.state
    with pytest.raises(ValueError, match=">= 0 A"):
        m.handle(CurrentLimitChanged(LimitSource.LOCAL, -1.0))
    assert m.state == before


def test_unknown_event_is_a_type_error():
    with pytest.raises(TypeError, match="not a connector event"):
        step(st(), "plug")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stop_on_invalid", "max_energy", "energies", "expected_stop_at"),
    [
        (True, None, [], 0),  # stop at once
        (True, 0, [], 0),
        (True, 1000.0, [500.0, 999.0, 1000.0], 3),  # stop when the budget is used
        (False, None, [], None),  # suspend at once, no stop
        (False, 1000.0, [500.0, 1200.0], None),
    ],
)
def test_invalid_id_in_start_confirmation(stop_on_invalid, max_energy, energies, expected_stop_at):
    settings = ConnectorSettings(
        stop_on_invalid_id=stop_on_invalid, max_energy_on_invalid_id_wh=max_energy
    )
    m = ConnectorMachine(1, settings)
    run(m, Authorized("AA"), PilotChanged(P.C))
    results = [m.handle(StartConfirmed(AuthorizationStatus.INVALID))]
    results += [m.handle(EnergyMeasured(wh)) for wh in energies]
    stops = [
        i for i, acts in enumerate(results) if StopTransaction(1, StopReason.DE_AUTHORIZED) in acts
    ]
    if expected_stop_at is None:
        assert stops == []
        assert m.outputs.status is S.SUSPENDED_EVSE
        assert not m.outputs.contactor_closed
    else:
        assert stops == [expected_stop_at]
        assert m.outputs.status is S.FINISHING
    # Before the budget was used, energy still flowed.
    if max_energy:
        assert results[0] == []


def test_accepted_start_confirmation_keeps_charging():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C))
    assert m.handle(StartConfirmed(AuthorizationStatus.ACCEPTED)) == []
    assert m.outputs.status is S.CHARGING


def test_change_availability_idle_and_scheduled():
    m = ConnectorMachine(1)
    assert m.handle(ChangeAvailability(Availability.INOPERATIVE)) == [
        AvailabilityAnswer(AvailabilityChange.ACCEPTED),
        SetPilot(PilotOutput(PilotMode.STATE_F)),
        status(S.UNAVAILABLE),
    ]
    assert m.handle(Authorized("AA")) == [AuthorizationRefused("AA", RefusalReason.UNAVAILABLE)]
    # A vehicle in C on an Inoperative connector never gets the contactor.
    assert m.handle(PilotChanged(P.C)) == []
    assert not m.outputs.contactor_closed
    assert FaultKind.PILOT_ERROR not in m.state.faults
    assert m.handle(ChangeAvailability(Availability.OPERATIVE))[0] == AvailabilityAnswer(
        AvailabilityChange.ACCEPTED
    )
    assert m.outputs.status is S.PREPARING


def test_inoperative_while_charging_is_scheduled_until_the_end():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C))
    assert m.handle(ChangeAvailability(Availability.INOPERATIVE)) == [
        AvailabilityAnswer(AvailabilityChange.SCHEDULED)
    ]
    assert m.outputs.status is S.CHARGING
    actions = m.handle(StopRequested(StopReason.LOCAL))
    assert actions[-1] == status(S.UNAVAILABLE)
    assert m.state.availability is Availability.INOPERATIVE


def test_operative_again_cancels_scheduled_change():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C), ChangeAvailability(Availability.INOPERATIVE))
    assert m.handle(ChangeAvailability(Availability.OPERATIVE)) == [
        AvailabilityAnswer(AvailabilityChange.ACCEPTED)
    ]
    run(m, StopRequested(StopReason.LOCAL))
    assert m.outputs.status is S.FINISHING


def test_reservation_flow():
    m = ConnectorMachine(1)
    assert m.handle(Reserve(Reservation(7, "AA", "GROUP"))) == [
        ReservationAnswer("Accepted"),
        status(S.RESERVED),
    ]
    assert m.handle(Authorized("ZZ")) == [AuthorizationRefused("ZZ", RefusalReason.RESERVED)]
    # Another card of the same group may use the reservation.
    assert m.handle(Authorized("BB", "group")) == [status(S.PREPARING)]
    actions = m.handle(PilotChanged(P.C))
    assert StartTransaction(1, "BB", 7) in actions
    assert m.state.reservation is None


def test_reservation_refused_when_busy_and_cancel():
    m = ConnectorMachine(1)
    run(m, PilotChanged(P.B))
    assert m.handle(Reserve(Reservation(1, "AA"))) == [ReservationAnswer("Occupied")]
    run(m, PilotChanged(P.A), Reserve(Reservation(2, "AA")))
    assert m.handle(CancelReservation(99)) == []
    assert m.handle(CancelReservation(2)) == [status(S.AVAILABLE)]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (FaultKind.RCD_TRIP, StopReason.OTHER),
        (FaultKind.EMERGENCY_STOP, StopReason.EMERGENCY_STOP),
        (FaultKind.CONTACTOR_WELDED, StopReason.OTHER),
        (FaultKind.OVER_CURRENT, StopReason.OTHER),
    ],
)
def test_fault_while_charging_opens_first_and_ends_transaction(kind, reason):
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C))
    actions = m.handle(FaultRaised(kind))
    assert actions[0] == SetContactor(False)
    assert StopTransaction(1, reason) in actions
    assert actions[-1].status is S.FAULTED  # type: ignore[union-attr]
    assert m.handle(Authorized("AA"))[0] == AuthorizationRefused("AA", RefusalReason.FAULTED)
    assert m.handle(FaultCleared(kind))[-1] == status(S.FINISHING)


def test_over_temperature_keeps_transaction_and_resumes():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C))
    actions = m.handle(FaultRaised(FaultKind.OVER_TEMPERATURE))
    assert actions == [
        SetContactor(False),
        SetPilot(PilotOutput(PilotMode.STANDBY)),
        status(S.FAULTED, E.HIGH_TEMPERATURE, "OverTemperature"),
    ]
    assert m.handle(FaultCleared(FaultKind.OVER_TEMPERATURE)) == [
        SetPilot(PilotOutput.pwm(16.0)),
        SetContactor(True),
        status(S.CHARGING),
    ]


def test_unplug_during_over_temperature_still_ends_transaction():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C), FaultRaised(FaultKind.OVER_TEMPERATURE))
    assert StopTransaction(1, StopReason.EV_DISCONNECTED) in m.handle(PilotChanged(P.A))


def test_pilot_error_states_fault_and_clear_on_unplug():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), PilotChanged(P.C))
    actions = m.handle(PilotChanged(P.E))
    assert actions[0] == SetContactor(False)
    assert StopTransaction(1, StopReason.OTHER) in actions
    assert actions[-1] == status(S.FAULTED, E.EV_COMMUNICATION_ERROR, "PilotError")
    assert m.handle(PilotChanged(P.B)) == []  # still faulted until unplugged
    assert m.handle(PilotChanged(P.A)) == [status(S.AVAILABLE)]


def test_diode_fault_is_a_fault():
    m = ConnectorMachine(1)
    actions = m.handle(PilotChanged(P.DIODE_FAULT))
    assert actions == [status(S.FAULTED, E.EV_COMMUNICATION_ERROR, "DiodeFault")]


def test_pilot_f_is_a_fault_only_when_we_do_not_drive_f():
    m = ConnectorMachine(1)
    assert m.handle(PilotChanged(P.F))[-1].status is S.FAULTED  # type: ignore[union-attr]
    m2 = ConnectorMachine(1)
    run(m2, ChangeAvailability(Availability.INOPERATIVE))
    assert m2.handle(PilotChanged(P.F)) == []


def test_welded_contactor_drives_state_f_and_blocks():
    m = ConnectorMachine(1)
    actions = m.handle(FaultRaised(FaultKind.CONTACTOR_WELDED))
    assert actions == [
        SetPilot(PilotOutput(PilotMode.STATE_F)),
        status(S.FAULTED, E.POWER_SWITCH_FAILURE, "ContactorWelded"),
    ]
    assert m.handle(PilotChanged(P.A)) == []  # unplugging does not clear it
    assert m.outputs.status is S.FAULTED


def test_fault_cancels_pending_authorization():
    m = ConnectorMachine(1)
    run(m, Authorized("AA"), FaultRaised(FaultKind.RCD_TRIP), FaultCleared(FaultKind.RCD_TRIP))
    assert m.state.phase is TxPhase.IDLE
    assert m.handle(PilotChanged(P.C)) == [status(S.PREPARING)]


def test_contactor_opening_always_comes_first():
    state = st(**RUN_C)
    for ev in [
        FaultRaised(FaultKind.RCD_TRIP),
        PilotChanged(P.A),
        PilotChanged(P.E),
        StopRequested(StopReason.REMOTE),
        CurrentLimitChanged(LimitSource.SMART_CHARGING, 0),
        StartConfirmed(AuthorizationStatus.BLOCKED),
    ]:
        _, actions = step(state, ev)
        assert actions[0] == SetContactor(False), ev


def test_step_is_pure():
    state = st(**RUN_C)
    frozen = replace(state)
    step(state, FaultRaised(FaultKind.RCD_TRIP))
    assert state == frozen


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (ChargePointStatus, ocpp_enums.ChargePointStatus),
        (ChargePointErrorCode, ocpp_enums.ChargePointErrorCode),
        (AuthorizationStatus, ocpp_enums.AuthorizationStatus),
        (StopReason, ocpp_enums.Reason),
        (Availability, ocpp_enums.AvailabilityType),
        (AvailabilityChange, ocpp_enums.AvailabilityStatus),
        (ChangeStatus, ocpp_enums.ConfigurationStatus),
    ],
)
def test_enum_spellings_match_the_ocpp_library(ours, theirs):
    assert {m.value for m in ours} == {m.value for m in theirs}


def test_settings_from_ocpp_keys():
    base = ConnectorSettings(max_current_a=32.0)
    settings = base.with_keys(
        {
            "StopTransactionOnInvalidId": "false",
            "MaxEnergyOnInvalidId": "500",
            "StopTransactionOnEVSideDisconnect": False,
        }
    )
    assert settings == ConnectorSettings(
        max_current_a=32.0,
        stop_on_invalid_id=False,
        max_energy_on_invalid_id_wh=500.0,
        stop_on_ev_side_disconnect=False,
    )
    assert base.with_keys({"Unrelated": "x"}) == base


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("StopTransactionOnInvalidId", "yes", "expected true or false"),
        ("MaxEnergyOnInvalidId", "-1", "expected an integer >= 0"),
        ("MaxEnergyOnInvalidId", True, "expected an integer >= 0"),
        ("MaxEnergyOnInvalidId", "lots", "expected an integer >= 0"),
    ],
)
def test_settings_from_bad_keys(key, value, message):
    with pytest.raises(ValueError, match=f"{key}: {message}"):
        ConnectorSettings().with_keys({key: value})


def test_non_faulting_fault_keeps_authorization_and_transaction():
    m = ConnectorMachine(1)
    assert m.handle(Authorized("AA")) == [status(S.PREPARING)]
    assert m.handle(FaultRaised(FaultKind.METER_FAILURE)) == [
        status(S.PREPARING, E.POWER_METER_FAILURE, "MeterFailure")
    ]
    assert m.state.phase is TxPhase.AUTHORIZED
    actions = m.handle(PilotChanged(P.C))
    assert StartTransaction(1, "AA", None) in actions and SetContactor(True) in actions
    assert m.handle(FaultCleared(FaultKind.METER_FAILURE)) == [status(S.CHARGING)]


# ---- technician test mode and settings as machine events ---------------------------------


def test_a_hardware_test_shows_unavailable_refuses_tags_and_owns_the_pilot():
    state, actions = step(st(), EnteredTestMode("pilot"))
    assert state.under_test == "pilot"
    assert actions == [StatusChanged(1, S.UNAVAILABLE, E.NO_ERROR)]  # no pilot command
    assert outputs(state).pilot == PilotOutput(PilotMode.STANDBY)  # what it drives after
    _, refused = step(state, Authorized("AA"))
    assert refused == [AuthorizationRefused("AA", RefusalReason.UNDER_TEST)]
    # A fault during the test changes neither the status shown nor the pilot.
    state, actions = step(state, FaultRaised(FaultKind.CONTACTOR_WELDED))
    assert actions == []
    assert outputs(state).status is S.UNAVAILABLE and not outputs(state).contactor_closed
    # When it ends, the machine drives its own pilot again and reports what it found.
    state, actions = step(state, LeftTestMode())
    assert state.under_test is None
    assert actions == [SetPilot(PilotOutput(PilotMode.STATE_F)),
                       StatusChanged(1, S.FAULTED, E.POWER_SWITCH_FAILURE, "ContactorWelded")]


def test_a_test_that_ends_restores_the_pilot_even_when_the_output_did_not_change():
    state, _ = step(st(), EnteredTestMode("pilot"))
    state, actions = step(state, LeftTestMode())
    assert actions == [SetPilot(PilotOutput(PilotMode.STANDBY)),
                       StatusChanged(1, S.AVAILABLE, E.NO_ERROR)]


def test_settings_change_through_an_event():
    settings = ConnectorSettings(max_current_a=16.0).with_keys(
        {"StopTransactionOnInvalidId": "false"})
    state, actions = step(st(**RUN_C), SettingsChanged(settings))
    assert actions == [] and not state.settings.stop_on_invalid_id
    state, actions = step(state, StartConfirmed(AuthorizationStatus.INVALID))
    assert state.phase is TxPhase.RUNNING and state.deauthorized  # suspended, not stopped
