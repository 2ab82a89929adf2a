"""The whole station, pure: ``step(state, event) -> (state, actions)`` over every connector.

The connector machine (:mod:`chargerfw.station.connector`) decides for one connector; this module
decides what concerns several or the station itself, and routes each connector's events to its
machine:

* which connector a tag goes to (reserved for it, else plugged in, else free: the lowest id on a
  tie), and whether a RemoteStartTransaction can be taken (the connector named or picked is not
  Faulted, Unavailable or busy);
* one pending start per connector: a RemoteStartTransaction for a connector that is already
  authorized and waiting for its vehicle, or whose remote start is still being authorized
  (AuthorizeRemoteTxRequests), is Rejected. A burst of remote starts therefore authorizes a
  connector once, and that authorization lasts ConnectionTimeOut from when it was given,
  never extended by the requests that followed;
* ChangeAvailability for one connector or the whole station (connector 0): the answer is
  Rejected, Scheduled (a transaction runs; it applies when that ends) or Accepted, and what was
  asked is persisted so it holds after a restart;
* reservations: an id is unique across connectors, the expiry travels with the reservation,
  :class:`ReservationsDue` (the runtime's timer) ends every reservation whose time has come,
  every change of the set of reservations is persisted (:class:`PersistReservations`) and
  :class:`ReservationsRestored` brings them back after a restart, expired ones dropped;
* stopping every transaction (reset, shutdown), a technician's hardware test taking connectors
  over, OCPP key changes that steer the machines, and faults of the whole station;
* at start-up, which remembered faults come back (:func:`faults_to_restore`).

No I/O, no clock: times come in the events. The runtime feeds events and carries out the actions,
in the order given (each connector's own order is kept: contactor opening first).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from chargerfw.station import connector as cn
from chargerfw.station.auth import InvalidIdTagError, check_id_tag, same_tag
from chargerfw.station.enums import (
    STATION,
    Availability,
    AvailabilityChange,
    ChargePointStatus,
    ReservationStatus,
    StopReason,
)
from chargerfw.station.faults import FAULT_SPECS, ClearRule, FaultKind

_NOT_STARTABLE = frozenset({ChargePointStatus.FAULTED, ChargePointStatus.UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class StationState:
    connectors: tuple[cn.ConnectorState, ...]  # ordered by connector id
    available: bool = True  # the whole station's availability (ChangeAvailability on 0)
    # Connectors whose RemoteStartTransaction is being authorized (AuthorizeRemoteTxRequests).
    remote_authorizing: frozenset[int] = frozenset()

    @classmethod
    def of(cls, connectors: Iterable[cn.ConnectorState], available: bool = True) -> StationState:
        return cls(tuple(sorted(connectors, key=lambda c: c.connector_id)), available)

    @property
    def connector_ids(self) -> tuple[int, ...]:
        return tuple(c.connector_id for c in self.connectors)

    def has(self, connector_id: int) -> bool:
        return any(c.connector_id == connector_id for c in self.connectors)

    def connector(self, connector_id: int) -> cn.ConnectorState:
        for c in self.connectors:
            if c.connector_id == connector_id:
                return c
        raise KeyError(f"no connector {connector_id}")

    def with_connector(self, updated: cn.ConnectorState) -> StationState:
        return replace(self, connectors=tuple(
            updated if c.connector_id == updated.connector_id else c for c in self.connectors))


# ---- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorEvent:
    """An event for one connector's machine (pilot, meter, backend answer, its own fault)."""

    connector_id: int
    event: cn.Event


@dataclass(frozen=True, slots=True)
class EveryConnector:
    """An event for every connector's machine (a fault of the whole station, ...)."""

    event: cn.Event


@dataclass(frozen=True, slots=True)
class TagAccepted:
    """A tag was authorized for starting (local rules or Authorize): start where it may
    (``connector_id`` given: there only)."""

    id_tag: str
    parent_id_tag: str | None = None
    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class RemoteStartRequested:
    """RemoteStartTransaction; ``authorize_first`` is AuthorizeRemoteTxRequests."""

    id_tag: str
    connector_id: int | None
    authorize_first: bool


@dataclass(frozen=True, slots=True)
class RemoteStartAuthorized:
    """The Authorize (or local rules) for a remote start on ``connector_id`` decided:
    accepted, it starts there as :class:`TagAccepted` would; refused, the connector is free."""

    connector_id: int
    id_tag: str
    accepted: bool
    parent_id_tag: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteStopRequested:
    connector_id: int


