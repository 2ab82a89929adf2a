"""The security events the running station watches for itself (docs/security.md, "Security
events"): every :data:`POLL_S` the clocks and the store's free disk space go through the pure
:mod:`chargerfw.station.security_watch` (SettingSystemTime, MemoryExhaustion); the tamper
contact (``[security.tamper]``) records TamperDetectionActivated on its own input's callback,
once per activation, so a short opening between two polls is not missed."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from chargerfw.config import StationConfig
from chargerfw.drivers.board import Board
from chargerfw.logs import get_logger
from chargerfw.ocpp.security_log import (
    MEMORY_EXHAUSTION,
    SETTING_SYSTEM_TIME,
    TAMPER_DETECTED,
    record_security_event,
)
from chargerfw.safety.link import SafetyLink
from chargerfw.station.security_watch import Finding, Reading, WatchSettings, WatchState, step
from chargerfw.store import Store

log = get_logger(__name__)

POLL_S = 5.0
EVENT_TYPES = {Finding.CLOCK_SET: SETTING_SYSTEM_TIME, Finding.DISK_LOW: MEMORY_EXHAUSTION}


def free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


class SecurityWatch:
    """Polls the clocks and the disk; hooks the tamper contact."""

    def __init__(self, config: StationConfig, store: Store, *,
                 poll_s: float = POLL_S,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 disk_free: Callable[[Path], int | None] = free_bytes) -> None:
        section = config.security
        self.settings = WatchSettings(clock_jump_s=section.clock_jump_s,
                                      min_free_bytes=section.min_free_disk_mb * 1024 * 1024)
        self.store = store
        self.state = WatchState()
        self._poll_s = poll_s
        self._wall = wall
        self._monotonic = monotonic
        self._disk_free = disk_free
        self._tamper_configured = section.tamper is not None

    def watch_tamper(self, board: Board | None, link: SafetyLink | None = None) -> None:
        """Record TamperDetectionActivated at every activation of the tamper contact, and once
        now if it is open already: the board's input (on its thread), or, when the safety
        process holds the board, each opening it counts (on the link's thread)."""
        if board is None and link is not None and self._tamper_configured:
            link.on_tamper_opened = self._tamper_opened
            return
        tamper = board.tamper if board is not None else None
        if tamper is None:
            return
        tamper.on_trip(self._tamper_opened)
        if tamper.is_tripped:
            self._tamper_opened()

    def _tamper_opened(self) -> None:
        record_security_event(self.store, TAMPER_DETECTED, "the tamper contact opened")

    def poll(self) -> None:
        """One reading: the events it shows are recorded."""
        reading = Reading(self._wall(), self._monotonic(), self._disk_free(self.store.path.parent))
        self.state, found = step(self.state, reading, self.settings)
        for finding in found:
            record_security_event(self.store, EVENT_TYPES[finding.finding], finding.detail)

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self._poll_s)
