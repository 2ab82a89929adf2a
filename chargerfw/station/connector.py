"""The connector state machine: pilot × authorization × availability × faults → decisions.

Pure: ``step(state, event) -> (state, actions)`` and ``outputs(state)``; no I/O, no clock.
The runtime feeds events (pilot changes, authorizations, backend answers, faults) and carries
out the actions (StartTransaction, StopTransaction, StatusNotification, pilot and contactor).

OCPP 1.6 rules implemented:

* StatusNotification / ChargePointStatus: Available, Preparing (plugged in or authorized, no
  transaction), Charging, SuspendedEV (EV not taking energy: pilot B), SuspendedEVSE (energy
  not offered: limit below 6 A, temperature derating, invalid id), Finishing (transaction over,
  cable still in), Reserved, Unavailable, Faulted; the transition Finishing → Preparing → new
  transaction when a tag is presented again while plugged.
* ChargePointErrorCode from the most important active fault (see ``faults.py``); faults
  that do not stop energy (meter, reader) are reported beside the normal status.
* A transaction starts when authorization and a plugged vehicle (pilot B/C/D) are both there,
  in either order (Start Transaction); ConnectionTimeOut cancels a plug-less
  authorization.
* StopTransactionOnEVSideDisconnect: pilot A ends the transaction with ``EVDisconnected``,
  or when false suspends it (SuspendedEV) until the vehicle is back.
* The cable lock (socket outlets): locked while a transaction runs; unlocked when it ends.
  UnlockConnectorOnEVSideDisconnect: when true, pilot A (the EV side disconnected) unlocks the
  cable at once, whether the transaction ends (StopTransactionOnEVSideDisconnect) or is
  suspended (locked again when the vehicle is back). When false the cable stays locked at the
  charge point: a transaction ended by pilot A leaves the connector Finishing with the cable
  held for its tag, until that tag (or one with the same parent) is presented again or the
  backend sends UnlockConnector (:class:`CableReleased`); other tags are refused meanwhile.
* StopTransactionOnInvalidId / MaxEnergyOnInvalidId: a StartTransaction.conf whose idTagInfo is
  not Accepted stops the transaction (``DeAuthorized``) or, when the key is false, stops energy
  (SuspendedEVSE); either happens once MaxEnergyOnInvalidId Wh were delivered (at once when
  unset or 0).
* ChangeAvailability: answered Scheduled while a transaction runs and applied when it
  ends; the contactor never closes while Inoperative.
* IEC 61851-1: the contactor closes only in pilot C (or D when ventilation is available) with a
  running, authorized transaction, energy offered (≥ 6 A) and no fault; the pilot shows PWM only
  while energy is offered to a transaction, +12 V (standby) otherwise, −12 V (state F) while
  Unavailable or latched Faulted.

Note: on a stop the machine opens the contactor in the same step as it drops the PWM. IEC
61851-1 lets the EVSE wait up to a few seconds for the EV to go to B first, which spares the
contacts; the runtime may add that delay, the safety supervisor does not.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from chargerfw.drivers.types import PLUGGED, PilotMode, PilotState
from chargerfw.station.enums import (
    AuthorizationStatus,
    Availability,
    AvailabilityChange,
    ChargePointErrorCode,
    ChargePointStatus,
    ReservationStatus,
    StopReason,
    TxPhase,
)
from chargerfw.station.faults import FAULT_SPECS, ClearRule, FaultKind, most_important

# IEC 61851-1: the lowest current a PWM duty can offer; below it energy is suspended.
MIN_PWM_CURRENT_A = 6.0


@dataclass(frozen=True, slots=True)
class PilotOutput:
    """What the machine drives on the pilot line: a mode, and the current offered in PWM."""

    mode: PilotMode
    current_a: float | None = None  # set only in PWM mode

    @classmethod
    def pwm(cls, current_a: float) -> PilotOutput:
        return cls(PilotMode.PWM, current_a)


class LimitSource(enum.StrEnum):
    SMART_CHARGING = "smart_charging"  # OCPP charging profiles / load management
    THERMAL = "thermal"  # temperature derating
    LOCAL = "local"  # technician or local setting


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: int
    id_tag: str
    parent_id_tag: str | None = None
    expires_at: float | None = None  # Unix time; the station ends it then


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """Per-connector constants and the OCPP keys that steer the machine."""

    max_current_a: float = 16.0  # the hardware's rating (config connector.max_current_a)
    ventilation_available: bool = False  # pilot D allowed to charge
    stop_on_ev_side_disconnect: bool = True  # StopTransactionOnEVSideDisconnect
    stop_on_invalid_id: bool = True  # StopTransactionOnInvalidId
    max_energy_on_invalid_id_wh: float | None = None  # MaxEnergyOnInvalidId
    unlock_on_ev_side_disconnect: bool = True  # UnlockConnectorOnEVSideDisconnect

    KEYS = {
        "StopTransactionOnEVSideDisconnect": "stop_on_ev_side_disconnect",
        "UnlockConnectorOnEVSideDisconnect": "unlock_on_ev_side_disconnect",
        "StopTransactionOnInvalidId": "stop_on_invalid_id",
        "MaxEnergyOnInvalidId": "max_energy_on_invalid_id_wh",
    }

    def with_keys(self, values: Mapping[str, object]) -> ConnectorSettings:
        """These settings with the OCPP key values given (bools/ints, or their wire strings).
        Keys not given are kept; a value of the wrong type is a ValueError naming the key."""
        changes: dict[str, object] = {}
        for key, attr in self.KEYS.items():
            if key not in values:
                continue
            value = values[key]
            if attr == "max_energy_on_invalid_id_wh":
                try:
                    number = int(str(value)) if not isinstance(value, bool) else None
                except ValueError:
                    number = None
                if number is None or number < 0:
                    raise ValueError(f"{key}: expected an integer >= 0, got {value!r}")
                changes[attr] = float(number)
            else:
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    value = value.lower() == "true"
                if not isinstance(value, bool):
                    raise ValueError(f"{key}: expected true or false, got {value!r}")
                changes[attr] = value
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ConnectorState:
    connector_id: int
    settings: ConnectorSettings = ConnectorSettings()
    pilot: PilotState = PilotState.A
    phase: TxPhase = TxPhase.IDLE
    id_tag: str | None = None
    parent_id_tag: str | None = None
    tx_reservation_id: int | None = None
    # StartTransaction.conf said the tag is not Accepted (waits for MaxEnergyOnInvalidId).
    invalid_id: bool = False
    deauthorized: bool = False  # energy suspended because of ``invalid_id``
    energy_delivered_wh: float = 0.0  # in the running transaction
    availability: Availability = Availability.OPERATIVE
    scheduled_availability: Availability | None = None
    reservation: Reservation | None = None
    faults: frozenset[FaultKind] = frozenset()
    limits: tuple[tuple[LimitSource, float], ...] = ()  # sorted, one per source
    # The technician's hardware test running here ("contactor", "rcd", ...): Unavailable, no
    # session, and the test owns the pilot until it ends.
    under_test: str | None = None
    # The cable stays locked after its transaction ended by an EV-side disconnect
    # (UnlockConnectorOnEVSideDisconnect false), held for this tag (and its parent).
    held_for: str | None = None
    held_for_parent: str | None = None
    # A firmware update waits for transactions to end, then installs: no new session meanwhile
    # (Unavailable once no transaction runs here). Not persisted: the update restores it.
    update_hold: bool = False

    def limit(self, source: LimitSource) -> float | None:
        return dict(self.limits).get(source)


# ---- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PilotChanged:
    pilot: PilotState


@dataclass(frozen=True, slots=True)
class Authorized:
    """A tag was accepted for starting (local rules, Authorize, or RemoteStartTransaction)."""

    id_tag: str
    parent_id_tag: str | None = None


@dataclass(frozen=True, slots=True)
class StartConfirmed:
    """StartTransaction.conf arrived with this idTagInfo status."""

    status: AuthorizationStatus


@dataclass(frozen=True, slots=True)
class StopRequested:
    """Stop by tag (Local), RemoteStopTransaction (Remote), reset, unlock, shutdown."""

    reason: StopReason


@dataclass(frozen=True, slots=True)
class ConnectionTimedOut:
    """ConnectionTimeOut expired after authorization without a vehicle."""


@dataclass(frozen=True, slots=True)
class EnergyMeasured:
    """Energy delivered in the running transaction so far (Wh)."""

    energy_wh: float


@dataclass(frozen=True, slots=True)
class ChangeAvailability:
    availability: Availability


@dataclass(frozen=True, slots=True)
class Reserve:
    reservation: Reservation


@dataclass(frozen=True, slots=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, slots=True)
class FaultRaised:
    kind: FaultKind


@dataclass(frozen=True, slots=True)
class FaultCleared:
    kind: FaultKind


@dataclass(frozen=True, slots=True)
class CurrentLimitChanged:
    source: LimitSource
    limit_a: float | None  # None removes the limit of that source


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    """New constants or OCPP key values (StopTransactionOnInvalidId, ...)."""

    settings: ConnectorSettings


@dataclass(frozen=True, slots=True)
class CableReleased:
    """The held cable may go: its tag was presented again, or UnlockConnector."""


@dataclass(frozen=True, slots=True)
class EnteredTestMode:
    """A technician's hardware test takes the connector over (its pilot included)."""

    test: str


