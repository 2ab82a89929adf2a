"""Building a station's parts, in the order each needs the one before.

1. the store, and every transaction a crash or power cut left open ended (``PowerLoss``, exactly
   once, before anything else can start a session);
2. the board (every contactor open), the OCPP client, the authorizer (keys from the store);
3. the safety core on its own monitor thread (fault inputs, contactor feedback, pilot,
   temperature, meter current; the start-up RCM self-test), with the technician faults the store
   remembers latched again, and the station core in the state the store remembers
   (availability);
4. the reader and, on ``hardware = "sim"``, the simulated hardware around the board.

With a safety process (``safety_socket`` given: ``[safety] mode = "process"``) the station
builds no board: it connects to the safety process instead, which owns the hardware, keeps its
own latched faults and runs the start-up RCM self-test before it answers.

Every part that needs closing is registered on the caller's exit stack as soon as it exists, so
a start that fails half-way leaves nothing open.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chargerfw.config import StationConfig
from chargerfw.drivers.board import Board, build_board
from chargerfw.drivers.meter.driver import quiet_pymodbus
from chargerfw.drivers.readers import TokenReader, open_reader
from chargerfw.logs import get_logger
from chargerfw.ocpp.station_port import ResetKind
from chargerfw.ocpp.v16.client import OcppClient, client_from_config
from chargerfw.runtime.core import CoreRunner, Emit, RunBackground, initial_state
from chargerfw.runtime.firmware import FirmwareUpdater, SelfTest, restore_store_after_rollback
from chargerfw.runtime.port import BackendPort
from chargerfw.runtime.simulation import SimulatedHardware, Simulator
from chargerfw.runtime.smart_charging import SmartCharging
from chargerfw.safety.core import SafetyCore
from chargerfw.safety.link import SafetyLink
from chargerfw.safety.port import SafetyPort
from chargerfw.station.auth import AuthConfig, Authorizer, backend_from_wire
from chargerfw.station.connector import ConnectorSettings
from chargerfw.station.safety import (
    SafetyEvent,
    SafetySettings,
    asyncio_notifier,
)
from chargerfw.station.station import RememberedFault, ReservationsRestored, faults_to_restore
from chargerfw.store import Store

log = get_logger(__name__)

# Fault callbacks and the safety monitor run on their own threads but still need the GIL: a
# coroutine that computes holds it for up to the switch interval (5 ms by default). 1 ms cut
# fault-to-coil-off under a busy loop from ~9 to ~3 ms (median, bench/station_latency.py) at no
# measurable cost.
SAFETY_SWITCH_INTERVAL_S = 0.001


@dataclass
class StationParts:
    """What a running station is made of. Every part is there while the station runs; the two
    that may be absent are absent by design: ``reader`` (no ``[reader]`` in the config) and
    ``sim`` (real hardware)."""

    config: StationConfig
    store: Store
    board: Board | None  # None: the safety process owns it
    client: OcppClient
    authorizer: Authorizer
    safety: SafetyPort
    core: CoreRunner
    smart_charging: SmartCharging
    firmware: FirmwareUpdater
    reader: TokenReader | None
    sim: SimulatedHardware | None


async def assemble(config: StationConfig, stack: contextlib.AsyncExitStack, *,
                   safety_settings: SafetySettings, simulator: Simulator | None,
                   emit: Emit, run_background: RunBackground,
                   restart: Callable[[ResetKind], None],
                   safety_socket: Path | None = None,
                   self_test: SelfTest | None = None) -> StationParts:
    """The station's parts, started; each is closed by ``stack``."""
    loop = asyncio.get_running_loop()
    quiet_pymodbus()
    config.storage.path.parent.mkdir(parents=True, exist_ok=True)
    # A failed firmware trial rolled back to this release: its store as before the switch.
    restore_store_after_rollback(config)
    store = Store(config.storage.path)
    stack.callback(store.close)
    for record in store.recover_interrupted():
        emit("transaction.recovered", local_id=record.local_id,
             meter_stop_wh=record.meter_stop_wh)

    board = None
    if safety_socket is None:
        board = build_board(config)
        board.open_all_contactors()
        stack.callback(board.close)
    client = client_from_config(config, store)
    keys = client.keys
    authorizer = Authorizer(
        store, backend_from_wire(client.authorize),
        AuthConfig.from_keys({k: keys.raw(k) for k in AuthConfig.KEYS}),
        is_online=lambda: client.online)

    core_ready: list[CoreRunner] = []

    def on_safety_event(event: SafetyEvent) -> None:
        core_ready[0].on_safety_event(event)

    notify = asyncio_notifier(loop, on_safety_event)
    safety: SafetyPort
    if board is not None:
        local = safety = SafetyCore(config, board, notify, safety_settings)
    else:
        assert safety_socket is not None

        def reconnected() -> None:  # on the link's thread
            loop.call_soon_threadsafe(_ask_again, core_ready)

        link = safety = SafetyLink(
            safety_socket, notify, name=config.station.id,
            lock_connectors=frozenset(c.id for c in config.connector if c.lock is not None),
            on_reconnect=reconnected)
    state = initial_state(config, {k: keys.raw(k) for k in ConnectorSettings.KEYS},
                          store.availability_all())
    core = CoreRunner(state, config, safety, client, store, authorizer, emit=emit,
                      run_background=run_background)
    core_ready.append(core)
    core.apply(ReservationsRestored(tuple(store.reservations_all()), time.time()))
    smart_charging = SmartCharging(core, config, store, keys, is_online=lambda: client.online,
                                   emit=emit)
    firmware = FirmwareUpdater(config, store, core, wake_outbox=client.outbox.wake,
                               request_restart=lambda: restart("Hard"),
                               is_accepted=lambda: client.online, self_test=self_test)
    stack.callback(firmware.close)
    client.firmware_state = firmware.notification_state
    client.attach_station(BackendPort(core, smart_charging, firmware, emit=emit,
                                      restart=restart))
    keys.add_listener(core.on_key_changed)
    if board is not None:
        _restore_faults(store, local, core)
        sys.setswitchinterval(SAFETY_SWITCH_INTERVAL_S)
        local.start()
    else:
        await asyncio.to_thread(link.start)
    stack.callback(safety.stop)
    stack.callback(core.cancel_timers)

    recorded = store.highest_energy_wh_by_connector()
    for cid, controller in core.controllers.items():
        if cid in recorded:
            controller.remember_recorded_energy(recorded[cid])

    reader = None
    if config.reader is not None:
        reader = open_reader(config.reader, simulated=config.hardware == "sim")
    sim = None
    if simulator is not None:
        sim = simulator(config, board, reader, store, safety)
        await stack.enter_async_context(sim.running())
    if reader is not None:
        reader.add_listener(core.on_tag_event)
        await reader.start()
        stack.push_async_callback(_stop_reader, reader)
    return StationParts(config, store, board, client, authorizer, safety, core, smart_charging,
                        firmware, reader, sim)


async def _stop_reader(reader: TokenReader) -> None:
    with contextlib.suppress(Exception):
        await reader.stop()


def _ask_again(core_ready: list[CoreRunner]) -> None:
    """The safety process came back (it restarted with every coil open): ask again for what
    the station core wants of each connector."""
    if core_ready:
        core_ready[0].ask_again()


def _restore_faults(store: Store, safety: SafetyCore, core: CoreRunner) -> None:
    """Technician faults survive a restart; the others re-appear if still there."""
    plan = faults_to_restore(
        (RememberedFault(r.code, r.connector_id, r.detail)
         for r in store.faults(active_only=True)),
        core.controllers)
    for code, cid in plan.close:
        store.fault_clear(code, cid)
    for kind, cid, detail in plan.restore:
        safety.restore_latched_fault(kind, cid, detail)
