"""Site load management: how a site's current is shared among its connectors (pure).

``allocate(site_limit_a, connectors)`` decides every connector's limit (A per phase) from what
the backend knows of it; the OCPP server sends the limits that changed as charging profiles.

- A vehicle that wants current (a transaction charging, or held back by the charger) gets at
  least ``MIN_CHARGING_A``, or 0 and a place in the queue when even that does not fit: first
  come (by transaction start), first served.
- Above the minimum the current is shared fairly (water-filling): a vehicle that draws less
  than it is offered keeps its draw plus ``DRAW_MARGIN_A`` and the rest goes to the others; a
  vehicle suspended by the EV keeps only the minimum, so that it can resume at once.
- A charger the backend cannot reach counts with what it may draw on its own: the higher of
  its last limit (it keeps it for a while) and its offline fallback limit. A limit a charger
  refused to change counts as it is (``pinned_a``). The site stays within its limit whatever
  these chargers do.
- What is left goes to idle connectors as the limit a vehicle arriving there starts with
  (0 unless it reaches the minimum), so an arrival cannot overload the site either.

A site may have sub-feeders with limits of their own (a connector behind one draws from
its capacity and the site's). The sum of the limits on each phase never exceeds the site's
limit nor any feeder's (unless the chargers that cannot be changed exceed one on their own:
``Allocation.overcommitted``). Work is done in
tenths of an ampere, rounded down, the resolution OCPP limits are sent with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

PHASES = (1, 2, 3)
ALL_PHASES = frozenset(PHASES)
# IEC 61851-1: a pilot cannot offer less than 6 A; a lower limit suspends charging.
MIN_CHARGING_A = 6.0
# What a vehicle drawing less than offered keeps above its draw (it may ramp up a little).
DRAW_MARGIN_A = 2.0

_DECI = 10  # the unit of the arithmetic: 0.1 A


class SessionState(StrEnum):
    """What a connector's session wants."""

    CHARGING = "charging"  # a transaction that wants current (charging or held back)
    SUSPENDED_EV = "suspended_ev"  # the vehicle stopped drawing by itself
    IDLE = "idle"  # no transaction


class Role(StrEnum):
    """Why a connector has the limit it has."""

    SHARE = "share"  # a vehicle's share
    QUEUED = "queued"  # a vehicle waiting for the minimum to fit
    IDLE = "idle"  # what a vehicle arriving here may start with
    OFFLINE = "offline"  # counted at what the charger may draw on its own
    PINNED = "pinned"  # the charger would not change it


class LoadInputError(ValueError):
    """The description of a site or connector cannot be allocated (names what is wrong)."""


@dataclass(frozen=True, order=True)
class ConnectorKey:
    charge_point_id: str
    connector_id: int

    def __str__(self) -> str:
        return f"{self.charge_point_id}/{self.connector_id}"


@dataclass(frozen=True)
class ConnectorLoad:
    """One connector as the backend knows it."""

    key: ConnectorKey
    state: SessionState
    max_a: float  # what the connector carries per phase
    phases: frozenset[int] = ALL_PHASES  # the site phases it draws from
    started_at: datetime | None = None  # its transaction's start (queue order)
    drawn_a: float | None = None  # measured (highest phase), when known
    offered_a: float | None = None  # the limit it was last given
    vehicle_max_a: float | None = None
    offline: bool = False
    fallback_a: float = 0.0  # what the charger applies when it loses the backend
    pinned_a: float | None = None
    # The sub-feeders it is behind (each with its own limit per phase), besides the site.
    feeders: frozenset[str] = frozenset()

    def resources(self) -> frozenset[tuple[str, int]]:
        """The (feeder, phase) capacities it draws from; the site is feeder ""."""
        return frozenset((feeder, p) for feeder in ("", *self.feeders) for p in self.phases)


Resource = tuple[str, int]


@dataclass(frozen=True)
class ConnectorLimit:
    key: ConnectorKey
    limit_a: float
    role: Role


@dataclass(frozen=True)
class Allocation:
    limits: tuple[ConnectorLimit, ...]  # in the order of the input
    queue: tuple[ConnectorKey, ...]  # first to be served first
    phase_load_a: tuple[float, float, float]  # the sum of the limits on L1, L2, L3
    overcommitted: bool  # the connectors that cannot be changed exceed the limit alone

    def limit(self, key: ConnectorKey) -> ConnectorLimit:
        for entry in self.limits:
            if entry.key == key:
                return entry
        raise KeyError(str(key))


def _deci(amps: float) -> int:
    # Down to the tenth; the tolerance absorbs binary noise such as 3 * 0.1.
    return max(0, math.floor(amps * _DECI + 1e-6))


