"""Simulated hardware around a station with ``hardware = "sim"``: one simulated Modbus meter per
connector whose load follows the simulated vehicle, and the handles the control channel's
``sim.*`` methods drive (vehicle, reader, RCM, emergency stop, contactor, temperature).

Choice: a connector whose meter section says ``transport = "tcp"`` gets its simulated meter
served over Modbus TCP at the configured ``host``/``tcp_port``, so the real pymodbus driver
reads it (the same path as on a Pi). ``transport = "rtu"`` uses
:class:`~chargerfw.sim.meter.SimulatedMeterBackend` (the driver without a transport), since
there is no serial port to serve on.

The simulated meter's energy register starts at the highest reading the store holds, so a
restarted simulated station keeps a monotonic meter across sessions, as a real meter would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from chargerfw.config import ConnectorSection, StationConfig
from chargerfw.drivers.board import Board, ConnectorSim
from chargerfw.drivers.meter.driver import EnergyMeter
from chargerfw.drivers.readers.simulated import SimulatedReader
from chargerfw.logs import get_logger
from chargerfw.sim.meter import SimulatedMeter, SimulatedMeterBackend, serve_tcp
from chargerfw.store import Store

log = get_logger(__name__)

LOAD_UPDATE_INTERVAL_S = 0.2
NOMINAL_VOLTAGE_V = 230.0


class SimulationError(ValueError):
    """A ``sim.*`` request that the simulated hardware cannot carry out (bad connector, ...)."""


@dataclass
class SimulatedConnectorLoad:
    """Feeds one connector's simulated meter with what the simulated vehicle draws."""

    section: ConnectorSection
    parts: ConnectorSim
    meter: SimulatedMeter
    voltage_v: float = NOMINAL_VOLTAGE_V
    # Extra current per phase drawn while power flows: a misbehaving vehicle for the
    # over-current interlock.
    overdraw_a: float = 0.0

    def current_a(self) -> float:
        current = self.parts.vehicle.current_a
        if self.parts.contactor.is_closed and self.parts.vehicle.plugged_in:
            current += self.overdraw_a
        return current

    def update(self) -> None:
        watts = self.current_a() * self.voltage_v
        if self.section.phases == 1 or self.meter.map.phases == 1:
            self.meter.set_load(power_l1_w=watts, voltage_v=self.voltage_v)
        else:
            self.meter.set_load(power_w=watts * 3, voltage_v=self.voltage_v)


def last_recorded_energy_wh(store: Store) -> dict[int, float]:
    """The highest energy register each connector's stored transactions saw."""
    highest: dict[int, float] = {}
    for record in store.transactions(limit=50):
        readings = [r for r in (record.meter_stop_wh, record.last_meter_wh, record.meter_start_wh)
                    if r is not None]
        if readings:
            highest[record.connector_id] = max(highest.get(record.connector_id, 0.0),
                                               float(max(readings)))
    return highest


@dataclass
class SimulatedStation:
    """Everything simulated around a ``hardware = "sim"`` station."""

    board: Board
    reader: SimulatedReader | None
    loads: dict[int, SimulatedConnectorLoad] = field(default_factory=dict)

    @classmethod
    def create(cls, config: StationConfig, board: Board, reader: object,
               store: Store) -> SimulatedStation:
        if board.sim is None:
            raise SimulationError('the board was not built with hardware = "sim"')
        start_energy = last_recorded_energy_wh(store)
        loads = {}
        for section in config.connector:
            parts = board.connectors[section.id].sim
            assert parts is not None
            meter = SimulatedMeter(section.meter.model, unit_id=section.meter.unit_id,
                                   energy_import_wh=start_energy.get(section.id, 0.0))
            loads[section.id] = SimulatedConnectorLoad(section, parts, meter)
        return cls(board, reader if isinstance(reader, SimulatedReader) else None, loads)

    def make_meter(self, section: ConnectorSection, connector_id: int) -> EnergyMeter:
        """The meter driver for one connector: the real TCP driver, or the transport-less one."""
        if section.meter.transport == "tcp":
            return EnergyMeter.from_config(section.meter)
        return SimulatedMeterBackend(section.meter, self.loads[connector_id].meter)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SimulatedStation]:
        """Serve the TCP meters and keep every load following its vehicle."""
        async with contextlib.AsyncExitStack() as stack:
            for cid, load in self.loads.items():
                meter_cfg = load.section.meter
                if meter_cfg.transport == "tcp":
                    host, port = await stack.enter_async_context(
                        serve_tcp(load.meter, meter_cfg.host, meter_cfg.tcp_port))
                    log.info("sim.meter_serving", connector=cid, host=host, port=port,
                             model=meter_cfg.model)
            task = asyncio.create_task(self._follow_loads(), name="sim-loads")
            try:
                yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _follow_loads(self) -> None:
        while True:
            for load in self.loads.values():
                try:
                    load.update()
                except Exception:
                    log.exception("sim.load_update_failed")
            await asyncio.sleep(LOAD_UPDATE_INTERVAL_S)

    # -- what the sim.* control methods do ----------------------------------------------------

    def parts(self, connector_id: int) -> ConnectorSim:
        devices = self.board.connectors.get(connector_id)
        if devices is None or devices.sim is None:
            raise SimulationError(f"no simulated connector {connector_id}")
        return devices.sim

    def load(self, connector_id: int) -> SimulatedConnectorLoad:
        self.parts(connector_id)
        return self.loads[connector_id]
