"""Site load management at run time: re-allocates a site's current when something changes
there and sends each connector its new limit as an OCPP charging profile.

A charger's session starting or stopping, a connector's status turning Charging,
SuspendedEV or SuspendedEVSE, a vehicle starting or ceasing to draw less than it is offered,
a charger connecting, booting or going away: each asks for the charger's site to be
re-allocated (``charger_changed``). One re-allocation per site runs at a time, in the whole
cluster when several backend processes share the database, and requests made meanwhile are
served by one more run.

A run allocates (``load_management.allocate``), then sends SetChargingProfile only where the
profile changed: a TxProfile bound to the transaction (connectors with a session), and a
TxDefaultProfile on connector 0 (what a session starting there begins with). Reductions are
sent, and answered, before increases, so the site never overshoots in between. A connector
whose charger refuses a change (or does not answer) keeps counting at the limit it may still
apply; a refused reduction re-runs the allocation at once so the others make room.

An eMSP's profile on a session (OCPI chargingprofiles) is combined with the connector's
share: every period at most the share (``combined_schedule``).

The allocator counts a charger it cannot reach at its offline fallback; so that the charger
does fall to it, every charger of a site is told the site's fallback (the configuration key
``ChargerfwOfflineLimitA`` of chargerfw's firmware, by ChangeConfiguration) before the run
that first sends it a share, again after it boots or reconnects, and when the fallback
changes. A charger that refuses the key (another firmware) is logged, not retried until it
reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chargerfw.csms.background import BackgroundTasks
from chargerfw.csms.load_management import (
    Allocation,
    ConnectorKey,
    ConnectorLoad,
    LoadInputError,
    Role,
    SessionState,
    allocate,
    draws_less,
)
from chargerfw.csms.ocpp_server import ChargerCallError, ChargerNotConnected, OcppServer
from chargerfw.csms.store import AsyncStore, utcnow
from chargerfw.csms.store.sites import ConnectorSnapshot, SiteSnapshot
from chargerfw.logs import get_logger

log = get_logger(__name__)

# chargingProfileId of the backend's profiles: this plus the connector (0: TxDefault).
PROFILE_ID_BASE = 9100
# Converting an eMSP's limit in W to A per phase (the site counts every phase).
NOMINAL_VOLTAGE_V = 230.0
PHASES_COUNTED = 3
# Absolute schedules start this much before now, so a charger's clock a little behind ours
# does not see a profile that has not begun yet.
CLOCK_SLACK = timedelta(minutes=1)
# Re-allocation rounds after refused reductions before giving up until the next change.
MAX_ROUNDS = 5
STATES_THAT_REALLOCATE = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
# chargerfw's vendor configuration key for the offline fallback limit (A, one decimal).
OFFLINE_LIMIT_KEY = "ChargerfwOfflineLimitA"


def profile_id(connector_id: int) -> int:
    return PROFILE_ID_BASE + connector_id


def _period(start_period: int, limit_a: float) -> dict[str, Any]:
    return {"start_period": start_period, "limit": round(limit_a, 1)}


def _to_amps(value: float, unit: str) -> float:
    return value if unit == "A" else value / (NOMINAL_VOLTAGE_V * PHASES_COUNTED)


def combined_schedule(share_a: float, emsp: Mapping[str, Any] | None,
                      now: datetime) -> tuple[str, dict[str, Any], str | None]:
    """(chargingProfileKind, chargingSchedule, startSchedule) of a TxProfile giving at most
    ``share_a``: the share alone, or an eMSP's OCPI ChargingProfile with every period
    lowered to it, in A. Before the eMSP's start and after its duration the share applies."""
    if emsp is None:
        return "Relative", {"charging_rate_unit": "A",
                            "charging_schedule_period": [_period(0, share_a)]}, None
    unit = str(emsp["charging_rate_unit"])
    periods = [(int(p["start_period"]), min(_to_amps(float(p["limit"]), unit), share_a))
               for p in emsp["charging_profile_period"]]
    start = emsp.get("start_date_time")
    offset = 0
    if start is not None:
        begins = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        schedule_start = min(begins, now - CLOCK_SLACK)
        offset = int((begins - schedule_start).total_seconds())
    result = [_period(0, share_a)] if offset > 0 or (periods and periods[0][0] > 0) else []
    result += [_period(offset + begin, limit) for begin, limit in periods]
    if emsp.get("duration") is not None:
        end = offset + int(emsp["duration"])
        result = [p for p in result if p["start_period"] < end] + [_period(end, share_a)]
    schedule: dict[str, Any] = {"charging_rate_unit": "A", "charging_schedule_period": result}
    if emsp.get("min_charging_rate") is not None:
        schedule["min_charging_rate"] = round(
            min(_to_amps(float(emsp["min_charging_rate"]), unit), share_a), 1)
    if start is None:
        return "Relative", schedule, None
    return "Absolute", schedule, schedule_start.strftime("%Y-%m-%dT%H:%M:%SZ")