@dataclass(frozen=True, slots=True)
class AvailabilityRequested:
    """ChangeAvailability; ``connector_id`` 0 is the whole station."""

    connector_id: int
    availability: Availability


@dataclass(frozen=True, slots=True)
class UnlockRequested:
    """UnlockConnector: a running transaction there ends (UnlockCommand) before the unlock; a
    cable held for its tag is released."""

    connector_id: int


@dataclass(frozen=True, slots=True)
class StopAll:
    """Every running transaction ends with ``reason`` (reset, shutdown)."""

    reason: StopReason


@dataclass(frozen=True, slots=True)
class ReservationRequested:
    """ReserveNow at ``now``; the reservation carries its expiry."""

    connector_id: int
    reservation: cn.Reservation
    now: float


@dataclass(frozen=True, slots=True)
class ReservationCancelRequested:
    reservation_id: int


@dataclass(frozen=True, slots=True)
class ReservationsDue:
    """The clock reached ``now``: reservations that expired by then end."""

    now: float


@dataclass(frozen=True, slots=True)
class ReservationsRestored:
    """At start-up: the reservations persisted before, as (connector id, reservation); those
    expired by ``now`` (or refused by their connector now) are dropped."""

    reservations: tuple[tuple[int, cn.Reservation], ...]
    now: float


@dataclass(frozen=True, slots=True)
class KeysChanged:
    """OCPP key values that steer the connector machines (StopTransactionOnInvalidId, ...)."""

    values: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class HardwareTestStarted:
    test: str
    connector_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class HardwareTestEnded:
    connector_ids: tuple[int, ...]


Event = (
    ConnectorEvent
    | EveryConnector
    | TagAccepted
    | RemoteStartRequested
    | RemoteStartAuthorized
    | RemoteStopRequested
    | AvailabilityRequested
    | UnlockRequested
    | StopAll
    | ReservationRequested
    | ReservationCancelRequested
    | ReservationsDue
    | ReservationsRestored
    | KeysChanged
    | HardwareTestStarted
    | HardwareTestEnded
)

# ---- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnConnector:
    """A connector machine's action, to carry out on that connector."""

    connector_id: int
    action: cn.Action


class TagResult(enum.StrEnum):
    AUTHORIZED = "authorized"  # waiting for the vehicle, or started
    REFUSED = "refused"  # the connector refused (reserved for another, occupied, ...)
    NO_CONNECTOR = "no_connector"  # no connector may take it


@dataclass(frozen=True, slots=True)
class TagOutcome:
    result: TagResult
    connector_id: int | None = None
    reason: cn.RefusalReason | None = None


@dataclass(frozen=True, slots=True)
class RemoteStartOutcome:
    accepted: bool
    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class AuthorizeThenStart:
    """Authorize ``id_tag`` (Authorize or local rules), then feed
    :class:`RemoteStartAuthorized` for ``connector_id`` with the decision (always: until then
    the connector takes no other remote start)."""

    id_tag: str
    connector_id: int


@dataclass(frozen=True, slots=True)
class RemoteStopOutcome:
    accepted: bool


@dataclass(frozen=True, slots=True)
class AvailabilityOutcome:
    status: AvailabilityChange


@dataclass(frozen=True, slots=True)
class PersistAvailability:
    """What was asked, to hold after a restart: (connector id or 0, operative)."""

    changes: tuple[tuple[int, bool], ...]


@dataclass(frozen=True, slots=True)
class StationStatusChanged:
    """Connector 0's status: Available, or Unavailable while the station is Inoperative."""

    status: ChargePointStatus


@dataclass(frozen=True, slots=True)
class ReservationOutcome:
    status: ReservationStatus


@dataclass(frozen=True, slots=True)
class ExpireReservationAt:
    """Feed :class:`ReservationsDue` at ``at`` (a Unix time)."""

    reservation_id: int
    at: float


@dataclass(frozen=True, slots=True)
class ReservationEnded:
    connector_id: int
    reservation_id: int
    expired: bool  # False: cancelled


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    cancelled: bool


@dataclass(frozen=True, slots=True)
class PersistReservations:
    """The reservations now held, as (connector id, reservation): to hold after a restart."""

    reservations: tuple[tuple[int, cn.Reservation], ...]


Action = (
    OnConnector
    | TagOutcome
    | RemoteStartOutcome
    | AuthorizeThenStart
    | RemoteStopOutcome
    | AvailabilityOutcome
    | PersistAvailability
    | StationStatusChanged
    | ReservationOutcome
    | ExpireReservationAt
    | ReservationEnded
    | CancelOutcome
    | PersistReservations
)