@dataclass(frozen=True, slots=True)
class LeftTestMode:
    """The hardware test is over: the machine's own pilot and status apply again."""


@dataclass(frozen=True, slots=True)
class UpdateHold:
    """A firmware update holds the connector (True) or lets it go (False)."""

    hold: bool


Event = (
    PilotChanged
    | Authorized
    | StartConfirmed
    | StopRequested
    | ConnectionTimedOut
    | EnergyMeasured
    | ChangeAvailability
    | Reserve
    | CancelReservation
    | FaultRaised
    | FaultCleared
    | CurrentLimitChanged
    | SettingsChanged
    | CableReleased
    | EnteredTestMode
    | LeftTestMode
    | UpdateHold
)

# ---- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetContactor:
    closed: bool


@dataclass(frozen=True, slots=True)
class SetPilot:
    output: PilotOutput


@dataclass(frozen=True, slots=True)
class SetLock:
    """Drive the cable lock (a connector without one ignores it)."""

    locked: bool


@dataclass(frozen=True, slots=True)
class StartTransaction:
    connector_id: int
    id_tag: str
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True)
class StopTransaction:
    connector_id: int
    reason: StopReason


@dataclass(frozen=True, slots=True)
class StatusChanged:
    connector_id: int
    status: ChargePointStatus
    error_code: ChargePointErrorCode
    vendor_error_code: str | None = None


