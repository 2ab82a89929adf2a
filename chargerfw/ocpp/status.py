"""Connector statuses on their way to the backend, settled by MinimumStatusDuration.

Version-neutral: the reporter keeps, per connector, what the station said last, what the
backend should see (the *stable* report) and what is still unsent; a protocol adapter supplies
the function that sends one report on its link.

Settling: with a minimum duration above zero a change becomes stable only once it has lasted
that long (a status that changes back sooner is never sent), except Faulted, which is stable at
once, and a connector's first status, which has nothing to settle against. Settling runs
online and offline, so a reconnect sends what is stable by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

RETRY_PAUSE_S = 5.0  # after a report the backend did not take
HELD_RECHECK_S = 0.2  # how often a held connector's report is looked at again

# Sends one report of a connector; False if the backend did not take it (it is sent again).
SendStatus = Callable[[int, "ConnectorStatusReport"], Awaitable[bool]]
# Whether a connector's report must wait for now (its StopTransaction is still queued).
HeldBack = Callable[[int], bool]


@dataclass
class ConnectorStatusReport:
    status: str
    error_code: str = "NoError"
    info: str | None = None
    vendor_error_code: str | None = None
    timestamp: float = field(default_factory=time.time)

    def says_same_as(self, other: ConnectorStatusReport) -> bool:
        """Whether two reports say the same thing to the backend (timestamps aside)."""
        return (self.status, self.error_code, self.info) == (other.status, other.error_code,
                                                             other.info)


class StatusReporter:
    """The connectors' statuses between the station and the backend.

    ``minimum_duration_s`` reads the current MinimumStatusDuration (0 = every change at once)."""

    def __init__(self, minimum_duration_s: Callable[[], int]) -> None:
        self._minimum_duration_s = minimum_duration_s
        # Per connector: the station's latest report; the latest one that counts as stable,
        # i.e. what the backend is told; a report still settling with the monotonic time it
        # began; and the stable reports not yet sent.
        self._latest: dict[int, ConnectorStatusReport] = {}
        self._stable: dict[int, ConnectorStatusReport] = {}
        self._settling: dict[int, tuple[ConnectorStatusReport, float]] = {}
        self._unsent: dict[int, ConnectorStatusReport] = {}
        self._send_wakeup = asyncio.Event()
        self._settle_wakeup = asyncio.Event()

    @property
    def has_unsent(self) -> bool:
        return bool(self._unsent)

    def report(self, connector_id: int, report: ConnectorStatusReport) -> None:
        """The station reports a connector's status (0 = the charge point)."""
        previous = self._latest.get(connector_id)
        self._latest[connector_id] = report
        if previous and previous.says_same_as(report):
            return
        stable = self._stable.get(connector_id)
        if (stable is None or report.status == "Faulted" or stable.says_same_as(report)
                or self._minimum_duration_s() <= 0):
            self._settling.pop(connector_id, None)
            self._make_stable(connector_id, report)
            return
        self._settling[connector_id] = (report, time.monotonic())
        self._settle_wakeup.set()

    def duration_changed(self) -> None:
        """MinimumStatusDuration changed: settling reports are due by the new duration."""
        self._settle_wakeup.set()

    def resend_all(self) -> None:
        """A new link: everything stable goes out again, by connector."""
        self._unsent = dict(sorted(self._stable.items()))

    def send_current(self, connector_id: int | None = None) -> None:
        """The backend asked for the current status (of one connector, or all): it is sent
        even if still settling, and becomes what the backend is known to have."""
        for cid, report in sorted(self._latest.items()):
            if connector_id is None or cid == connector_id:
                self._settling.pop(cid, None)
                self._stable[cid] = report
                # A fresh object: the sender drops an entry only if it is still the very
                # report it just sent.
                self._unsent.pop(cid, None)
                self._unsent[cid] = replace(report)
        self._send_wakeup.set()

    def _make_stable(self, connector_id: int, report: ConnectorStatusReport) -> None:
        """``report`` is what the backend should now see; queue it unless it already does."""
        stable = self._stable.get(connector_id)
        if stable is not None and stable.says_same_as(report):
            return
        self._stable[connector_id] = report
        self._unsent.pop(connector_id, None)
        self._unsent[connector_id] = report
        self._send_wakeup.set()

    def settle(self, everything: bool = False) -> float | None:
        """Make stable every settling report that has lasted the minimum duration (all of
        them if ``everything``); the seconds until the next one is due, or None."""
        duration = self._minimum_duration_s()
        now = time.monotonic()
        next_due: float | None = None
        for connector_id, (report, began) in sorted(self._settling.items()):
            due = began + duration
            if everything or due <= now:
                del self._settling[connector_id]
                self._make_stable(connector_id, report)
            else:
                next_due = due - now if next_due is None else min(next_due, due - now)
        return next_due

    async def run_settler(self) -> None:
        """Settle reports as they come due, for the life of the client."""
        while True:
            self._settle_wakeup.clear()
            wait = self.settle()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._settle_wakeup.wait()

    async def run_sender(self, send: SendStatus, held: HeldBack | None = None) -> None:
        """Send the unsent reports in order with ``send``, for the life of one link.

        A connector for which ``held`` is true is passed over until it is not: a backend told
        "Available" while the StopTransaction of that connector's session is still queued may
        close that session itself (after a boot it takes the charger to have forgotten it),
        short of the energy the stop reports."""
        while True:
            while self._unsent:
                connector_id = next((cid for cid in self._unsent
                                     if held is None or cid == 0 or not held(cid)), None)
                if connector_id is None:
                    break
                report = self._unsent[connector_id]
                if not await send(connector_id, report):
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
                if self._unsent.get(connector_id) is report:
                    del self._unsent[connector_id]
            self._send_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HELD_RECHECK_S if self._unsent else None):
                    await self._send_wakeup.wait()
