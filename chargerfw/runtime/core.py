"""The station core at run time: its state, the events fed to it, its actions carried out.

:class:`CoreRunner` holds the one :class:`~chargerfw.station.station.StationState`, which only
:func:`~chargerfw.station.station.step` changes. What happens on the loop (a safety event from
the supervisor, a pilot change, a meter sample, a card on the reader, a backend command, a key
change, a timer) becomes an event; the actions that come back are carried out in order: a
connector's on its :class:`~chargerfw.runtime.connector.ConnectorController`, the station's here
(connector 0's status, availability persisted, reservation timers, authorizing a remote start).
Timers follow the state: ConnectionTimeOut runs while a connector is authorized and waits for
the vehicle; a reservation's timer feeds :class:`~chargerfw.station.station.ReservationsDue`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from chargerfw.config import StationConfig
from chargerfw.drivers.types import MeterSample, TagEvent, TagEventKind
from chargerfw.logs import get_logger
from chargerfw.runtime.connector import ConnectorController
from chargerfw.safety.port import SafetyPort
from chargerfw.station import connector as cn
from chargerfw.station.auth import AuthConfig, Authorizer
from chargerfw.station.enums import Availability, StopReason
from chargerfw.station.faults import ClearRule, FaultKind
from chargerfw.station.safety import (
    FaultChanged,
    PilotObserved,
    SafetyEvent,
    ThermalLimitChanged,
)
from chargerfw.station.station import (
    STATION,
    Action,
    AuthorizeThenStart,
    ConnectorEvent,
    Event,
    EveryConnector,
    ExpireReservationAt,
    HardwareTestEnded,
    HardwareTestStarted,
    KeysChanged,
    OnConnector,
    PersistAvailability,
    PersistReservations,
    RemoteStartAuthorized,
    ReservationEnded,
    ReservationsDue,
    StationState,
    StationStatusChanged,
    TagAccepted,
    TagOutcome,
    TagResult,
    sessions_a_tap_may_end,
    step,
)
from chargerfw.store import Store

if TYPE_CHECKING:
    from chargerfw.ocpp.v16.client import OcppClient

log = get_logger(__name__)

Emit = Callable[..., None]
RunBackground = Callable[[Coroutine[Any, Any, Any], str], None]


def initial_state(
    config: StationConfig, keys: Mapping[str, str | None], availability: Mapping[int, bool]
) -> StationState:
    """The state a station starts in: each connector's rating and the OCPP keys that steer it,
    and the availability ChangeAvailability left (OCPP 1.6 5.2: it survives a restart, so an
    Inoperative connector never flashes Available)."""
    values = {k: v for k, v in keys.items() if v is not None}
    connectors = []
    for section in config.connector:
        settings = cn.ConnectorSettings(max_current_a=section.max_current_a).with_keys(values)
        operative = availability.get(section.id, True)
        connectors.append(
            cn.ConnectorState(
                section.id,
                settings,
                availability=Availability.OPERATIVE if operative else Availability.INOPERATIVE,
            )
        )
    return StationState.of(connectors, available=availability.get(STATION, True))


class CoreRunner:
    """The one place the station core's state lives at run time, and its actions' executor."""

    def __init__(
        self,
        state: StationState,
        config: StationConfig,
        safety: SafetyPort,
        client: OcppClient,
        store: Store,
        authorizer: Authorizer,
        *,
        emit: Emit,
        run_background: RunBackground,
    ) -> None:
        self.state = state
        self.client = client
        self.store = store
        self.authorizer = authorizer
        self.safety = safety
        self._emit = emit
        self._run_background = run_background
        self._tap_lock = asyncio.Lock()
        self._connection_timers: dict[int, asyncio.TimerHandle] = {}
        self._reservation_timers: dict[int, asyncio.TimerHandle] = {}
        self.tap_waiters: list[asyncio.Future[TagEvent]] = []  # rfid.next callers
        # Told (before, after) once an event's actions ran: what follows the state (Smart
        # Charging binds and removes TxProfiles as transactions start and end).
        self.state_listeners: list[Callable[[StationState, StationState], None]] = []
        self.controllers: dict[int, ConnectorController] = {}
        for section in config.connector:
            controller = ConnectorController(
                section,
                safety,
                client,
                read_state=functools.partial(self._connector_state, section.id),
            )
            controller.on_event = self._relay
            self.controllers[section.id] = controller

    def _connector_state(self, connector_id: int) -> cn.ConnectorState:
        return self.state.connector(connector_id)

    # -- events in, actions out -----------------------------------------------------------

    def apply(self, event: Event) -> list[Action]:
        """Feed one event to the core and carry out what it decides, in order. A failed
        action (a GPIO error, a refused store write) is logged and the rest still run: a
        contactor's opening always comes first."""
        before = self.state
        self.state, actions = step(before, event)
        for action in actions:
            try:
                self._execute(action)
            except Exception:
                log.exception("station.action_failed", action=type(action).__name__)
        self._follow_connection_timers(before)
        after = self.state
        for listener in list(self.state_listeners):
            try:
                listener(before, after)
            except Exception:
                log.exception("station.state_listener_failed")
        return actions

    def _execute(self, action: Action) -> None:
        match action:
            case OnConnector(connector_id=cid, action=connector_action):
                self.controllers[cid].execute(connector_action)
            case StationStatusChanged(status=status):
                self.client.set_status(STATION, status.value)
            case PersistAvailability(changes=changes):
                try:
                    self.store.availability_set(dict(changes))
                except Exception:
                    log.exception("station.availability_not_persisted")
            case PersistReservations(reservations=held):
                try:
                    self.store.reservations_replace(held)
                except Exception:
                    log.exception("station.reservations_not_persisted")
            case ExpireReservationAt(reservation_id=rid, at=at):
                self._cancel_reservation_timer(rid)
                loop = asyncio.get_running_loop()
                self._reservation_timers[rid] = loop.call_later(
                    max(0.0, at - time.time()), self._reservation_due, rid
                )
            case ReservationEnded(connector_id=cid, reservation_id=rid, expired=expired):
                self._cancel_reservation_timer(rid)
                self._emit(
                    "reservation.expired" if expired else "reservation.cancelled",
                    connector=cid,
                    reservation_id=rid,
                )
            case AuthorizeThenStart(id_tag=id_tag, connector_id=cid):
                self._run_background(self._authorize_then_start(id_tag, cid), "remote-start")
            case _:
                pass  # outcomes (answers to a request) go back to whoever asked

    def _relay(self, event: str, fields: dict[str, Any]) -> None:
        """A connector's event for the listeners (it logged it already)."""
        self._emit(event, log_it=False, **fields)

    def ask_again(self) -> None:
        """Tell the safety port again what every connector wants now (its pilot, and its
        contactor closed if the machine wants it): after the safety process restarted."""
        for c in self.state.connectors:
            out = cn.outputs(c)
            controller = self.controllers[c.connector_id]
            controller.execute(cn.SetPilot(out.pilot))
            if out.contactor_closed:
                controller.execute(cn.SetContactor(True))

    # -- timers ---------------------------------------------------------------------------

    def _follow_connection_timers(self, before: StationState) -> None:
        """ConnectionTimeOut runs while a connector is authorized and waits for the vehicle."""
        for c in self.state.connectors:
            cid = c.connector_id
            was = before.connector(cid).phase is cn.TxPhase.AUTHORIZED
            waiting = c.phase is cn.TxPhase.AUTHORIZED
            if waiting and (not was or before.connector(cid).id_tag != c.id_tag):
                self._cancel_connection_timer(cid)
                timeout = self.client.keys.get_int("ConnectionTimeOut")
                self._connection_timers[cid] = asyncio.get_running_loop().call_later(
                    timeout, self._connection_timed_out, cid
                )
            elif was and not waiting:
                self._cancel_connection_timer(cid)

    def _cancel_connection_timer(self, connector_id: int) -> None:
        timer = self._connection_timers.pop(connector_id, None)
        if timer is not None:
            timer.cancel()

    def _connection_timed_out(self, connector_id: int) -> None:
        self._connection_timers.pop(connector_id, None)
        if self.state.connector(connector_id).phase is cn.TxPhase.AUTHORIZED:
            log.info("connector.connection_timeout", connector=connector_id)
            self.apply(ConnectorEvent(connector_id, cn.ConnectionTimedOut()))

    def _cancel_reservation_timer(self, reservation_id: int) -> None:
        timer = self._reservation_timers.pop(reservation_id, None)
        if timer is not None:
            timer.cancel()

    def _reservation_due(self, reservation_id: int) -> None:
        self._reservation_timers.pop(reservation_id, None)
        self.apply(ReservationsDue(time.time()))

    def cancel_timers(self) -> None:
        for timer in [*self._connection_timers.values(), *self._reservation_timers.values()]:
            timer.cancel()
        self._connection_timers.clear()
        self._reservation_timers.clear()

    # -- the safety supervisor ------------------------------------------------------------

    def on_safety_event(self, event: SafetyEvent) -> None:
        """From the safety core, which already acted on the hardware; on the loop's thread."""
        match event:
            case FaultChanged(fault=fault, active=active):
                station_wide = fault.connector_id == STATION
                store_cid = fault.connector_id
                try:
                    if active:
                        self.store.fault_raise(
                            fault.kind.value,
                            store_cid,
                            fault.spec.clear_rule is ClearRule.TECHNICIAN,
                            fault.detail,
                        )
                    else:
                        self.store.fault_clear(fault.kind.value, store_cid)
                except Exception:
                    log.exception("station.fault_not_recorded")
                self._emit(
                    "fault.raised" if active else "fault.cleared",
                    kind=fault.kind.value,
                    connector=fault.connector_id,
                )
                change: cn.Event = (
                    cn.FaultRaised(fault.kind) if active else cn.FaultCleared(fault.kind)
                )
                self.apply(
                    EveryConnector(change) if station_wide else ConnectorEvent(store_cid, change)
                )
            case PilotObserved(connector_id=cid, pilot=pilot):
                before = self.state.connector(cid).pilot
                self.apply(ConnectorEvent(cid, cn.PilotChanged(pilot)))
                if before != pilot:
                    self._emit("pilot.changed", connector=cid, pilot=pilot.value)
            case ThermalLimitChanged(connector_id=cid, limit_a=limit):
                self.apply(
                    ConnectorEvent(cid, cn.CurrentLimitChanged(cn.LimitSource.THERMAL, limit))
                )

    # -- the meter ------------------------------------------------------------------------

    def on_sample(self, connector_id: int, sample: MeterSample) -> None:
        controller = self.controllers[connector_id]
        controller.note_sample(sample)
        self.safety.update_meter(connector_id, sample)
        pilot = cn.outputs(controller.state).pilot
        self.client.update_meter(connector_id, sample, temperature_c=controller.temperature_c,
                                 offered_current_a=pilot.current_a or 0.0)
        tx = controller.transaction
        if tx is not None and controller.phase is cn.TxPhase.RUNNING:
            delivered = max(0.0, sample.energy_import_wh - tx.meter_start_wh)
            self.apply(ConnectorEvent(connector_id, cn.EnergyMeasured(delivered)))

    # -- OCPP keys ------------------------------------------------------------------------

    def on_key_changed(self, key: str, value: str) -> None:
        if key in AuthConfig.KEYS:
            keys = self.client.keys
            self.authorizer.config = AuthConfig.from_keys({k: keys.raw(k) for k in AuthConfig.KEYS})
        if key in cn.ConnectorSettings.KEYS:
            self.apply(KeysChanged({key: value}))

    # -- the token reader -----------------------------------------------------------------

    def on_tag_event(self, event: TagEvent) -> None:
        if event.kind is TagEventKind.PRESENTED and event.id_tag:
            for waiter in self.tap_waiters:
                if not waiter.done():
                    waiter.set_result(event)
            self._run_background(self.handle_tap(event.id_tag), "tap")
        elif event.kind in (TagEventKind.READER_LOST, TagEventKind.READER_BACK):
            lost = event.kind is TagEventKind.READER_LOST
            self._record_reader_fault(event.reader, lost)
            self.apply(
                EveryConnector(
                    cn.FaultRaised(FaultKind.READER_FAILURE)
                    if lost
                    else cn.FaultCleared(FaultKind.READER_FAILURE)
                )
            )

    def _record_reader_fault(self, reader: str, lost: bool) -> None:
        """The fault history (``chargerfw faults``) keeps a lost reader, station-wide."""
        code = FaultKind.READER_FAILURE.value
        try:
            if lost:
                self.store.fault_raise(code, STATION, False, f"reader {reader} lost")
            else:
                self.store.fault_clear(code, STATION)
        except Exception:
            log.exception("station.fault_not_recorded", code=code)
        self._emit("fault.raised" if lost else "fault.cleared", kind=code, connector=None)

    async def handle_tap(self, id_tag: str) -> str:
        """A card was presented: stop the session it (or a tag with its parent) started,
        cancel its pending authorization, or authorize it and start. Returns what happened."""
        async with self._tap_lock:
            self._emit("tag.presented", id_tag=id_tag)
            for target in sessions_a_tap_may_end(self.state, id_tag):
                cid = target.connector_id
                if target.held:
                    if not await self.authorizer.may_stop(
                        target.id_tag, target.parent_id_tag, id_tag
                    ):
                        continue
                    self.apply(ConnectorEvent(cid, cn.CableReleased()))
                    self._emit("tag.released_cable", connector=cid)
                    return "released"
                if target.running:
                    if not await self.authorizer.may_stop(
                        target.id_tag, target.parent_id_tag, id_tag
                    ):
                        continue
                    now = self.state.connector(cid)
                    if now.phase is not cn.TxPhase.RUNNING or now.id_tag != target.id_tag:
                        continue  # that session ended while the backend was asked
                    self.controllers[cid].stop_id_tag = id_tag
                    self.apply(ConnectorEvent(cid, cn.StopRequested(StopReason.LOCAL)))
                    self._emit("tag.stopped_session", connector=cid)
                    return "stopped"
                self.apply(ConnectorEvent(cid, cn.StopRequested(StopReason.LOCAL)))
                self._emit("tag.cancelled", connector=cid)
                return "cancelled"
            decision = await self.authorizer.authorize(id_tag)
            if decision.local_list_conflict:
                log.warning("auth.local_list_conflict", id_tag=id_tag)
            if not decision.accepted:
                self._emit(
                    "tag.rejected",
                    id_tag=id_tag,
                    status=decision.status.value,
                    source=decision.source.value,
                    online=decision.online,
                )
                return "rejected"
            outcome = _outcome(self.apply(TagAccepted(id_tag, decision.parent_id_tag)))
            if outcome.result is TagResult.NO_CONNECTOR:
                self._emit("tag.no_connector", id_tag=id_tag)
                return "no_connector"
            authorized = outcome.result is TagResult.AUTHORIZED
            if not authorized:
                log.info(
                    "connector.authorization_refused",
                    connector=outcome.connector_id,
                    reason=outcome.reason.value if outcome.reason else None,
                )
            self._emit(
                "tag.authorized" if authorized else "tag.refused",
                id_tag=id_tag,
                connector=outcome.connector_id,
                source=decision.source.value,
                online=decision.online,
            )
            return "authorized" if authorized else "refused"

    async def _authorize_then_start(self, id_tag: str, connector_id: int) -> None:
        """RemoteStartTransaction with AuthorizeRemoteTxRequests: Authorize (or the local
        rules) first, then start on the connector the core chose. The core always hears the
        decision: until then that connector takes no other remote start."""
        try:
            decision = await self.authorizer.authorize(id_tag)
        except BaseException:
            self.apply(RemoteStartAuthorized(connector_id, id_tag, accepted=False))
            raise
        if not decision.accepted:
            self.apply(RemoteStartAuthorized(connector_id, id_tag, accepted=False))
            self._emit("remote.start_rejected", id_tag=id_tag, status=decision.status.value)
            return
        outcome = _outcome(self.apply(RemoteStartAuthorized(
            connector_id, id_tag, accepted=True, parent_id_tag=decision.parent_id_tag)))
        if outcome.result is not TagResult.AUTHORIZED:
            log.info(
                "connector.authorization_refused",
                connector=connector_id,
                reason=outcome.reason.value if outcome.reason else None,
            )

    # -- the technician's hardware tests --------------------------------------------------

    def begin_test(self, test: str, connector_ids: list[int]) -> None:
        for cid in connector_ids:
            self._emit("connector.test_started", connector=cid, test=test)
        self.apply(HardwareTestStarted(test, tuple(connector_ids)))

    def end_test(self, connector_ids: list[int]) -> None:
        tests = {cid: self.state.connector(cid).under_test for cid in connector_ids}
        self.apply(HardwareTestEnded(tuple(connector_ids)))
        for cid in connector_ids:
            self._emit(
                "connector.test_ended",
                connector=cid,
                test=tests[cid],
                status=cn.outputs(self.state.connector(cid)).status.value,
            )


def _outcome(actions: list[Action]) -> TagOutcome:
    return next(a for a in actions if isinstance(a, TagOutcome))