@dataclass(frozen=True, slots=True)
class AvailabilityAnswer:
    status: AvailabilityChange


class RefusalReason(enum.StrEnum):
    FAULTED = "Faulted"
    UNAVAILABLE = "Unavailable"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNDER_TEST = "UnderTest"


@dataclass(frozen=True, slots=True)
class AuthorizationRefused:
    id_tag: str
    reason: RefusalReason


@dataclass(frozen=True, slots=True)
class ReservationAnswer:
    """OCPP ReserveNow.conf status: Accepted, Faulted, Occupied, Unavailable."""

    status: ReservationStatus


Action = (
    SetContactor
    | SetPilot
    | SetLock
    | StartTransaction
    | StopTransaction
    | StatusChanged
    | AvailabilityAnswer
    | AuthorizationRefused
    | ReservationAnswer
)

# ---- derived outputs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorOutputs:
    status: ChargePointStatus
    error_code: ChargePointErrorCode
    vendor_error_code: str | None
    contactor_closed: bool
    pilot: PilotOutput
    offered_current_a: float
    cable_locked: bool


def offered_current_a(state: ConnectorState) -> float:
    """The current the EVSE may offer now: the lowest of the rating and every active limit."""
    return min([state.settings.max_current_a, *(limit for _, limit in state.limits)])


