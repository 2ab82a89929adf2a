"""Meter sampling: the energy register kept on disk, sampled and clock-aligned MeterValues.

Version-neutral: it reads its settings through :class:`MeteringSettings`, writes transaction
meter values to the store's outbox (they are durable before they are sent) and the StopTxn data
of the transaction, and hands clock-aligned values outside a transaction, which are best effort,
to a function the protocol adapter supplies. It runs offline too.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chargerfw.drivers.types import MeterSample, whole_wh
from chargerfw.logs import get_logger
from chargerfw.ocpp.metering import meter_value
from chargerfw.store import Store, StoreError, TransactionRecord

log = get_logger(__name__)

DEFAULT_PHASES = 3


class Measurands(enum.Enum):
    """Which list of measurands a value is built from."""

    SAMPLED = "sampled"  # periodic values during a transaction, and triggered ones
    ALIGNED = "aligned"  # clock-aligned values
    STOP_SAMPLED = "stop_sampled"  # periodic and begin/end values kept for the stop message
    STOP_ALIGNED = "stop_aligned"  # clock-aligned values kept for the stop message


class MeteringSettings(Protocol):
    """The sampling settings the backend may change, read when they are needed."""

    def sample_interval_s(self) -> int:
        """Seconds between periodic values during a transaction (0 = none)."""
        ...

    def aligned_interval_s(self) -> int:
        """Seconds between clock-aligned values, aligned to midnight (0 = none)."""
        ...

    def measurands(self, which: Measurands) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Latest:
    """A connector's latest meter sample and what was known beside it then."""

    sample: MeterSample
    temperature_c: float | None = None
    offered_current_a: float | None = None  # what the pilot offered (0: no PWM)


# Sends a MeterValue of a connector outside any transaction, if the link is up (best effort).
SendUntracked = Callable[[int, dict[str, Any]], None]


def open_transaction(store: Store, connector_id: int) -> TransactionRecord | None:
    """The transaction running on ``connector_id``, if any."""
    for record in store.open_transactions():
        if record.connector_id == connector_id:
            return record
    return None


