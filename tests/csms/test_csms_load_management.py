"""Sharing a site's current among its connectors: table tests and properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargerfw.csms.load_management import (
    MIN_CHARGING_A,
    ConnectorKey,
    ConnectorLoad,
    LoadInputError,
    Role,
    SessionState,
    allocate,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CHARGING, SUSPENDED, IDLE = SessionState.CHARGING, SessionState.SUSPENDED_EV, SessionState.IDLE


def key(n: int, connector: int = 1) -> ConnectorKey:
    return ConnectorKey(f"CP{n}", connector)


def load(n: int, state: SessionState = CHARGING, *, minute: int | None = None,
         max_a: float = 32.0, **kw: object) -> ConnectorLoad:
    started = T0 + timedelta(minutes=n if minute is None else minute)
    return ConnectorLoad(key(n), state, max_a,
                         started_at=started if state != IDLE else None, **kw)  # type: ignore[arg-type]


def limits(site_a: float, *loads: ConnectorLoad) -> dict[str, tuple[float, Role]]:
    result = allocate(site_a, loads)
    return {str(entry.key): (entry.limit_a, entry.role) for entry in result.limits}


@pytest.mark.parametrize(("site_a", "loads", "expected"), [
    # Enough for everyone: each gets what its connector carries.
    (100, [load(1), load(2)], {"CP1/1": (32.0, Role.SHARE), "CP2/1": (32.0, Role.SHARE)}),
    # Not enough: an even share in tenths, the tenths left over to the earliest.
    (50, [load(1), load(2), load(3)],
     {"CP1/1": (16.7, Role.SHARE), "CP2/1": (16.7, Role.SHARE), "CP3/1": (16.6, Role.SHARE)}),
    # A vehicle drawing well below its offer keeps its draw + 2 A; the rest is re-shared.
    (40, [load(1, drawn_a=8.0, offered_a=20.0), load(2, drawn_a=19.8, offered_a=20.0)],
     {"CP1/1": (10.0, Role.SHARE), "CP2/1": (30.0, Role.SHARE)}),
    # ...and is not taken for one that wants more while it draws within 1 A of that.
    (40, [load(1, drawn_a=8.5, offered_a=10.0), load(2, drawn_a=29.8, offered_a=30.0)],
     {"CP1/1": (10.5, Role.SHARE), "CP2/1": (29.5, Role.SHARE)}),
    # Drawing close to its offer: it may want more, so it shares evenly.
    (40, [load(1, drawn_a=9.5, offered_a=10.0), load(2, drawn_a=29.8, offered_a=30.0)],
     {"CP1/1": (20.0, Role.SHARE), "CP2/1": (20.0, Role.SHARE)}),
    # A low draw never brings the limit under the minimum.
    (40, [load(1, drawn_a=0.5, offered_a=16.0), load(2)],
     {"CP1/1": (6.0, Role.SHARE), "CP2/1": (32.0, Role.SHARE)}),
    # Suspended by the EV: keeps the minimum so it can resume.
    (30, [load(1, SUSPENDED), load(2)],
     {"CP1/1": (6.0, Role.SHARE), "CP2/1": (24.0, Role.SHARE)}),
    # The vehicle's own maximum caps it.
    (60, [load(1, vehicle_max_a=10.0), load(2)],
     {"CP1/1": (10.0, Role.SHARE), "CP2/1": (32.0, Role.SHARE)}),
    # 6 A each does not fit for the third: it waits with 0 (first come, first served).
    (13, [load(3, minute=3), load(1, minute=1), load(2, minute=2)],
     {"CP3/1": (0.0, Role.QUEUED), "CP1/1": (6.5, Role.SHARE), "CP2/1": (6.5, Role.SHARE)}),
    # An offline charger counts with the higher of its last limit and its fallback.
    (40, [load(1, offline=True, offered_a=10.0, fallback_a=16.0), load(2)],
     {"CP1/1": (16.0, Role.OFFLINE), "CP2/1": (24.0, Role.SHARE)}),
    (40, [load(1, offline=True, offered_a=20.0, fallback_a=6.0), load(2)],
     {"CP1/1": (20.0, Role.OFFLINE), "CP2/1": (20.0, Role.SHARE)}),
    # ...even when idle: a vehicle may start there without asking.
    (40, [load(1, IDLE, offline=True, fallback_a=10.0), load(2)],
     {"CP1/1": (10.0, Role.OFFLINE), "CP2/1": (30.0, Role.SHARE)}),
    # A limit the charger refused to change counts as it is.
    (40, [load(1, pinned_a=25.0), load(2), load(3)],
     {"CP1/1": (25.0, Role.PINNED), "CP2/1": (7.5, Role.SHARE), "CP3/1": (7.5, Role.SHARE)}),
    # What is left goes to idle connectors (0 unless it reaches the minimum).
    (50, [load(1, vehicle_max_a=16.0), load(2, IDLE), load(3, IDLE)],
     {"CP1/1": (16.0, Role.SHARE), "CP2/1": (17.0, Role.IDLE), "CP3/1": (17.0, Role.IDLE)}),
    (40, [load(1, vehicle_max_a=30.0), load(2, IDLE), load(3, IDLE)],
     {"CP1/1": (30.0, Role.SHARE), "CP2/1": (0.0, Role.IDLE), "CP3/1": (0.0, Role.IDLE)}),
    # A single-phase vehicle on L2 leaves L1 and L3 to the others.
    (20, [load(1, phases=frozenset({2})), load(2, phases=frozenset({1, 3})),
          load(3, phases=frozenset({2}))],
     {"CP1/1": (10.0, Role.SHARE), "CP2/1": (20.0, Role.SHARE), "CP3/1": (10.0, Role.SHARE)}),
    # A connector that cannot carry the minimum never charges.
    (40, [load(1, max_a=5.0)], {"CP1/1": (0.0, Role.QUEUED)}),
    # Limits are whole tenths: binary noise below one (5.999999999999986) is that tenth.
    (40, [load(1, max_a=5.999999999999986)], {"CP1/1": (6.0, Role.SHARE)}),
    (40, [load(1, max_a=5.99)], {"CP1/1": (0.0, Role.QUEUED)}),
])
def test_allocation_table(site_a: float, loads: list[ConnectorLoad],
                          expected: dict[str, tuple[float, Role]]) -> None:
    assert limits(site_a, *loads) == expected


def test_queue_is_first_come_first_served_and_the_first_is_served_first() -> None:
    loads = [load(n, minute=10 - n) for n in range(1, 6)]  # CP5 started first
    result = allocate(20, loads)
    assert result.queue == (key(2), key(1))
    # 20 A less 3 x 6 A leaves 2 A: 0.6 A each and the last tenths to the earliest.
    assert [result.limit(key(n)).limit_a for n in (5, 4, 3)] == [6.7, 6.7, 6.6]
    # When the first vehicle leaves, the head of the queue gets its place.
    after = allocate(20, [entry for entry in loads if entry.key != key(5)])
    assert after.queue == (key(1),)
    assert after.limit(key(2)).role == Role.SHARE


def test_offline_chargers_beyond_the_limit_leave_nothing_and_are_reported() -> None:
    result = allocate(20, [load(1, offline=True, fallback_a=16.0),
                           load(2, offline=True, fallback_a=16.0), load(3)])
    assert result.overcommitted
    assert result.limit(key(3)).limit_a == 0.0 and result.queue == (key(3),)
    assert not allocate(40, [load(1, offline=True, fallback_a=16.0), load(3)]).overcommitted


def test_sub_feeders_limit_their_connectors_and_the_rest_is_shared() -> None:
    loads = [load(1, feeders=frozenset({"F"})), load(2, feeders=frozenset({"F", "G"})),
             load(3), load(4, feeders=frozenset({"G"}))]
    result = allocate(60, loads, {"F": 20, "G": 100})
    assert [entry.limit_a for entry in result.limits] == [10.0, 10.0, 20.0, 20.0]
    with pytest.raises(LoadInputError, match="feeders"):
        allocate(60, loads, {"F": 20})
    with pytest.raises(LoadInputError, match="feeder"):
        allocate(60, [], {"F": -1})


def test_phase_load_is_the_sum_of_limits_per_phase() -> None:
    result = allocate(32, [load(1, phases=frozenset({1})), load(2), load(3, IDLE, max_a=10)])
    assert result.phase_load_a == (32.0, 16.0, 16.0)


@pytest.mark.parametrize(("site_a", "loads", "message"), [
    (-1, [], "site limit"),
    (float("nan"), [], "site limit"),
    (10, [load(1), load(1)], "listed twice"),
    (10, [load(1, phases=frozenset())], "phases"),
    (10, [load(1, phases=frozenset({4}))], "phases"),
    (10, [load(1, drawn_a=-2.0)], "drawn_a"),
    (10, [load(1, max_a=float("inf"))], "max_a"),
])
def test_bad_input_is_named(site_a: float, loads: list[ConnectorLoad], message: str) -> None:
    with pytest.raises(LoadInputError, match=message):
        allocate(site_a, loads)


# --- properties -----------------------------------------------------------------------------

amps = st.floats(min_value=0, max_value=80, allow_nan=False)
connector_loads = st.builds(
    lambda n, state, max_a, phases, minute, drawn, offered, vehicle, offline, fallback, pinned,
    feeders: ConnectorLoad(key(n), state, max_a, frozenset(phases),
                           T0 + timedelta(minutes=minute) if state != IDLE else None, drawn,
                           offered, vehicle, offline, fallback, pinned, frozenset(feeders)),
    st.integers(1, 10_000), st.sampled_from(SessionState), st.floats(0, 80),
    st.sets(st.sampled_from([1, 2, 3]), min_size=1), st.integers(0, 100),
    st.none() | amps, st.none() | amps, st.none() | amps, st.booleans(), amps,
    st.none() | amps, st.sets(st.sampled_from(["A", "B"])))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(site_a=st.floats(0, 400), loads=st.lists(connector_loads, max_size=25,
                                                unique_by=lambda c: c.key),
       feeder_a=st.floats(0, 100), feeder_b=st.floats(0, 100))
def test_properties(site_a: float, loads: list[ConnectorLoad], feeder_a: float,
                    feeder_b: float) -> None:
    feeders = {"A": feeder_a, "B": feeder_b}
    result = allocate(site_a, loads, feeders)
    if not result.overcommitted:
        for feeder, limit in feeders.items():
            for p in (1, 2, 3):
                behind = sum(round(by_limit.limit_a * 10) for by_limit, c
                             in zip(result.limits, loads, strict=True)
                             if feeder in c.feeders and p in c.phases)
                assert behind <= math.floor(limit * 10 + 1e-6)
    by_key = {entry.key: entry for entry in result.limits}
    assert [entry.key for entry in result.limits] == [c.key for c in loads]
    # Within the site limit on every phase, unless the unchangeable ones exceed it alone.
    for p, total in zip((1, 2, 3), result.phase_load_a, strict=True):
        assert total == pytest.approx(sum(by_key[c.key].limit_a for c in loads
                                          if p in c.phases))
        if not result.overcommitted:
            assert round(total * 10) <= math.floor(site_a * 10 + 1e-6)
    for c in loads:
        entry = by_key[c.key]
        if entry.role in (Role.SHARE, Role.IDLE, Role.QUEUED):
            # A vehicle (or an arrival) gets nothing or at least the minimum, never more
            # than its connector carries (in whole tenths: binary noise such as
            # 5.999999999999986 is the tenth it stands for).
            assert entry.limit_a == 0 or MIN_CHARGING_A <= entry.limit_a <= c.max_a + 1e-6
        if entry.role == Role.SHARE:
            assert entry.limit_a >= MIN_CHARGING_A
        assert (entry.role == Role.QUEUED) == (c.key in result.queue)
    # The queue is in order of arrival.
    started = {c.key: c.started_at or datetime.max.replace(tzinfo=UTC) for c in loads}
    queued = [started[k] for k in result.queue]
    assert queued == sorted(queued)
