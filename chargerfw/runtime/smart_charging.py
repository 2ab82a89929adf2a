"""Smart Charging at run time: the installed charging profiles, kept in the store, turned into
each connector's current limit.

The decisions are :mod:`chargerfw.station.charging_profiles`'s; what is left here is what only
the runtime knows and does: the clock, each connector's transaction and measured voltage, the
backend link's state, persisting every change, and feeding the result to the station core as
``CurrentLimitChanged(LimitSource.SMART_CHARGING, amps)``, which the connector machine turns
into the PWM duty (below 6 A: SuspendedEVSE, contactor open; the thermal limit and this one
combine as the minimum).

The limits are evaluated when a profile is installed or cleared, when a transaction starts or
ends, at the schedule's next change, and at least every second (the offline fallback, a W
limit following the measured voltage), so the PWM follows a schedule within a second.

A lower limit reaches the over-current interlock through the pilot's offered current; it judges
the draw against the previous limit for ``OverCurrentSettings.follow_time_s`` (5 s), the time
IEC 61851-1's change-of-duty sequence gives the vehicle to follow (the figure open chargers use;
no copy of the standard was at hand to confirm it, so it stays a setting, see ``metering.py``).

Offline fallback (the keys ``ChargerfwOfflineLimitA`` / ``ChargerfwOfflineAfterS``, whose
defaults are ``[smart_charging] offline_limit_a`` / ``offline_after_s``): once the backend has
been unreachable for that long, min(composite, the limit) applies until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chargerfw.config import StationConfig
from chargerfw.config.ocpp_keys import OFFLINE_AFTER_KEY, OFFLINE_LIMIT_KEY
from chargerfw.drivers.types import MeterSample
from chargerfw.logs import get_logger
from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.runtime.core import CoreRunner
from chargerfw.station import charging_profiles as cp
from chargerfw.station import connector as cn
from chargerfw.station.station import ConnectorEvent, StationState
from chargerfw.store import Store

log = get_logger(__name__)

# A W limit follows the measured voltage; rounding keeps the PWM from twitching with it.
LIMIT_RESOLUTION_A = 0.1
EVALUATE_EVERY_S = 1.0
UNITS = {"Current": cp.ChargingRateUnit.AMPS, "Power": cp.ChargingRateUnit.WATTS}


@dataclass(frozen=True, slots=True)
class AppliedLimit:
    """What Smart Charging gives a connector now, and why."""

    limit_a: float | None  # None: nothing limits it here
    profile: cp.ConnectorLimit
    offline_fallback: bool  # the offline limit is what binds


def profile_limits(keys: ConfigurationKeys) -> cp.ProfileLimits:
    """The SmartCharging keys as the bounds a profile must meet."""
    return cp.ProfileLimits(
        max_stack_level=keys.get_int("ChargeProfileMaxStackLevel"),
        max_periods=keys.get_int("ChargingScheduleMaxPeriods"),
        max_installed=keys.get_int("MaxChargingProfilesInstalled"),
        allowed_units=frozenset(UNITS[u] for u in
                                keys.get_list("ChargingScheduleAllowedChargingRateUnit")),
    )


class SmartCharging:
    """The station's charging profiles and the limits they set; one per station."""

    def __init__(self, core: CoreRunner, config: StationConfig, store: Store,
                 keys: ConfigurationKeys, *, is_online: Callable[[], bool],
                 emit: Callable[..., None],
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._core = core
        self._config = config
        self._store = store
        self._keys = keys
        self._is_online = is_online
        self._emit = emit
        self._clock = clock
        self._monotonic = monotonic
        self._offline_since: float | None = None if is_online() else monotonic()
        self._awaiting_since: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._next_change: datetime | None = None
        self._next_change_key: object = None
        self.applied: dict[int, AppliedLimit] = {}
        # A restart ended every transaction (PowerLoss), and with it its TxProfiles.
        installed = store.charging_profiles()
        self.installed = tuple(i for i in installed
                               if i.profile.purpose is not cp.ChargingProfilePurpose.TX)
        if len(self.installed) != len(installed):
            store.charging_profiles_replace(
                [i for i in installed if i not in self.installed])
        core.state_listeners.append(self._on_state_change)

    # -- what the backend asks --------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def context(self, now: datetime | None = None) -> cp.StationContext:
        """The composite's view of the connectors now."""
        now = self.now() if now is None else now
        connectors = []
        for c in self._core.state.connectors:
            controller = self._core.controllers[c.connector_id]
            tx = controller.transaction
            started = None
            if c.phase is cn.TxPhase.RUNNING:
                started = datetime.fromtimestamp(tx.started_at, UTC) if tx is not None else now
            connectors.append(cp.ConnectorContext(
                c.connector_id, c.settings.max_current_a, controller.section.phases,
                _voltage(controller.fresh_sample()),
                tx.backend_tx_id if tx is not None else None, started))
        return cp.StationContext(tuple(connectors), self._config.smart_charging.time_zone)

    def set_profile(self, connector_id: int, profile: cp.ChargingProfile) -> None:
        """SetChargingProfile; raises ProfileRejected (nothing changed)."""
        self._install(connector_id, profile, awaiting_start=False)

    def check_remote_start_profile(self, connector_id: int | None,
                                   profile: cp.ChargingProfile) -> None:
        """Whether a RemoteStartTransaction's profile could be installed (raises
        ProfileRejected), before the start is accepted."""
        cid = connector_id if connector_id is not None else self._core.state.connector_ids[0]
        cp.install(self.installed, cid, profile, self.context(), profile_limits(self._keys),
                   awaiting_start=True)

    def remote_start_profile(self, connector_id: int, profile: cp.ChargingProfile) -> None:
        """The TxProfile of an accepted RemoteStartTransaction, for the transaction that is
        about to start on ``connector_id`` (or that started at once: the vehicle was plugged
        in and no Authorize was needed)."""
        if self._core.state.connector(connector_id).phase is cn.TxPhase.RUNNING:
            self._install(connector_id, profile, awaiting_start=False)
            return
        self._install(connector_id, profile, awaiting_start=True)
        self._awaiting_since[connector_id] = self._monotonic()

    def _install(self, connector_id: int, profile: cp.ChargingProfile, *,
                 awaiting_start: bool) -> None:
        installed, gone = cp.install(self.installed, connector_id, profile, self.context(),
                                     profile_limits(self._keys), awaiting_start=awaiting_start)
        self._store.charging_profiles_replace(gone, [installed[-1]])
        self.installed = installed
        self._emit("smart_charging.profile_set", connector=connector_id,
                   profile_id=profile.profile_id, purpose=profile.purpose.value,
                   stack_level=profile.stack_level, replaced=[i.profile.profile_id for i in gone])
        self.evaluate()

    def clear(self, criteria: cp.ClearCriteria) -> bool:
        """ClearChargingProfile; False: no profile matched (Unknown)."""
        kept, gone = cp.clear(self.installed, criteria)
        if not gone:
            return False
        self._store.charging_profiles_replace(gone)
        self.installed = kept
        self._emit("smart_charging.profile_cleared",
                   profile_ids=[i.profile.profile_id for i in gone])
        self.evaluate()
        return True

    def composite(self, connector_id: int, duration_s: int,
                  unit: cp.ChargingRateUnit | None) -> cp.CompositeSchedule:
        """GetCompositeSchedule from now; raises ProfileRejected for an unknown connector."""
        now = self.now()
        if unit is None:
            unit = cp.ChargingRateUnit.AMPS
        return cp.composite_schedule(self.installed, self.context(now), connector_id, now,
                                     duration_s, unit)

    # -- evaluation -------------------------------------------------------------------------

    def offline_fallback_a(self) -> float | None:
        """The offline limit, if the backend has been away long enough for it to apply (the
        keys ChargerfwOfflineLimitA / ChargerfwOfflineAfterS, defaults from the config)."""
        limit = self._keys.raw(OFFLINE_LIMIT_KEY)
        if not limit or self._offline_since is None:
            return None
        if self._monotonic() - self._offline_since < self._keys.get_int(OFFLINE_AFTER_KEY):
            return None
        return float(limit)

    def _follow_link(self) -> None:
        online = self._is_online()
        if online and self._offline_since is not None:
            self._offline_since = None
        elif not online and self._offline_since is None:
            self._offline_since = self._monotonic()

    def evaluate(self) -> None:
        """Each connector's limit now, given to the core where it changed."""
        self._follow_link()
        self._drop_stale_awaiting()
        now = self.now()
        context = self.context(now)
        limits = cp.connector_limits(self.installed, context, now)
        fallback = self.offline_fallback_a()
        for c in self._core.state.connectors:
            cid = c.connector_id
            limit = limits[cid]
            value = limit.limit_a
            binding_fallback = fallback is not None and (value is None or fallback < value)
            if binding_fallback:
                value = fallback
            if value is not None:
                value = round(round(value / LIMIT_RESOLUTION_A) * LIMIT_RESOLUTION_A, 1)
            self.applied[cid] = AppliedLimit(value, limit, binding_fallback)
            if value != c.limit(cn.LimitSource.SMART_CHARGING):
                log.info("smart_charging.limit", connector=cid, limit_a=value,
                         source=limit.source.value, profile_id=limit.profile_id,
                         offline_fallback=binding_fallback)
                self._core.apply(ConnectorEvent(
                    cid, cn.CurrentLimitChanged(cn.LimitSource.SMART_CHARGING, value)))
        key = (self.installed, tuple((c.connector_id, c.transaction_id,
                                      c.transaction_started_at) for c in context.connectors))
        if key != self._next_change_key or (self._next_change is not None
                                            and self._next_change <= now):
            self._next_change_key = key
            self._next_change = cp.next_change(self.installed, context, now)

    def _drop_stale_awaiting(self) -> None:
        """A RemoteStart's profile whose transaction never came (authorization refused, the
        vehicle never plugged in) goes after ConnectionTimeOut."""
        timeout = self._keys.get_int("ConnectionTimeOut")
        for cid, since in list(self._awaiting_since.items()):
            phase = self._core.state.connector(cid).phase
            if phase is cn.TxPhase.IDLE and self._monotonic() - since > timeout:
                self._drop_awaiting(cid)

    def _drop_awaiting(self, connector_id: int) -> None:
        self._awaiting_since.pop(connector_id, None)
        gone = tuple(i for i in self.installed if i.connector_id == connector_id
                     and i.awaiting_start)
        if gone:
            self._store.charging_profiles_replace(gone)
            self.installed = tuple(i for i in self.installed if i not in gone)
            self._emit("smart_charging.profile_dropped", connector=connector_id,
                       profile_ids=[i.profile.profile_id for i in gone])

    def _on_state_change(self, before: StationState, after: StationState) -> None:
        """A transaction started (a RemoteStart's profile binds to it) or ended (its
        TxProfiles go): persist, and evaluate again."""
        changed = False
        for c in after.connectors:
            cid = c.connector_id
            was = before.connector(cid).phase
            if was is c.phase:
                continue
            if c.phase is cn.TxPhase.RUNNING:
                self._awaiting_since.pop(cid, None)
                bound = cp.bind_awaiting(self.installed, cid)
                if bound != self.installed:
                    self._store.charging_profiles_replace(
                        (), [i for i in bound if i not in self.installed])
                    self.installed = bound
                changed = True
            elif was is cn.TxPhase.RUNNING:
                kept, gone = cp.without_transaction_profiles(self.installed, cid)
                if gone:
                    self._store.charging_profiles_replace(gone)
                    self.installed = kept
                changed = True
            elif was is cn.TxPhase.AUTHORIZED:  # the authorization lapsed: no transaction
                self._drop_awaiting(cid)
        if changed:
            self._wake.set()

    async def run(self) -> None:
        """Evaluate for the life of the station: at the next change, on a wake, every second."""
        while True:
            self._wake.clear()
            try:
                self.evaluate()
            except Exception:  # a bug here must not stop the station; the last limit holds
                log.exception("smart_charging.evaluate_failed")
            delay = EVALUATE_EVERY_S
            if self._next_change is not None:
                delay = min(delay, max(0.0, (self._next_change - self.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    # -- what the status command shows --------------------------------------------------------

    def snapshot(self, connector_id: int) -> dict[str, Any]:
        """A connector's limit and where it comes from (see :func:`limit_source`)."""
        state = self._core.state.connector(connector_id)
        applied = self.applied.get(connector_id)
        source, detail = limit_source(state, applied)
        return {
            "source": source,
            "detail": detail,
            "smart_charging_a": state.limit(cn.LimitSource.SMART_CHARGING),
            "thermal_a": state.limit(cn.LimitSource.THERMAL),
            "hardware_max_a": state.settings.max_current_a,
            "offline_fallback": applied.offline_fallback if applied else False,
        }

    def profiles_snapshot(self) -> list[dict[str, Any]]:
        return [{"connector_id": i.connector_id, "awaiting_start": i.awaiting_start,
                 **cp.profile_to_wire(i.profile)} for i in self.installed]


def limit_source(state: cn.ConnectorState, applied: AppliedLimit | None
                 ) -> tuple[str, str]:
    """Which source sets a connector's offered current now: ``hardware_max``, ``thermal``,
    ``offline_fallback``, ``profile`` (TxProfile/TxDefaultProfile), ``charge_point_max`` or
    ``local``; and a human detail (the profile's id and purpose)."""
    offered = cn.offered_current_a(state)
    if offered >= state.settings.max_current_a and not state.limits:
        return "hardware_max", f"{state.settings.max_current_a:g} A rating"
    for source, limit in state.limits:
        if limit != offered:
            continue
        if source is cn.LimitSource.SMART_CHARGING and applied is not None:
            if applied.offline_fallback:
                return "offline_fallback", "backend unreachable"
            p = applied.profile
            if p.profile_id is not None and p.purpose is not None:
                return p.source.value, f"profile {p.profile_id} ({p.purpose.value})"
        return source.value, ""
    return "hardware_max", f"{state.settings.max_current_a:g} A rating"


def _voltage(sample: MeterSample | None) -> float | None:
    """The mean of the phase voltages a fresh sample has (None: no fresh sample)."""
    return None if sample is None else sample.mean_voltage_v()