# ---- decisions ----------------------------------------------------------------------------


def station_status(state: StationState) -> ChargePointStatus:
    return ChargePointStatus.AVAILABLE if state.available else ChargePointStatus.UNAVAILABLE


def pick_connector(state: StationState, id_tag: str) -> int | None:
    """Where a tag (or a RemoteStartTransaction without connectorId) starts: a connector
    reserved for it, else one with a vehicle plugged in, else a free one; never a Faulted,
    Unavailable or busy one, nor one reserved for another tag."""
    candidates: list[tuple[int, int]] = []
    for c in state.connectors:
        if cn.outputs(c).status in _NOT_STARTABLE or c.connector_id in state.remote_authorizing:
            continue
        if c.phase not in (cn.TxPhase.IDLE, cn.TxPhase.FINISHED) or c.held_for is not None:
            continue
        reservation = c.reservation
        if reservation is not None and not same_tag(reservation.id_tag, id_tag):
            continue
        rank = 0 if reservation is not None else 1 if c.pilot in cn.PLUGGED else 2
        candidates.append((rank, c.connector_id))
    return min(candidates)[1] if candidates else None


@dataclass(frozen=True, slots=True)
class TapTarget:
    """A session a presented tag may end: stop a running transaction (if the tag, or one with
    the same parent, started it), release the cable its transaction left locked (the same
    rule), or cancel a pending authorization (the same tag)."""

    connector_id: int
    running: bool  # True: a transaction runs (stop it); False: authorized, waiting (cancel)
    id_tag: str
    parent_id_tag: str | None
    held: bool = False  # True: the cable is held for the tag (release it)


def sessions_a_tap_may_end(state: StationState, id_tag: str) -> list[TapTarget]:
    """The sessions, in connector order, that ``id_tag`` presented again could end. Whether it
    may stop a running one or take a held cable (its parent) is the authorizer's question; a
    pending authorization is cancelled by the same tag only."""
    targets = []
    for c in state.connectors:
        if c.held_for is not None:
            targets.append(TapTarget(c.connector_id, False, c.held_for, c.held_for_parent,
                                     held=True))
        elif c.phase is cn.TxPhase.RUNNING and c.id_tag is not None:
            targets.append(TapTarget(c.connector_id, True, c.id_tag, c.parent_id_tag))
        elif c.phase is cn.TxPhase.AUTHORIZED and c.id_tag is not None \
                and same_tag(c.id_tag, id_tag):
            targets.append(TapTarget(c.connector_id, False, c.id_tag, c.parent_id_tag))
    return targets


@dataclass(frozen=True, slots=True)
class RememberedFault:
    """A fault the store kept from an earlier run."""

    code: str
    connector_id: int  # 0: the whole station
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaultRestorePlan:
    # Latched again at start-up (kind, connector id or 0, detail).
    restore: tuple[tuple[FaultKind, int, str], ...] = ()
    # Closed in the store: they re-appear by themselves if still there, or no longer apply.
    close: tuple[tuple[str, int], ...] = ()


def faults_to_restore(remembered: Iterable[RememberedFault],
                      connector_ids: Iterable[int]) -> FaultRestorePlan:
    """Technician faults survive a restart (a welded contactor stays blocked); the others are
    closed and re-appear if their condition is still there; unknown kinds and connectors the
    station no longer has are closed."""
    known = set(connector_ids)
    restore: list[tuple[FaultKind, int, str]] = []
    close: list[tuple[str, int]] = []
    for record in remembered:
        try:
            kind = FaultKind(record.code)
        except ValueError:
            close.append((record.code, record.connector_id))
            continue
        if (FAULT_SPECS[kind].clear_rule is ClearRule.TECHNICIAN
                and (record.connector_id == STATION or record.connector_id in known)):
            restore.append((kind, record.connector_id, record.detail))
        else:
            close.append((record.code, record.connector_id))
    return FaultRestorePlan(tuple(restore), tuple(close))


# ---- transitions --------------------------------------------------------------------------


@dataclass(slots=True)
class _Step:
    state: StationState
    actions: list[Action] = field(default_factory=list)

    def on(self, connector_id: int, event: cn.Event) -> list[cn.Action]:
        """Step one connector's machine; its actions join the list, in its order."""
        before = self.state.connector(connector_id)
        after, actions = cn.step(before, event)
        self.state = self.state.with_connector(after)
        self.actions.extend(OnConnector(connector_id, a) for a in actions)
        return actions


