"""OCPP 1.6 Smart Charging, pure: charging profiles, their validation, installing and clearing
them, and the composite limit each connector may offer at a given time.

No I/O and no clock: times are timezone-aware datetimes passed in, and the station's time zone
(:class:`StationContext.time_zone`) is where Recurring schedules repeat at the same wall-clock
time (a Daily profile that starts at 22:00 keeps starting at 22:00 across a DST change).

The rules (OCPP 1.6 sections 3.13, 5.5, 5.16, 6.43, 7.7-7.14):

* A profile is installed on connector 0 (the whole charge point) or one connector.
  ChargePointMaxProfile only on connector 0; TxProfile only on a connector with an active
  transaction (and, if it names a transactionId, that transaction); TxDefaultProfile on either.
* Installing a profile replaces the one with the same chargingProfileId, and the one on the same
  connector with the same stackLevel and purpose.
* ClearChargingProfile by id (the other criteria are then ignored), or by every combination of
  connector, purpose and stack level given (none given: every profile).
* Per purpose, the profile with the highest stackLevel whose schedule covers the instant wins
  (validFrom/validTo, the schedule's start and duration); when it ends, the next lower applies.
  On a connector, TxDefaultProfiles on connector 0 and on the connector form one stack (the
  connector's own wins a tie); a TxProfile, while one applies, overrides the TxDefault stack.
* ChargePointMaxProfile caps the sum of every connector. How the cap is shared: among the
  connectors that have a transaction (the others draw nothing), max-min fair: each gets an equal
  share, and a connector whose own limit is below its share leaves the rest to the others. A
  connector without a transaction is shown what it would get if it started now.
* Limits in W become A per connector: W / (voltage × phases), with the connector's measured
  voltage (230 V when unknown) and the phases the connector delivers. numberPhases cannot be
  enforced (the board has no phase switch, ConnectorSwitch3to1PhaseSupported is false), so a
  lower numberPhases does not raise the current: dividing by every wired phase keeps the power
  at or below the limit whatever the vehicle draws on.
* minChargingRate: a limit above zero but below the vehicle's minimum rate offers nothing (the
  vehicle could not use it; the connector shows SuspendedEVSE).
* Relative schedules (and Absolute ones without startSchedule) start when the transaction
  started; without a transaction, now.

:func:`composite_schedule` is GetCompositeSchedule; :func:`next_change` is when a connector's
limit may change next, for the runtime's timer.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

DEFAULT_VOLTAGE_V = 230.0
DEFAULT_PHASES = 3
CHARGE_POINT = 0
# How far ahead the next change of a limit is looked for; the runtime re-evaluates then anyway.
NEXT_CHANGE_HORIZON = timedelta(days=8)

E = TypeVar("E", bound=enum.StrEnum)


class ChargingProfilePurpose(enum.StrEnum):
    CHARGE_POINT_MAX = "ChargePointMaxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class ChargingProfileKind(enum.StrEnum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class RecurrencyKind(enum.StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"


class ChargingRateUnit(enum.StrEnum):
    AMPS = "A"
    WATTS = "W"


class ProfileRejected(ValueError):
    """A profile (or a request about one) refused; the message says which rule it breaks."""


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start_period: int  # seconds from the schedule's start
    limit: float  # in the schedule's unit
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    charging_rate_unit: ChargingRateUnit
    periods: tuple[SchedulePeriod, ...]
    duration: int | None = None  # seconds; None: the last period lasts
    start_schedule: datetime | None = None
    min_charging_rate: float | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    profile_id: int
    stack_level: int
    purpose: ChargingProfilePurpose
    kind: ChargingProfileKind
    schedule: ChargingSchedule
    recurrency_kind: RecurrencyKind | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | None = None


@dataclass(frozen=True, slots=True)
class InstalledProfile:
    """A profile on a connector (0: the charge point). ``awaiting_start``: a TxProfile that came
    with RemoteStartTransaction, for the transaction that is about to start there."""

    connector_id: int
    profile: ChargingProfile
    awaiting_start: bool = False


@dataclass(frozen=True, slots=True)
class ProfileLimits:
    """The SmartCharging configuration keys that bound what may be installed."""

    max_stack_level: int = 10  # ChargeProfileMaxStackLevel
    max_periods: int = 24  # ChargingScheduleMaxPeriods
    max_installed: int = 20  # MaxChargingProfilesInstalled
    allowed_units: frozenset[ChargingRateUnit] = frozenset(ChargingRateUnit)


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the composite needs to know of one connector now."""

    connector_id: int
    max_current_a: float  # the hardware's rating
    phases: int = DEFAULT_PHASES
    voltage_v: float | None = None  # measured; None: DEFAULT_VOLTAGE_V
    transaction_id: int | None = None  # the backend's id, once StartTransaction.conf came
    transaction_started_at: datetime | None = None  # set while a transaction runs
    # Where Relative schedules start without a transaction (GetCompositeSchedule: its start);
    # None: the instant asked about.
    schedule_origin: datetime | None = None

    @property
    def in_transaction(self) -> bool:
        return self.transaction_started_at is not None

    def volts(self) -> float:
        v = self.voltage_v
        return v if v is not None and v > 0 and math.isfinite(v) else DEFAULT_VOLTAGE_V

    def watts_per_amp(self) -> float:
        return self.volts() * self.phases


