"""One connector at run time: its hardware (through the safety port), its meter and its
transaction.

The :class:`ConnectorController` carries out the actions the station core decides for its
connector (:mod:`chargerfw.station.connector`): contactor, pilot and lock through the safety
port (:mod:`chargerfw.safety.port`: its interlocks decide whether a coil may close),
StatusNotification and Start/Stop Transaction through the OCPP client (whose store makes them
durable before they are sent). It reads the
connector's state from the core and never changes it. Everything here runs on the asyncio
loop's thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chargerfw.config import ConnectorSection
from chargerfw.drivers.types import MeterSample, whole_wh
from chargerfw.logs import get_logger
from chargerfw.safety.core import PilotCommand
from chargerfw.safety.port import SafetyPort
from chargerfw.station.connector import (
    Action,
    ConnectorState,
    PilotOutput,
    SetContactor,
    SetLock,
    SetPilot,
    StartTransaction,
    StatusChanged,
    StopTransaction,
    TxPhase,
    outputs,
)
from chargerfw.store import StoreError

if TYPE_CHECKING:
    from chargerfw.ocpp.v16.client import OcppClient

log = get_logger(__name__)

# A transaction that starts with no fresh meter sample waits up to this many poll intervals (plus
# the bus timeout of a read in flight) for one: meterStart from a stale or missing sample would
# bill the wrong energy.
FRESH_SAMPLE_WAIT_POLLS = 2.0


@dataclass
class RunningTransaction:
    """The transaction the connector is running, as the runtime knows it."""

    local_id: int
    id_tag: str
    started_at: float
    meter_start_wh: int
    backend_tx_id: int | None = None


class ConnectorController:
    """Carries out one connector's actions on its hardware, meter and transactions."""

    def __init__(self, section: ConnectorSection, safety: SafetyPort, client: OcppClient,
                 read_state: Callable[[], ConnectorState]) -> None:
        self.id = section.id
        self.section = section
        self.safety = safety
        self.client = client
        self._read_state = read_state
        self.latest_sample: MeterSample | None = None
        self.transaction: RunningTransaction | None = None
        self.stop_id_tag: str | None = None  # the tag that asked for the coming Local stop
        self._lock_jobs: set[asyncio.Task[None]] = set()
        self._recorded_energy_wh: float | None = None  # highest register seen in the store
        self._new_sample = asyncio.Event()  # set by note_sample, for a start waiting on one
        self._pending_start: tuple[StartTransaction, asyncio.Task[None]] | None = None
        # Told about what a person watching would want to see (the sim station prints it).
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None

    def _emit(self, event: str, *, level: str = "info", **fields: Any) -> None:
        getattr(log, level)(event, connector=self.id, **fields)
        if self.on_event is not None:
            try:
                self.on_event(event, {"connector": self.id, **fields})
            except Exception:
                log.exception("connector.listener_failed")

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectorState:
        """The connector's state as the station core holds it now."""
        return self._read_state()

    @property
    def temperature_c(self) -> float | None:
        """The last good temperature reading (MeterValues Temperature), if any."""
        return self.safety.temperature_c(self.id)

    @property
    def phase(self) -> TxPhase:
        return self.state.phase

    @property
    def under_test(self) -> str | None:
        """The technician's hardware test running on this connector, if any."""
        return self.state.under_test

    def energy_now_wh(self) -> float:
        """The meter's register now; before the first sample, the last one the store knows."""
        if self.latest_sample is not None:
            return self.latest_sample.energy_import_wh
        return self._recorded_energy_wh or 0.0

    def remember_recorded_energy(self, energy_wh: float) -> None:
        self._recorded_energy_wh = energy_wh

    @property
    def poll_interval_s(self) -> float:
        return self.section.meter.poll_interval_s

    def note_sample(self, sample: MeterSample) -> None:
        """A new meter sample arrived (the runtime's meter task)."""
        self.latest_sample = sample
        self._new_sample.set()

    def fresh_sample(self, now: float | None = None) -> MeterSample | None:
        """The latest sample if it is at most one poll interval (plus the bus timeout) old."""
        sample = self.latest_sample
        if sample is None:
            return None
        now = time.time() if now is None else now
        max_age = self.poll_interval_s + self.section.meter.timeout_s
        return sample if now - sample.timestamp <= max_age else None

    @property
    def fresh_sample_wait_s(self) -> float:
        return FRESH_SAMPLE_WAIT_POLLS * self.poll_interval_s + self.section.meter.timeout_s

    @property
    def starting(self) -> bool:
        """A StartTransaction waits for a fresh meter sample."""
        return self._pending_start is not None

    # -- actions --------------------------------------------------------------------------

    def execute(self, action: Action) -> None:
        """Carry out one of the core's actions for this connector (answers to requests,
        such as refusals, go back to whoever asked and need nothing here)."""
        match action:
            case SetContactor(closed=True):
                if not self.safety.request_close(self.id):
                    log.warning("connector.close_refused", connector=self.id)
                else:
                    self._emit("connector.contactor", closed=True)
            case SetContactor(closed=False):
                self.safety.request_open(self.id)
                self._emit("connector.contactor", closed=False)
            case SetPilot(output=output):
                self.apply_pilot(output)
            case SetLock(locked=locked):
                self._drive_lock(locked)
            case StartTransaction():
                self._start_transaction(action)
            case StopTransaction():
                self._stop_transaction(action)
            case StatusChanged():
                self._emit("connector.status", status=action.status.value,
                           error_code=action.error_code.value)
                self.client.set_status(self.id, action.status.value, action.error_code.value,
                                       vendor_error_code=action.vendor_error_code)
            case _:
                pass

    def apply_pilot(self, output: PilotOutput) -> None:
        self.safety.set_pilot(self.id, PilotCommand(output.mode, output.current_a))

    def _start_transaction(self, action: StartTransaction) -> None:
        """meterStart from a fresh sample; without one, wait (bounded) for the next poll."""
        sample = self.fresh_sample()
        if sample is not None:
            self._record_start(action, sample.energy_import_wh, sample)
            return
        self._new_sample.clear()
        task = asyncio.get_running_loop().create_task(
            self._start_when_metered(action), name=f"meter-start-{self.id}")
        self._pending_start = (action, task)
        log.info("transaction.waiting_for_meter", connector=self.id,
                 sample_age_s=None if self.latest_sample is None
                 else round(time.time() - self.latest_sample.timestamp, 1))

    async def _start_when_metered(self, action: StartTransaction) -> None:
        deadline = time.monotonic() + self.fresh_sample_wait_s
        sample = None
        while sample is None and (left := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(self._new_sample.wait(), left)
            except TimeoutError:
                break
            self._new_sample.clear()
            sample = self.fresh_sample()
        if self._pending_start is None or self._pending_start[0] is not action:
            return  # a stop came first and recorded the start itself
        self._pending_start = None
        if sample is not None:
            self._record_start(action, sample.energy_import_wh, sample)
        else:
            self._record_start_without_sample(action)

    def _record_start_without_sample(self, action: StartTransaction) -> None:
        """No fresh sample: the last persisted reading, never below a sample already seen
        (the register only grows; a lower meterStart would bill energy twice)."""
        persisted = self._recorded_energy_wh
        seen = self.latest_sample.energy_import_wh if self.latest_sample is not None else None
        meter_start = max((v for v in (persisted, seen) if v is not None), default=0.0)
        self._emit("transaction.meter_start_not_fresh", level="warning",
                   meter_start_wh=whole_wh(meter_start), persisted_wh=persisted, last_sample_wh=seen,
                   waited_s=self.fresh_sample_wait_s)
        self._record_start(action, meter_start, None)

    def _finish_pending_start(self) -> None:
        """A stop (or shutdown) while the start waits for the meter: record the start now."""
        if self._pending_start is None:
            return
        action, task = self._pending_start
        self._pending_start = None
        task.cancel()
        sample = self.fresh_sample()
        if sample is not None:
            self._record_start(action, sample.energy_import_wh, sample)
        else:
            self._record_start_without_sample(action)

    def _record_start(self, action: StartTransaction, energy_wh: float,
                      sample: MeterSample | None) -> None:
        meter_start = whole_wh(energy_wh)
        try:
            record = self.client.start_transaction(
                self.id, action.id_tag, meter_start, reservation_id=action.reservation_id,
                sample=sample)
        except StoreError as exc:
            log.error("transaction.not_started", connector=self.id, error=str(exc))
            return
        self.transaction = RunningTransaction(record.local_id, action.id_tag, record.started_at,
                                              meter_start)
        self._emit("transaction.started", local_id=record.local_id, id_tag=action.id_tag,
                   meter_start_wh=meter_start)

    def _stop_transaction(self, action: StopTransaction) -> None:
        self._finish_pending_start()
        tx = self.transaction
        meter_stop = whole_wh(self.energy_now_wh())
        if tx is not None:
            meter_stop = max(meter_stop, tx.meter_start_wh)  # a stop never below its start
        stop_tag, self.stop_id_tag = self.stop_id_tag, None
        stopped = self.client.stop_transaction(self.id, meter_stop, action.reason.value,
                                               id_tag=stop_tag, sample=self.latest_sample)
        self._emit("transaction.stopped", local_id=tx.local_id if tx else None,
                   reason=action.reason.value, meter_stop_wh=meter_stop, recorded=stopped)
        self.transaction = None

    def _drive_lock(self, locked: bool) -> None:
        if not self.safety.has_lock(self.id):
            return

        async def drive() -> None:
            # The lock waits for its feedback switch: off the loop's thread.
            result = await asyncio.to_thread(self.safety.drive_lock, self.id, locked)
            log.info("connector.lock", connector=self.id, result=str(result))

        task = asyncio.get_running_loop().create_task(drive(), name=f"lock-{self.id}")
        self._lock_jobs.add(task)  # a reference until done (the loop keeps only weak ones)
        task.add_done_callback(self._lock_jobs.discard)

    # -- what the status command shows ----------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        state = self.state
        out = outputs(state)
        tx = self.transaction
        sample = self.latest_sample
        transaction = None
        if tx is not None:
            transaction = {
                "local_id": tx.local_id,
                "transaction_id": tx.backend_tx_id,
                "id_tag": tx.id_tag,
                "started_at": tx.started_at,
                "meter_start_wh": tx.meter_start_wh,
                "energy_wh": round(max(0.0, self.energy_now_wh() - tx.meter_start_wh), 1),
            }
        return {
            "id": self.id,
            "status": out.status.value,
            "error_code": out.error_code.value,
            "vendor_error_code": out.vendor_error_code,
            "pilot": state.pilot.value,
            "pilot_output": out.pilot.mode.value,
            "current_limit_a": out.offered_current_a,
            "contactor_closed": self.safety.contactor_closed(self.id),
            "availability": state.availability.value,
            "scheduled_availability": (state.scheduled_availability.value
                                       if state.scheduled_availability else None),
            "phase": state.phase.value,
            "reservation": None if state.reservation is None else {
                "reservation_id": state.reservation.reservation_id,
                "id_tag": state.reservation.id_tag},
            "transaction": transaction,
            "starting": self.starting,
            "under_test": self.under_test,
            "temperature_c": self.temperature_c,
            "meter": None if sample is None else {
                "age_s": round(time.time() - sample.timestamp, 1),
                "energy_import_wh": sample.energy_import_wh,
                "power_w": sample.power_w,
                "voltage_v": [sample.voltage_l1_v, sample.voltage_l2_v, sample.voltage_l3_v],
                "current_a": [sample.current_l1_a, sample.current_l2_a, sample.current_l3_a],
                "frequency_hz": sample.frequency_hz,
            },
        }