def _energy_offered(state: ConnectorState) -> bool:
    if state.deauthorized:
        return False
    if _blocks_contactor(state):
        return False  # a fault that holds energy off without making the connector Faulted
    if state.pilot is PilotState.D and not state.settings.ventilation_available:
        return False
    return offered_current_a(state) >= MIN_PWM_CURRENT_A


def _cable_locked(state: ConnectorState) -> bool:
    """Locked while a transaction runs (unless the EV side is disconnected and the key says
    unlock) and while the cable is held for its tag."""
    if state.held_for is not None:
        return True
    if state.phase is not TxPhase.RUNNING:
        return False
    return state.pilot is not PilotState.A or not state.settings.unlock_on_ev_side_disconnect


def _faulted(state: ConnectorState) -> bool:
    return any(FAULT_SPECS[k].faulted for k in state.faults)


def _blocks_contactor(state: ConnectorState) -> bool:
    return any(FAULT_SPECS[k].opens_contactor for k in state.faults)


def _status(state: ConnectorState) -> ChargePointStatus:
    """The status the machine's own rules give, a hardware test aside."""
    if _faulted(state):
        return ChargePointStatus.FAULTED
    if state.phase is TxPhase.RUNNING:
        if not _energy_offered(state):
            return ChargePointStatus.SUSPENDED_EVSE
        if state.pilot in (PilotState.C, PilotState.D):
            return ChargePointStatus.CHARGING
        return ChargePointStatus.SUSPENDED_EV
    if state.availability is Availability.INOPERATIVE or state.update_hold:
        return ChargePointStatus.UNAVAILABLE
    if state.phase is TxPhase.FINISHED:
        return ChargePointStatus.FINISHING
    if state.reservation is not None and state.phase is TxPhase.IDLE:
        return ChargePointStatus.RESERVED
    if state.phase is TxPhase.AUTHORIZED or state.pilot in PLUGGED:
        return ChargePointStatus.PREPARING
    return ChargePointStatus.AVAILABLE


def _pilot_output(state: ConnectorState, status: ChargePointStatus) -> PilotOutput:
    if status is ChargePointStatus.FAULTED:
        latched = any(
            FAULT_SPECS[k].clear_rule is ClearRule.TECHNICIAN
            for k in state.faults
            if FAULT_SPECS[k].faulted
        )
        # A fault that clears on unplug must keep +12 V so that pilot A can be seen.
        return PilotOutput(PilotMode.STATE_F if latched else PilotMode.STANDBY)
    if status is ChargePointStatus.UNAVAILABLE:
        return PilotOutput(PilotMode.STATE_F)
    if state.phase is TxPhase.RUNNING and _energy_offered(state):
        return PilotOutput.pwm(offered_current_a(state))
    return PilotOutput(PilotMode.STANDBY)


def outputs(state: ConnectorState) -> ConnectorOutputs:
    """Everything the connector shows and drives, derived from its state alone."""
    own_status = _status(state)
    # A hardware test shows Unavailable; the machine's pilot output stays what it would drive
    # (the test owns the line meanwhile, and gets it back when it ends).
    status = ChargePointStatus.UNAVAILABLE if state.under_test is not None else own_status
    # A test's findings are reported when it ends.
    top = most_important(state.faults) if state.under_test is None else None
    contactor_closed = (
        state.under_test is None
        and state.phase is TxPhase.RUNNING
        and state.pilot in (PilotState.C, PilotState.D)
        and _energy_offered(state)
        and not _blocks_contactor(state)
        and state.availability is Availability.OPERATIVE
    )
    return ConnectorOutputs(
        status=status,
        error_code=FAULT_SPECS[top].error_code if top else ChargePointErrorCode.NO_ERROR,
        vendor_error_code=FAULT_SPECS[top].vendor_error_code if top else None,
        contactor_closed=contactor_closed,
        pilot=_pilot_output(state, own_status),
        offered_current_a=offered_current_a(state),
        cable_locked=_cable_locked(state),
    )