def _authorize_on(s: _Step, connector_id: int, id_tag: str,
                  parent_id_tag: str | None) -> cn.RefusalReason | None:
    refusals = [a for a in s.on(connector_id, cn.Authorized(id_tag, parent_id_tag))
                if isinstance(a, cn.AuthorizationRefused)]
    return refusals[0].reason if refusals else None


def _on_tag_accepted(s: _Step, ev: TagAccepted) -> None:
    cid = ev.connector_id
    if cid is None:
        cid = pick_connector(s.state, ev.id_tag)
    if cid is None or not s.state.has(cid):
        s.actions.append(TagOutcome(TagResult.NO_CONNECTOR))
        return
    reason = _authorize_on(s, cid, ev.id_tag, ev.parent_id_tag)
    s.actions.append(TagOutcome(TagResult.REFUSED if reason else TagResult.AUTHORIZED, cid,
                                reason))


def _on_remote_start(s: _Step, ev: RemoteStartRequested) -> None:
    try:
        check_id_tag(ev.id_tag)
    except InvalidIdTagError:
        s.actions.append(RemoteStartOutcome(False))
        return
    cid = ev.connector_id if ev.connector_id is not None else pick_connector(s.state, ev.id_tag)
    if cid is None or not s.state.has(cid):
        s.actions.append(RemoteStartOutcome(False))
        return
    c = s.state.connector(cid)
    if (cn.outputs(c).status in _NOT_STARTABLE
            or c.phase in (cn.TxPhase.RUNNING, cn.TxPhase.AUTHORIZED)  # one pending start
            or cid in s.state.remote_authorizing):
        s.actions.append(RemoteStartOutcome(False, cid))
        return
    if ev.authorize_first:
        s.state = replace(s.state, remote_authorizing=s.state.remote_authorizing | {cid})
        s.actions.append(RemoteStartOutcome(True, cid))
        s.actions.append(AuthorizeThenStart(ev.id_tag, cid))
        return
    reason = _authorize_on(s, cid, ev.id_tag, None)
    s.actions.append(RemoteStartOutcome(reason is None, cid))


def _on_availability(s: _Step, ev: AvailabilityRequested) -> None:
    whole = ev.connector_id == STATION
    if not whole and not s.state.has(ev.connector_id):
        s.actions.append(AvailabilityOutcome(AvailabilityChange.REJECTED))
        return
    targets = s.state.connector_ids if whole else (ev.connector_id,)
    answers = [a.status for cid in targets
               for a in s.on(cid, cn.ChangeAvailability(ev.availability))
               if isinstance(a, cn.AvailabilityAnswer)]
    operative = ev.availability is Availability.OPERATIVE
    if whole:
        s.state = replace(s.state, available=operative)
        s.actions.append(StationStatusChanged(station_status(s.state)))
    if AvailabilityChange.REJECTED in answers:
        s.actions.append(AvailabilityOutcome(AvailabilityChange.REJECTED))
        return
    # Accepted or Scheduled: what was asked is what holds after a restart (a Scheduled change
    # waits for the transaction, which a restart ends).
    changes = [(cid, operative) for cid in targets]
    if whole:
        changes.append((STATION, operative))
    s.actions.append(PersistAvailability(tuple(changes)))
    scheduled = AvailabilityChange.SCHEDULED in answers
    s.actions.append(AvailabilityOutcome(AvailabilityChange.SCHEDULED if scheduled
                                         else AvailabilityChange.ACCEPTED))


def _holder_of(state: StationState, reservation_id: int) -> int | None:
    for c in state.connectors:
        if c.reservation is not None and c.reservation.reservation_id == reservation_id:
            return c.connector_id
    return None


def _on_reservation(s: _Step, ev: ReservationRequested) -> None:
    reservation = ev.reservation
    holder = _holder_of(s.state, reservation.reservation_id)
    try:
        check_id_tag(reservation.id_tag)
    except InvalidIdTagError:
        s.actions.append(ReservationOutcome(ReservationStatus.REJECTED))
        return
    if (not s.state.has(ev.connector_id)
            or (holder is not None and holder != ev.connector_id)  # the id is used elsewhere
            or (reservation.expires_at is not None and reservation.expires_at <= ev.now)):
        s.actions.append(ReservationOutcome(ReservationStatus.REJECTED))
        return
    answers = [a.status for a in s.on(ev.connector_id, cn.Reserve(reservation))
               if isinstance(a, cn.ReservationAnswer)]
    status = ReservationStatus(answers[0]) if answers else ReservationStatus.REJECTED
    s.actions.append(ReservationOutcome(status))
    if status is ReservationStatus.ACCEPTED and reservation.expires_at is not None:
        s.actions.append(ExpireReservationAt(reservation.reservation_id, reservation.expires_at))


