"""What the station process may ask of the safety core, wherever it runs.

:class:`~chargerfw.safety.core.SafetyCore` implements it in the station's own process (a monitor
thread); :class:`~chargerfw.safety.link.SafetyLink` implements it over the safety process's
socket. Calls return quickly and may come from the asyncio loop's thread, except
:meth:`SafetyPort.drive_lock`, which waits for the lock's feedback (call it off the loop).
Faults, pilot changes and thermal limits come back as
:data:`~chargerfw.station.safety.SafetyEvent` through the ``notify`` the port was built with.
"""

from __future__ import annotations

from typing import Protocol

from chargerfw.drivers.lock import LockResult
from chargerfw.drivers.types import MeterSample, PilotState
from chargerfw.safety.core import PilotCommand
from chargerfw.safety.results import HardwareTestReply
from chargerfw.station.faults import Fault, FaultKind
from chargerfw.station.technician import HardwareTest


class SafetyPort(Protocol):
    def start(self) -> None:
        """Up and guarding (the start-up RCM self-test done) when this returns."""
        ...

    def stop(self) -> None:
        """Every contactor open; nothing more is guarded by this port."""
        ...

    @property
    def monitor_current(self) -> bool:
        """The interlocks are being checked right now (systemd's watchdog is fed only then)."""
        ...

    def request_close(self, connector_id: int) -> bool:
        """Close if the interlocks allow it; False: refused now."""
        ...

    def request_open(self, connector_id: int) -> None: ...

    def open_all(self) -> None: ...

    def contactor_closed(self, connector_id: int) -> bool:
        """Commanded closed (the coil is energised)."""
        ...

    def set_pilot(self, connector_id: int, command: PilotCommand) -> None: ...

    def has_lock(self, connector_id: int) -> bool: ...

    def drive_lock(self, connector_id: int, locked: bool) -> LockResult:
        """Blocks until the lock's feedback answers (or its timeout)."""
        ...

    def update_meter(self, connector_id: int, sample: MeterSample) -> None:
        """The newest meter sample (the over-current interlock judges it)."""
        ...

    def meter_fault(self, connector_id: int, active: bool, detail: str = "") -> None: ...

    def temperature_c(self, connector_id: int) -> float | None:
        """The last good temperature reading (MeterValues Temperature), if any."""
        ...

    def pilot(self, connector_id: int) -> PilotState | None:
        """The pilot state the monitor saw last (None before its first read)."""
        ...

    def active_faults(self, connector_id: int | None = None) -> frozenset[Fault]:
        """One connector's faults and the station's (every fault when None)."""
        ...

    def clear_by_technician(self, kind: FaultKind, connector_id: int) -> bool:
        """False while the fault's condition is still there."""
        ...

    def run_test(self, test: HardwareTest, connector_id: int) -> HardwareTestReply:
        """A technician's hardware test under the interlocks (the caller refused first and
        paused the connectors); raises :class:`~chargerfw.safety.sequences.Refusal`. Blocks for
        the test's length: call it off the loop."""
        ...