# ---- transitions --------------------------------------------------------------------------


@dataclass(slots=True)
class _Step:
    state: ConnectorState
    answers: list[Action] = field(default_factory=list)
    tx: list[Action] = field(default_factory=list)


def _end_transaction(s: _Step, reason: StopReason) -> None:
    st = s.state
    s.tx.append(StopTransaction(st.connector_id, reason))
    hold = (reason is StopReason.EV_DISCONNECTED
            and not st.settings.unlock_on_ev_side_disconnect and st.id_tag is not None)
    if hold:
        st = replace(st, held_for=st.id_tag, held_for_parent=st.parent_id_tag)
    st = replace(
        st,
        phase=TxPhase.FINISHED if st.pilot in PLUGGED or hold else TxPhase.IDLE,
        id_tag=None,
        parent_id_tag=None,
        tx_reservation_id=None,
        invalid_id=False,
        deauthorized=False,
        energy_delivered_wh=0.0,
    )
    if st.scheduled_availability is not None:
        st = replace(st, availability=st.scheduled_availability, scheduled_availability=None)
    s.state = st


def _start_transaction(s: _Step) -> None:
    st = s.state
    id_tag = st.id_tag
    assert id_tag is not None
    reservation_id = None
    if st.reservation is not None:
        reservation_id = st.reservation.reservation_id
        st = replace(st, reservation=None)
    s.tx.append(StartTransaction(st.connector_id, id_tag, reservation_id))
    s.state = replace(
        st, phase=TxPhase.RUNNING, tx_reservation_id=reservation_id, energy_delivered_wh=0.0
    )


def _apply_invalid_id(s: _Step) -> None:
    """Act on an invalid id once MaxEnergyOnInvalidId is used up (at once when unset)."""
    st = s.state
    if not st.invalid_id or st.phase is not TxPhase.RUNNING or st.deauthorized:
        return
    budget = st.settings.max_energy_on_invalid_id_wh or 0.0
    if st.energy_delivered_wh < budget:
        return
    if st.settings.stop_on_invalid_id:
        _end_transaction(s, StopReason.DE_AUTHORIZED)
    else:
        s.state = replace(st, deauthorized=True)


def _reserved_for_other(st: ConnectorState, id_tag: str, parent_id_tag: str | None) -> bool:
    r = st.reservation
    if r is None:
        return False
    if id_tag.casefold() == r.id_tag.casefold():
        return False
    return not (
        r.parent_id_tag and parent_id_tag and r.parent_id_tag.casefold() == parent_id_tag.casefold()
    )


def _on_pilot(s: _Step, ev: PilotChanged) -> None:
    st = s.state
    own_f = outputs(st).pilot.mode is PilotMode.STATE_F
    st = replace(st, pilot=ev.pilot)
    if ev.pilot is PilotState.E or (ev.pilot is PilotState.F and not own_f):
        st = replace(st, faults=st.faults | {FaultKind.PILOT_ERROR})
    elif ev.pilot is PilotState.DIODE_FAULT:
        st = replace(st, faults=st.faults | {FaultKind.DIODE_FAULT})
    elif ev.pilot is PilotState.A:
        st = replace(st, faults=st.faults - {FaultKind.PILOT_ERROR, FaultKind.DIODE_FAULT})
    s.state = st
    if (
        st.phase is TxPhase.RUNNING
        and ev.pilot is PilotState.A
        and st.settings.stop_on_ev_side_disconnect
    ):
        _end_transaction(s, StopReason.EV_DISCONNECTED)
    elif _faulted(st):
        _on_fault_state(s)
    elif st.phase is TxPhase.AUTHORIZED and ev.pilot in PLUGGED:
        _start_transaction(s)
    elif st.phase is TxPhase.FINISHED and ev.pilot is PilotState.A and st.held_for is None:
        s.state = replace(st, phase=TxPhase.IDLE)


