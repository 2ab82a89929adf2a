"""``Store``: the one data layer that the OCPP side, the OCPI side and the administration
commands use; and ``AsyncStore``, which runs it off the event loop.

The store is composed of one part per aggregate (charge points, locations, tariffs,
partners, hubs, tokens, transactions, sessions, CDRs, reservations, commands, sites,
local authorization lists, chargers' files, the push queue). Each part only knows the store engine (and our CPO
identity where it builds OCPI objects); work that spans aggregates inside one database
transaction goes through the owning module's functions that take that transaction's
connection. ``Store`` offers every part's methods
under one name, so a caller needs neither to know which part holds a method nor to wire the
parts.

Every method is synchronous and runs one database transaction; the async servers call them
through ``AsyncStore`` (worker threads), so the event loop never waits on the database, and
the calls queued together there share one commit (see ``store_engine``).
Changes that partners must hear about enqueue their OCPI pushes in the same transaction, so a
crash can lose neither the change nor its push.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from chargerfw.csms.store.admin import AdminTokens, ChargePointEvents
from chargerfw.csms.store.cdrs import Cdrs
from chargerfw.csms.store.charge_points import ChargePoints
from chargerfw.csms.store.charger_files import ChargerFiles
from chargerfw.csms.store.commands import Commands
from chargerfw.csms.store.fleet_security import FleetSecurity
from chargerfw.csms.store.hubs import Hubs
from chargerfw.csms.store.local_lists import LocalLists
from chargerfw.csms.store.locations import Locations
from chargerfw.csms.store.operator_commands import OperatorCommands
from chargerfw.csms.store.owner_counts import OwnerCounts
from chargerfw.csms.store.partners import Partners
from chargerfw.csms.store.push_queue import PushQueue
from chargerfw.csms.store.reservations import Reservations
from chargerfw.csms.store.sessions import Sessions
from chargerfw.csms.store.sites import Sites
from chargerfw.csms.store.store_engine import GroupBroken, StoreEngine
from chargerfw.csms.store.tariffs import Tariffs
from chargerfw.csms.store.tokens import Tokens
from chargerfw.csms.store.transactions import Transactions
from chargerfw.csms.store.values import CpoIdentity
from chargerfw.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")


class Store:
    """Synchronous data layer over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, cpo: CpoIdentity | None = None) -> None:
        self.engine = engine
        self.cpo = cpo or CpoIdentity()
        # What the parts open transactions on: it lets AsyncStore group many calls into one.
        self.store_engine = StoreEngine(engine)
        store_engine = self.store_engine

        charge_points = ChargePoints(store_engine, self.cpo)
        self.add_charge_point = charge_points.add_charge_point
        self.add_charge_points = charge_points.add_charge_points
        self.attach_charge_point = charge_points.attach_charge_point
        self.auto_register = charge_points.auto_register
        self.list_charge_points = charge_points.list_charge_points
        self.get_charge_point = charge_points.get_charge_point
        self.connector_statuses = charge_points.connector_statuses
        self.evse_for_connector = charge_points.evse_for_connector
        self.evse = charge_points.evse
        self.evses_of_location = charge_points.evses_of_location
        self.record_boot = charge_points.record_boot
        self.record_heartbeat = charge_points.record_heartbeat
        self.record_seen = charge_points.record_seen
        self.record_status = charge_points.record_status
        self.record_feature_profiles = charge_points.record_feature_profiles
        self.set_rfid_reader = charge_points.set_rfid_reader
        self.require_client_certificate = charge_points.require_client_certificate
        self.charger_connected = charge_points.charger_connected
        self.charger_disconnected = charge_points.charger_disconnected
        self.reset_connections = charge_points.reset_connections
        self.sweep_offline = charge_points.sweep_offline

        locations = Locations(store_engine, self.cpo)
        self.list_locations = locations.list_locations
        self.get_location = locations.get_location
        self.set_location_details = locations.set_location_details

        tariffs = Tariffs(store_engine, self.cpo)
        self.add_tariff = tariffs.add_tariff
        self.update_tariff = tariffs.update_tariff
        self.delete_tariff = tariffs.delete_tariff
        self.get_tariff = tariffs.get_tariff
        self.list_tariffs = tariffs.list_tariffs
        self.set_connector_tariff = tariffs.set_connector_tariff

        partners = Partners(store_engine, self.cpo)
        self.add_partner = partners.add_partner
        self.give_party = partners.give_party
        self.take_party = partners.take_party
        self.partner_parties = partners.partner_parties
        self.holds_party = partners.holds_party
        self.partner_of_party = partners.partner_of_party
        self.check_declared_roles = partners.check_declared_roles
        self.partner_by_token = partners.partner_by_token
        self.get_partner = partners.get_partner
        self.list_partners = partners.list_partners
        self.register_partner = partners.register_partner
        self.add_initiating_partner = partners.add_initiating_partner
        self.complete_registration = partners.complete_registration
        self.delete_partner = partners.delete_partner
        self.unregister_partner = partners.unregister_partner
        self.queue_full_sync = partners.queue_full_sync

        tokens = Tokens(store_engine, self.cpo)
        self.put_token = tokens.put_token
        self.add_local_token = tokens.add_local_token
        self.get_token = tokens.get_token
        self.patch_token = tokens.patch_token
        self.tokens_by_uid = tokens.tokens_by_uid
        self.deciding_tokens = tokens.deciding_tokens
        self.set_token_route = tokens.set_token_route
        self.remove_token_route = tokens.remove_token_route
        self.token_routes = tokens.token_routes
        self.route_for_uid = tokens.route_for_uid

        transactions = Transactions(store_engine, self.cpo)
        self.start_transaction = transactions.start_transaction
        self.close_orphans_due = transactions.close_orphans_due
        self.transaction_for_start = transactions.transaction_for_start
        self.get_transaction = transactions.get_transaction
        self.transaction_by_session_id = transactions.transaction_by_session_id
        self.add_meter_values = transactions.add_meter_values
        self.stop_transaction = transactions.stop_transaction
        self.active_transaction = transactions.active_transaction
        self.transactions_table = transactions.transactions_table

        self.fold_owner_counts = OwnerCounts(store_engine).fold_owner_counts

        sessions = Sessions(store_engine, self.cpo)
        self.list_sessions = sessions.list_sessions
        self.list_sessions_json = sessions.list_sessions_json
        self.get_session = sessions.get_session

        cdrs = Cdrs(store_engine, self.cpo)
        self.list_cdrs = cdrs.list_cdrs
        self.list_cdrs_json = cdrs.list_cdrs_json
        self.build_due_cdrs = cdrs.build_due_cdrs

        reservations = Reservations(store_engine)
        self.create_reservation = reservations.create_reservation
        self.set_reservation_status = reservations.set_reservation_status
        self.reservation_by_ocpi_id = reservations.reservation_by_ocpi_id
        self.get_reservation = reservations.get_reservation
        self.expire_reservations = reservations.expire_reservations

        commands = Commands(store_engine)
        self.create_command = commands.create_command
        self.finish_command = commands.finish_command
        self.command_vouching_for = commands.command_vouching_for
        self.may_unlock = commands.may_unlock
        self.get_command = commands.get_command

        hubs = Hubs(store_engine)
        self.put_hub_party = hubs.put_hub_party
        self.replace_hub_parties = hubs.replace_hub_parties
        self.get_hub_party = hubs.get_hub_party
        self.list_hub_parties = hubs.list_hub_parties
        self.last_token_pull = hubs.last_token_pull
        self.record_token_pull = hubs.record_token_pull

        local_lists = LocalLists(store_engine)
        self.held_local_list = local_lists.held_local_list
        self.record_local_list = local_lists.record_local_list

        queue = OperatorCommands(store_engine)
        self.request_operator_command = queue.request_operator_command
        self.claim_operator_commands = queue.claim_operator_commands
        self.finish_operator_command = queue.finish_operator_command
        self.withdraw_operator_command = queue.withdraw_operator_command
        self.operator_command = queue.operator_command
        self.last_operator_command = queue.last_operator_command

        files = ChargerFiles(store_engine)
        self.record_file_status = files.record_file_status
        self.file_statuses = files.file_statuses
        self.last_file_status_id = files.last_file_status_id
        self.add_release = files.add_release
        self.get_release = files.get_release
        self.list_releases = files.list_releases
        self.issue_file_token = files.issue_file_token
        self.usable_file_token = files.usable_file_token
        self.use_file_token = files.use_file_token
        self.record_received_file = files.record_received_file
        self.received_files = files.received_files

        tokens_of_admins = AdminTokens(store_engine)
        self.create_admin_token = tokens_of_admins.create_admin_token
        self.list_admin_tokens = tokens_of_admins.list_admin_tokens
        self.revoke_admin_token = tokens_of_admins.revoke_admin_token
        self.admin_token_name = tokens_of_admins.admin_token_name

        events = ChargePointEvents(store_engine)
        self.record_charge_point_event = events.record_charge_point_event
        self.charge_point_events = events.charge_point_events
        self.latest_charge_point_events = events.latest_charge_point_events
        self.charge_point_event_history = events.charge_point_event_history

        fleet_security = FleetSecurity(store_engine)
        self.record_issued_certificate = fleet_security.record_issued_certificate
        self.record_certificate_answer = fleet_security.record_certificate_answer
        self.charger_certificates = fleet_security.charger_certificates
        self.current_certificate = fleet_security.current_certificate
        self.record_security_profile = fleet_security.record_security_profile
        self.replace_password = fleet_security.replace_password
        self.restore_password_hash = fleet_security.restore_password_hash
        self.password_hash = fleet_security.password_hash

        sites = Sites(store_engine)
        self.add_site = sites.add_site
        self.list_sites = sites.list_sites
        self.get_site = sites.get_site
        self.assign_site = sites.assign_site
        self.top_site_of = sites.top_site_of
        self.site_snapshot = sites.site_snapshot
        self.connector_rating = sites.connector_rating
        self.record_allocation = sites.record_allocation
        self.set_allocation_role = sites.set_allocation_role
        self.forget_allocations = sites.forget_allocations
        self.set_session_profile = sites.set_session_profile
        self.clear_session_profile = sites.clear_session_profile
        self.session_profile = sites.session_profile
        self.session_profiles = sites.session_profiles

        push_queue = PushQueue(store_engine)
        self.enqueue_push = push_queue.enqueue_push
        self.due_pushes = push_queue.due_pushes
        self.push_done = push_queue.push_done
        self.push_failed = push_queue.push_failed
        self.patch_refused = push_queue.patch_refused
        self.pushes = push_queue.pushes


