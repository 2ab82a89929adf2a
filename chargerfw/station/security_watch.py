"""What the station's periodic readings say about security (1.6 Security Whitepaper, "Security
events"): the system time was set, the store's disk is (nearly) full. Pure: fed one
:class:`Reading` at a time, returns what it found; the runtime reads the clocks and the disk
and records the events. (The tamper contact needs no polling: its input reports each
activation itself.)

- **Clock set**: the wall clock minus the monotonic clock is constant while nobody sets the
  time; a change of at least ``clock_jump_s`` (either way) is one event. The first reading
  after start-up only sets the reference (the time NTP set during boot is not seen).
- **Disk full**: free space falling below ``min_free_bytes`` is one event; it is reported again
  only after the space came back above twice the limit (no event at every reading while it
  hovers at the limit).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Finding(enum.StrEnum):
    CLOCK_SET = "clock_set"
    DISK_LOW = "disk_low"


@dataclass(frozen=True, slots=True)
class WatchSettings:
    clock_jump_s: float = 60.0
    min_free_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Reading:
    wall_s: float  # time.time()
    monotonic_s: float  # time.monotonic()
    free_bytes: int | None = None  # None: could not be read


@dataclass(frozen=True, slots=True)
class WatchState:
    clock_offset_s: float | None = None  # wall minus monotonic at the last reading
    disk_low: bool = False


@dataclass(frozen=True, slots=True)
class SecurityFinding:
    finding: Finding
    detail: str


def step(state: WatchState, reading: Reading, settings: WatchSettings,
         ) -> tuple[WatchState, list[SecurityFinding]]:
    found: list[SecurityFinding] = []
    offset = reading.wall_s - reading.monotonic_s
    if state.clock_offset_s is not None:
        moved = offset - state.clock_offset_s
        if abs(moved) >= settings.clock_jump_s:
            found.append(SecurityFinding(
                Finding.CLOCK_SET, f"the system time moved {moved:+.0f} s"))
        else:
            offset = state.clock_offset_s  # slow drift (NTP slewing) does not move the reference
    disk_low = state.disk_low
    if reading.free_bytes is not None:
        if not disk_low and reading.free_bytes < settings.min_free_bytes:
            disk_low = True
            found.append(SecurityFinding(
                Finding.DISK_LOW, f"{reading.free_bytes // 1024} KiB free on the store's disk "
                                  f"(limit {settings.min_free_bytes // 1024} KiB)"))
        elif disk_low and reading.free_bytes >= 2 * settings.min_free_bytes:
            disk_low = False
    return WatchState(offset, disk_low), found