def charging_profile(connector_id: int, stack_level: int, transaction_id: int | None,
                     kind: str, schedule: dict[str, Any],
                     start_schedule: str | None) -> dict[str, Any]:
    """An OCPP 1.6 csChargingProfiles: a TxProfile bound to the transaction, or without one
    the TxDefaultProfile (connector 0: every connector of the charger)."""
    profile: dict[str, Any] = {
        "charging_profile_id": profile_id(connector_id), "stack_level": stack_level,
        "charging_profile_purpose": "TxProfile" if transaction_id is not None
        else "TxDefaultProfile",
        "charging_profile_kind": kind, "charging_schedule": dict(schedule)}
    if transaction_id is not None:
        profile["transaction_id"] = transaction_id
    if start_schedule is not None:
        profile["charging_schedule"]["start_schedule"] = start_schedule
    return profile


@dataclass(frozen=True)
class _Send:
    """One SetChargingProfile to make, and what to record once it is accepted."""

    charge_point_id: str
    connector_id: int  # 0: the TxDefaultProfile
    limit_a: float
    old_a: float | None  # what the connector(s) may draw now (None: unknown)
    max_a: float  # the most they can draw whatever they were given
    role: str
    transaction_id: int | None
    profile: dict[str, Any]
    # Connectors of the charger the TxDefaultProfile speaks for: (connector, its share).
    idle: tuple[tuple[int, float], ...] = ()

    @property
    def lowers(self) -> bool:
        return self.old_a is None or self.limit_a < self.old_a

    @property
    def keys(self) -> list[ConnectorKey]:
        if self.connector_id:
            return [ConnectorKey(self.charge_point_id, self.connector_id)]
        return [ConnectorKey(self.charge_point_id, n) for n, _ in self.idle]


def _state(conn: ConnectorSnapshot) -> SessionState:
    if conn.transaction_id is None:
        return SessionState.IDLE
    if conn.status == "SuspendedEV":
        return SessionState.SUSPENDED_EV
    return SessionState.CHARGING


# Holds a named lock for the whole cluster (``Cluster.exclusive``).
Exclusive = Callable[[str], contextlib.AbstractAsyncContextManager[None]]


def _this_process_only(_name: str) -> contextlib.AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


