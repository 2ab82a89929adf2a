"""The whole station, pure: where a tag or a remote start goes, availability for one connector or
all, reservations with their expiry, stopping everything, test mode, and faults restored at
start-up. Table tests over :func:`chargerfw.station.station.step`; no asyncio, no I/O."""

from __future__ import annotations

import dataclasses

import pytest

from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.station import connector as cn
from chargerfw.station.enums import (
    AuthorizationStatus,
    Availability,
    AvailabilityChange,
    ChargePointErrorCode,
    ChargePointStatus,
    ReservationStatus,
    StopReason,
)
from chargerfw.station.faults import FaultKind
from chargerfw.station.station import (
    STATION,
    AuthorizeThenStart,
    AvailabilityOutcome,
    AvailabilityRequested,
    CancelOutcome,
    ConnectorEvent,
    EveryConnector,
    ExpireReservationAt,
    FaultRestorePlan,
    HardwareTestEnded,
    HardwareTestStarted,
    KeysChanged,
    OnConnector,
    PersistAvailability,
    PersistReservations,
    RememberedFault,
    RemoteStartAuthorized,
    RemoteStartOutcome,
    RemoteStartRequested,
    RemoteStopOutcome,
    RemoteStopRequested,
    ReservationCancelRequested,
    ReservationEnded,
    ReservationOutcome,
    ReservationRequested,
    ReservationsDue,
    ReservationsRestored,
    StationState,
    StationStatusChanged,
    StopAll,
    TagAccepted,
    TagOutcome,
    TagResult,
    TapTarget,
    UnlockRequested,
    faults_to_restore,
    pick_connector,
    reservations_of,
    sessions_a_tap_may_end,
    step,
)

P = PilotState
S = ChargePointStatus
T0 = 1_000_000.0


def connector(cid: int, **kw) -> cn.ConnectorState:
    return cn.ConnectorState(cid, cn.ConnectorSettings(max_current_a=16.0), **kw)


def station(*connectors: cn.ConnectorState, available: bool = True) -> StationState:
    return StationState.of(connectors or (connector(1), connector(2)), available)