def _on_fault_state(s: _Step) -> None:
    """With a Faulted connector: end a transaction if a fault asks for it, drop a pending one."""
    st = s.state
    if not _faulted(st):
        return  # a fault reported beside the status (meter, reader) changes nothing here
    enders = [k for k in st.faults if FAULT_SPECS[k].ends_transaction]
    if st.phase is TxPhase.RUNNING and enders:
        reason = FAULT_SPECS[most_important(frozenset(enders)) or enders[0]].stop_reason
        _end_transaction(s, reason)
    elif st.phase is TxPhase.AUTHORIZED:
        s.state = replace(st, phase=TxPhase.IDLE, id_tag=None, parent_id_tag=None)
    if s.state.phase is TxPhase.FINISHED and s.state.pilot not in PLUGGED:
        s.state = replace(s.state, phase=TxPhase.IDLE)


def _on_authorized(s: _Step, ev: Authorized) -> None:
    st = s.state
    if st.under_test is not None:
        s.answers.append(AuthorizationRefused(ev.id_tag, RefusalReason.UNDER_TEST))
        return
    if _faulted(st):
        s.answers.append(AuthorizationRefused(ev.id_tag, RefusalReason.FAULTED))
        return
    if st.availability is Availability.INOPERATIVE or st.update_hold:
        s.answers.append(AuthorizationRefused(ev.id_tag, RefusalReason.UNAVAILABLE))
        return
    if st.phase is TxPhase.RUNNING or st.held_for is not None:
        s.answers.append(AuthorizationRefused(ev.id_tag, RefusalReason.OCCUPIED))
        return
    if _reserved_for_other(st, ev.id_tag, ev.parent_id_tag):
        s.answers.append(AuthorizationRefused(ev.id_tag, RefusalReason.RESERVED))
        return
    s.state = replace(
        st, phase=TxPhase.AUTHORIZED, id_tag=ev.id_tag, parent_id_tag=ev.parent_id_tag
    )
    if st.pilot in PLUGGED:
        _start_transaction(s)


def _on_change_availability(s: _Step, ev: ChangeAvailability) -> None:
    st = s.state
    if st.phase is TxPhase.RUNNING:
        if ev.availability is st.availability:
            s.state = replace(st, scheduled_availability=None)
            s.answers.append(AvailabilityAnswer(AvailabilityChange.ACCEPTED))
        else:
            s.state = replace(st, scheduled_availability=ev.availability)
            s.answers.append(AvailabilityAnswer(AvailabilityChange.SCHEDULED))
        return
    st = replace(st, availability=ev.availability, scheduled_availability=None)
    if ev.availability is Availability.INOPERATIVE and st.phase is TxPhase.AUTHORIZED:
        st = replace(st, phase=TxPhase.IDLE, id_tag=None, parent_id_tag=None)
    s.state = st
    s.answers.append(AvailabilityAnswer(AvailabilityChange.ACCEPTED))


def _on_reserve(s: _Step, ev: Reserve) -> None:
    st = s.state
    if _faulted(st):
        status = ReservationStatus.FAULTED
    elif st.availability is Availability.INOPERATIVE or st.update_hold:
        status = ReservationStatus.UNAVAILABLE
    elif st.phase is not TxPhase.IDLE or st.pilot in PLUGGED:
        status = ReservationStatus.OCCUPIED
    elif (
        st.reservation is not None
        and st.reservation.reservation_id != ev.reservation.reservation_id
    ):
        status = ReservationStatus.OCCUPIED
    else:
        status = ReservationStatus.ACCEPTED
        s.state = replace(st, reservation=ev.reservation)
    s.answers.append(ReservationAnswer(status))