class SiteBalancer:
    """Keeps every site's chargers within the site's current."""

    def __init__(self, db: AsyncStore, ocpp: OcppServer,
                 exclusive: Exclusive = _this_process_only) -> None:
        self._db = db
        self._ocpp = ocpp
        # Two processes sharing out one site from two snapshots could together give more
        # than the site has: a site's runs hold a lock of the whole cluster.
        self._exclusive = exclusive
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: set[str] = set()  # sites with a run queued behind the current one
        self._tasks = BackgroundTasks()
        # Limits a charger would not change: (charge point, connector) -> (A, transaction).
        self._pinned: dict[ConnectorKey, tuple[float, int | None]] = {}
        self._offered: dict[ConnectorKey, float] = {}
        self._drawing_less: dict[ConnectorKey, bool] = {}
        # The offline fallback each charger was told (or refused): charge point -> A.
        self._fallback_told: dict[str, float] = {}
        ocpp.load_listener = self

    async def close(self) -> None:
        await self._tasks.close()

    async def settled(self) -> None:
        """Wait until no re-allocation runs or is queued."""
        await self._tasks.settled()

    def is_pinned(self, key: ConnectorKey) -> bool:
        """Whether the connector's charger refused (or left unanswered) its last change."""
        return key in self._pinned

    # -- what the OCPP server tells it --

    def charger_changed(self, charge_point_id: str) -> None:
        self._spawn(self._rebalance_charger(charge_point_id))

    def charger_booted(self, charge_point_id: str) -> None:
        """A (re)booted charger gets every profile again."""
        self._forget(charge_point_id)

        async def resend() -> None:
            await self._db(self._db.store.forget_allocations, charge_point_id)
            await self._rebalance_charger(charge_point_id)

        self._spawn(resend())

    def charger_connected(self, charge_point_id: str) -> None:
        self._forget(charge_point_id)
        self.charger_changed(charge_point_id)

    def status_changed(self, charge_point_id: str, connector_id: int, status: str) -> None:
        if connector_id > 0 and status in STATES_THAT_REALLOCATE:
            self.charger_changed(charge_point_id)

    def current_measured(self, charge_point_id: str, connector_id: int,
                         drawn_a: float) -> None:
        """A vehicle's measured current: re-allocate when it starts or stops drawing less
        than it is offered."""
        key = ConnectorKey(charge_point_id, connector_id)
        offered = self._offered.get(key)
        if offered is None:
            return
        less = draws_less(drawn_a, offered)
        if self._drawing_less.get(key, False) != less:
            self._drawing_less[key] = less
            self.charger_changed(charge_point_id)

    def _forget(self, charge_point_id: str) -> None:
        self._fallback_told.pop(charge_point_id, None)
        for key in [k for k in self._pinned if k.charge_point_id == charge_point_id]:
            del self._pinned[key]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(work, "site-rebalance", "csms.load.rebalance_crashed")

    async def _rebalance_charger(self, charge_point_id: str) -> None:
        site_id = await self._db(self._db.store.top_site_of, charge_point_id)
        if site_id is not None:
            await self.rebalance(site_id, coalesce=True)

    # -- a run --

    async def rebalance(self, site_id: str, coalesce: bool = False) -> dict[ConnectorKey, str]:
        """Re-allocate the site and send what changed; returns the charger's answer (or
        the error) per connector sent to. With ``coalesce`` a run already queued for the
        site serves this request too."""
        lock = self._locks.setdefault(site_id, asyncio.Lock())
        if coalesce and site_id in self._waiting:
            return {}
        self._waiting.add(site_id)
        async with lock, self._exclusive(f"site-allocation:{site_id}"):
            self._waiting.discard(site_id)
            answers: dict[ConnectorKey, str] = {}
            for _ in range(MAX_ROUNDS):
                refused = await self._round(site_id, answers)
                if not refused:
                    break
            return answers

    async def _round(self, site_id: str, answers: dict[ConnectorKey, str]) -> bool:
        """One allocation and its sends; True when a reduction was refused (the others
        must make room: run again)."""
        store = self._db.store
        snap = await self._db(store.site_snapshot, site_id)
        running = [c.transaction_id for c in snap.connectors if c.transaction_id is not None]
        emsp = await self._db(store.session_profiles, running) if running else {}
        self._unpin_ended(snap)
        # Connected to any backend process (a charger's process may not be this one).
        online = {cp_id for cp_id in {c.charge_point_id for c in snap.connectors}
                  if await self._ocpp.is_connected(cp_id)}
        await self._tell_fallbacks(snap, online)
        loads = [self._load(conn, online) for conn in snap.connectors]
        try:
            allocation = allocate(float(snap.site["max_current_a"]), loads,
                                  snap.feeder_limits)
        except LoadInputError as exc:
            log.error("csms.load.bad_site", site=site_id, error=str(exc))
            return False
        if allocation.overcommitted:
            log.warning("csms.load.overcommitted", site=site_id,
                        phase_load_a=list(allocation.phase_load_a))
        sends = self._sends(snap, allocation, emsp)
        await self._record_roles(snap, allocation)
        refused = False
        for lowering in (True, False):
            batch = [s for s in sends if s.lowers == lowering]
            results = await asyncio.gather(*(self._send(s) for s in batch))
            for send, answer in zip(batch, results, strict=True):
                for key in send.keys or [ConnectorKey(send.charge_point_id, 0)]:
                    answers[key] = answer
                if answer != "Accepted" and lowering:
                    refused = True
            if refused:
                return True
        log.info("csms.load.allocated", site=site_id, sent=len(sends),
                 queued=[str(k) for k in allocation.queue],
                 phase_load_a=list(allocation.phase_load_a))
        return False

    async def _tell_fallbacks(self, snap: SiteSnapshot, online: set[str]) -> None:
        """ChangeConfiguration of the offline fallback, to each connected charger of the site
        not told its site's yet."""
        wanted = {c.charge_point_id: c.fallback_a for c in snap.connectors}
        todo = [(cp_id, amps) for cp_id, amps in sorted(wanted.items())
                if cp_id in online and self._fallback_told.get(cp_id) != amps]
        await asyncio.gather(*(self._tell_fallback(cp_id, amps) for cp_id, amps in todo))

    async def _tell_fallback(self, charge_point_id: str, amps: float) -> None:
        value = f"{math.floor(amps * 10 + 1e-6) / 10:g}"  # the key's resolution: 0.1 A
        try:
            answer = await self._ocpp.change_configuration(charge_point_id, OFFLINE_LIMIT_KEY,
                                                           value)
        except (TimeoutError, ChargerNotConnected, ChargerCallError) as exc:
            log.warning("csms.load.fallback_not_set", charge_point=charge_point_id,
                        fallback_a=amps, error=str(exc) or type(exc).__name__)
            return  # asked again at the next run
        if answer in ("Accepted", "RebootRequired"):
            log.info("csms.load.fallback_set", charge_point=charge_point_id, fallback_a=amps)
        else:
            log.warning("csms.load.fallback_refused", charge_point=charge_point_id,
                        fallback_a=amps, answer=answer)
        self._fallback_told[charge_point_id] = amps

    def _unpin_ended(self, snap: SiteSnapshot) -> None:
        running = {ConnectorKey(c.charge_point_id, c.connector_id): c.transaction_id
                   for c in snap.connectors}
        for key, (_, tx) in list(self._pinned.items()):
            if running.get(key) != tx:
                del self._pinned[key]

    def _load(self, conn: ConnectorSnapshot, online: set[str]) -> ConnectorLoad:
        key = ConnectorKey(conn.charge_point_id, conn.connector_id)
        given = conn.allocation
        offered = float(given["limit_a"]) if given is not None else None
        pinned = self._pinned.get(key)
        return ConnectorLoad(
            key, _state(conn), conn.max_a, started_at=conn.started_at, drawn_a=conn.drawn_a,
            offered_a=offered, offline=conn.charge_point_id not in online,
            fallback_a=conn.fallback_a, pinned_a=pinned[0] if pinned else None,
            feeders=conn.feeders)

    def _sends(self, snap: SiteSnapshot, allocation: Allocation,
               emsp: Mapping[int, dict[str, Any]]) -> list[_Send]:
        stack_level = int(snap.site["stack_level"])
        now = utcnow()
        sends = []
        idle: dict[str, list[tuple[int, float]]] = {}
        rated: dict[str, float] = {}
        for conn, entry in zip(snap.connectors, allocation.limits, strict=True):
            if entry.role in (Role.OFFLINE, Role.PINNED):
                continue
            given = conn.allocation
            if conn.transaction_id is None:
                idle.setdefault(conn.charge_point_id, []).append((conn.connector_id,
                                                                  entry.limit_a))
                rated[conn.charge_point_id] = max(rated.get(conn.charge_point_id, 0.0),
                                                  conn.max_a)
                continue
            kind, schedule, start = combined_schedule(entry.limit_a,
                                                      emsp.get(conn.transaction_id), now)
            profile = charging_profile(conn.connector_id, stack_level, conn.transaction_id,
                                       kind, schedule, start)
            same_session = given is not None and given["transaction_id"] == conn.transaction_id
            if same_session and given is not None and given["schedule"] == profile:
                continue
            # A session new to us runs on the charger's TxDefaultProfile until its TxProfile.
            now_given = given if same_session else snap.defaults.get(conn.charge_point_id)
            sends.append(_Send(conn.charge_point_id, conn.connector_id, entry.limit_a,
                               float(now_given["limit_a"]) if now_given is not None else None,
                               conn.max_a, entry.role.value, conn.transaction_id, profile))
        for cp_id, shares in idle.items():
            limit = min(share for _, share in shares)
            kind, schedule, start = combined_schedule(limit, None, now)
            profile = charging_profile(0, stack_level, None, kind, schedule, start)
            given = snap.defaults.get(cp_id)
            if given is not None and given["schedule"] == profile:
                continue
            sends.append(_Send(cp_id, 0, limit,
                               float(given["limit_a"]) if given is not None else None,
                               rated[cp_id], Role.IDLE.value, None, profile, tuple(shares)))
        return sends

    async def _record_roles(self, snap: SiteSnapshot, allocation: Allocation) -> None:
        for conn, entry in zip(snap.connectors, allocation.limits, strict=True):
            given = conn.allocation
            if given is not None and given["role"] != entry.role.value:
                await self._db(self._db.store.set_allocation_role, conn.charge_point_id,
                               conn.connector_id, entry.role.value)

    async def _send(self, send: _Send) -> str:
        """SetChargingProfile; on acceptance the limit is recorded, otherwise the connector
        is pinned at what it may still apply."""
        store = self._db.store
        try:
            answer = await self._ocpp.set_charging_profile(
                send.charge_point_id, send.connector_id, send.profile)
        except TimeoutError:
            answer = "Timeout"
        except (ChargerNotConnected, ChargerCallError) as exc:
            answer = f"Failed: {exc}"
        if answer == "Accepted":
            await self._db(store.record_allocation, send.charge_point_id, send.connector_id,
                           send.limit_a, send.role, profile_id(send.connector_id),
                           send.transaction_id, send.profile)
            for connector_id, share in send.idle:
                await self._db(store.record_allocation, send.charge_point_id, connector_id,
                               share, Role.IDLE.value, profile_id(0), None, send.profile)
            if send.connector_id:
                self._offered[ConnectorKey(send.charge_point_id, send.connector_id)] = \
                    send.limit_a
            return answer
        log.warning("csms.load.profile_refused", charge_point=send.charge_point_id,
                    connector=send.connector_id, limit_a=send.limit_a, old_a=send.old_a,
                    answer=answer)
        # A refused change leaves the old limit (unknown: all the connector carries); one
        # left unanswered may have been applied.
        old = send.max_a if send.old_a is None else send.old_a
        worst = old if answer != "Timeout" else max(old, send.limit_a)
        for key in send.keys:
            self._pinned[key] = (worst, send.transaction_id if send.connector_id else None)
        return answer