@dataclass(frozen=True, slots=True)
class StationContext:
    connectors: tuple[ConnectorContext, ...]
    time_zone: str = "UTC"  # IANA name: where Recurring schedules repeat

    def connector(self, connector_id: int) -> ConnectorContext:
        for c in self.connectors:
            if c.connector_id == connector_id:
                return c
        raise KeyError(f"no connector {connector_id}")

    def has(self, connector_id: int) -> bool:
        return any(c.connector_id == connector_id for c in self.connectors)


class LimitSource(enum.StrEnum):
    """What sets a connector's smart-charging limit."""

    NONE = "none"  # no profile applies: the hardware's rating
    PROFILE = "profile"  # a TxProfile or TxDefaultProfile
    CHARGE_POINT_MAX = "charge_point_max"  # its share of the ChargePointMaxProfile


@dataclass(frozen=True, slots=True)
class ConnectorLimit:
    """A connector's smart-charging limit at an instant, and where it comes from."""

    connector_id: int
    limit_a: float | None  # None: no profile limits this connector
    source: LimitSource = LimitSource.NONE
    profile_id: int | None = None
    purpose: ChargingProfilePurpose | None = None


# ---- wire form (the ocpp library's snake_case dicts) -----------------------------------------


def _datetime(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ProfileRejected(f"{name}: expected a date-time string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ProfileRejected(f"{name}: not an ISO 8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        raise ProfileRejected(f"{name}: needs a time zone (Z or an offset): {value!r}")
    return parsed


def _optional_datetime(value: object, name: str) -> datetime | None:
    return None if value is None else _datetime(value, name)


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileRejected(f"{name}: expected an integer, got {value!r}")
    return value


def _number(value: object, name: str) -> float:
    # Decimal: the ocpp library parses SetChargingProfile and RemoteStartTransaction so.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) \
            or not math.isfinite(value):
        raise ProfileRejected(f"{name}: expected a number, got {value!r}")
    return float(value)


def _enum(kind: type[E], value: object, name: str) -> E:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise ProfileRejected(f"{name}: {value!r} is not one of {choices}") from None


def profile_from_wire(data: Mapping[str, Any]) -> ChargingProfile:
    """A csChargingProfiles object as the ocpp library hands it over (snake_case keys)."""
    if not isinstance(data, Mapping):
        raise ProfileRejected("chargingProfile: expected an object")
    schedule = data.get("charging_schedule")
    if not isinstance(schedule, Mapping):
        raise ProfileRejected("chargingSchedule: missing")
    raw_periods = schedule.get("charging_schedule_period")
    if not isinstance(raw_periods, list) or not raw_periods:
        raise ProfileRejected("chargingSchedulePeriod: at least one period is required")
    periods = []
    for n, raw in enumerate(raw_periods):
        if not isinstance(raw, Mapping):
            raise ProfileRejected(f"chargingSchedulePeriod[{n}]: expected an object")
        phases = raw.get("number_phases")
        periods.append(SchedulePeriod(
            _int(raw.get("start_period"), f"chargingSchedulePeriod[{n}].startPeriod"),
            _number(raw.get("limit"), f"chargingSchedulePeriod[{n}].limit"),
            None if phases is None else _int(phases, f"chargingSchedulePeriod[{n}].numberPhases"),
        ))
    duration = schedule.get("duration")
    min_rate = schedule.get("min_charging_rate")
    recurrency = data.get("recurrency_kind")
    transaction_id = data.get("transaction_id")
    return ChargingProfile(
        profile_id=_int(data.get("charging_profile_id"), "chargingProfileId"),
        stack_level=_int(data.get("stack_level"), "stackLevel"),
        purpose=_enum(ChargingProfilePurpose, data.get("charging_profile_purpose"),
                      "chargingProfilePurpose"),
        kind=_enum(ChargingProfileKind, data.get("charging_profile_kind"),
                   "chargingProfileKind"),
        schedule=ChargingSchedule(
            charging_rate_unit=_enum(ChargingRateUnit, schedule.get("charging_rate_unit"),
                                     "chargingRateUnit"),
            periods=tuple(periods),
            duration=None if duration is None else _int(duration, "duration"),
            start_schedule=_optional_datetime(schedule.get("start_schedule"), "startSchedule"),
            min_charging_rate=None if min_rate is None else _number(min_rate, "minChargingRate"),
        ),
        recurrency_kind=None if recurrency is None
        else _enum(RecurrencyKind, recurrency, "recurrencyKind"),
        valid_from=_optional_datetime(data.get("valid_from"), "validFrom"),
        valid_to=_optional_datetime(data.get("valid_to"), "validTo"),
        transaction_id=None if transaction_id is None
        else _int(transaction_id, "transactionId"),
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number_out(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 1)


def profile_to_wire(profile: ChargingProfile) -> dict[str, Any]:
    """The profile as a snake_case csChargingProfiles object (what :func:`profile_from_wire`
    reads back; the ocpp library turns it into camelCase on the wire)."""
    s = profile.schedule
    schedule: dict[str, Any] = {
        "charging_rate_unit": s.charging_rate_unit.value,
        "charging_schedule_period": [
            {"start_period": p.start_period, "limit": _number_out(p.limit),
             **({} if p.number_phases is None else {"number_phases": p.number_phases})}
            for p in s.periods],
    }
    if s.duration is not None:
        schedule["duration"] = s.duration
    if s.start_schedule is not None:
        schedule["start_schedule"] = _iso(s.start_schedule)
    if s.min_charging_rate is not None:
        schedule["min_charging_rate"] = _number_out(s.min_charging_rate)
    wire: dict[str, Any] = {
        "charging_profile_id": profile.profile_id,
        "stack_level": profile.stack_level,
        "charging_profile_purpose": profile.purpose.value,
        "charging_profile_kind": profile.kind.value,
        "charging_schedule": schedule,
    }
    if profile.transaction_id is not None:
        wire["transaction_id"] = profile.transaction_id
    if profile.recurrency_kind is not None:
        wire["recurrency_kind"] = profile.recurrency_kind.value
    if profile.valid_from is not None:
        wire["valid_from"] = _iso(profile.valid_from)
    if profile.valid_to is not None:
        wire["valid_to"] = _iso(profile.valid_to)
    return wire


# ---- validation, install, clear -------------------------------------------------------------


def check_profile(profile: ChargingProfile, limits: ProfileLimits) -> None:
    """The rules a profile must meet whatever connector it goes to; raise ProfileRejected."""
    s = profile.schedule
    if profile.profile_id < 0:
        raise ProfileRejected(f"chargingProfileId {profile.profile_id} is negative")
    if not 0 <= profile.stack_level <= limits.max_stack_level:
        raise ProfileRejected(f"stackLevel {profile.stack_level} is outside 0.."
                              f"{limits.max_stack_level} (ChargeProfileMaxStackLevel)")
    if s.charging_rate_unit not in limits.allowed_units:
        allowed = ",".join(sorted(u.value for u in limits.allowed_units))
        raise ProfileRejected(f"chargingRateUnit {s.charging_rate_unit.value} is not allowed "
                              f"(ChargingScheduleAllowedChargingRateUnit: {allowed})")
    if len(s.periods) > limits.max_periods:
        raise ProfileRejected(f"{len(s.periods)} schedule periods, at most {limits.max_periods}"
                              " (ChargingScheduleMaxPeriods)")
    if not s.periods:
        raise ProfileRejected("the schedule has no period")
    if s.periods[0].start_period != 0:
        raise ProfileRejected(f"the first period starts at {s.periods[0].start_period} s, "
                              "it must start at 0")
    for before, after in zip(s.periods, s.periods[1:], strict=False):
        if after.start_period <= before.start_period:
            raise ProfileRejected(f"period starts must ascend: {after.start_period} s after "
                                  f"{before.start_period} s")
    for p in s.periods:
        if p.limit < 0:
            raise ProfileRejected(f"limit {p.limit} is negative")
        if p.number_phases is not None and not 1 <= p.number_phases <= 3:
            raise ProfileRejected(f"numberPhases {p.number_phases} is not 1, 2 or 3")
    if s.duration is not None and s.duration < 0:
        raise ProfileRejected(f"duration {s.duration} is negative")
    if s.min_charging_rate is not None and s.min_charging_rate < 0:
        raise ProfileRejected(f"minChargingRate {s.min_charging_rate} is negative")
    if profile.kind is ChargingProfileKind.RECURRING:
        if profile.recurrency_kind is None:
            raise ProfileRejected("a Recurring profile needs recurrencyKind")
        if s.start_schedule is None:
            raise ProfileRejected("a Recurring profile needs startSchedule")
    elif profile.recurrency_kind is not None:
        raise ProfileRejected(f"recurrencyKind is only for Recurring profiles, not "
                              f"{profile.kind.value}")
    if (profile.valid_from is not None and profile.valid_to is not None
            and profile.valid_to <= profile.valid_from):
        raise ProfileRejected("validTo is not after validFrom")
    if profile.transaction_id is not None and profile.purpose is not ChargingProfilePurpose.TX:
        raise ProfileRejected("transactionId is only for a TxProfile")


def _replaced(installed: Iterable[InstalledProfile], new: InstalledProfile
              ) -> list[InstalledProfile]:
    p = new.profile
    return [i for i in installed
            if i.profile.profile_id == p.profile_id
            or (i.connector_id == new.connector_id and i.profile.stack_level == p.stack_level
                and i.profile.purpose is p.purpose)]


def install(installed: tuple[InstalledProfile, ...], connector_id: int,
            profile: ChargingProfile, station: StationContext, limits: ProfileLimits,
            *, awaiting_start: bool = False,
            ) -> tuple[tuple[InstalledProfile, ...], tuple[InstalledProfile, ...]]:
    """SetChargingProfile (or a RemoteStartTransaction's profile, ``awaiting_start``): the
    profiles after installing, and the ones it replaced. Raises ProfileRejected, changing
    nothing."""
    check_profile(profile, limits)
    purpose = profile.purpose
    if connector_id != CHARGE_POINT and not station.has(connector_id):
        raise ProfileRejected(f"no connector {connector_id}")
    if purpose is ChargingProfilePurpose.CHARGE_POINT_MAX and connector_id != CHARGE_POINT:
        raise ProfileRejected("a ChargePointMaxProfile goes on connector 0 only")
    if purpose is ChargingProfilePurpose.TX:
        if connector_id == CHARGE_POINT:
            raise ProfileRejected("a TxProfile goes on the connector of its transaction, not 0")
        if awaiting_start:
            if profile.transaction_id is not None:
                raise ProfileRejected("a RemoteStartTransaction profile cannot name a "
                                      "transactionId: its transaction has not started")
        else:
            c = station.connector(connector_id)
            if not c.in_transaction:
                raise ProfileRejected(f"no transaction on connector {connector_id} for a "
                                      "TxProfile")
            if profile.transaction_id is not None and profile.transaction_id != c.transaction_id:
                raise ProfileRejected(f"transactionId {profile.transaction_id} is not the "
                                      f"transaction on connector {connector_id} "
                                      f"({c.transaction_id})")
    elif awaiting_start:
        raise ProfileRejected("the profile of a RemoteStartTransaction must be a TxProfile, "
                              f"not {purpose.value}")
    new = InstalledProfile(connector_id, profile, awaiting_start)
    gone = _replaced(installed, new)
    kept = tuple(i for i in installed if i not in gone)
    if len(kept) + 1 > limits.max_installed:
        raise ProfileRejected(f"{limits.max_installed} profiles are installed already "
                              "(MaxChargingProfilesInstalled)")
    return (*kept, new), tuple(gone)


@dataclass(frozen=True, slots=True)
class ClearCriteria:
    """ClearChargingProfile: by id, or every given criterion must match (none: all)."""

    profile_id: int | None = None
    connector_id: int | None = None
    purpose: ChargingProfilePurpose | None = None
    stack_level: int | None = None

    def matches(self, i: InstalledProfile) -> bool:
        if self.profile_id is not None:
            return i.profile.profile_id == self.profile_id
        return ((self.connector_id is None or i.connector_id == self.connector_id)
                and (self.purpose is None or i.profile.purpose is self.purpose)
                and (self.stack_level is None or i.profile.stack_level == self.stack_level))


def clear(installed: tuple[InstalledProfile, ...], criteria: ClearCriteria
          ) -> tuple[tuple[InstalledProfile, ...], tuple[InstalledProfile, ...]]:
    """(profiles kept, profiles cleared); nothing cleared is ClearChargingProfile's Unknown."""
    gone = tuple(i for i in installed if criteria.matches(i))
    return tuple(i for i in installed if i not in gone), gone


def without_transaction_profiles(installed: tuple[InstalledProfile, ...], connector_id: int,
                                 *, keep_awaiting: bool = True,
                                 ) -> tuple[tuple[InstalledProfile, ...],
                                            tuple[InstalledProfile, ...]]:
    """The transaction on ``connector_id`` ended: its TxProfiles go (a RemoteStart's profile
    still waiting for its transaction stays if ``keep_awaiting``)."""
    gone = tuple(i for i in installed
                 if i.connector_id == connector_id
                 and i.profile.purpose is ChargingProfilePurpose.TX
                 and not (keep_awaiting and i.awaiting_start))
    return tuple(i for i in installed if i not in gone), gone


def bind_awaiting(installed: tuple[InstalledProfile, ...], connector_id: int
                  ) -> tuple[InstalledProfile, ...]:
    """The transaction a RemoteStart's profile waited for started on ``connector_id``."""
    return tuple(replace(i, awaiting_start=False)
                 if i.connector_id == connector_id and i.awaiting_start else i
                 for i in installed)


# ---- one profile's schedule in time ---------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _occurrence_start(profile: ChargingProfile, start: datetime, index: int,
                      zone: ZoneInfo) -> datetime:
    """The start of a Recurring profile's ``index``-th occurrence: the same wall-clock time in
    the station's zone, ``index`` days or weeks after startSchedule."""
    local = start.astimezone(zone)
    days = index * (7 if profile.recurrency_kind is RecurrencyKind.WEEKLY else 1)
    day: date = local.date() + timedelta(days=days)
    wall = datetime.combine(day, local.time().replace(tzinfo=None), tzinfo=zone)
    return wall.astimezone(UTC)


def _recurrence_days(profile: ChargingProfile) -> int:
    return 7 if profile.recurrency_kind is RecurrencyKind.WEEKLY else 1


def _anchor(profile: ChargingProfile, at: datetime, c: ConnectorContext | None,
            zone: ZoneInfo) -> tuple[datetime, datetime | None] | None:
    """(start, end) of the occurrence of ``profile``'s schedule that covers or last began at
    ``at`` (end None: open); None if the schedule has not begun."""
    s = profile.schedule
    if profile.kind is ChargingProfileKind.RECURRING:
        assert s.start_schedule is not None
        if at < s.start_schedule:
            return None
        local_days = (at.astimezone(zone).date() - s.start_schedule.astimezone(zone).date()).days
        index = local_days // _recurrence_days(profile)
        start = _occurrence_start(profile, s.start_schedule, index, zone)
        if start > at:
            index -= 1
            start = _occurrence_start(profile, s.start_schedule, index, zone)
        following = _occurrence_start(profile, s.start_schedule, index + 1, zone)
        end = following if s.duration is None else min(following,
                                                      start + timedelta(seconds=s.duration))
        return start, end
    if profile.kind is ChargingProfileKind.ABSOLUTE and s.start_schedule is not None:
        start = s.start_schedule
    else:  # Relative, or Absolute without startSchedule: from the transaction's start
        start = at
        if c is not None:
            start = c.transaction_started_at or c.schedule_origin or at
    if at < start:
        return None
    return start, None if s.duration is None else start + timedelta(seconds=s.duration)


def _period_at(profile: ChargingProfile, at: datetime, c: ConnectorContext | None,
               zone: ZoneInfo) -> SchedulePeriod | None:
    """The period of ``profile`` in force at ``at``, or None (outside its validity or its
    schedule)."""
    if profile.valid_from is not None and at < profile.valid_from:
        return None
    if profile.valid_to is not None and at >= profile.valid_to:
        return None
    window = _anchor(profile, at, c, zone)
    if window is None:
        return None
    start, end = window
    if end is not None and at >= end:
        return None
    offset = (at - start).total_seconds()
    chosen = None
    for period in profile.schedule.periods:
        if period.start_period <= offset:
            chosen = period
        else:
            break
    return chosen


def _boundaries(profile: ChargingProfile, after: datetime, until: datetime,
                c: ConnectorContext | None, zone: ZoneInfo) -> Iterator[datetime]:
    """Instants in (after, until] where ``profile``'s effect may change."""
    for edge in (profile.valid_from, profile.valid_to):
        if edge is not None:
            yield edge
    s = profile.schedule
    starts: list[datetime] = []
    if profile.kind is ChargingProfileKind.RECURRING:
        assert s.start_schedule is not None
        first = max(after, s.start_schedule)
        window = _anchor(profile, first, c, zone)
        index_start = window[0] if window is not None else s.start_schedule
        # Walk occurrences from the one covering ``after`` until past ``until``.
        local_days = (index_start.astimezone(zone).date()
                      - s.start_schedule.astimezone(zone).date()).days
        index = local_days // _recurrence_days(profile)
        while True:
            start = _occurrence_start(profile, s.start_schedule, index, zone)
            if start > until:
                break
            starts.append(start)
            index += 1
        starts.append(_occurrence_start(profile, s.start_schedule, index, zone))
    else:
        window = _anchor(profile, after, c, zone)
        if window is not None:
            starts.append(window[0])
        elif profile.kind is ChargingProfileKind.ABSOLUTE and s.start_schedule is not None:
            starts.append(s.start_schedule)
    for start in starts:
        for period in s.periods:
            yield start + timedelta(seconds=period.start_period)
        if s.duration is not None:
            yield start + timedelta(seconds=s.duration)


# ---- the composite --------------------------------------------------------------------------


def _to_amps(limit: float, unit: ChargingRateUnit, c: ConnectorContext) -> float:
    return limit if unit is ChargingRateUnit.AMPS else limit / c.watts_per_amp()


@dataclass(frozen=True, slots=True)
class _Winner:
    installed: InstalledProfile
    period: SchedulePeriod


def _winner(candidates: Iterable[InstalledProfile], at: datetime, c: ConnectorContext | None,
            zone: ZoneInfo) -> _Winner | None:
    """Among one purpose's profiles, the highest stack level with a period at ``at``; on a tie,
    the one on the connector itself before connector 0."""
    ranked = sorted(candidates, key=lambda i: (i.profile.stack_level, i.connector_id != 0),
                    reverse=True)
    for i in ranked:
        period = _period_at(i.profile, at, c, zone)
        if period is not None:
            return _Winner(i, period)
    return None


def _own_limit(installed: tuple[InstalledProfile, ...], c: ConnectorContext, at: datetime,
               zone: ZoneInfo) -> tuple[float | None, _Winner | None]:
    """A connector's limit from its TxProfile or else its TxDefault stack, in A (None: none)."""
    winner = None
    if c.in_transaction:
        tx = [i for i in installed
              if i.connector_id == c.connector_id
              and i.profile.purpose is ChargingProfilePurpose.TX
              and not i.awaiting_start
              and (i.profile.transaction_id is None
                   or c.transaction_id is None
                   or i.profile.transaction_id == c.transaction_id)]
        winner = _winner(tx, at, c, zone)
    if winner is None:
        defaults = [i for i in installed
                    if i.connector_id in (CHARGE_POINT, c.connector_id)
                    and i.profile.purpose is ChargingProfilePurpose.TX_DEFAULT]
        winner = _winner(defaults, at, c, zone)
    if winner is None:
        return None, None
    schedule = winner.installed.profile.schedule
    limit = _to_amps(winner.period.limit, schedule.charging_rate_unit, c)
    if schedule.min_charging_rate is not None and 0 < winner.period.limit \
            < schedule.min_charging_rate:
        limit = 0.0
    return limit, winner


def _fair_shares(cap: float, demands: Mapping[int, float]) -> dict[int, float]:
    """Max-min fair shares of ``cap`` among ``demands``: equal shares, a demand below its
    share keeps only what it asks and leaves the rest to the others."""
    shares: dict[int, float] = {}
    left = max(0.0, cap)
    pending = dict(demands)
    while pending:
        share = left / len(pending)
        small = {k: d for k, d in pending.items() if d <= share}
        if not small:
            for k in pending:
                shares[k] = share
            break
        for k, d in small.items():
            shares[k] = d
            left -= d
            del pending[k]
    return shares


def connector_limits(installed: tuple[InstalledProfile, ...], station: StationContext,
                     at: datetime) -> dict[int, ConnectorLimit]:
    """Every connector's smart-charging limit at ``at`` (A), and its source."""
    zone = _zone(station.time_zone)
    own: dict[int, tuple[float, _Winner | None]] = {}
    for c in station.connectors:
        limit, winner = _own_limit(installed, c, at, zone)
        own[c.connector_id] = (min(c.max_current_a, limit) if limit is not None
                               else c.max_current_a, winner)
    cap = _winner([i for i in installed if i.connector_id == CHARGE_POINT
                   and i.profile.purpose is ChargingProfilePurpose.CHARGE_POINT_MAX],
                  at, None, zone)
    result: dict[int, ConnectorLimit] = {}
    shares: dict[int, float] = {}
    if cap is not None:
        unit = cap.installed.profile.schedule.charging_rate_unit
        # Shares are computed in the cap's unit (per-phase amps, or watts).
        scale = {c.connector_id: (1.0 if unit is ChargingRateUnit.AMPS else c.watts_per_amp())
                 for c in station.connectors}
        active = [c for c in station.connectors if c.in_transaction]
        demands = {c.connector_id: own[c.connector_id][0] * scale[c.connector_id]
                   for c in active}
        fair = _fair_shares(cap.period.limit, demands)
        for c in station.connectors:
            cid = c.connector_id
            if cid in fair:
                shares[cid] = fair[cid] / scale[cid]
            else:  # what it would get if it started now
                with_it = _fair_shares(cap.period.limit,
                                       {**demands, cid: own[cid][0] * scale[cid]})
                shares[cid] = with_it[cid] / scale[cid]
    for c in station.connectors:
        cid = c.connector_id
        limit, winner = own[cid]
        share = shares.get(cid)
        if cap is not None and share is not None and share < limit:
            p = cap.installed.profile
            result[cid] = ConnectorLimit(cid, share, LimitSource.CHARGE_POINT_MAX,
                                         p.profile_id, p.purpose)
        elif winner is not None:
            p = winner.installed.profile
            result[cid] = ConnectorLimit(cid, limit, LimitSource.PROFILE, p.profile_id,
                                         p.purpose)
        else:
            result[cid] = ConnectorLimit(cid, None)
    return result


def _all_boundaries(installed: tuple[InstalledProfile, ...], station: StationContext,
                    after: datetime, until: datetime) -> list[datetime]:
    zone = _zone(station.time_zone)
    edges: set[datetime] = set()
    for i in installed:
        contexts: list[ConnectorContext | None] = (
            [station.connector(i.connector_id)] if station.has(i.connector_id)
            else list(station.connectors) or [None])
        for c in contexts:
            for edge in _boundaries(i.profile, after, until, c, zone):
                if after < edge <= until:
                    edges.add(edge.astimezone(UTC))
    return sorted(edges)


def next_change(installed: tuple[InstalledProfile, ...], station: StationContext,
                after: datetime, horizon: timedelta = NEXT_CHANGE_HORIZON) -> datetime | None:
    """The first instant after ``after`` at which some connector's limit changes (within
    ``horizon``); None: none in sight."""
    now = connector_limits(installed, station, after)
    for edge in _all_boundaries(installed, station, after, after + horizon):
        if connector_limits(installed, station, edge) != now:
            return edge
    return None


@dataclass(frozen=True, slots=True)
class CompositePeriod:
    start_period: int  # seconds from the composite's start
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    connector_id: int
    start: datetime
    duration: int
    charging_rate_unit: ChargingRateUnit
    periods: tuple[CompositePeriod, ...]


def _limit_in(unit: ChargingRateUnit, amps: float, c: ConnectorContext) -> float:
    value = amps if unit is ChargingRateUnit.AMPS else amps * c.watts_per_amp()
    return round(value, 1)


def _connector_value(installed: tuple[InstalledProfile, ...], station: StationContext,
                     connector_id: int, at: datetime, unit: ChargingRateUnit) -> float:
    limits = connector_limits(installed, station, at)
    if connector_id != CHARGE_POINT:
        c = station.connector(connector_id)
        limit = limits[connector_id].limit_a
        return _limit_in(unit, c.max_current_a if limit is None else limit, c)
    # The charge point: the sum over connectors, at most the ChargePointMaxProfile.
    total = 0.0
    for c in station.connectors:
        limit = limits[c.connector_id].limit_a
        total += _limit_in(unit, c.max_current_a if limit is None else limit, c)
    zone = _zone(station.time_zone)
    cap = _winner([i for i in installed if i.connector_id == CHARGE_POINT
                   and i.profile.purpose is ChargingProfilePurpose.CHARGE_POINT_MAX],
                  at, None, zone)
    if cap is not None and station.connectors:
        cap_unit = cap.installed.profile.schedule.charging_rate_unit
        limit = cap.period.limit
        if cap_unit is not unit:  # convert with the first connector's phases and voltage
            c = station.connectors[0]
            limit = limit / c.watts_per_amp() if unit is ChargingRateUnit.AMPS \
                else limit * c.watts_per_amp()
        total = min(total, limit)
    return round(total, 1)


def composite_schedule(installed: tuple[InstalledProfile, ...], station: StationContext,
                       connector_id: int, start: datetime, duration_s: int,
                       unit: ChargingRateUnit) -> CompositeSchedule:
    """GetCompositeSchedule: the limit of ``connector_id`` (0: the charge point's total) from
    ``start`` for ``duration_s``, in ``unit``, as periods that each change the limit."""
    if connector_id != CHARGE_POINT and not station.has(connector_id):
        raise ProfileRejected(f"no connector {connector_id}")
    if duration_s < 0:
        raise ProfileRejected(f"duration {duration_s} is negative")
    end = start + timedelta(seconds=duration_s)
    station = replace(station, connectors=tuple(
        c if c.in_transaction else replace(c, schedule_origin=start)
        for c in station.connectors))
    periods: list[CompositePeriod] = []
    for at in [start, *(e for e in _all_boundaries(installed, station, start, end) if e < end)]:
        value = _connector_value(installed, station, connector_id, at, unit)
        if periods and periods[-1].limit == value:
            continue
        periods.append(CompositePeriod(int((at - start).total_seconds()), value))
    return CompositeSchedule(connector_id, start, duration_s, unit, tuple(periods))


def composite_to_wire(schedule: CompositeSchedule) -> dict[str, Any]:
    """The chargingSchedule of a GetCompositeSchedule.conf (snake_case)."""
    return {
        "duration": schedule.duration,
        "start_schedule": _iso(schedule.start),
        "charging_rate_unit": schedule.charging_rate_unit.value,
        "charging_schedule_period": [
            {"start_period": p.start_period, "limit": _number_out(p.limit)}
            for p in schedule.periods],
    }