class MeterSampler:
    """Keeps each connector's latest sample and queues the MeterValues that fall due.

    ``wake_outbox`` is called after a value was queued; ``persist_interval_s`` bounds how often
    the energy register of a running transaction is written (the PowerLoss stop value)."""

    def __init__(self, store: Store, settings: MeteringSettings, *,
                 connector_phases: Mapping[int, int], wake_outbox: Callable[[], None],
                 send_untracked: SendUntracked, tick_s: float = 1.0,
                 persist_interval_s: float = 10.0) -> None:
        self.store = store
        self.settings = settings
        self.connector_phases = dict(connector_phases)
        self.tick_s = tick_s
        self.persist_interval_s = persist_interval_s
        self._wake_outbox = wake_outbox
        self._send_untracked = send_untracked
        self._latest: dict[int, Latest] = {}
        self._last_persist: dict[int, float] = {}
        self._last_sampled: dict[int, float] = {}
        self._last_aligned_slot: int | None = None

    def _phases(self, connector_id: int) -> int:
        return self.connector_phases.get(connector_id, DEFAULT_PHASES)

    # -- what the client tells it --------------------------------------------------------------

    def update(self, connector_id: int, sample: MeterSample, temperature_c: float | None,
               offered_current_a: float | None = None) -> None:
        """The latest sample of a connector (with its temperature and the current the pilot
        offers). Persists the energy register of a running transaction at most every
        ``persist_interval_s`` (a bounded loss of a few seconds of energy instead of an fsync
        per poll)."""
        self._latest[connector_id] = Latest(sample, temperature_c, offered_current_a)
        now = time.monotonic()
        if now - self._last_persist.get(connector_id, 0.0) >= self.persist_interval_s:
            self._persist(connector_id, sample)

    def transaction_started(self, record: TransactionRecord, sample: MeterSample | None) -> None:
        """A transaction began: its periodic values count from now; ``sample`` is its
        Transaction.Begin value for the stop message."""
        self._last_sampled[record.connector_id] = time.monotonic()
        self._last_persist[record.connector_id] = time.monotonic()
        if sample is not None:
            self._add_stop_data(record, sample, "Transaction.Begin")

    def transaction_ending(self, record: TransactionRecord, sample: MeterSample | None) -> None:
        """A transaction is about to be stopped: ``sample`` is its Transaction.End value."""
        if sample is not None:
            self._add_stop_data(record, sample, "Transaction.End")

    def transaction_ended(self, connector_id: int) -> None:
        self._last_sampled.pop(connector_id, None)

    def make_due(self, connector_id: int) -> None:
        """Make the periodic value of ``connector_id`` due at the next tick, as if the sample
        interval had passed (nothing is queued unless a transaction runs there)."""
        self._last_sampled[connector_id] = 0.0

    def values_now(self, context: str, connector_id: int | None = None,
                   ) -> list[tuple[int, dict[str, Any]]]:
        """A MeterValue from the latest sample of each connector (or of one), by connector:
        what the backend gets when it asks for meter values."""
        values = []
        for cid, latest in sorted(self._latest.items()):
            if connector_id not in (None, cid):
                continue
            value = meter_value(latest.sample, self.settings.measurands(Measurands.SAMPLED),
                                context, self._phases(cid), latest.temperature_c,
                                offered_current_a=latest.offered_current_a)
            if value is not None:
                values.append((cid, value))
        return values

    # -- the clock -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Queue what is due every tick, for the life of the client."""
        while True:
            try:
                self.sample_due()
            except Exception:  # keep sampling whatever one bad sample did
                log.exception("meter.sampling_failed")
            await asyncio.sleep(self.tick_s)

    def sample_due(self, now_wall: float | None = None) -> None:
        """Queue the MeterValues that are due now (called every tick)."""
        now_wall = time.time() if now_wall is None else now_wall
        now = time.monotonic()
        interval = self.settings.sample_interval_s()
        for connector_id, latest in list(self._latest.items()):
            last = self._last_sampled.get(connector_id)
            if interval <= 0 or last is None or now - last < interval:
                continue
            open_tx = self._persist(connector_id, latest.sample)
            if open_tx is None:
                self._last_sampled.pop(connector_id, None)
                continue
            self._last_sampled[connector_id] = now
            self._queue_tx_values(open_tx, latest, "Sample.Periodic",
                                  Measurands.SAMPLED, Measurands.STOP_SAMPLED)
        aligned = self.settings.aligned_interval_s()
        if aligned > 0:
            slot = int(now_wall // aligned)
            if self._last_aligned_slot is None:
                self._last_aligned_slot = slot
            elif slot != self._last_aligned_slot:
                self._last_aligned_slot = slot
                for connector_id, latest in list(self._latest.items()):
                    self._send_aligned(connector_id, latest, slot * aligned)

    # -- the work ------------------------------------------------------------------------------

    def _persist(self, connector_id: int, sample: MeterSample) -> TransactionRecord | None:
        open_tx = open_transaction(self.store, connector_id)
        if open_tx is None:
            return None
        try:
            self.store.record_meter(open_tx.local_id, whole_wh(sample.energy_import_wh), sample.timestamp)
            self._last_persist[connector_id] = time.monotonic()
        except StoreError as exc:
            log.warning("meter.not_persisted", connector_id=connector_id, error=str(exc))
        return open_tx

    def _add_stop_data(self, record: TransactionRecord, sample: MeterSample, context: str) -> None:
        measurands = self.settings.measurands(Measurands.STOP_SAMPLED)
        if not measurands:
            return
        value = meter_value(sample, measurands, context, self._phases(record.connector_id), None)
        if value is not None:
            self.store.add_transaction_data(record.local_id, value)

    def _queue_tx_values(self, open_tx: TransactionRecord, latest: Latest, context: str,
                         which: Measurands, stop_which: Measurands,
                         at: float | None = None) -> None:
        phases = self._phases(open_tx.connector_id)
        value = meter_value(latest.sample, self.settings.measurands(which), context, phases,
                            latest.temperature_c, at, latest.offered_current_a)
        if value is not None:
            self.store.enqueue_meter_values(open_tx.local_id, open_tx.connector_id, [value])
            self._wake_outbox()
        stop_value = meter_value(latest.sample, self.settings.measurands(stop_which), context,
                                 phases, latest.temperature_c, at, latest.offered_current_a)
        if stop_value is not None:
            self.store.add_transaction_data(open_tx.local_id, stop_value)

    def _send_aligned(self, connector_id: int, latest: Latest, at: float) -> None:
        open_tx = self._persist(connector_id, latest.sample)
        if open_tx is not None:
            self._queue_tx_values(open_tx, latest, "Sample.Clock",
                                  Measurands.ALIGNED, Measurands.STOP_ALIGNED, at)
            return
        # Outside a transaction clock-aligned values are not transaction-related: best effort.
        value = meter_value(latest.sample, self.settings.measurands(Measurands.ALIGNED),
                            "Sample.Clock", self._phases(connector_id), latest.temperature_c, at,
                            latest.offered_current_a)
        if value is not None:
            self._send_untracked(connector_id, value)
