"""OCPI 2.2.1 tariff engine: what a session costs under a Tariff. Pure: no I/O, no clock.

A session is given as its measured usage, a list of contiguous :class:`Usage` stretches (each
charging or not, with the energy delivered and the current and power drawn). The engine cuts
the stretches wherever a tariff restriction can change (local times of day, midnight, session
durations, energy totals), picks for each piece and dimension the first Tariff Element whose
restrictions match, joins neighbouring pieces priced alike into charging periods, and prices
them.

Rules this follows (OCPI 2.2.1, Tariffs and CDRs chapters):

- Per dimension the first Tariff Element in the list that has a Price Component of that
  dimension and whose restrictions match is used; no match means the dimension is free.
  Elements with a ``reservation`` restriction price only the reservation.
- ``TIME`` is time charging, ``PARKING_TIME`` time connected but not charging, ``ENERGY`` the
  energy delivered; ``FLAT`` is charged once per session.
- Lower bounds of restrictions are inclusive, upper bounds exclusive (``start_time`` to
  ``end_time``, ``start_date`` to ``end_date``, ``min_kwh`` to ``max_kwh``, ``min_duration`` to
  ``max_duration``, and the same for current and power). A ``start_time`` later than its
  ``end_time`` spans midnight. Times, dates and days of the week are the location's local time.
  ``day_of_week`` is the local day of the instant being priced.
- ``step_size`` is applied once per session for ENERGY and once for TIME and PARKING_TIME
  together: the total volume of the dimension of the session's last priced period (of ENERGY;
  of TIME or PARKING_TIME) is rounded up to the step of that period's Price Component, and the
  extra is billed in that period at its price. So charging followed by paid parking rounds the
  parking time only; charging that ends the session rounds the charging time.
- VAT is per Price Component; a component without ``vat`` has no VAT applicable, so the
  amount including VAT is unknown wherever such a component costs something.
- ``min_price`` and ``max_price`` bound the total, excl. and incl. VAT each on their own; the
  per-dimension totals stay as priced.
- Amounts are rounded to 4 decimals per dimension (the spec leaves rounding to contracts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

ENERGY = "ENERGY"
FLAT = "FLAT"
PARKING_TIME = "PARKING_TIME"
TIME = "TIME"
DIMENSIONS = (ENERGY, FLAT, PARKING_TIME, TIME)
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
RESERVATION = "RESERVATION"
RESERVATION_EXPIRES = "RESERVATION_EXPIRES"

_MONEY = Decimal("0.0001")
_SECONDS_PER_HOUR = Decimal(3600)
# Interpolated energies are kept to the milli-watt-hour, so periods add up exactly.
_WH = Decimal("0.001")


# --- input -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Usage:
    """A stretch of a session with one charging state: ``energy_wh`` delivered between
    ``start`` and ``end``; current (A, summed over phases) and power (kW) as measured in it,
    when known. ``current_a``/``power_kw`` are the means the restrictions are judged by."""

    start: datetime
    end: datetime
    energy_wh: Decimal
    charging: bool
    current_a: Decimal | None = None
    power_kw: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None

    @property
    def seconds(self) -> Decimal:
        return Decimal(str(max((self.end - self.start).total_seconds(), 0.0)))

    @property
    def mean_power_kw(self) -> Decimal | None:
        """Measured power, else the mean the energy implies."""
        if self.power_kw is not None:
            return self.power_kw
        if self.seconds == 0:
            return None
        return self.energy_wh / self.seconds * _SECONDS_PER_HOUR / 1000


@dataclass(frozen=True)
class Reservation:
    """A reservation that preceded the session (``end`` = the session's start) or that
    expired unused (``expired``)."""

    start: datetime
    end: datetime
    expired: bool = False


# --- the tariff, parsed -----------------------------------------------------------------------

class TariffError(ValueError):
    """A tariff the engine cannot price; ``str()`` names the field."""


@dataclass(frozen=True)
class Component:
    """A Price Component of the Tariff Element at ``element`` (its index in the list)."""

    element: int
    type: str
    price: Decimal
    vat: Decimal | None
    step_size: int


@dataclass(frozen=True)
class Restrictions:
    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: frozenset[str] = frozenset()
    reservation: str | None = None


@dataclass(frozen=True)
class Element:
    index: int
    restrictions: Restrictions
    components: tuple[Component, ...]

    def component(self, dimension: str) -> Component | None:
        return next((c for c in self.components if c.type == dimension), None)


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise TariffError(f"{where}: a number is required")
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise TariffError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite():
        raise TariffError(f"{where}: {value!r} is not a finite number")
    return number


def _time_of_day(value: Any, where: str) -> time:
    if (not isinstance(value, str) or len(value) != 5 or value[2] != ":"
            or not (value[:2] + value[3:]).isdigit()):
        raise TariffError(f"{where}: {value!r} is not a time of day HH:MM")
    hour, minute = int(value[:2]), int(value[3:])
    if hour > 23 or minute > 59:
        raise TariffError(f"{where}: {value!r} is not a time of day HH:MM")
    return time(hour, minute)


def _date(value: Any, where: str) -> date:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise TariffError(f"{where}: {value!r} is not a date YYYY-MM-DD") from None


def _restrictions(data: Any, where: str) -> Restrictions:
    if data is None:
        return Restrictions()
    if not isinstance(data, Mapping):
        raise TariffError(f"{where}: an object is required")
    known = {f for f in Restrictions.__dataclass_fields__}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TariffError(f"{where}.{unknown[0]}: not an OCPI 2.2.1 tariff restriction")
    values: dict[str, Any] = {}
    for key in ("start_time", "end_time"):
        if data.get(key) is not None:
            values[key] = _time_of_day(data[key], f"{where}.{key}")
    for key in ("start_date", "end_date"):
        if data.get(key) is not None:
            values[key] = _date(data[key], f"{where}.{key}")
    for key in ("min_kwh", "max_kwh", "min_current", "max_current", "min_power", "max_power"):
        if data.get(key) is not None:
            values[key] = _number(data[key], f"{where}.{key}")
            if values[key] < 0:
                raise TariffError(f"{where}.{key}: must not be negative")
    for key in ("min_duration", "max_duration"):
        if data.get(key) is not None:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TariffError(f"{where}.{key}: a whole number of seconds >= 0 is required")
            values[key] = value
    for low, high in (("start_date", "end_date"), ("min_kwh", "max_kwh"),
                      ("min_current", "max_current"), ("min_power", "max_power"),
                      ("min_duration", "max_duration")):
        if low in values and high in values and values[low] >= values[high]:
            raise TariffError(f"{where}: {low} must be below {high}")
    days = data.get("day_of_week")
    if days is not None:
        if not isinstance(days, list) or any(d not in DAYS for d in days):
            raise TariffError(f"{where}.day_of_week: a list of {', '.join(DAYS)} is required")
        values["day_of_week"] = frozenset(days)
    reservation = data.get("reservation")
    if reservation is not None:
        if reservation not in (RESERVATION, RESERVATION_EXPIRES):
            raise TariffError(f"{where}.reservation: {RESERVATION} or {RESERVATION_EXPIRES} "
                              "is required")
        values["reservation"] = reservation
    return Restrictions(**values)


def parse_elements(tariff: Mapping[str, Any]) -> list[Element]:
    """The Tariff Elements of an OCPI Tariff object, checked; raises :class:`TariffError`."""
    raw = tariff.get("elements")
    if not isinstance(raw, list) or not raw:
        raise TariffError("elements: at least one Tariff Element is required")
    elements = []
    for i, element in enumerate(raw):
        where = f"elements[{i}]"
        if not isinstance(element, Mapping):
            raise TariffError(f"{where}: an object is required")
        restrictions = _restrictions(element.get("restrictions"), f"{where}.restrictions")
        raw_components = element.get("price_components")
        if not isinstance(raw_components, list) or not raw_components:
            raise TariffError(f"{where}.price_components: at least one is required")
        components: list[Component] = []
        for j, comp in enumerate(raw_components):
            cwhere = f"{where}.price_components[{j}]"
            if not isinstance(comp, Mapping):
                raise TariffError(f"{cwhere}: an object is required")
            kind = comp.get("type")
            if kind not in DIMENSIONS:
                raise TariffError(f"{cwhere}.type: one of {', '.join(DIMENSIONS)} is required")
            if restrictions.reservation is not None and kind not in (FLAT, TIME):
                raise TariffError(f"{cwhere}.type: a reservation is priced by FLAT and TIME "
                                  "only")
            price = _number(comp.get("price"), f"{cwhere}.price")
            if price < 0:
                raise TariffError(f"{cwhere}.price: must not be negative")
            vat = None if comp.get("vat") is None else _number(comp["vat"], f"{cwhere}.vat")
            if vat is not None and not 0 <= vat <= 100:
                raise TariffError(f"{cwhere}.vat: a percentage from 0 to 100 is required")
            step = comp.get("step_size")
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise TariffError(f"{cwhere}.step_size: a whole number >= 0 is required")
            if any(c.type == kind for c in components):
                raise TariffError(f"{cwhere}.type: {kind} appears twice in one element")
            components.append(Component(i, kind, price, vat, step))
        elements.append(Element(i, restrictions, tuple(components)))
    return elements


TARIFF_TYPES = ("AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR")


def check_tariff(tariff: Mapping[str, Any]) -> None:
    """Raise :class:`TariffError` unless ``tariff`` is an OCPI 2.2.1 Tariff the engine can
    price: its elements and restrictions, its type, its alternative texts, a min_price not
    above the max_price, and a validity that starts before it ends."""
    parse_elements(tariff)
    if tariff.get("type") is not None and tariff["type"] not in TARIFF_TYPES:
        raise TariffError(f"type: one of {', '.join(TARIFF_TYPES)} is required")
    for i, text in enumerate(tariff.get("tariff_alt_text") or []):
        if (not isinstance(text, Mapping) or set(text) != {"language", "text"}
                or not isinstance(text["language"], str) or len(text["language"]) != 2
                or not isinstance(text["text"], str) or len(text["text"]) > 512):
            raise TariffError(f"tariff_alt_text[{i}]: a DisplayText (language: 2 letters, "
                              "text: at most 512 characters) is required")
    valid = [_instant(tariff.get(key), key) for key in ("start_date_time", "end_date_time")]
    if valid[0] is not None and valid[1] is not None and valid[0] >= valid[1]:
        raise TariffError("start_date_time: must be before end_date_time")
    bounds = {}
    for key in ("min_price", "max_price"):
        price = tariff.get(key)
        if price is None:
            continue
        if not isinstance(price, Mapping):
            raise TariffError(f"{key}: a Price object is required")
        excl = _number(price.get("excl_vat"), f"{key}.excl_vat")
        incl = (None if price.get("incl_vat") is None
                else _number(price["incl_vat"], f"{key}.incl_vat"))
        if excl < 0 or (incl is not None and incl < 0):
            raise TariffError(f"{key}: must not be negative")
        bounds[key] = (excl, incl)
    if "min_price" in bounds and "max_price" in bounds:
        (lo, lo_incl), (hi, hi_incl) = bounds["min_price"], bounds["max_price"]
        if lo > hi or (lo_incl is not None and hi_incl is not None and lo_incl > hi_incl):
            raise TariffError("min_price: must not be above max_price")


def _instant(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise TariffError(f"{where}: {value!r} is not an RFC 3339 date and time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- output ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Amount:
    """Money excl. and incl. VAT; ``incl_vat`` None when no VAT rate is known for it."""

    excl_vat: Decimal = Decimal(0)
    incl_vat: Decimal | None = Decimal(0)

    def __add__(self, other: Amount) -> Amount:
        incl = (None if self.incl_vat is None or other.incl_vat is None
                else self.incl_vat + other.incl_vat)
        return Amount(self.excl_vat + other.excl_vat, incl)

    def rounded(self) -> Amount:
        return Amount(self.excl_vat.quantize(_MONEY, ROUND_HALF_UP),
                      None if self.incl_vat is None
                      else self.incl_vat.quantize(_MONEY, ROUND_HALF_UP))

    def as_price(self) -> dict[str, float]:
        """An OCPI Price object."""
        price = {"excl_vat": float(self.excl_vat)}
        if self.incl_vat is not None:
            price["incl_vat"] = float(self.incl_vat)
        return price


ZERO = Amount()


def _cost(volume: Decimal, component: Component) -> Amount:
    excl = volume * component.price
    if component.vat is None:
        return Amount(excl, excl if excl == 0 else None)
    return Amount(excl, excl * (1 + component.vat / 100))


@dataclass(frozen=True)
class Period:
    """A charging period: one charging state and one Price Component per dimension
    throughout. ``billed_*`` include the extra a step_size rounding adds to this period."""

    start: datetime
    end: datetime
    charging: bool
    energy_wh: Decimal
    components: Mapping[str, Component]
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None
    billed_energy_wh: Decimal = Decimal(0)
    billed_seconds: Decimal = Decimal(0)
    cost: Mapping[str, Amount] = field(default_factory=dict)

    @property
    def seconds(self) -> Decimal:
        return Decimal(str(max((self.end - self.start).total_seconds(), 0.0)))

    @property
    def time_dimension(self) -> str:
        return TIME if self.charging else PARKING_TIME


@dataclass(frozen=True)
class Bill:
    """What a session costs: per dimension (as the CDR reports it) and in total."""

    periods: tuple[Period, ...]
    energy: Amount = ZERO
    time: Amount = ZERO
    parking: Amount = ZERO
    fixed: Amount = ZERO
    reservation: Amount = ZERO
    total: Amount = ZERO

    @property
    def energy_kwh(self) -> Decimal:
        return sum((p.energy_wh for p in self.periods), Decimal(0)) / 1000

    @property
    def charging_hours(self) -> Decimal:
        return sum((p.seconds for p in self.periods if p.charging),
                   Decimal(0)) / _SECONDS_PER_HOUR

    @property
    def parking_hours(self) -> Decimal:
        return sum((p.seconds for p in self.periods if not p.charging),
                   Decimal(0)) / _SECONDS_PER_HOUR


# --- restrictions ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _State:
    """What restrictions are judged by, at the start of a piece of usage."""

    local: datetime
    duration_s: Decimal
    kwh: Decimal
    current_a: Decimal | None
    power_kw: Decimal | None


def _in_range(value: Decimal | int | None, low: Decimal | int | None,
              high: Decimal | int | None) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False  # not measured: a restriction on it cannot be shown to hold
    return (low is None or value >= low) and (high is None or value < high)


def _time_matches(r: Restrictions, moment: time) -> bool:
    start, end = r.start_time, r.end_time
    if start is None and end is None:
        return True
    if start is not None and end is not None:
        if start == end:
            return True
        if start > end:  # over midnight
            return moment >= start or moment < end
    return (start is None or moment >= start) and (end is None or moment < end)


def _matches(r: Restrictions, state: _State) -> bool:
    local_date = state.local.date()
    return (_time_matches(r, state.local.time().replace(tzinfo=None))
            and (r.start_date is None or local_date >= r.start_date)
            and (r.end_date is None or local_date < r.end_date)
            and (not r.day_of_week or DAYS[state.local.weekday()] in r.day_of_week)
            and _in_range(state.kwh, r.min_kwh, r.max_kwh)
            and _in_range(state.duration_s, r.min_duration, r.max_duration)
            and _in_range(state.current_a, r.min_current, r.max_current)
            and _in_range(state.power_kw, r.min_power, r.max_power))


def _active(elements: Sequence[Element], dimension: str, state: _State) -> Component | None:
    for element in elements:
        component = element.component(dimension)
        if component is not None and _matches(element.restrictions, state):
            return component
    return None


# --- cutting usage at restriction boundaries ----------------------------------------------------

def _time_boundaries(elements: Sequence[Element], start: datetime, end: datetime,
                     session_start: datetime, zone: tzinfo) -> list[datetime]:
    """Instants inside (start, end) where a time-based restriction can change."""
    times = {time(0, 0)}
    for e in elements:
        times.update(t for t in (e.restrictions.start_time, e.restrictions.end_time) if t)
    found: set[datetime] = set()
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for t in times:
            found.add(datetime.combine(day, t, tzinfo=zone).astimezone(UTC))
        day += timedelta(days=1)
    for e in elements:
        for seconds in (e.restrictions.min_duration, e.restrictions.max_duration):
            if seconds is not None:
                found.add(session_start + timedelta(seconds=seconds))
    return sorted(t for t in found if start < t < end)


def _split(usage: Usage, at: datetime, energy_wh: Decimal | None = None) -> tuple[Usage, Usage]:
    """Cut ``usage`` at ``at``; the energy before it is ``energy_wh``, or in proportion to
    time."""
    if energy_wh is None:
        share = Decimal(str((at - usage.start).total_seconds())) / usage.seconds
        energy_wh = (usage.energy_wh * share).quantize(_WH, ROUND_HALF_UP)
    return (replace(usage, end=at, energy_wh=energy_wh),
            replace(usage, start=at, energy_wh=usage.energy_wh - energy_wh))


def _cut(usage: Sequence[Usage], elements: Sequence[Element], session_start: datetime,
         zone: tzinfo) -> list[Usage]:
    pieces: list[Usage] = []
    for u in usage:
        rest = u
        for boundary in _time_boundaries(elements, u.start, u.end, session_start, zone):
            before, rest = _split(rest, boundary)
            pieces.append(before)
        pieces.append(rest)
    thresholds = sorted({k * 1000 for e in elements
                         for k in (e.restrictions.min_kwh, e.restrictions.max_kwh)
                         if k is not None})
    if not thresholds:
        return pieces
    cut: list[Usage] = []
    delivered = Decimal(0)
    for piece in pieces:
        for wh in thresholds:
            if delivered < wh < delivered + piece.energy_wh:
                share = (wh - delivered) / piece.energy_wh
                at = piece.start + timedelta(seconds=float(piece.seconds * share))
                before, piece = _split(piece, at, wh - delivered)
                cut.append(before)
                delivered = wh
        cut.append(piece)
        delivered += piece.energy_wh
    return cut


# --- pricing -----------------------------------------------------------------------------------

def _merge(a: Period, b: Period) -> Period:
    def low(x: Decimal | None, y: Decimal | None) -> Decimal | None:
        return min((v for v in (x, y) if v is not None), default=None)

    def high(x: Decimal | None, y: Decimal | None) -> Decimal | None:
        return max((v for v in (x, y) if v is not None), default=None)

    return replace(a, end=b.end, energy_wh=a.energy_wh + b.energy_wh,
                   min_current_a=low(a.min_current_a, b.min_current_a),
                   max_current_a=high(a.max_current_a, b.max_current_a),
                   min_power_kw=low(a.min_power_kw, b.min_power_kw),
                   max_power_kw=high(a.max_power_kw, b.max_power_kw))


def _periods(pieces: Sequence[Usage], elements: Sequence[Element], session_start: datetime,
             zone: tzinfo, join_alike: bool) -> tuple[list[Period], Component | None]:
    """Charging periods (with ``join_alike``, neighbouring pieces priced alike joined) and the
    session's FLAT component."""
    periods: list[Period] = []
    flat: Component | None = None
    delivered = Decimal(0)
    for piece in pieces:
        state = _State(piece.start.astimezone(zone),
                       Decimal(str((piece.start - session_start).total_seconds())),
                       delivered / 1000, piece.current_a, piece.mean_power_kw)
        delivered += piece.energy_wh
        if flat is None:
            flat = _active(elements, FLAT, state)
        time_dim = TIME if piece.charging else PARKING_TIME
        components = {d: c for d in (ENERGY, time_dim)
                      if (c := _active(elements, d, state)) is not None}
        period = Period(piece.start, piece.end, piece.charging, piece.energy_wh, components,
                        piece.min_current_a, piece.max_current_a, piece.min_power_kw,
                        piece.max_power_kw)
        if (join_alike and periods and periods[-1].charging == period.charging
                and periods[-1].components == period.components
                and periods[-1].end == period.start):
            periods[-1] = _merge(periods[-1], period)
        else:
            periods.append(period)
    return periods, flat


def _round_up(total: Decimal, step: int) -> Decimal:
    if step <= 0:
        return total
    return Decimal(math.ceil(total / step)) * step


def _apply_steps(periods: list[Period]) -> list[Period]:
    """Billed volumes: the actual ones, plus what rounding the session's total of a dimension
    up to the step_size of its last priced period adds to that period."""
    billed = [replace(p, billed_energy_wh=p.energy_wh, billed_seconds=p.seconds)
              for p in periods]
    energy = [i for i, p in enumerate(billed) if ENERGY in p.components and p.energy_wh > 0]
    if energy:
        last = energy[-1]
        total = sum((billed[i].energy_wh for i in energy), Decimal(0))
        extra = _round_up(total, billed[last].components[ENERGY].step_size) - total
        billed[last] = replace(billed[last], billed_energy_wh=billed[last].energy_wh + extra)
    timed = [i for i, p in enumerate(billed) if p.time_dimension in p.components
             and p.seconds > 0]
    if timed:
        last = timed[-1]
        dimension = billed[last].time_dimension
        total = sum((billed[i].seconds for i in timed
                     if billed[i].time_dimension == dimension), Decimal(0))
        extra = _round_up(total, billed[last].components[dimension].step_size) - total
        billed[last] = replace(billed[last], billed_seconds=billed[last].seconds + extra)
    return billed


def _priced(period: Period) -> Period:
    cost: dict[str, Amount] = {}
    if (c := period.components.get(ENERGY)) is not None:
        cost[ENERGY] = _cost(period.billed_energy_wh / 1000, c)
    if (c := period.components.get(period.time_dimension)) is not None:
        cost[period.time_dimension] = _cost(period.billed_seconds / _SECONDS_PER_HOUR, c)
    return replace(period, cost=cost)


def _reservation_cost(elements: Sequence[Element], reservation: Reservation,
                      zone: tzinfo) -> Amount:
    """A reservation's FLAT fee and its TIME (rounded up to its step_size); an expired one is
    priced by RESERVATION_EXPIRES elements first, then RESERVATION ones."""
    kinds = ((RESERVATION_EXPIRES, RESERVATION) if reservation.expired else (RESERVATION,))
    state = _State(reservation.start.astimezone(zone), Decimal(0), Decimal(0), None, None)
    seconds = Decimal(str(max((reservation.end - reservation.start).total_seconds(), 0.0)))
    total = ZERO
    for dimension in (FLAT, TIME):
        candidates = [e for kind in kinds for e in elements if e.restrictions.reservation == kind]
        component = _active(candidates, dimension, state)
        if component is None:
            continue
        if dimension == FLAT:
            total += _cost(Decimal(1), component)
        else:
            total += _cost(_round_up(seconds, component.step_size) / _SECONDS_PER_HOUR,
                           component)
    return total


def _bounded(total: Amount, tariff: Mapping[str, Any]) -> Amount:
    excl, incl = total.excl_vat, total.incl_vat
    if (low := tariff.get("min_price")) is not None:
        excl = max(excl, Decimal(str(low["excl_vat"])))
        if incl is not None and low.get("incl_vat") is not None:
            incl = max(incl, Decimal(str(low["incl_vat"])))
    if (high := tariff.get("max_price")) is not None:
        excl = min(excl, Decimal(str(high["excl_vat"])))
        if incl is not None and high.get("incl_vat") is not None:
            incl = min(incl, Decimal(str(high["incl_vat"])))
    return Amount(excl, incl)


def time_zone(name: str | None) -> tzinfo:
    """A location's time zone (IANA name); UTC when it is not given or not known."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return UTC


def price_session(tariff: Mapping[str, Any] | None, usage: Sequence[Usage],
                  zone: tzinfo = UTC, reservation: Reservation | None = None,
                  session_start: datetime | None = None, join_alike: bool = True) -> Bill:
    """Price a session's ``usage`` (contiguous, oldest first) under ``tariff`` at a location
    in time zone ``zone``; durations count from ``session_start`` (default: the first
    usage's start). Without a tariff the periods are those of the usage, unpriced.

    ``join_alike`` joins neighbouring periods priced alike (a CDR's periods). A running
    session is served without: a partner appends PATCHed periods, so a period once sent must
    not grow, and each stretch between meter readings stays a period of its own. The cost is
    the same either way."""
    elements = parse_elements(tariff) if tariff is not None else []
    session_elements = [e for e in elements if e.restrictions.reservation is None]
    periods: list[Period] = []
    flat: Component | None = None
    if usage:
        start = session_start or usage[0].start
        pieces = _cut(usage, session_elements, start, zone)
        periods, flat = _periods(pieces, session_elements, start, zone, join_alike)
        periods = [_priced(p) for p in _apply_steps(periods)]
    if tariff is None:
        return Bill(tuple(periods))
    energy = sum((p.cost.get(ENERGY, ZERO) for p in periods), ZERO).rounded()
    time_ = sum((p.cost.get(TIME, ZERO) for p in periods), ZERO).rounded()
    parking = sum((p.cost.get(PARKING_TIME, ZERO) for p in periods), ZERO).rounded()
    fixed = _cost(Decimal(1), flat).rounded() if flat is not None else ZERO
    reserved = (_reservation_cost(elements, reservation, zone).rounded()
                if reservation is not None else ZERO)
    total = _bounded(energy + time_ + parking + fixed + reserved, tariff)
    return Bill(tuple(periods), energy, time_, parking, fixed, reserved, total)


def charging_period_objects(periods: Iterable[Period], tariff_id: str | None = None
                            ) -> list[dict[str, Any]]:
    """OCPI ChargingPeriods: charging ones carry ENERGY (kWh) and TIME (h), the others
    PARKING_TIME (h) (and ENERGY should any have flowed); current and power extremes where
    measured."""
    objects = []
    for p in periods:
        hours = (p.seconds / _SECONDS_PER_HOUR).quantize(Decimal("0.000001"), ROUND_HALF_UP)
        dims: list[dict[str, Any]] = []
        if p.charging or p.energy_wh:
            dims.append({"type": ENERGY, "volume": p.energy_wh / 1000})
        dims.append({"type": p.time_dimension, "volume": hours})
        for kind, value in (("MIN_CURRENT", p.min_current_a), ("MAX_CURRENT", p.max_current_a),
                            ("MIN_POWER", p.min_power_kw), ("MAX_POWER", p.max_power_kw)):
            if value is not None:
                dims.append({"type": kind, "volume": value})
        obj: dict[str, Any] = {"start_date_time": p.start, "dimensions": dims}
        if tariff_id:
            obj["tariff_id"] = tariff_id
        objects.append(obj)
    return objects