def _restore_reservations(s: _Step, ev: ReservationsRestored) -> None:
    for connector_id, reservation in ev.reservations:
        if (not s.state.has(connector_id) or _holder_of(s.state, reservation.reservation_id)
                is not None
                or (reservation.expires_at is not None and reservation.expires_at <= ev.now)):
            continue
        answers = [a.status for a in s.on(connector_id, cn.Reserve(reservation))
                   if isinstance(a, cn.ReservationAnswer)]
        if answers == [ReservationStatus.ACCEPTED] and reservation.expires_at is not None:
            s.actions.append(ExpireReservationAt(reservation.reservation_id,
                                                 reservation.expires_at))


def reservations_of(state: StationState) -> tuple[tuple[int, cn.Reservation], ...]:
    """The reservations held, as (connector id, reservation), by connector."""
    return tuple((c.connector_id, c.reservation) for c in state.connectors
                 if c.reservation is not None)


def _end_reservation(s: _Step, connector_id: int, reservation_id: int, expired: bool) -> None:
    s.on(connector_id, cn.CancelReservation(reservation_id))
    s.actions.append(ReservationEnded(connector_id, reservation_id, expired))


def _transition(s: _Step, ev: Event) -> None:
    match ev:
        case ConnectorEvent(connector_id=cid, event=event):
            if not s.state.has(cid):
                raise KeyError(f"no connector {cid}")
            s.on(cid, event)
        case EveryConnector(event=event):
            for cid in s.state.connector_ids:
                s.on(cid, event)
        case TagAccepted():
            _on_tag_accepted(s, ev)
        case RemoteStartRequested():
            _on_remote_start(s, ev)
        case RemoteStartAuthorized(connector_id=cid):
            s.state = replace(s.state, remote_authorizing=s.state.remote_authorizing - {cid})
            if ev.accepted:
                _on_tag_accepted(s, TagAccepted(ev.id_tag, ev.parent_id_tag, cid))
        case RemoteStopRequested(connector_id=cid):
            running = s.state.has(cid) and s.state.connector(cid).phase is cn.TxPhase.RUNNING
            if running:
                s.on(cid, cn.StopRequested(StopReason.REMOTE))
            s.actions.append(RemoteStopOutcome(running))
        case AvailabilityRequested():
            _on_availability(s, ev)
        case UnlockRequested(connector_id=cid):
            if s.state.has(cid) and s.state.connector(cid).phase is cn.TxPhase.RUNNING:
                s.on(cid, cn.StopRequested(StopReason.UNLOCK_COMMAND))
            if s.state.has(cid) and s.state.connector(cid).held_for is not None:
                s.on(cid, cn.CableReleased())
        case StopAll(reason=reason):
            for c in s.state.connectors:
                if c.phase is cn.TxPhase.RUNNING:
                    s.on(c.connector_id, cn.StopRequested(reason))
        case ReservationRequested():
            _on_reservation(s, ev)
        case ReservationCancelRequested(reservation_id=rid):
            holder = _holder_of(s.state, rid)
            if holder is not None:
                _end_reservation(s, holder, rid, expired=False)
            s.actions.append(CancelOutcome(holder is not None))
        case ReservationsDue(now=now):
            for c in s.state.connectors:
                r = c.reservation
                if r is not None and r.expires_at is not None and r.expires_at <= now:
                    _end_reservation(s, c.connector_id, r.reservation_id, expired=True)
        case ReservationsRestored():
            _restore_reservations(s, ev)
        case KeysChanged(values=values):
            for c in s.state.connectors:
                s.on(c.connector_id, cn.SettingsChanged(c.settings.with_keys(values)))
        case HardwareTestStarted(test=test, connector_ids=ids):
            for cid in ids:
                s.on(cid, cn.EnteredTestMode(test))
        case HardwareTestEnded(connector_ids=ids):
            for cid in ids:
                s.on(cid, cn.LeftTestMode())
        case _:
            raise TypeError(f"not a station event: {ev!r}")


def step(state: StationState, event: Event) -> tuple[StationState, list[Action]]:
    """Apply one event to the station; return the new state and the actions to carry out."""
    s = _Step(state)
    _transition(s, event)
    held = reservations_of(s.state)
    stored = event.reservations if isinstance(event, ReservationsRestored) else reservations_of(state)
    if held != stored:
        s.actions.append(PersistReservations(held))
    return s.state, s.actions
