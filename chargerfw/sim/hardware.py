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
from typing import Any

from chargerfw.config import ConnectorSection, StationConfig
from chargerfw.control.api import (
    ContactorSimReply,
    EmergencyStopSwitchReply,
    InvalidParams,
    Method,
    OnConnector,
    OverdrawReply,
    RcmSwitchReply,
    ReaderSwitchReply,
    Refused,
    Request,
    SimChargeRequest,
    SimOverdrawRequest,
    SimTapRequest,
    SimTemperatureRequest,
    TamperSwitchReply,
    TapReply,
    TemperatureReply,
    VehicleReply,
    decode_reply,
    request_params,
)
from chargerfw.control.server import Handler
from chargerfw.drivers.board import Board, ConnectorSim
from chargerfw.drivers.meter.driver import EnergyMeter
from chargerfw.drivers.readers import TokenReader
from chargerfw.drivers.readers.simulated import SimulatedReader
from chargerfw.logs import get_logger
from chargerfw.runtime.simulation import SimulatedHardware
from chargerfw.safety.link import SafetyLink, SafetyRefused, SafetyUnavailable
from chargerfw.safety.port import SafetyPort
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

    def __post_init__(self) -> None:
        self.reader_controls = ReaderControls(self.reader)

    @classmethod
    def create(cls, config: StationConfig, board: Board, reader: TokenReader | None,
               store: Store | None) -> SimulatedStation:
        """The simulated hardware of a station (a :data:`~chargerfw.runtime.simulation.Simulator`)."""
        if board.sim is None:
            raise SimulationError('the board was not built with hardware = "sim"')
        # The meters go on from their registers kept beside the store, else from where the
        # store last saw them (a fresh world without a store, as in the safety process, starts
        # at zero).
        start_energy = store.highest_energy_wh_by_connector() if store is not None else {}
        loads = {}
        for section in config.connector:
            parts = board.connectors[section.id].sim
            assert parts is not None
            meter = SimulatedMeter(
                section.meter.model, unit_id=section.meter.unit_id,
                energy_import_wh=start_energy.get(section.id, 0.0),
                register_file=(None if store is None else config.storage.path.with_name(
                    f"{config.storage.path.name}.sim-meter-{section.id}.json")))
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

    def control_handlers(self) -> dict[Method, Handler]:
        """The ``sim.*`` methods of the control socket, one per simulated action."""

        def on_vehicle(action: str) -> Handler:
            def handler(request: OnConnector) -> VehicleReply:
                vehicle = self._parts_for(request.connector).vehicle
                if isinstance(request, SimChargeRequest) and request.max_current_a is not None:
                    vehicle.max_current_a = request.max_current_a
                try:
                    getattr(vehicle, action)()
                except RuntimeError as exc:  # unplugged, another vehicle, ...
                    raise Refused(str(exc)) from None
                return VehicleReply(request.connector, vehicle.state.value)
            return handler

        def rcm(action: str) -> Handler:
            def handler(request: object) -> RcmSwitchReply:
                switch = self.board.sim.rcm if self.board.sim is not None else None
                if switch is None:
                    raise Refused("the station has no rcm")
                getattr(switch, action)()
                return RcmSwitchReply(action)
            return handler

        def emergency_stop(action: str) -> Handler:
            def handler(request: object) -> EmergencyStopSwitchReply:
                switch = self.board.sim.emergency_stop if self.board.sim is not None else None
                if switch is None:
                    raise Refused("the station has no emergency_stop")
                getattr(switch, action)()
                return EmergencyStopSwitchReply(action)
            return handler

        def tamper(action: str) -> Handler:
            def handler(request: object) -> TamperSwitchReply:
                switch = self.board.sim.tamper if self.board.sim is not None else None
                if switch is None:
                    raise Refused("the station has no [security.tamper] contact")
                if action == "open":
                    switch.trip()
                else:
                    switch.clear()
                return TamperSwitchReply(action)
            return handler

        def contactor(action: str) -> Handler:
            def handler(request: OnConnector) -> ContactorSimReply:
                getattr(self._parts_for(request.connector).contactor, action)()
                return ContactorSimReply(request.connector, action)
            return handler

        def temperature(request: SimTemperatureRequest) -> TemperatureReply:
            chip = self._parts_for(request.connector).temperature
            if chip is None:
                raise Refused(f"connector {request.connector} has no temperature sensor")
            if not -55 <= request.celsius <= 150:
                raise InvalidParams("celsius must be between -55 and 150")
            chip.temperature_c = request.celsius
            return TemperatureReply(request.connector, request.celsius)

        def overdraw(request: SimOverdrawRequest) -> OverdrawReply:
            if not 0 <= request.amps <= 100:
                raise InvalidParams("amps must be between 0 and 100")
            self._parts_for(request.connector)
            self.load(request.connector).overdraw_a = request.amps
            return OverdrawReply(request.connector, request.amps)

        return {
            **self.reader_controls.handlers(),
            Method.SIM_PLUG: on_vehicle("plug_in"),
            Method.SIM_CHARGE: on_vehicle("request_charge"),
            Method.SIM_STOP_CHARGING: on_vehicle("stop_charging"),
            Method.SIM_UNPLUG: on_vehicle("unplug"),
            Method.SIM_SHORT_PILOT: on_vehicle("short_pilot"),
            Method.SIM_CLEAR_SHORT: on_vehicle("clear_short"),
            Method.SIM_REMOVE_DIODE: on_vehicle("remove_diode"),
            Method.SIM_RESTORE_DIODE: on_vehicle("restore_diode"),
            Method.SIM_RCD_TRIP: rcm("trip"),
            Method.SIM_RCD_CLEAR: rcm("clear"),
            Method.SIM_ESTOP_PRESS: emergency_stop("press"),
            Method.SIM_ESTOP_RELEASE: emergency_stop("release"),
            Method.SIM_TAMPER_OPEN: tamper("open"),
            Method.SIM_TAMPER_CLOSE: tamper("close"),
            Method.SIM_WELD: contactor("weld"),
            Method.SIM_REPAIR: contactor("repair"),
            Method.SIM_FAIL_TO_CLOSE: contactor("fail_to_close"),
            Method.SIM_TEMPERATURE: temperature,
            Method.SIM_OVERDRAW: overdraw,
        }

    def _parts_for(self, connector: int) -> ConnectorSim:
        try:
            return self.parts(connector)
        except SimulationError as exc:
            raise InvalidParams(str(exc)) from None


