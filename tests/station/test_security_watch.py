"""The pure security watch: a clock step against the monotonic clock, and the store's disk
running low, each reported once."""

from __future__ import annotations

import pytest

from chargerfw.station.security_watch import (
    Finding,
    Reading,
    SecurityFinding,
    WatchSettings,
    WatchState,
    step,
)

SETTINGS = WatchSettings(clock_jump_s=60.0, min_free_bytes=1000)
BASE = WatchState(clock_offset_s=1000.0)  # wall = monotonic + 1000 at the last reading


@pytest.mark.parametrize(("state", "reading", "after", "found"), [
    # The first reading only sets the reference.
    (WatchState(), Reading(1500.0, 500.0, 5000), WatchState(1000.0), []),
    # Time passing on both clocks is no event.
    (BASE, Reading(1600.0, 600.0, 5000), BASE, []),
    # A small step keeps the reference (so several small steps add up).
    (BASE, Reading(1659.0, 600.0, 5000), BASE, []),
    (BASE, Reading(1660.0, 600.0), WatchState(1060.0),
     [SecurityFinding(Finding.CLOCK_SET, "the system time moved +60 s")]),
    (BASE, Reading(600.0, 600.0), WatchState(0.0),
     [SecurityFinding(Finding.CLOCK_SET, "the system time moved -1000 s")]),
    # The disk: low once, then nothing until it came back above twice the limit.
    (BASE, Reading(1600.0, 600.0, 999), WatchState(1000.0, disk_low=True),
     [SecurityFinding(Finding.DISK_LOW, "0 KiB free on the store's disk (limit 0 KiB)")]),
    (WatchState(1000.0, disk_low=True), Reading(1600.0, 600.0, 10), WatchState(1000.0, True), []),
    (WatchState(1000.0, disk_low=True), Reading(1600.0, 600.0, 1999),
     WatchState(1000.0, True), []),
    (WatchState(1000.0, disk_low=True), Reading(1600.0, 600.0, 2000), BASE, []),
    # Free space that could not be read changes nothing.
    (WatchState(1000.0, disk_low=True), Reading(1600.0, 600.0, None),
     WatchState(1000.0, True), []),
])
def test_step(state, reading, after, found):
    assert step(state, reading, SETTINGS) == (after, found)
