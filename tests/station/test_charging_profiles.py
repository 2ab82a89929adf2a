"""The composite-schedule arithmetic of OCPP 1.6 Smart Charging, as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chargerfw.station.charging_profiles import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ClearCriteria,
    CompositePeriod,
    ConnectorContext,
    ConnectorLimit,
    InstalledProfile,
    LimitSource,
    ProfileLimits,
    ProfileRejected,
    RecurrencyKind,
    SchedulePeriod,
    StationContext,
    bind_awaiting,
    clear,
    composite_schedule,
    composite_to_wire,
    connector_limits,
    install,
    next_change,
    profile_from_wire,
    profile_to_wire,
    without_transaction_profiles,
)

MAX = ChargingProfilePurpose.CHARGE_POINT_MAX
DEFAULT = ChargingProfilePurpose.TX_DEFAULT
TX = ChargingProfilePurpose.TX
A = ChargingRateUnit.AMPS
W = ChargingRateUnit.WATTS
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
AMS = ZoneInfo("Europe/Amsterdam")


def profile(pid: int, purpose: ChargingProfilePurpose = DEFAULT, *, level: int = 0,
            periods: tuple[tuple[int, float], ...] = ((0, 10.0),), unit: ChargingRateUnit = A,
            kind: ChargingProfileKind = ChargingProfileKind.ABSOLUTE,
            start: datetime | None = None, duration: int | None = None,
            recurrency: RecurrencyKind | None = None, valid_from: datetime | None = None,
            valid_to: datetime | None = None, tx: int | None = None,
            min_rate: float | None = None, phases: int | None = None) -> ChargingProfile:
    return ChargingProfile(
        pid, level, purpose, kind,
        ChargingSchedule(unit, tuple(SchedulePeriod(s, v, phases) for s, v in periods),
                         duration, start, min_rate),
        recurrency, valid_from, valid_to, tx)


def on(connector_id: int, p: ChargingProfile) -> InstalledProfile:
    return InstalledProfile(connector_id, p)


def station(*connectors: ConnectorContext, tz: str = "UTC") -> StationContext:
    return StationContext(connectors or (ConnectorContext(1, 32.0),), tz)


def charging(cid: int, started: datetime = T0, max_a: float = 32.0, tx_id: int | None = 7,
             phases: int = 3, voltage: float | None = None) -> ConnectorContext:
    return ConnectorContext(cid, max_a, phases, voltage, tx_id, started)


def limit_at(installed: list[InstalledProfile], st: StationContext, at: datetime,
             cid: int = 1) -> float | None:
    return connector_limits(tuple(installed), st, at)[cid].limit_a


# ---- stacking ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("installed", "expected", "source_id"), [
    ([], None, None),
    ([on(1, profile(1, level=0, periods=((0, 16.0),)))], 16.0, 1),
    # the higher stack level wins while it has a period
    ([on(1, profile(1, level=0, periods=((0, 16.0),))),
      on(1, profile(2, level=3, periods=((0, 8.0),)))], 8.0, 2),
    # a higher stack level that has ended falls back to the lower one
    ([on(1, profile(1, level=0, periods=((0, 16.0),))),
      on(1, profile(2, level=3, start=T0 - timedelta(hours=2), duration=3600,
                    periods=((0, 8.0),)))], 16.0, 1),
    # a higher stack level that has not begun yet does not apply
    ([on(1, profile(1, level=0, periods=((0, 16.0),))),
      on(1, profile(2, level=3, start=T0 + timedelta(hours=1), periods=((0, 8.0),)))], 16.0, 1),
    # TxDefault on connector 0 applies to every connector; the connector's own wins a tie
    ([on(0, profile(1, level=2, periods=((0, 12.0),)))], 12.0, 1),
    ([on(0, profile(1, level=2, periods=((0, 12.0),))),
      on(1, profile(2, level=2, periods=((0, 20.0),)))], 20.0, 2),
    ([on(0, profile(1, level=3, periods=((0, 12.0),))),
      on(1, profile(2, level=2, periods=((0, 20.0),)))], 12.0, 1),
    # a TxProfile overrides every TxDefault, whatever their stack levels
    ([on(1, profile(1, level=9, periods=((0, 6.0),))),
      on(1, profile(2, TX, level=0, periods=((0, 25.0),)))], 25.0, 2),
    # a TxProfile for another transaction does not apply
    ([on(1, profile(1, level=0, periods=((0, 6.0),))),
      on(1, profile(2, TX, periods=((0, 25.0),), tx=99))], 6.0, 1),
    # the hardware's rating bounds any profile
    ([on(1, profile(1, periods=((0, 63.0),)))], 32.0, 1),
])
def test_stack_levels_and_purposes(installed: list[InstalledProfile], expected: float | None,
                                   source_id: int | None) -> None:
    limits = connector_limits(tuple(installed), station(charging(1)), T0)
    assert limits[1].limit_a == expected
    assert limits[1].profile_id == source_id


def test_tx_profile_ignored_without_a_transaction() -> None:
    installed = (on(1, profile(1, periods=((0, 10.0),))), on(1, profile(2, TX, periods=((0, 20.0),))))
    assert connector_limits(installed, station(ConnectorContext(1, 32.0)), T0)[1].limit_a == 10.0


# ---- time: absolute, relative, validity, recurrence -------------------------------------------

@pytest.mark.parametrize(("offset_s", "expected"), [
    (-1, None), (0, 16.0), (1799, 16.0), (1800, 10.0), (3599, 10.0), (3600, None),
])
def test_absolute_schedule_with_duration(offset_s: int, expected: float | None) -> None:
    p = profile(1, start=T0, duration=3600, periods=((0, 16.0), (1800, 10.0)))
    assert limit_at([on(1, p)], station(charging(1)), T0 + timedelta(seconds=offset_s)) == expected


@pytest.mark.parametrize(("kind", "start"), [
    (ChargingProfileKind.RELATIVE, None),
    (ChargingProfileKind.ABSOLUTE, None),  # Absolute without startSchedule: from the tx start
])
def test_relative_schedule_starts_with_the_transaction(kind: ChargingProfileKind,
                                                       start: datetime | None) -> None:
    p = profile(1, kind=kind, start=start, periods=((0, 6.0), (600, 20.0)))
    tx_start = T0 - timedelta(seconds=300)
    st = station(charging(1, started=tx_start))
    assert limit_at([on(1, p)], st, T0) == 6.0
    assert limit_at([on(1, p)], st, tx_start + timedelta(seconds=600)) == 20.0
    assert next_change((on(1, p),), st, T0) == tx_start + timedelta(seconds=600)


@pytest.mark.parametrize(("at", "expected"), [
    (T0 - timedelta(seconds=1), 32.0), (T0, 10.0), (T0 + timedelta(hours=1), 32.0),
])
def test_valid_from_and_valid_to(at: datetime, expected: float) -> None:
    p = profile(1, valid_from=T0, valid_to=T0 + timedelta(hours=1),
                kind=ChargingProfileKind.RELATIVE)
    assert (limit_at([on(1, p)], station(charging(1)), at) or 32.0) == expected


def daily_night(start_local: datetime, tz: str = "Europe/Amsterdam") -> ChargingProfile:
    """Daily from 22:00 local for 8 h: 6 A; the day outside it is not covered."""
    return profile(1, kind=ChargingProfileKind.RECURRING, recurrency=RecurrencyKind.DAILY,
                   start=start_local.astimezone(UTC), duration=8 * 3600,
                   periods=((0, 6.0), (4 * 3600, 8.0)))


@pytest.mark.parametrize(("local", "expected"), [
    (datetime(2024, 3, 10, 21, 59, tzinfo=AMS), None),
    (datetime(2024, 3, 10, 22, 0, tzinfo=AMS), 6.0),
    (datetime(2024, 3, 11, 1, 59, tzinfo=AMS), 6.0),  # across midnight
    (datetime(2024, 3, 11, 2, 0, tzinfo=AMS), 8.0),
    (datetime(2024, 3, 11, 5, 59, tzinfo=AMS), 8.0),
    (datetime(2024, 3, 11, 6, 0, tzinfo=AMS), None),
    # summer time began 31 March 02:00: the schedule still starts at 22:00 local
    (datetime(2024, 4, 2, 21, 59, tzinfo=AMS), None),
    (datetime(2024, 4, 2, 22, 0, tzinfo=AMS), 6.0),
    # the night of the change itself (30-31 March) is an hour shorter on the wall clock:
    # 8 h after 22:00 CET is 07:00 CEST
    (datetime(2024, 3, 31, 6, 30, tzinfo=AMS), 8.0),
    (datetime(2024, 3, 31, 7, 0, tzinfo=AMS), None),
    # winter time began 27 October 03:00: 8 h after 22:00 CEST is 05:00 CET
    (datetime(2024, 10, 27, 4, 59, tzinfo=AMS), 8.0),
    (datetime(2024, 10, 27, 5, 0, tzinfo=AMS), None),
    (datetime(2024, 10, 28, 22, 0, tzinfo=AMS), 6.0),
])
def test_daily_recurrence_across_midnight_and_dst(local: datetime,
                                                  expected: float | None) -> None:
    p = daily_night(datetime(2024, 3, 1, 22, 0, tzinfo=AMS))
    st = station(charging(1), tz="Europe/Amsterdam")
    assert limit_at([on(1, p)], st, local.astimezone(UTC)) == expected


def test_daily_recurrence_in_utc_drifts_an_hour_in_local_time() -> None:
    """The same profile on a station set to UTC repeats at 21:00 UTC: 23:00 in Dutch summer."""
    p = daily_night(datetime(2024, 3, 1, 22, 0, tzinfo=AMS))
    st = station(charging(1), tz="UTC")
    assert limit_at([on(1, p)], st, datetime(2024, 4, 2, 22, 30, tzinfo=AMS)) is None
    assert limit_at([on(1, p)], st, datetime(2024, 4, 2, 23, 0, tzinfo=AMS)) == 6.0


@pytest.mark.parametrize(("local", "expected"), [
    (datetime(2024, 6, 3, 7, 59, tzinfo=AMS), 32.0),  # Monday before 08:00
    (datetime(2024, 6, 3, 8, 0, tzinfo=AMS), 10.0),
    (datetime(2024, 6, 9, 23, 0, tzinfo=AMS), 10.0),  # Sunday night, still the same week
    (datetime(2024, 6, 10, 8, 0, tzinfo=AMS), 10.0),
    (datetime(2024, 6, 4, 8, 0, tzinfo=AMS), 16.0),  # a day later: the second period
])
def test_weekly_recurrence(local: datetime, expected: float) -> None:
    p = profile(1, kind=ChargingProfileKind.RECURRING, recurrency=RecurrencyKind.WEEKLY,
                start=datetime(2024, 6, 3, 8, 0, tzinfo=AMS),
                periods=((0, 10.0), (86400, 16.0), (86400 * 6, 10.0)))
    st = station(charging(1), tz="Europe/Amsterdam")
    assert (limit_at([on(1, p)], st, local) or 32.0) == expected


def test_next_change_follows_periods_and_recurrence() -> None:
    p = daily_night(datetime(2024, 3, 1, 22, 0, tzinfo=AMS))
    st = station(charging(1), tz="Europe/Amsterdam")
    at = datetime(2024, 3, 10, 12, 0, tzinfo=AMS)
    assert next_change((on(1, p),), st, at) == datetime(2024, 3, 10, 22, 0, tzinfo=AMS)
    at = datetime(2024, 3, 10, 22, 0, tzinfo=AMS)
    assert next_change((on(1, p),), st, at) == datetime(2024, 3, 11, 2, 0, tzinfo=AMS)
    assert next_change((), st, at) is None


# ---- units ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("watts", "phases", "voltage", "expected_a"), [
    (11040.0, 3, None, 16.0),  # 11040 W / (230 V x 3)
    (3680.0, 1, None, 16.0),
    (11040.0, 3, 240.0, 15.3),  # measured voltage
    (6900.0, 3, None, 10.0),
])
def test_watts_become_amps(watts: float, phases: int, voltage: float | None,
                           expected_a: float) -> None:
    p = profile(1, unit=W, periods=((0, watts),))
    st = station(charging(1, phases=phases, voltage=voltage))
    assert round(limit_at([on(1, p)], st, T0) or 0, 1) == expected_a


def test_number_phases_never_raises_the_current() -> None:
    """Without a phase switch a 3-phase connector stays 3-phase: 7360 W at numberPhases 1
    is 10.7 A per phase, not 32 A."""
    p = profile(1, unit=W, periods=((0, 7360.0),), phases=1)
    assert round(limit_at([on(1, p)], station(charging(1)), T0) or 0, 1) == 10.7


@pytest.mark.parametrize(("limit", "min_rate", "expected"), [
    (8.0, 6.0, 8.0), (5.0, 6.0, 0.0), (0.0, 6.0, 0.0), (6.0, 6.0, 6.0),
])
def test_min_charging_rate(limit: float, min_rate: float, expected: float) -> None:
    p = profile(1, periods=((0, limit),), min_rate=min_rate)
    assert limit_at([on(1, p)], station(charging(1)), T0) == expected


def test_composite_in_watts_and_amps() -> None:
    p = profile(1, kind=ChargingProfileKind.ABSOLUTE, start=T0,
                periods=((0, 16.0), (3600, 10.0)))
    st = station(charging(1))
    amps = composite_schedule((on(1, p),), st, 1, T0, 7200, A)
    assert amps.periods == (CompositePeriod(0, 16.0), CompositePeriod(3600, 10.0))
    watts = composite_schedule((on(1, p),), st, 1, T0, 7200, W)
    assert watts.periods == (CompositePeriod(0, 11040.0), CompositePeriod(3600, 6900.0))
    assert composite_to_wire(watts) == {
        "duration": 7200, "start_schedule": "2024-06-01T12:00:00Z", "charging_rate_unit": "W",
        "charging_schedule_period": [{"start_period": 0, "limit": 11040},
                                     {"start_period": 3600, "limit": 6900}]}


def test_composite_without_profiles_is_the_rating_and_window_bounded() -> None:
    st = station(charging(1, max_a=16.0))
    assert composite_schedule((), st, 1, T0, 600, A).periods == (CompositePeriod(0, 16.0),)
    p = profile(1, start=T0 + timedelta(seconds=900), periods=((0, 6.0),))
    # the profile begins after the window: one period
    assert composite_schedule((on(1, p),), st, 1, T0, 600, A).periods == (
        CompositePeriod(0, 16.0),)


def test_composite_of_a_relative_default_without_transaction_starts_now() -> None:
    p = profile(1, kind=ChargingProfileKind.RELATIVE, periods=((0, 6.0), (600, 12.0)))
    st = station(ConnectorContext(1, 32.0))
    assert composite_schedule((on(1, p),), st, 1, T0, 1200, A).periods == (
        CompositePeriod(0, 6.0), CompositePeriod(600, 12.0))


def test_composite_unknown_connector() -> None:
    with pytest.raises(ProfileRejected, match="no connector 3"):
        composite_schedule((), station(), 3, T0, 60, A)


# ---- ChargePointMaxProfile: the sum of every connector ----------------------------------------

@pytest.mark.parametrize(("cap", "contexts", "own", "expected"), [
    # one charging connector of two: it gets the whole cap
    (20.0, (charging(1), ConnectorContext(2, 32.0)), [], {1: 20.0, 2: 10.0}),
    # both charging: an equal share each
    (20.0, (charging(1), charging(2)), [], {1: 10.0, 2: 10.0}),
    # one asks less than its share: the other gets the rest
    (20.0, (charging(1), charging(2)), [on(2, profile(5, TX, periods=((0, 6.0),)))],
     {1: 14.0, 2: 6.0}),
    # a cap above the sum of the ratings changes nothing
    (80.0, (charging(1, max_a=16.0), charging(2, max_a=16.0)), [], {1: None, 2: None}),
])
def test_charge_point_max_caps_the_sum(cap: float, contexts: tuple[ConnectorContext, ...],
                                       own: list[InstalledProfile],
                                       expected: dict[int, float | None]) -> None:
    installed = (on(0, profile(1, MAX, periods=((0, cap),))), *own)
    limits = connector_limits(installed, StationContext(contexts), T0)
    assert {cid: limit.limit_a for cid, limit in limits.items()} == expected
    charging_sum = sum((limits[c.connector_id].limit_a or c.max_current_a)
                       for c in contexts if c.in_transaction)
    assert charging_sum <= cap


def test_charge_point_max_source_and_watts() -> None:
    installed = (on(0, profile(1, MAX, unit=W, periods=((0, 13800.0),))),)
    st = StationContext((charging(1), charging(2)))
    limits = connector_limits(installed, st, T0)
    assert limits[1] == ConnectorLimit(1, 10.0, LimitSource.CHARGE_POINT_MAX, 1, MAX)
    total = composite_schedule(installed, st, 0, T0, 60, W)
    assert total.periods == (CompositePeriod(0, 13800.0),)


# ---- install and clear ------------------------------------------------------------------------

LIMITS = ProfileLimits(max_stack_level=5, max_periods=3, max_installed=3)


@pytest.mark.parametrize(("connector_id", "p", "context", "reason"), [
    (1, profile(1, level=6), charging(1), "stackLevel 6 is outside 0..5"),
    (1, profile(1, level=-1), charging(1), "stackLevel -1"),
    (1, profile(1, periods=((0, 1.0), (10, 2.0), (20, 3.0), (30, 4.0))), charging(1),
     "4 schedule periods, at most 3"),
    (1, profile(1, periods=((5, 1.0),)), charging(1), "first period starts at 5 s"),
    (1, profile(1, periods=((0, 1.0), (10, 2.0), (10, 3.0))), charging(1), "must ascend"),
    (1, profile(1, periods=((0, -1.0),)), charging(1), "negative"),
    (1, profile(1, TX), ConnectorContext(1, 32.0), "no transaction on connector 1"),
    (1, profile(1, TX, tx=8), charging(1, tx_id=7), "transactionId 8 is not the transaction"),
    (0, profile(1, TX), charging(1), "not 0"),
    (1, profile(1, MAX), charging(1), "connector 0 only"),
    (3, profile(1), charging(1), "no connector 3"),
    (1, profile(1, kind=ChargingProfileKind.RECURRING, start=T0), charging(1),
     "needs recurrencyKind"),
    (1, profile(1, kind=ChargingProfileKind.RECURRING, recurrency=RecurrencyKind.DAILY),
     charging(1), "needs startSchedule"),
    (1, profile(1, recurrency=RecurrencyKind.DAILY), charging(1), "only for Recurring"),
    (1, profile(1, valid_from=T0, valid_to=T0), charging(1), "validTo is not after"),
    (1, profile(1, tx=7), charging(1), "transactionId is only for a TxProfile"),
    (1, profile(1, periods=((0, 1.0),), phases=4), charging(1), "numberPhases 4"),
])
def test_rejections(connector_id: int, p: ChargingProfile, context: ConnectorContext,
                    reason: str) -> None:
    installed = (on(1, profile(50, level=1)),)
    with pytest.raises(ProfileRejected, match=reason):
        install(installed, connector_id, p, station(context), LIMITS)


def test_allowed_units_and_max_installed() -> None:
    only_amps = replace(LIMITS, allowed_units=frozenset({A}))
    with pytest.raises(ProfileRejected, match="chargingRateUnit W is not allowed"):
        install((), 1, profile(1, unit=W), station(charging(1)), only_amps)
    full = (on(1, profile(1, level=0)), on(1, profile(2, level=1)), on(1, profile(3, level=2)))
    with pytest.raises(ProfileRejected, match="MaxChargingProfilesInstalled"):
        install(full, 1, profile(4, level=3), station(charging(1)), LIMITS)
    # replacing one of them is not an addition
    after, gone = install(full, 1, profile(4, level=2), station(charging(1)), LIMITS)
    assert [i.profile.profile_id for i in after] == [1, 2, 4] and [
        i.profile.profile_id for i in gone] == [3]


def test_install_replaces_same_id_and_same_level_purpose_connector() -> None:
    st = station(charging(1), charging(2))
    installed = (on(1, profile(1, level=1)), on(2, profile(2, level=1)), on(1, profile(3, TX)))
    after, gone = install(installed, 2, profile(1, level=4), st, ProfileLimits())
    assert [(i.connector_id, i.profile.profile_id) for i in after] == [(2, 2), (1, 3), (2, 1)]
    assert [i.profile.profile_id for i in gone] == [1]
    after, gone = install(after, 2, profile(9, level=1), st, ProfileLimits())
    assert [i.profile.profile_id for i in gone] == [2]
    # the same level with another purpose stays
    after, gone = install(after, 1, profile(10, TX, level=4), st, ProfileLimits())
    assert gone == ()


def test_remote_start_profile_waits_for_its_transaction() -> None:
    st = station(ConnectorContext(1, 32.0))
    with pytest.raises(ProfileRejected, match="must be a TxProfile"):
        install((), 1, profile(1), st, ProfileLimits(), awaiting_start=True)
    with pytest.raises(ProfileRejected, match="cannot name a transactionId"):
        install((), 1, profile(1, TX, tx=3), st, ProfileLimits(), awaiting_start=True)
    installed, _ = install((), 1, profile(1, TX, periods=((0, 8.0),)), st, ProfileLimits(),
                           awaiting_start=True)
    # not in force before its transaction
    assert connector_limits(installed, station(charging(1)), T0)[1].limit_a is None
    bound = bind_awaiting(installed, 1)
    assert connector_limits(bound, station(charging(1)), T0)[1].limit_a == 8.0
    # the transaction's end removes it
    kept, gone = without_transaction_profiles(bound, 1)
    assert kept == () and len(gone) == 1
    # one still waiting survives a stop (of the previous transaction)
    kept, gone = without_transaction_profiles(installed, 1)
    assert kept == installed and gone == ()


ALL = (on(0, profile(1, MAX, level=0)), on(0, profile(2, DEFAULT, level=1)),
       on(1, profile(3, DEFAULT, level=1)), on(1, profile(4, TX, level=2)),
       on(2, profile(5, DEFAULT, level=2)))


@pytest.mark.parametrize(("criteria", "cleared"), [
    (ClearCriteria(), [1, 2, 3, 4, 5]),
    (ClearCriteria(profile_id=3), [3]),
    (ClearCriteria(profile_id=3, connector_id=2), [3]),  # an id ignores the rest
    (ClearCriteria(profile_id=42), []),
    (ClearCriteria(connector_id=0), [1, 2]),
    (ClearCriteria(connector_id=1), [3, 4]),
    (ClearCriteria(purpose=DEFAULT), [2, 3, 5]),
    (ClearCriteria(stack_level=1), [2, 3]),
    (ClearCriteria(connector_id=1, purpose=DEFAULT), [3]),
    (ClearCriteria(purpose=DEFAULT, stack_level=2), [5]),
    (ClearCriteria(connector_id=1, purpose=TX, stack_level=2), [4]),
    (ClearCriteria(connector_id=2, purpose=TX), []),
])
def test_clear_combinations(criteria: ClearCriteria, cleared: list[int]) -> None:
    kept, gone = clear(ALL, criteria)
    assert [i.profile.profile_id for i in gone] == cleared
    assert len(kept) + len(gone) == len(ALL)


# ---- the wire form ----------------------------------------------------------------------------

WIRE: dict[str, Any] = {
    "charging_profile_id": 12, "stack_level": 2, "charging_profile_purpose": "TxDefaultProfile",
    "charging_profile_kind": "Recurring", "recurrency_kind": "Daily",
    "valid_from": "2024-01-01T00:00:00Z", "valid_to": "2025-01-01T00:00:00Z",
    "charging_schedule": {
        "duration": 28800, "start_schedule": "2024-01-01T21:00:00Z", "charging_rate_unit": "W",
        "min_charging_rate": 1380.5,
        "charging_schedule_period": [{"start_period": 0, "limit": 4140, "number_phases": 3},
                                     {"start_period": 3600, "limit": 7360.5}]}}


def test_wire_round_trip() -> None:
    p = profile_from_wire(WIRE)
    assert p.kind is ChargingProfileKind.RECURRING and p.schedule.charging_rate_unit is W
    assert p.schedule.start_schedule == datetime(2024, 1, 1, 21, tzinfo=UTC)
    assert profile_to_wire(p) == WIRE


def test_wire_decimals_as_the_library_parses_them() -> None:
    schedule = {**WIRE["charging_schedule"], "min_charging_rate": Decimal("1380.5"),
                "charging_schedule_period": [{"start_period": 0, "limit": Decimal("16.5")}]}
    p = profile_from_wire({**WIRE, "charging_schedule": schedule})
    assert p.schedule.periods[0].limit == 16.5 and p.schedule.min_charging_rate == 1380.5
    with pytest.raises(ProfileRejected, match="expected a number"):
        profile_from_wire({**WIRE, "charging_schedule": {**schedule, "charging_schedule_period": [
            {"start_period": 0, "limit": Decimal("NaN")}]}})


@pytest.mark.parametrize(("change", "reason"), [
    ({"charging_profile_purpose": "Other"}, "chargingProfilePurpose: 'Other' is not one of"),
    ({"stack_level": "2"}, "stackLevel: expected an integer"),
    ({"valid_from": "yesterday"}, "validFrom: not an ISO 8601"),
    ({"valid_from": "2024-01-01T00:00:00"}, "validFrom: needs a time zone"),
    ({"charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": []}},
     "at least one period"),
])
def test_wire_rejections(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProfileRejected, match=reason):
        profile_from_wire({**WIRE, **change})