class ReaderControls:
    """The ``sim.*`` methods of the simulated card reader (the station's own device)."""

    def __init__(self, reader: SimulatedReader | None) -> None:
        self.reader = reader
        self._tap_timer: asyncio.TimerHandle | None = None

    def handlers(self) -> dict[Method, Handler]:
        async def tap(request: SimTapRequest) -> TapReply:
            reader = self.reader
            if reader is None:
                raise Refused("the station has no [reader]")
            if not 0 <= request.hold_s <= 10:
                raise InvalidParams("hold_s must be between 0 and 10")
            if self._tap_timer is not None:
                # A card still lying on the reader from the previous tap is taken off first,
                # so that the same card twice in a row is two taps.
                self._tap_timer.cancel()
                self._tap_timer = None
                reader.remove()
            try:
                reader.present(request.uid)
            except ValueError as exc:
                raise InvalidParams(f"uid: {exc}") from None
            except Exception as exc:
                raise Refused(str(exc)) from None
            self._tap_timer = asyncio.get_running_loop().call_later(request.hold_s,
                                                                    reader.remove)
            return TapReply(request.uid.upper())

        def reader_presence(action: str) -> Handler:
            def handler(request: object) -> ReaderSwitchReply:
                reader = self.reader
                if reader is None:
                    raise Refused("the station has no [reader]")
                getattr(reader, action)()
                return ReaderSwitchReply(action)
            return handler

        return {
            Method.SIM_TAP: tap,
            Method.SIM_READER_UNPLUG: reader_presence("unplug"),
            Method.SIM_READER_REPLUG: reader_presence("replug"),
        }


class RemoteWorld:
    """A simulated station whose world (vehicles, switches, chips, meters) the safety process
    holds: the card reader is simulated here, every other ``sim.*`` method goes over the safety
    link, and the meters are read over Modbus TCP from the world's servers."""

    def __init__(self, reader: SimulatedReader | None, safety: SafetyLink) -> None:
        self.reader_controls = ReaderControls(reader)
        self.safety = safety

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RemoteWorld]:
        yield self

    def make_meter(self, section: ConnectorSection, connector_id: int) -> EnergyMeter:
        if section.meter.transport != "tcp":
            raise SimulationError("a world in the safety process serves its meters over Modbus "
                                  "TCP: set the connector's meter transport to tcp")
        return EnergyMeter.from_config(section.meter)

    def control_handlers(self) -> dict[Method, Handler]:
        forwarded = {method: self._forward(method) for method in Method
                     if method.value.startswith("sim.")}
        return {**forwarded, **self.reader_controls.handlers()}

    def _forward(self, method: Method) -> Handler:
        async def handler(request: Request[Any]) -> Any:
            try:
                result = await asyncio.to_thread(self.safety.simulate, method.value,
                                                 request_params(request))
            except SafetyRefused as exc:
                raise Refused(str(exc)) from None
            except SafetyUnavailable as exc:
                raise Refused(f"the safety process does not answer: {exc}") from None
            return decode_reply(type(request), result)
        return handler


def simulated_hardware(config: StationConfig, board: Board | None, reader: TokenReader | None,
                       store: Store, safety: SafetyPort) -> SimulatedHardware:
    """The simulated hardware of a ``hardware = "sim"`` station (a
    :data:`~chargerfw.runtime.simulation.Simulator`): the whole world in this process, or, with a
    safety process, the reader here and the world there."""
    if board is not None:
        return SimulatedStation.create(config, board, reader, store)
    if not isinstance(safety, SafetyLink):
        raise SimulationError("a station without a board needs its safety process")
    return RemoteWorld(reader if isinstance(reader, SimulatedReader) else None, safety)
