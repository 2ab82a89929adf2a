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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from chargerfw.config import ConnectorSection, StationConfig
from chargerfw.drivers.board import Board, ConnectorSim
from chargerfw.drivers.meter.driver import EnergyMeter
from chargerfw.drivers.readers import TokenReader
from chargerfw.drivers.readers.simulated import SimulatedReader
from chargerfw.logs import get_logger
from chargerfw.runtime.control import InvalidParams, Refused
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


@dataclass
class SimulatedStation:
    """Everything simulated around a ``hardware = "sim"`` station."""

    board: Board
    reader: SimulatedReader | None
    loads: dict[int, SimulatedConnectorLoad] = field(default_factory=dict)
    _tap_timer: asyncio.TimerHandle | None = None

    @classmethod
    def create(cls, config: StationConfig, board: Board, reader: TokenReader | None,
               store: Store) -> SimulatedStation:
        """The simulated hardware of a station (a :data:`~chargerfw.runtime.simulation.Simulator`)."""
        if board.sim is None:
            raise SimulationError('the board was not built with hardware = "sim"')
        start_energy = store.highest_energy_wh_by_connector()
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

    def control_handlers(self) -> dict[str, Callable[..., Any]]:
        """The ``sim.*`` methods of the control socket, one per simulated action."""

        def on_vehicle(action: str) -> Callable[..., dict[str, Any]]:
            def handler(connector: int = 1) -> dict[str, Any]:
                vehicle = self._parts_for(connector).vehicle
                try:
                    getattr(vehicle, action)()
                except RuntimeError as exc:  # unplugged, another vehicle, ...
                    raise Refused(str(exc)) from None
                return {"connector": connector, "vehicle": vehicle.state.value}
            return handler

        async def tap(uid: str, hold_s: float = 0.3) -> dict[str, Any]:
            reader = self.reader
            if reader is None:
                raise Refused("the station has no [reader]")
            if not 0 <= float(hold_s) <= 10:
                raise InvalidParams("hold_s must be between 0 and 10")
            if self._tap_timer is not None:
                # A card still lying on the reader from the previous tap is taken off first,
                # so that the same card twice in a row is two taps.
                self._tap_timer.cancel()
                self._tap_timer = None
                reader.remove()
            try:
                reader.present(uid)
            except ValueError as exc:
                raise InvalidParams(f"uid: {exc}") from None
            except Exception as exc:
                raise Refused(str(exc)) from None
            self._tap_timer = asyncio.get_running_loop().call_later(float(hold_s), reader.remove)
            return {"presented": uid.upper()}

        def station_switch(part: str, method: str) -> Callable[[], dict[str, Any]]:
            def handler() -> dict[str, Any]:
                board_sim = self.board.sim
                switch = getattr(board_sim, part, None)
                if switch is None:
                    raise Refused(f"the station has no {part}")
                getattr(switch, method)()
                return {part: method}
            return handler

        def contactor(method: str) -> Callable[..., dict[str, Any]]:
            def handler(connector: int = 1) -> dict[str, Any]:
                getattr(self._parts_for(connector).contactor, method)()
                return {"connector": connector, "contactor": method}
            return handler

        def reader_presence(method: str) -> Callable[[], dict[str, Any]]:
            def handler() -> dict[str, Any]:
                reader = self.reader
                if reader is None:
                    raise Refused("the station has no [reader]")
                getattr(reader, method)()
                return {"reader": method}
            return handler

        def temperature(celsius: float, connector: int = 1) -> dict[str, Any]:
            chip = self._parts_for(connector).temperature
            if chip is None:
                raise Refused(f"connector {connector} has no temperature sensor")
            value = float(celsius)
            if not -55 <= value <= 150:
                raise InvalidParams("celsius must be between -55 and 150")
            chip.temperature_c = value
            return {"connector": connector, "celsius": value}

        def overdraw(amps: float, connector: int = 1) -> dict[str, Any]:
            value = float(amps)
            if not 0 <= value <= 100:
                raise InvalidParams("amps must be between 0 and 100")
            self._parts_for(connector)
            self.load(connector).overdraw_a = value
            return {"connector": connector, "overdraw_a": value}

        return {
            "sim.plug": on_vehicle("plug_in"),
            "sim.charge": on_vehicle("request_charge"),
            "sim.stop_charging": on_vehicle("stop_charging"),
            "sim.unplug": on_vehicle("unplug"),
            "sim.short_pilot": on_vehicle("short_pilot"),
            "sim.clear_short": on_vehicle("clear_short"),
            "sim.remove_diode": on_vehicle("remove_diode"),
            "sim.restore_diode": on_vehicle("restore_diode"),
            "sim.tap": tap,
            "sim.rcd_trip": station_switch("rcm", "trip"),
            "sim.rcd_clear": station_switch("rcm", "clear"),
            "sim.estop_press": station_switch("emergency_stop", "press"),
            "sim.estop_release": station_switch("emergency_stop", "release"),
            "sim.weld": contactor("weld"),
            "sim.repair": contactor("repair"),
            "sim.fail_to_close": contactor("fail_to_close"),
            "sim.temperature": temperature,
            "sim.reader_unplug": reader_presence("unplug"),
            "sim.reader_replug": reader_presence("replug"),
            "sim.overdraw": overdraw,
        }

    def _parts_for(self, connector: object) -> ConnectorSim:
        if not isinstance(connector, int) or isinstance(connector, bool):
            raise InvalidParams(f"connector must be an integer, got {connector!r}")
        try:
            return self.parts(connector)
        except SimulationError as exc:
            raise InvalidParams(str(exc)) from None