def _check(site_limit_a: float, connectors: Sequence[ConnectorLoad],
           feeder_limits: Mapping[str, float]) -> None:
    if not math.isfinite(site_limit_a) or site_limit_a < 0:
        raise LoadInputError(f"site limit {site_limit_a!r} A: a finite number >= 0")
    for feeder, limit in feeder_limits.items():
        if not feeder or not math.isfinite(limit) or limit < 0:
            raise LoadInputError(f"feeder {feeder!r} limit {limit!r} A: a named feeder with "
                                 "a finite number >= 0")
    seen: set[ConnectorKey] = set()
    for load in connectors:
        if load.key in seen:
            raise LoadInputError(f"connector {load.key} is listed twice")
        seen.add(load.key)
        if not load.phases or not load.phases <= ALL_PHASES:
            raise LoadInputError(f"connector {load.key}: phases {sorted(load.phases)} must be "
                                 f"a non-empty subset of {list(PHASES)}")
        if unknown := load.feeders - set(feeder_limits):
            raise LoadInputError(f"connector {load.key}: feeders {sorted(unknown)} have no "
                                 "limit")
        for name in ("max_a", "drawn_a", "offered_a", "vehicle_max_a", "fallback_a",
                     "pinned_a"):
            value = getattr(load, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise LoadInputError(f"connector {load.key}: {name} {value!r}: a finite "
                                     "number >= 0")


def _fixed_deci(load: ConnectorLoad) -> tuple[int, Role] | None:
    """What a connector the backend cannot change counts with."""
    if load.pinned_a is not None:
        return _deci(load.pinned_a), Role.PINNED
    if load.offline:
        own = max(load.offered_a or 0.0, load.fallback_a)
        return _deci(min(own, load.max_a)), Role.OFFLINE
    return None


def draws_less(drawn_a: float, offered_a: float) -> bool:
    """Whether a vehicle draws clearly less than it is offered (and keeps only its draw
    plus the margin). Half the margin of hysteresis: a vehicle given its draw plus the
    margin is not taken for one that wants more until it draws close to that."""
    return drawn_a <= offered_a - DRAW_MARGIN_A / 2


def _cap_deci(load: ConnectorLoad) -> int:
    """The most a wanting vehicle is given."""
    cap = load.max_a
    if load.vehicle_max_a is not None:
        cap = min(cap, load.vehicle_max_a)
    if load.state == SessionState.SUSPENDED_EV:
        cap = min(cap, MIN_CHARGING_A)
    elif (load.drawn_a is not None and load.offered_a is not None
          and draws_less(load.drawn_a, load.offered_a)):
        cap = min(cap, max(MIN_CHARGING_A, load.drawn_a + DRAW_MARGIN_A))
    return _deci(cap)


def _fill(alloc: dict[ConnectorKey, int], caps: dict[ConnectorKey, int],
          phases: dict[ConnectorKey, frozenset[Resource]], headroom: dict[Resource, int],
          order: Sequence[ConnectorKey]) -> None:
    """Raise every allocation in ``order`` evenly until it reaches its cap or a capacity it
    draws from (a phase of the site or of a feeder) is full: max-min fair shares."""
    def open_(key: ConnectorKey) -> bool:
        return alloc[key] < caps[key] and all(headroom[p] > 0 for p in phases[key])

    active = [key for key in order if open_(key)]
    while active:
        users = {p: sum(1 for key in active if p in phases[key]) for p in headroom}
        step = min(min(caps[key] - alloc[key] for key in active),
                   min(headroom[p] // n for p, n in users.items() if n))
        if step > 0:
            for key in active:
                alloc[key] += step
                for p in phases[key]:
                    headroom[p] -= step
        else:
            # A capacity has fewer tenths left than users: the earliest get one each.
            for key in active:
                if all(headroom[p] > 0 for p in phases[key]):
                    alloc[key] += 1
                    for p in phases[key]:
                        headroom[p] -= 1
        active = [key for key in active if open_(key)]


def allocate(site_limit_a: float, connectors: Sequence[ConnectorLoad],
             feeder_limits: Mapping[str, float] | None = None) -> Allocation:
    """Every connector's limit on a site of ``site_limit_a`` per phase, whose sub-feeders
    have the limits ``feeder_limits`` (per phase, by name)."""
    feeder_limits = feeder_limits or {}
    _check(site_limit_a, connectors, feeder_limits)
    headroom = {(feeder, p): _deci(limit) for feeder, limit
                in [("", site_limit_a), *feeder_limits.items()] for p in PHASES}
    limits: dict[ConnectorKey, tuple[int, Role]] = {}
    phases = {load.key: load.resources() for load in connectors}

    for load in connectors:
        fixed = _fixed_deci(load)
        if fixed is not None:
            limits[load.key] = fixed
            for resource in phases[load.key]:
                headroom[resource] -= fixed[0]
    overcommitted = any(room < 0 for room in headroom.values())
    headroom = {p: max(room, 0) for p, room in headroom.items()}

    wanting = sorted((load for load in connectors
                      if load.key not in limits and load.state != SessionState.IDLE),
                     key=lambda load: (load.started_at is None, load.started_at or 0,
                                       load.key))
    minimum = _deci(MIN_CHARGING_A)
    caps = {load.key: _cap_deci(load) for load in wanting}
    admitted: list[ConnectorKey] = []
    queue: list[ConnectorKey] = []
    for load in wanting:
        if caps[load.key] >= minimum and all(headroom[r] >= minimum for r in phases[load.key]):
            admitted.append(load.key)
            for resource in phases[load.key]:
                headroom[resource] -= minimum
        else:
            queue.append(load.key)
    shares = {key: minimum for key in admitted}
    _fill(shares, caps, phases, headroom, admitted)
    limits.update((key, (share, Role.SHARE)) for key, share in shares.items())
    limits.update((key, (0, Role.QUEUED)) for key in queue)

    idle = sorted(load.key for load in connectors if load.key not in limits)
    idle_caps = {load.key: _deci(load.max_a) for load in connectors if load.key in idle}
    starts = dict.fromkeys(idle, 0)
    _fill(starts, idle_caps, phases, headroom, idle)
    limits.update((key, (start if start >= minimum else 0, Role.IDLE))
                  for key, start in starts.items())

    load_per_phase = tuple(
        sum(limits[load.key][0] for load in connectors if p in load.phases) / _DECI
        for p in PHASES)
    return Allocation(
        limits=tuple(ConnectorLimit(load.key, limits[load.key][0] / _DECI,
                                    limits[load.key][1]) for load in connectors),
        queue=tuple(queue),
        phase_load_a=(load_per_phase[0], load_per_phase[1], load_per_phase[2]),
        overcommitted=overcommitted)
