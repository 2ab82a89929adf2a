"""How the technician's commands reach a station: through its running service (the control
socket: :class:`ServiceAccess`) or, with the service stopped, directly (:class:`DirectAccess`:
the store, and the hardware under the hardware lock). Both apply the same rules
(:mod:`chargerfw.station.technician` for test refusals and fault clearing,
:class:`~chargerfw.ocpp.config_keys.ConfigurationKeys` for OCPP keys); each builds what those
rules look at from what it can see.

Errors: :class:`~chargerfw.control.api.Refused` when a rule refuses;
:class:`~chargerfw.hwlock.HardwareBusy` when another process holds the hardware;
:class:`Unreachable` when the store or the hardware cannot be opened; the service side raises
:class:`~chargerfw.control.client.ControlUnavailable` and
:class:`~chargerfw.control.api.ControlError` as its client does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, cast

from chargerfw.control.api import (
    ChargingProfilesReply,
    ChargingProfilesRequest,
    CompositeScheduleStatus,
    ConfigSetReply,
    ConfigSetRequest,
    ConnectorStatus,
    ContactorTestRequest,
    ControlError,
    FaultClearReply,
    FaultClearRequest,
    HardwareTestReply,
    LockTestRequest,
    MeterSampleRequest,
    PilotTestRequest,
    RcdTestRequest,
    Refused,
    Request,
    RfidNextReply,
    RfidNextRequest,
    StatusReply,
    StatusRequest,
)
from chargerfw.drivers.types import PilotMode
from chargerfw.hwlock import HardwareLock
from chargerfw.station.enums import TxPhase
from chargerfw.station.faults import FaultKind
from chargerfw.station.technician import (
    ConnectorView,
    HardwareTest,
    StoredTransaction,
    clear_refusal,
    condition_refusal,
    hardware_test_refusal,
    stored_kind,
)

# The direct path's store, board and test sequences are loaded when it uses them: a command
# that goes through the service needs none of them.
if TYPE_CHECKING:
    from chargerfw.config import StationConfig
    from chargerfw.control.client import ControlClient
    from chargerfw.drivers.board import Board
    from chargerfw.drivers.types import MeterSample
    from chargerfw.safety.core import SafetyCore
    from chargerfw.safety.link import SafetyLink
    from chargerfw.safety.port import SafetyPort
    from chargerfw.store import Store

TEST_TIMEOUT_S = 30.0  # a test through the service: a contactor test takes a few seconds

TestReplyT = TypeVar("TestReplyT", bound=HardwareTestReply)
OpenBoard: TypeAlias = "Callable[[StationConfig], Board]"
Confirm = Callable[[], None]  # raises Refused when the technician says no

TESTS: dict[type[Request[Any]], HardwareTest] = {
    ContactorTestRequest: HardwareTest.CONTACTOR,
    RcdTestRequest: HardwareTest.RCD,
    PilotTestRequest: HardwareTest.PILOT,
    LockTestRequest: HardwareTest.LOCK,
}


class Via(enum.StrEnum):
    SERVICE = "service"
    DIRECT = "direct"


class Unreachable(Exception):
    """The store or the station hardware cannot be opened (the message says why)."""


class StationAccess(Protocol):
    """What a command can do on a station whether its service runs or not."""

    via: Via

    def clear_fault(self, kind: FaultKind, connector: int) -> FaultClearReply:
        """A technician's clear of an active latched fault (``connector`` 0: station-wide);
        refused if it clears by itself or its condition is still there."""
        ...

    def run_test(self, request: Request[TestReplyT], confirm: Confirm | None = None) -> TestReplyT:
        """A guarded hardware test; ``confirm`` is asked once the refusals passed, before
        anything moves."""
        ...

    def set_ocpp_key(self, key: str, value: str) -> ConfigSetReply:
        """An OCPP configuration key, validated as a ChangeConfiguration is."""
        ...


def _test_of(request: Request[Any]) -> HardwareTest:
    test = TESTS.get(type(request))
    if test is None:
        raise TypeError(f"{type(request).__name__} is not a hardware test")
    return test


def _tested_connectors(request: Request[Any], connector_ids: Sequence[int]) -> list[int]:
    """The connectors a test takes over: its own, or all of them (the RCD test)."""
    connector = getattr(request, "connector", None)
    return list(connector_ids) if connector is None else [connector]


def _refuse(refusal: str | None) -> None:
    if refusal is not None:
        raise Refused(refusal)


# -- through the running service -----------------------------------------------------------
class ServiceAccess:
    """The station through its running service."""

    via = Via.SERVICE

    def __init__(self, client: ControlClient) -> None:
        self.client = client

    def status(self) -> StatusReply:
        return self.client.request(StatusRequest())

    def clear_fault(self, kind: FaultKind, connector: int) -> FaultClearReply:
        return self.client.request(FaultClearRequest(kind, connector))

    def charging_profiles(self, request: ChargingProfilesRequest) -> ChargingProfilesReply:
        return self.client.request(request)

    def run_test(self, request: Request[TestReplyT], confirm: Confirm | None = None) -> TestReplyT:
        """Refused from the service's status first (so nobody is asked to confirm a test the
        service would refuse); the service checks again itself."""
        test = _test_of(request)
        status = self.status()
        tested = _tested_connectors(request, [c.id for c in status.connectors])
        views = [self._view(c, status) for c in status.connectors if c.id in tested]
        running = next((c.under_test for c in status.connectors if c.under_test), None)
        _refuse(hardware_test_refusal(test, views, running))
        if confirm is not None:
            confirm()
        return self.client.request(request, timeout_s=TEST_TIMEOUT_S)

    @staticmethod
    def _view(connector: ConnectorStatus, status: StatusReply) -> ConnectorView:
        # The status does not carry the tag a waiting authorization is for: the service
        # refuses that case itself.
        return ConnectorView(
            connector.id,
            transaction_running=(
                connector.transaction is not None or connector.phase is TxPhase.RUNNING
            ),
            pilot=connector.pilot,
            pilot_f_is_ours=connector.pilot_output is PilotMode.STATE_F,
            active_faults=frozenset(
                f.kind for f in status.faults if f.connector in (connector.id, None)
            ),
        )

    def set_ocpp_key(self, key: str, value: str) -> ConfigSetReply:
        return self.client.request(ConfigSetRequest(key, value))

    def meter_sample(self, connector: int) -> MeterSample | None:
        """The service's latest sample of the connector's meter (None: none yet). A service
        without ``meter.sample`` (older firmware) is read from its status."""
        try:
            reply = self.client.request(MeterSampleRequest(connector))
        except ControlError as exc:
            if not exc.method_missing:
                raise
            found = self.status().connector(connector)
            if found is None or found.meter is None:
                return None
            return found.meter.as_sample(time.time())
        return None if reply is None else reply.sample()

    def next_tap(self, wait_s: float) -> RfidNextReply:
        return self.client.request(RfidNextRequest(wait_s), timeout_s=wait_s + 5)


# -- directly, with the service stopped ----------------------------------------------------
def open_existing_store(path: Path) -> Store | None:
    """The store, or None when the file does not exist yet (never creates one)."""
    from chargerfw.store import Store, StoreError

    if not path.exists():
        return None
    try:
        return Store(path)
    except (StoreError, OSError) as exc:
        raise Unreachable(f"cannot open the store {path}: {exc}") from None
    except Exception as exc:  # sqlite3.DatabaseError: not a database, locked too long
        raise Unreachable(f"cannot read the store {path}: {exc}") from None


class DirectAccess:
    """The station with its service stopped: the store, and the hardware built by this process
    under the hardware lock. ``reason`` says why the service was not reached."""

    via = Via.DIRECT

    def __init__(
        self, config: StationConfig, *, reason: str = "", open_board: OpenBoard | None = None
    ) -> None:
        """``open_board`` builds the board (default: the config's own,
        :func:`~chargerfw.drivers.board.build_board`)."""
        self.config = config
        self.reason = reason
        self._open_board = open_board

    @property
    def store_path(self) -> Path:
        return Path(self.config.storage.path)

    @contextlib.contextmanager
    def hardware(self, owner: str) -> Iterator[Board]:
        """The board, under the hardware lock held for ``owner`` (a command's name); every
        contactor open and the lock released after."""
        if self._open_board is None:
            from chargerfw.drivers.board import build_board

            self._open_board = build_board
        with HardwareLock(owner):  # HardwareBusy names the holder
            try:
                board = self._open_board(self.config)
            except Exception as exc:  # GPIO library missing, I2C bus absent, pin busy
                raise Unreachable(
                    f"cannot open the station hardware: {type(exc).__name__}: {exc}"
                ) from None
            try:
                yield board
            finally:
                board.close()  # opens every contactor, releases pins and buses

    # -- the safety core: the safety process, or one of this process's own -----------------

    def _safety_link(self) -> SafetyLink | None:
        """A technician's link to the safety process, when one answers (it owns the hardware
        and keeps the latched faults); None when none runs."""
        from chargerfw.safety.link import SafetyLink, SafetyUnavailable
        from chargerfw.safety.process import default_socket_path

        socket_path = default_socket_path()
        if not socket_path.exists():
            return None
        link = SafetyLink(
            socket_path, lambda event: None, role="technician", name="chargerfw technician"
        )
        try:
            link.start(connect_timeout_s=2.0)
        except SafetyUnavailable:
            return None
        return link

    @contextlib.contextmanager
    def _local_safety(self, owner: str) -> Iterator[SafetyCore]:
        """A safety core of this process's own, on the board under the hardware lock: the
        interlocks, the monitor and the latched faults (the safety process's file, and the
        store's technician faults) as the service would have them."""
        from chargerfw.safety.core import SafetyCore
        from chargerfw.safety.process import LatchedFaults, latched_faults_path
        from chargerfw.station.safety import SafetySettings

        with self.hardware(owner) as board:
            core = SafetyCore(
                self.config, board, lambda event: None, SafetySettings(poll_interval_s=0.02)
            )
            for kind, cid, detail in self._remembered_latches(
                LatchedFaults(latched_faults_path(self.config)).load()
            ):
                with contextlib.suppress(ValueError, KeyError):
                    core.restore_latched_fault(kind, cid, detail)
            core.start(self_test=False)  # a technician's session, not a charging start-up
            try:
                core.wait_for_first_poll()
                yield core
            finally:
                core.stop()

    def _remembered_latches(
        self, from_safety: list[tuple[FaultKind, int, str]]
    ) -> list[tuple[FaultKind, int, str]]:
        latches = list(from_safety)
        store = open_existing_store(self.store_path)
        if store is not None:
            try:
                for record in store.faults(active_only=True, limit=10000):
                    kind = stored_kind(record.code)
                    if kind is not None and record.needs_technician:
                        latches.append((kind, record.connector_id, record.detail))
            finally:
                store.close()
        return latches

    # -- fault clearing -------------------------------------------------------------------

    def clear_fault(self, kind: FaultKind, connector: int) -> FaultClearReply:
        """Cleared by the safety core once it sees the condition gone (the safety process
        when it runs, one of this process's own otherwise), then in the store's history."""
        link = self._safety_link()
        try:
            if link is not None:
                active = any(
                    f.kind is kind and f.connector_id == connector for f in link.active_faults()
                )
                _refuse(clear_refusal(kind, f"connector {connector}", active=active))
                if not link.clear_by_technician(kind, connector):
                    _refuse(condition_refusal(kind, "its condition is still present"))
            else:
                with self._local_safety("chargerfw faults clear") as core:
                    active = self._stored_active(kind, connector) or any(
                        f.kind is kind and f.connector_id == connector for f in core.active_faults()
                    )
                    _refuse(clear_refusal(kind, f"connector {connector}", active=active))
                    # Read the hardware now: the monitor may not have judged it yet (a
                    # contactor's feedback takes its timeout to count as welded).
                    _refuse(condition_refusal(kind, self._condition(kind, core.board, connector)))
                    if not core.clear_by_technician(kind, connector) and any(
                        f.kind is kind and f.connector_id == connector for f in core.active_faults()
                    ):
                        _refuse(condition_refusal(kind, "its condition is still present"))
                    self._forget_latch(kind, connector)
        finally:
            if link is not None:
                link.stop()
        store = open_existing_store(self.store_path)
        if store is not None:
            try:
                store.fault_clear(kind.value, connector)
            finally:
                store.close()
        return FaultClearReply(kind, connector)

    def _stored_active(self, kind: FaultKind, connector: int) -> bool:
        store = open_existing_store(self.store_path)
        if store is None:
            return False
        try:
            return any(
                stored_kind(f.code) is kind and f.connector_id == connector
                for f in store.faults(active_only=True, limit=10000)
            )
        finally:
            store.close()

    @staticmethod
    def _condition(kind: FaultKind, board: Board, connector: int) -> str | None:
        """What the hardware still shows of a latched fault (None: nothing)."""
        if kind is FaultKind.CONTACTOR_WELDED:
            devices = board.connectors.get(connector)
            if devices is None:
                return f"no connector {connector} in the config"
            if devices.contactor.feedback_closed:
                return "the mirror contact still reads closed with the coil off: still welded"
        elif kind is FaultKind.RCD_TRIP_REPEATED and board.rcm is not None and board.rcm.refresh():
            return "the RCM input still reads tripped"
        return None

    def _forget_latch(self, kind: FaultKind, connector: int) -> None:
        """The safety process's latched-faults file, without the one a technician cleared."""
        from chargerfw.safety.process import LatchedFaults, latched_faults_path
        from chargerfw.station.faults import Fault

        latched = LatchedFaults(latched_faults_path(self.config))
        kept = [
            Fault(k, cid, detail)
            for k, cid, detail in latched.load()
            if not (k is kind and cid == connector)
        ]
        latched.save(kept)

    # -- hardware tests -------------------------------------------------------------------

    def run_test(self, request: Request[TestReplyT], confirm: Confirm | None = None) -> TestReplyT:
        """Refused from the store first (a transaction left open), before the hardware is
        touched; then by what the safety core sees (pilot, active and latched faults), and run
        by it under its interlocks: the safety process when it runs, one of this process's own
        otherwise."""
        from chargerfw.safety.sequences import Refusal

        test = _test_of(request)
        tested = _tested_connectors(request, [c.id for c in self.config.connector])
        views = [ConnectorView(cid, left_open=left) for cid, left in self._left_open(tested)]
        _refuse(hardware_test_refusal(test, views))
        connector = getattr(request, "connector", 0)
        link = self._safety_link()
        try:
            with contextlib.ExitStack() as stack:
                safety: SafetyPort
                if link is not None:
                    safety = link
                else:
                    safety = stack.enter_context(self._local_safety(f"chargerfw test {test.value}"))

                def refuse_as_safety_sees_it() -> None:
                    # The contactor test energises the outlet: it also reads the pilot.
                    _refuse(
                        hardware_test_refusal(
                            test,
                            [
                                dataclasses.replace(
                                    view,
                                    pilot=(
                                        safety.pilot(view.connector_id)
                                        if test is HardwareTest.CONTACTOR
                                        else view.pilot
                                    ),
                                    pilot_f_is_ours=link is not None or view.pilot_f_is_ours,
                                    active_faults=frozenset(
                                        f.kind for f in safety.active_faults(view.connector_id)
                                    ),
                                )
                                for view in views
                            ],
                        )
                    )

                refuse_as_safety_sees_it()
                if confirm is not None:
                    confirm()
                    refuse_as_safety_sees_it()  # the prompt may have waited a long time
                return cast(TestReplyT, safety.run_test(test, connector))
        except Refusal as exc:
            raise Refused(f"{test.value} test aborted: {exc}") from None
        finally:
            if link is not None:
                link.stop()

    def _left_open(self, connector_ids: list[int]) -> list[tuple[int, StoredTransaction | None]]:
        """Per connector, the first transaction the store holds open there."""
        store = open_existing_store(self.store_path)
        open_tx = []
        if store is not None:
            try:
                open_tx = store.open_transactions()
            finally:
                store.close()
        return [
            (
                cid,
                next(
                    (
                        StoredTransaction(t.local_id, t.id_tag)
                        for t in open_tx
                        if t.connector_id == cid
                    ),
                    None,
                ),
            )
            for cid in connector_ids
        ]

    # -- OCPP keys ------------------------------------------------------------------------

    def set_ocpp_key(self, key: str, value: str) -> ConfigSetReply:
        """Written to the store, validated as the service would; the service reads it when it
        next starts."""
        from chargerfw.ocpp.security_profile import station_keys

        with self._store() as store:
            status, reason = station_keys(self.config, store)[0].change(key, value)
        return ConfigSetReply(key, status, reason)

    # -- charging profiles ----------------------------------------------------------------

    def charging_profiles(self, request: ChargingProfilesRequest) -> ChargingProfilesReply:
        """The profiles the store holds and the schedule they give from now, as the service
        would start with them (no transaction runs: TxProfiles are gone then)."""
        from datetime import UTC, datetime

        from chargerfw.station import charging_profiles as cp

        with self._store() as store:
            installed = tuple(i for i in store.charging_profiles()
                              if i.profile.purpose is not cp.ChargingProfilePurpose.TX)
        context = cp.StationContext(
            tuple(cp.ConnectorContext(c.id, c.max_current_a, c.phases)
                  for c in self.config.connector),
            self.config.smart_charging.time_zone)
        ids = ([0, *(c.id for c in self.config.connector)] if request.connector is None
               else [request.connector])
        unit = cp.ChargingRateUnit.AMPS if request.unit == "A" else cp.ChargingRateUnit.WATTS
        now = datetime.now(UTC)
        try:
            schedules = [cp.composite_schedule(installed, context, cid, now, request.duration_s,
                                               unit) for cid in ids]
        except cp.ProfileRejected as exc:
            raise Refused(str(exc)) from None
        return ChargingProfilesReply(
            [{"connector_id": i.connector_id, "awaiting_start": i.awaiting_start,
              **cp.profile_to_wire(i.profile)} for i in installed],
            [CompositeScheduleStatus.of(s) for s in schedules])

    @contextlib.contextmanager
    def _store(self) -> Iterator[Store]:
        store = open_existing_store(self.store_path)
        if store is None:
            raise Unreachable(f"no store at {self.store_path} yet: start the service once")
        try:
            yield store
        finally:
            store.close()