def of_type(actions: list, kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def on(actions: list, cid: int, kind: type) -> list:
    return [a.action for a in actions
            if isinstance(a, OnConnector) and a.connector_id == cid and isinstance(a.action, kind)]


RUNNING = {"phase": cn.TxPhase.RUNNING, "pilot": P.C, "id_tag": "AA"}
RESERVED_AA = cn.Reservation(7, "AA")
WELDED = frozenset({FaultKind.CONTACTOR_WELDED})

# (name, connectors 1 and 2, tag, connector picked)
PICK_TABLE = [
    ("both free: the lowest id", (connector(1), connector(2)), "AA", 1),
    ("plugged beats free", (connector(1), connector(2, pilot=P.B)), "AA", 2),
    ("reserved for the tag beats plugged", (connector(1, pilot=P.B), connector(2, reservation=RESERVED_AA)), "aa", 2),
    ("reserved for another is skipped", (connector(1, reservation=RESERVED_AA), connector(2)), "BB", 2),
    ("faulted is skipped", (connector(1, faults=WELDED), connector(2)), "AA", 2),
    ("inoperative is skipped", (connector(1, availability=Availability.INOPERATIVE), connector(2)), "AA", 2),
    ("running is skipped", (connector(1, **RUNNING), connector(2)), "BB", 2),
    ("authorized is skipped", (connector(1, phase=cn.TxPhase.AUTHORIZED, id_tag="CC"), connector(2)), "BB", 2),
    ("finishing may take a new session", (connector(1, phase=cn.TxPhase.FINISHED, pilot=P.B), connector(2)), "BB", 1),
    ("under test is skipped", (connector(1, under_test="lock"), connector(2)), "AA", 2),
    ("a cable held for a tag is skipped", (connector(1, phase=cn.TxPhase.FINISHED, held_for="AA"), connector(2)), "BB", 2),
    ("none left", (connector(1, faults=WELDED), connector(2, **RUNNING)), "BB", None),
]  # fmt: skip


@pytest.mark.parametrize(("connectors", "tag", "picked"), [r[1:] for r in PICK_TABLE],
                         ids=[r[0] for r in PICK_TABLE])
def test_pick_connector(connectors, tag, picked):
    assert pick_connector(station(*connectors), tag) == picked


def test_a_tag_accepted_starts_where_the_vehicle_waits():
    state, actions = step(station(connector(1), connector(2, pilot=P.B)), TagAccepted("AA", "P1"))
    assert of_type(actions, TagOutcome) == [TagOutcome(TagResult.AUTHORIZED, 2)]
    assert on(actions, 2, cn.StartTransaction) == [cn.StartTransaction(2, "AA", None)]
    assert state.connector(2).phase is cn.TxPhase.RUNNING
    assert state.connector(2).parent_id_tag == "P1"
    assert state.connector(1) == connector(1)  # untouched


@pytest.mark.parametrize(("state", "event", "outcome"), [
    (station(connector(1, faults=WELDED), connector(2, **RUNNING)), TagAccepted("BB"),
     TagOutcome(TagResult.NO_CONNECTOR)),
    (station(connector(1, reservation=RESERVED_AA)), TagAccepted("BB", connector_id=1),
     TagOutcome(TagResult.REFUSED, 1, cn.RefusalReason.RESERVED)),
    (station(connector(1)), TagAccepted("BB", connector_id=9), TagOutcome(TagResult.NO_CONNECTOR)),
], ids=["no connector", "refused where it was sent", "unknown connector"])
def test_a_tag_accepted_that_cannot_start(state, event, outcome):
    after, actions = step(state, event)
    assert of_type(actions, TagOutcome) == [outcome]
    assert [c.phase for c in after.connectors] == [c.phase for c in state.connectors]


# (name, state, request, outcome, actions beside it)
REMOTE_START_TABLE = [
    ("picked, plugged: starts", station(connector(1, pilot=P.B)), RemoteStartRequested("AA", None, False),
     RemoteStartOutcome(True, 1), [OnConnector(1, cn.StartTransaction(1, "AA", None))]),
    ("named, authorize first", station(), RemoteStartRequested("AA", 2, True),
     RemoteStartOutcome(True, 2), [AuthorizeThenStart("AA", 2)]),
    ("unknown connector", station(), RemoteStartRequested("AA", 5, False), RemoteStartOutcome(False), []),
    ("invalid idTag", station(), RemoteStartRequested("x" * 21, None, False), RemoteStartOutcome(False), []),
    ("faulted", station(connector(1, faults=WELDED)), RemoteStartRequested("AA", 1, True),
     RemoteStartOutcome(False, 1), []),
    ("inoperative", station(connector(1, availability=Availability.INOPERATIVE)),
     RemoteStartRequested("AA", 1, False), RemoteStartOutcome(False, 1), []),
    ("running", station(connector(1, **RUNNING)), RemoteStartRequested("BB", 1, False),
     RemoteStartOutcome(False, 1), []),
    ("under test", station(connector(1, under_test="pilot")), RemoteStartRequested("AA", 1, False),
     RemoteStartOutcome(False, 1), []),
    ("reserved for another", station(connector(1, reservation=RESERVED_AA)),
     RemoteStartRequested("BB", 1, False), RemoteStartOutcome(False, 1), []),
    ("nothing free", station(connector(1, **RUNNING)), RemoteStartRequested("BB", None, True),
     RemoteStartOutcome(False), []),
    # One pending start per connector: a burst authorizes a connector once.
    ("authorized, waiting for the vehicle", station(connector(1, phase=cn.TxPhase.AUTHORIZED, id_tag="AA")),
     RemoteStartRequested("BB", 1, False), RemoteStartOutcome(False, 1), []),
    ("the same tag again", station(connector(1, phase=cn.TxPhase.AUTHORIZED, id_tag="AA")),
     RemoteStartRequested("AA", 1, True), RemoteStartOutcome(False, 1), []),
    ("a remote start being authorized", dataclasses.replace(station(), remote_authorizing=frozenset({1})),
     RemoteStartRequested("BB", 1, False), RemoteStartOutcome(False, 1), []),
    ("picked past one being authorized", dataclasses.replace(station(), remote_authorizing=frozenset({1})),
     RemoteStartRequested("BB", None, True), RemoteStartOutcome(True, 2), [AuthorizeThenStart("BB", 2)]),
]  # fmt: skip


@pytest.mark.parametrize(("state", "request_", "outcome", "others"),
                         [r[1:] for r in REMOTE_START_TABLE], ids=[r[0] for r in REMOTE_START_TABLE])
def test_remote_start(state, request_, outcome, others):
    _, actions = step(state, request_)
    assert of_type(actions, RemoteStartOutcome) == [outcome]
    assert (of_type(actions, AuthorizeThenStart)
            + [a for a in actions if isinstance(a, OnConnector)
               and isinstance(a.action, cn.StartTransaction)]) == others


def test_remote_start_without_plug_waits_authorized():
    state, actions = step(station(), RemoteStartRequested("AA", 2, False))
    assert of_type(actions, RemoteStartOutcome) == [RemoteStartOutcome(True, 2)]
    assert state.connector(2).phase is cn.TxPhase.AUTHORIZED


@pytest.mark.parametrize(("state", "cid", "accepted"), [
    (station(connector(1, **RUNNING)), 1, True),
    (station(connector(1, pilot=P.B)), 1, False),
    (station(connector(1)), 4, False),
])
def test_remote_stop(state, cid, accepted):
    after, actions = step(state, RemoteStopRequested(cid))
    assert of_type(actions, RemoteStopOutcome) == [RemoteStopOutcome(accepted)]
    stops = on(actions, cid, cn.StopTransaction)
    assert stops == ([cn.StopTransaction(cid, StopReason.REMOTE)] if accepted else [])


def test_station_inoperative_takes_every_connector_and_persists_what_was_asked():
    state, actions = step(station(), AvailabilityRequested(STATION, Availability.INOPERATIVE))
    assert not state.available
    assert [c.availability for c in state.connectors] == [Availability.INOPERATIVE] * 2
    assert of_type(actions, StationStatusChanged) == [StationStatusChanged(S.UNAVAILABLE)]
    assert of_type(actions, PersistAvailability) == [
        PersistAvailability(((1, False), (2, False), (STATION, False)))]
    assert of_type(actions, AvailabilityOutcome) == [AvailabilityOutcome(AvailabilityChange.ACCEPTED)]
    assert on(actions, 1, cn.StatusChanged)[0].status is S.UNAVAILABLE


def test_availability_during_a_transaction_is_scheduled_and_persisted():
    state, actions = step(station(connector(1, **RUNNING), connector(2)),
                          AvailabilityRequested(1, Availability.INOPERATIVE))
    assert of_type(actions, AvailabilityOutcome) == [AvailabilityOutcome(AvailabilityChange.SCHEDULED)]
    assert of_type(actions, PersistAvailability) == [PersistAvailability(((1, False),))]
    assert state.connector(1).scheduled_availability is Availability.INOPERATIVE
    assert of_type(actions, StationStatusChanged) == []  # one connector: station unchanged
    # The transaction ends: the change applies then.
    state, _ = step(state, ConnectorEvent(1, cn.StopRequested(StopReason.LOCAL)))
    assert state.connector(1).availability is Availability.INOPERATIVE


def test_availability_of_an_unknown_connector_is_rejected_and_not_persisted():
    state, actions = step(station(), AvailabilityRequested(3, Availability.INOPERATIVE))
    assert actions == [AvailabilityOutcome(AvailabilityChange.REJECTED)]
    assert state == station()


def test_every_change_to_the_reservations_is_persisted():
    reservation = cn.Reservation(5, "AA", "PARENT", expires_at=T0 + 60)
    state, actions = step(station(), ReservationRequested(1, reservation, now=T0))
    assert of_type(actions, PersistReservations) == [PersistReservations(((1, reservation),))]
    # A refused request changes nothing, so nothing is written.
    same, actions = step(state, ReservationRequested(2, cn.Reservation(5, "BB"), now=T0))
    assert same == state and of_type(actions, PersistReservations) == []
    ended, actions = step(state, ReservationCancelRequested(5))
    assert of_type(actions, PersistReservations) == [PersistReservations(())]
    expired, actions = step(state, ReservationsDue(T0 + 60))
    assert of_type(actions, PersistReservations) == [PersistReservations(())]
    # The reserved tag starts: the reservation is used up.
    used, actions = step(step(state, TagAccepted("AA"))[0],
                         ConnectorEvent(1, cn.PilotChanged(P.C)))
    assert used.connector(1).reservation is None
    assert of_type(actions, PersistReservations) == [PersistReservations(())]


@pytest.mark.parametrize(("saved", "held", "persisted"), [
    (((1, cn.Reservation(5, "AA", expires_at=T0 + 60)),),
     ((1, cn.Reservation(5, "AA", expires_at=T0 + 60)),), None),
    (((1, cn.Reservation(5, "AA", expires_at=T0)),), (), ()),  # expired while down
    (((2, cn.Reservation(6, "BB", expires_at=T0 + 60)),
      (1, cn.Reservation(5, "AA", expires_at=T0 - 1))),
     ((2, cn.Reservation(6, "BB", expires_at=T0 + 60)),),
     ((2, cn.Reservation(6, "BB", expires_at=T0 + 60)),)),
    (((3, cn.Reservation(5, "AA", expires_at=T0 + 60)),), (), ()),  # connector gone
    (((1, cn.Reservation(5, "AA")), (2, cn.Reservation(5, "BB"))),
     ((1, cn.Reservation(5, "AA")),), ((1, cn.Reservation(5, "AA")),)),  # one id, one holder
], ids=["kept", "expired dropped", "expired dropped, other kept", "unknown connector",
        "duplicate id"])
def test_reservations_are_restored_at_start_up(saved, held, persisted):
    state, actions = step(station(connector(1), connector(2)), ReservationsRestored(saved, T0))
    assert reservations_of(state) == held
    assert of_type(actions, PersistReservations) == (
        [] if persisted is None else [PersistReservations(persisted)])
    assert of_type(actions, ExpireReservationAt) == [
        ExpireReservationAt(r.reservation_id, r.expires_at) for _, r in held if r.expires_at]
    for cid, _ in held:
        assert on(actions, cid, cn.StatusChanged)[0].status is S.RESERVED


def test_a_reservation_expires_when_its_time_comes():
    reservation = cn.Reservation(5, "AA", expires_at=T0 + 60)
    state, actions = step(station(), ReservationRequested(1, reservation, now=T0))
    assert of_type(actions, ReservationOutcome) == [ReservationOutcome(ReservationStatus.ACCEPTED)]
    assert of_type(actions, ExpireReservationAt) == [ExpireReservationAt(5, T0 + 60)]
    assert state.connector(1).reservation == reservation
    same, actions = step(state, ReservationsDue(T0 + 59.9))  # a timer that fired early
    assert same == state and actions == []
    state, actions = step(state, ReservationsDue(T0 + 60))
    assert state.connector(1).reservation is None
    assert of_type(actions, ReservationEnded) == [ReservationEnded(1, 5, expired=True)]
    assert on(actions, 1, cn.StatusChanged)[0].status is S.AVAILABLE


@pytest.mark.parametrize(("state", "cid", "reservation", "status"), [
    (station(connector(1), connector(2, reservation=cn.Reservation(5, "BB"))), 1,
     cn.Reservation(5, "AA", expires_at=T0 + 60), ReservationStatus.REJECTED),  # id used on 2
    (station(connector(1, reservation=cn.Reservation(5, "BB"))), 1,
     cn.Reservation(5, "AA", expires_at=T0 + 60), ReservationStatus.ACCEPTED),  # same id: replaced
    (station(), 1, cn.Reservation(5, "AA", expires_at=T0), ReservationStatus.REJECTED),  # expired
    (station(), 3, cn.Reservation(5, "AA", expires_at=T0 + 60), ReservationStatus.REJECTED),
    (station(), 1, cn.Reservation(5, "", expires_at=T0 + 60), ReservationStatus.REJECTED),
    (station(connector(1, pilot=P.B)), 1, cn.Reservation(5, "AA", expires_at=T0 + 60),
     ReservationStatus.OCCUPIED),
    (station(connector(1, faults=WELDED)), 1, cn.Reservation(5, "AA", expires_at=T0 + 60),
     ReservationStatus.FAULTED),
], ids=["id in use elsewhere", "same id replaced", "already expired", "unknown connector",
        "empty idTag", "occupied", "faulted"])
def test_reservation_answers(state, cid, reservation, status):
    after, actions = step(state, ReservationRequested(cid, reservation, now=T0))
    assert of_type(actions, ReservationOutcome) == [ReservationOutcome(status)]
    if status is ReservationStatus.ACCEPTED:
        assert after.connector(cid).reservation == reservation
    else:
        assert of_type(actions, ExpireReservationAt) == []


def test_cancel_reservation():
    state = station(connector(1), connector(2, reservation=cn.Reservation(8, "AA")))
    after, actions = step(state, ReservationCancelRequested(8))
    assert of_type(actions, CancelOutcome) == [CancelOutcome(True)]
    assert of_type(actions, ReservationEnded) == [ReservationEnded(2, 8, expired=False)]
    assert after.connector(2).reservation is None
    _, actions = step(after, ReservationCancelRequested(8))
    assert actions == [CancelOutcome(False)]


def test_stop_all_ends_only_running_transactions():
    state = station(connector(1, **RUNNING), connector(2, phase=cn.TxPhase.AUTHORIZED, id_tag="B"))
    after, actions = step(state, StopAll(StopReason.SOFT_RESET))
    assert on(actions, 1, cn.StopTransaction) == [cn.StopTransaction(1, StopReason.SOFT_RESET)]
    assert on(actions, 2, cn.StopTransaction) == []
    assert after.connector(2).phase is cn.TxPhase.AUTHORIZED


def test_unlock_ends_the_running_transaction_there():
    _, actions = step(station(connector(1, **RUNNING)), UnlockRequested(1))
    assert on(actions, 1, cn.StopTransaction) == [cn.StopTransaction(1, StopReason.UNLOCK_COMMAND)]
    _, actions = step(station(connector(1)), UnlockRequested(1))
    assert actions == []


def test_unlock_releases_a_held_cable():
    held = connector(1, phase=cn.TxPhase.FINISHED, held_for="AA")
    after, actions = step(station(held), UnlockRequested(1))
    assert on(actions, 1, cn.SetLock) == [cn.SetLock(False)]
    assert after.connector(1).held_for is None
    assert after.connector(1).phase is cn.TxPhase.IDLE


def test_keys_steer_every_connector():
    state, _ = step(station(), KeysChanged({"StopTransactionOnEVSideDisconnect": "false"}))
    assert [c.settings.stop_on_ev_side_disconnect for c in state.connectors] == [False, False]
    assert [c.settings.max_current_a for c in state.connectors] == [16.0, 16.0]


def test_a_station_fault_reaches_every_connector():
    state, actions = step(station(connector(1, **RUNNING), connector(2)),
                          EveryConnector(cn.FaultRaised(FaultKind.EMERGENCY_STOP)))
    assert on(actions, 1, cn.SetContactor) == [cn.SetContactor(False)]
    assert on(actions, 1, cn.StopTransaction) == [cn.StopTransaction(1, StopReason.EMERGENCY_STOP)]
    assert [cn.outputs(c).status for c in state.connectors] == [S.FAULTED, S.FAULTED]
    assert actions[0] == OnConnector(1, cn.SetContactor(False))  # opening comes first


def test_hardware_test_mode_for_the_connectors_named():
    state, actions = step(station(), HardwareTestStarted("rcd", (1, 2)))
    assert [c.under_test for c in state.connectors] == ["rcd", "rcd"]
    assert [a.action for a in actions] == [
        cn.StatusChanged(1, S.UNAVAILABLE, ChargePointErrorCode.NO_ERROR),
        cn.StatusChanged(2, S.UNAVAILABLE, ChargePointErrorCode.NO_ERROR)]
    state, actions = step(state, HardwareTestEnded((1, 2)))
    assert [c.under_test for c in state.connectors] == [None, None]
    assert on(actions, 2, cn.SetPilot) == [cn.SetPilot(cn.PilotOutput(PilotMode.STANDBY))]


def test_an_event_for_an_unknown_connector_is_an_error():
    with pytest.raises(KeyError, match="no connector 3"):
        step(station(), ConnectorEvent(3, cn.PilotChanged(P.B)))


def test_sessions_a_tap_may_end():
    state = station(connector(1, **RUNNING, parent_id_tag="P"),
                    connector(2, phase=cn.TxPhase.AUTHORIZED, id_tag="BB"),
                    connector(3, phase=cn.TxPhase.AUTHORIZED, id_tag="CC"))
    assert sessions_a_tap_may_end(state, "bb") == [
        TapTarget(1, True, "AA", "P"), TapTarget(2, False, "BB", None)]
    assert sessions_a_tap_may_end(station(), "AA") == []
    # A cable held for a tag: whoever may stop its session may take it (the authorizer says).
    held = station(connector(1, phase=cn.TxPhase.FINISHED, held_for="AA", held_for_parent="P"))
    assert sessions_a_tap_may_end(held, "ZZ") == [TapTarget(1, False, "AA", "P", held=True)]


def test_faults_to_restore_at_start_up():
    remembered = [
        RememberedFault("contactor_welded", 1, "mirror closed"),
        RememberedFault("rcd_trip_repeated", STATION),
        RememberedFault("rcd_trip", STATION),  # clears itself: re-appears if still tripped
        RememberedFault("contactor_welded", 4),  # a connector the config no longer has
        RememberedFault("no_such_fault", 1),
    ]
    assert faults_to_restore(remembered, [1, 2]) == FaultRestorePlan(
        restore=((FaultKind.CONTACTOR_WELDED, 1, "mirror closed"),
                 (FaultKind.RCD_TRIP_REPEATED, STATION, "")),
        close=(("rcd_trip", STATION), ("contactor_welded", 4), ("no_such_fault", 1)))


def test_step_is_pure():
    state = station(connector(1, pilot=P.B))
    step(state, TagAccepted("AA"))
    step(state, AvailabilityRequested(STATION, Availability.INOPERATIVE))
    assert state == station(connector(1, pilot=P.B))


def test_start_confirmed_invalid_reaches_its_connector():
    state, actions = step(station(connector(1, **RUNNING)),
                          ConnectorEvent(1, cn.StartConfirmed(AuthorizationStatus.INVALID)))
    assert on(actions, 1, cn.StopTransaction) == [cn.StopTransaction(1, StopReason.DE_AUTHORIZED)]


def test_a_remote_start_being_authorized_holds_its_connector_until_decided():
    state, actions = step(station(), RemoteStartRequested("AA", 1, True))
    assert of_type(actions, RemoteStartOutcome) == [RemoteStartOutcome(True, 1)]
    assert state.remote_authorizing == {1}
    state, actions = step(state, RemoteStartRequested("BB", 1, True))
    assert of_type(actions, RemoteStartOutcome) == [RemoteStartOutcome(False, 1)]
    accepted, actions = step(state, RemoteStartAuthorized(1, "AA", accepted=True,
                                                          parent_id_tag="P"))
    assert accepted.remote_authorizing == frozenset()
    assert (accepted.connector(1).phase, accepted.connector(1).id_tag,
            accepted.connector(1).parent_id_tag) == (cn.TxPhase.AUTHORIZED, "AA", "P")
    assert of_type(actions, TagOutcome) == [TagOutcome(TagResult.AUTHORIZED, 1)]
    # Refused: the connector is free again and takes the next remote start.
    refused, actions = step(state, RemoteStartAuthorized(1, "AA", accepted=False))
    assert refused.remote_authorizing == frozenset()
    assert refused.connector(1).phase is cn.TxPhase.IDLE and actions == []
    _, actions = step(refused, RemoteStartRequested("BB", 1, False))
    assert of_type(actions, RemoteStartOutcome) == [RemoteStartOutcome(True, 1)]