# At most this many queued calls share one transaction: the first call of a group is
# answered only when the whole group has committed.
MAX_GROUP = 100
# Background work (:meth:`AsyncStore.background`) waits for a moment without requests, but
# not longer than this.
BACKGROUND_PATIENCE_S = 0.5
# A group that holds the database longer than this is logged at INFO (what it held, where
# its time went): the database side of slow answers, its own and those queued behind it.
SLOW_GROUP_S = 0.1


@dataclass
class _Call:
    run: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    background: bool = False
    queued_at: float = field(default_factory=time.monotonic)


class AsyncStore:
    """Runs ``Store`` methods on worker threads so the event loop never blocks on the DB.

    Group commit: a worker takes every call queued when it is free (up to ``MAX_GROUP``) and
    runs them in one database transaction, so a burst of requests costs one commit (one
    fsync) instead of one each. A call's caller hears its result only after that commit.
    Should a call's write be refused or a statement fail (which PostgreSQL answers by
    aborting the whole transaction), or the commit fail, the group is rolled back and each
    of its calls run again alone, so each gets its own outcome as if it had never been
    grouped (see ``store_engine``).

    Background work (:meth:`background`) runs in a transaction of its own when no request
    waits, so a request never shares a commit with it and waits at most for the one
    background call already running.

    SQLite gets one worker (one writer at a time is what it supports anyway); PostgreSQL a
    few, each committing its own groups.
    """

    def __init__(self, store: Store, workers: int | None = None) -> None:
        self.store = store
        if workers is None:
            workers = 1 if store.engine.dialect.name == "sqlite" else 4
        self._workers = workers
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def __call__(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._queued(partial(method, *args, **kwargs), background=False)

    async def background(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``method`` as work no charger or partner waits for: after the requests
        queued (up to ``BACKGROUND_PATIENCE_S`` late), alone in its transaction."""
        return await self._queued(partial(method, *args, **kwargs), background=True)

    async def _queued(self, run: Callable[[], T], background: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start_workers()
        self._queue.put(_Call(run, loop, future, background))
        return await future

    def close(self) -> None:
        """Finish the queued calls, then stop the workers."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _start_workers(self) -> None:
        if self._threads:
            return
        with self._lock:
            if self._threads:
                return
            for n in range(self._workers):
                thread = threading.Thread(target=self._work, name=f"csms-db_{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        deferred: collections.deque[_Call] = collections.deque()  # background calls taken
        stopping = False
        while not stopping or deferred:
            if deferred and (stopping or self._queue.empty() or time.monotonic()
                             - deferred[0].queued_at >= BACKGROUND_PATIENCE_S):
                call = deferred.popleft()
                _settle([call], self._run_group([call]))
                continue
            first = self._queue.get()
            if first is None:
                stopping = True
                continue
            calls = [first]
            while len(calls) < MAX_GROUP:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    self._queue.put(None)  # another worker's (or this one's next) stop
                    break
                calls.append(queued)
            requests: list[_Call] = []
            for call in calls:
                (deferred if call.background else requests).append(call)
            if requests:
                _settle(requests, self._run_group(requests))

    def _run_group(self, calls: list[_Call]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        try:
            started = time.monotonic()
            with self.store.store_engine.group() as group:
                slowest = (0.0, "")
                for call in calls:
                    call_started = time.monotonic()
                    try:
                        outcomes.append((True, group.run(call.run)))
                    except GroupBroken:
                        raise
                    except Exception as exc:  # it failed before touching the database
                        outcomes.append((False, exc))
                    took = time.monotonic() - call_started
                    if took > slowest[0]:
                        slowest = (took, _name_of(call.run))
                ran = time.monotonic()
                group.commit()
            done = time.monotonic()
            if done - started > SLOW_GROUP_S:
                log.info("csms.db_group_slow", calls=len(calls),
                            queued_ms=round((started - min(c.queued_at for c in calls)) * 1e3),
                            ran_ms=round((ran - started) * 1e3),
                            commit_ms=round((done - ran) * 1e3),
                            slowest_call=slowest[1], slowest_ms=round(slowest[0] * 1e3))
            return outcomes
        except GroupBroken as exc:
            # A call's write was refused or a statement failed: rolled back with the group.
            log.debug("csms.group_rerun", calls=len(calls), cause=repr(exc.__cause__)[:300])
        except Exception as exc:
            log.warning("csms.group_commit_failed", calls=len(calls), error=repr(exc)[:300])
        return [_run_alone(call) for call in calls]


_Outcome = tuple[bool, Any]  # (returned, the result or the exception raised)


def _name_of(run: Callable[[], Any]) -> str:
    method = run.func if isinstance(run, partial) else run
    return str(getattr(method, "__qualname__", repr(method)))


def _run_alone(call: _Call) -> _Outcome:
    try:
        return True, call.run()
    except Exception as exc:
        return False, exc


def _settle(calls: list[_Call], outcomes: list[_Outcome]) -> None:
    """Hand each caller its outcome: one wake-up per event loop for the whole group (waking
    a loop from another thread costs a write to its self-pipe, per call a tenth of the
    database thread's time at 1,000 chargers)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Call, _Outcome]]] = {}
    for call, outcome in zip(calls, outcomes, strict=True):
        by_loop.setdefault(call.loop, []).append((call, outcome))

    def deliver(settled: list[tuple[_Call, _Outcome]]) -> None:
        for call, (returned, value) in settled:
            if call.future.done():  # its caller was cancelled
                continue
            if returned:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)

    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed
            loop.call_soon_threadsafe(deliver, settled)