def _transition(s: _Step, ev: Event) -> None:
    st = s.state
    match ev:
        case PilotChanged():
            _on_pilot(s, ev)
        case Authorized():
            _on_authorized(s, ev)
        case StartConfirmed(status=status):
            if st.phase is TxPhase.RUNNING and status is not AuthorizationStatus.ACCEPTED:
                s.state = replace(st, invalid_id=True)
                _apply_invalid_id(s)
        case StopRequested(reason=reason):
            if st.phase is TxPhase.RUNNING:
                _end_transaction(s, reason)
            elif st.phase is TxPhase.AUTHORIZED:
                s.state = replace(st, phase=TxPhase.IDLE, id_tag=None, parent_id_tag=None)
        case ConnectionTimedOut():
            if st.phase is TxPhase.AUTHORIZED:
                s.state = replace(st, phase=TxPhase.IDLE, id_tag=None, parent_id_tag=None)
        case EnergyMeasured(energy_wh=wh):
            if st.phase is TxPhase.RUNNING:
                s.state = replace(st, energy_delivered_wh=wh)
                _apply_invalid_id(s)
        case ChangeAvailability():
            _on_change_availability(s, ev)
        case Reserve():
            _on_reserve(s, ev)
        case CancelReservation(reservation_id=rid):
            if st.reservation is not None and st.reservation.reservation_id == rid:
                s.state = replace(st, reservation=None)
        case FaultRaised(kind=kind):
            s.state = replace(st, faults=st.faults | {kind})
            _on_fault_state(s)
        case FaultCleared(kind=kind):
            s.state = replace(st, faults=st.faults - {kind})
        case CurrentLimitChanged(source=source, limit_a=limit):
            limits = {k: v for k, v in st.limits if k is not source}
            if limit is not None:
                if limit < 0:
                    raise ValueError(f"current limit must be >= 0 A, got {limit}")
                limits[source] = limit
            s.state = replace(st, limits=tuple(sorted(limits.items())))
        case SettingsChanged(settings=settings):
            s.state = replace(st, settings=settings)
        case CableReleased():
            if st.held_for is not None:
                st = replace(st, held_for=None, held_for_parent=None)
                if st.phase is TxPhase.FINISHED and st.pilot not in PLUGGED:
                    st = replace(st, phase=TxPhase.IDLE)
                s.state = st
        case EnteredTestMode(test=test):
            s.state = replace(st, under_test=test)
        case LeftTestMode():
            s.state = replace(st, under_test=None)
        case UpdateHold(hold=hold):
            st = replace(st, update_hold=hold)
            if hold and st.phase is TxPhase.AUTHORIZED:
                st = replace(st, phase=TxPhase.IDLE, id_tag=None, parent_id_tag=None)
            s.state = st
        case _:
            raise TypeError(f"not a connector event: {ev!r}")


def step(state: ConnectorState, event: Event) -> tuple[ConnectorState, list[Action]]:
    """Apply one event; return the new state and the actions to carry out, in order:
    contactor opening first (safety), then answers, pilot, the cable lock and transaction
    messages (locked before a start, unlocked after a stop), contactor closing, and the status
    notification last."""
    before = outputs(state)
    s = _Step(state)
    _transition(s, event)
    after = outputs(s.state)
    actions: list[Action] = []
    if before.contactor_closed and not after.contactor_closed:
        actions.append(SetContactor(False))
    actions.extend(s.answers)
    # A hardware test owns the pilot while it runs; when it ends the machine's output is
    # driven again whatever the test left on the line.
    if isinstance(event, LeftTestMode) and state.under_test is not None:
        actions.append(SetPilot(after.pilot))
    elif before.pilot != after.pilot and s.state.under_test is None:
        actions.append(SetPilot(after.pilot))
    if before.cable_locked and not after.cable_locked:
        actions.extend(s.tx)
        actions.append(SetLock(False))  # after the contactor opened and the stop is recorded
    else:
        if after.cable_locked and not before.cable_locked:
            actions.append(SetLock(True))  # before the contactor may close
        actions.extend(s.tx)
    if after.contactor_closed and not before.contactor_closed:
        actions.append(SetContactor(True))
    if (before.status, before.error_code, before.vendor_error_code) != (
        after.status,
        after.error_code,
        after.vendor_error_code,
    ):
        actions.append(
            StatusChanged(
                state.connector_id, after.status, after.error_code, after.vendor_error_code
            )
        )
    return s.state, actions
