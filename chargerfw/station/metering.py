"""Metering decisions: is a meter sample fresh enough to judge, and does the vehicle draw more
current than the pilot offers for longer than it may.

Over-current rule (IEC 61851-1:2017, Annex A, control pilot): after the EVSE lowers the PWM duty
the EV has up to 5 s to follow the new, lower limit (the "change of duty cycle" sequence of the
pilot timing table), so a reduction is judged against the previous, higher limit for
``follow_time_s``. Beyond that, a draw above the offered current plus a tolerance for the
vehicle's regulation and the meter's accuracy, held for ``persist_s``, is an over-current and
the EVSE disconnects. The numbers (5 s to follow, +10 % but at least +1 A, 5 s held) are our
defaults, in line with what open chargers use (OpenEVSE added a grace period of this size after
false trips, lincomatic/open_evse#95); they are settings, because the exact figures should be
checked against the edition of the standard a product is certified to. OCPP itself has no rule
here; the fault is reported as ``OverCurrentFailure``.

A frozen or stale meter must not look like an over-current (field lesson 7): samples older than
``max_sample_age_s`` are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass

from chargerfw.drivers.types import MeterSample


@dataclass(frozen=True, slots=True)
class OverCurrentSettings:
    tolerance_fraction: float = 0.10  # allowed above the offered current, relative ...
    tolerance_min_a: float = 1.0  # ... but never less than this many amperes
    persist_s: float = 5.0  # how long the excess must last
    follow_time_s: float = 5.0  # time the EV has to follow a lower PWM limit
    max_sample_age_s: float = 5.0  # older meter samples are not judged

    def __post_init__(self) -> None:
        for name in ("tolerance_fraction", "tolerance_min_a", "persist_s", "follow_time_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_sample_age_s <= 0:
            raise ValueError(f"max_sample_age_s must be > 0, got {self.max_sample_age_s}")

    def threshold_a(self, offered_a: float) -> float:
        return offered_a + max(offered_a * self.tolerance_fraction, self.tolerance_min_a)


def fresh_current_a(sample: MeterSample | None, now_wall: float, max_age_s: float) -> float | None:
    """The highest phase current of ``sample`` if it is fresh, else None (not judged)."""
    if sample is None or now_wall - sample.timestamp > max_age_s:
        return None
    current = sample.max_current_a()
    if current is None or current != current:  # unknown or NaN
        return None
    return current


class OverCurrentDetector:
    """Tracks one connector. Not thread-safe: the safety supervisor calls it under its lock.

    ``update`` takes monotonic time; it returns True while the over-current is confirmed.
    """

    def __init__(self, settings: OverCurrentSettings | None = None) -> None:
        self.settings = settings or OverCurrentSettings()
        self._limit_a: float | None = None
        self._previous_limit_a: float | None = None
        self._follow_until = 0.0
        self._over_since: float | None = None

    def allowed_limit_a(self, now: float) -> float | None:
        """The limit the draw is judged against now (the old one while the EV may still follow)."""
        if now < self._follow_until and self._previous_limit_a is not None:
            if self._limit_a is None:
                return self._previous_limit_a
            return max(self._previous_limit_a, self._limit_a)
        return self._limit_a

    def set_offered(self, limit_a: float | None, now: float) -> None:
        """The current the pilot offers now (None: no PWM, nothing offered)."""
        if limit_a == self._limit_a:
            return
        lowered = self._limit_a is not None and (limit_a is None or limit_a < self._limit_a)
        if lowered:
            # Judge against the higher of the old limits until the EV had time to follow.
            self._previous_limit_a = self.allowed_limit_a(now)
            self._follow_until = now + self.settings.follow_time_s
        self._limit_a = limit_a

    def update(self, current_a: float | None, now: float) -> bool:
        """Feed the measured current (None = no fresh sample); True = over-current confirmed."""
        allowed = self.allowed_limit_a(now)
        if allowed is None:
            # Nothing offered (contactor open): a current now is a contactor matter, not ours.
            self._over_since = None
            return False
        if current_a is None:
            return False  # not judged; a running timer is kept
        if current_a <= self.settings.threshold_a(allowed):
            self._over_since = None
            return False
        if self._over_since is None:
            self._over_since = now
        return now - self._over_since >= self.settings.persist_s

    def not_powered(self) -> None:
        """The contactor is open: no draw to judge, a running timer is forgotten. The offer is
        still tracked (``set_offered``): the vehicle reads the PWM before power flows."""
        self._over_since = None
