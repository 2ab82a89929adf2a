"""Limits on failed OCPP Basic-auth logins, per charge point id and per source address.

Each failed login is remembered for ``window_s``. Once a key (a charge point id, or a source
address) has ``max_failures_*`` failures within the window, it is locked out: first for
``lockout_base_s``, doubling with every further failure up to ``lockout_max_s``. While a
key is locked out, connections for it are refused at once (HTTP 429 with Retry-After)
without checking the password, so a locked-out guesser costs no scrypt work. Attempts
refused that way are not failures and do not extend the lockout. A successful login clears
its charge point id's record; an address keeps its own (one charger logging in from a shared
NAT does not clear another's failures there).

Defaults: 5 failures per id and 20 per address within 10 minutes; lockout 30 s, doubling to
at most 15 minutes. Behind a reverse proxy every charger shares the proxy's address, so the
per-address limit then applies to all of them together.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoginLimits:
    max_failures_per_id: int = 5
    max_failures_per_address: int = 20
    window_s: float = 600.0
    lockout_base_s: float = 30.0
    lockout_max_s: float = 900.0
    max_tracked: int = 10_000  # keys remembered at most (oldest forgotten first)

    def __post_init__(self) -> None:
        if min(self.max_failures_per_id, self.max_failures_per_address, self.max_tracked) < 1:
            raise ValueError("login limits must be at least 1")
        if min(self.window_s, self.lockout_base_s, self.lockout_max_s) <= 0:
            raise ValueError("login windows and lockouts must be positive")


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, limits: LoginLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or LoginLimits()
        self._clock = clock
        self._records: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def retry_after(self, charge_point_id: str, address: str | None) -> float:
        """Seconds until a login for ``charge_point_id`` from ``address`` may be tried; 0
        when it may be tried now."""
        now = self._clock()
        wait = 0.0
        for key in self._keys(charge_point_id, address):
            record = self._records.get(key)
            if record is not None:
                wait = max(wait, record.locked_until - now)
        return wait

    def failed(self, charge_point_id: str | None, address: str | None) -> None:
        """A login failed (``charge_point_id`` None: for an id we do not know, which only
        counts against the address, so unknown ids cannot fill the memory)."""
        now = self._clock()
        for key in self._keys(charge_point_id, address):
            record = self._records.pop(key, None) or _Failures()
            self._records[key] = record  # most recently used last
            while record.times and record.times[0] <= now - self.limits.window_s:
                record.times.popleft()
            record.times.append(now)
            threshold = (self.limits.max_failures_per_id if key[0] == "id"
                         else self.limits.max_failures_per_address)
            beyond = len(record.times) - threshold
            if beyond >= 0:
                lockout = min(self.limits.lockout_base_s * 2 ** min(beyond, 30),
                              self.limits.lockout_max_s)
                record.locked_until = now + lockout
        while len(self._records) > self.limits.max_tracked:
            self._records.popitem(last=False)

    def succeeded(self, charge_point_id: str) -> None:
        self._records.pop(("id", charge_point_id), None)

    @staticmethod
    def _keys(charge_point_id: str | None, address: str | None) -> list[tuple[str, str]]:
        keys = []
        if charge_point_id is not None:
            keys.append(("id", charge_point_id))
        if address is not None:
            keys.append(("address", address))
        return keys
