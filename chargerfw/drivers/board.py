"""Build every GPIO/I2C device of a station from its config: ``hardware = "pi"`` gives the real
backends (RPi.GPIO API, smbus2), ``hardware = "sim"`` the simulated twins, wired so a test or the
bench can plug a vehicle in, ask it to charge, weld a contactor, trip the RCM, heat a sensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chargerfw.config import StationConfig
from chargerfw.drivers.contactor import Contactor
from chargerfw.drivers.fault_inputs import FaultInput, Rcm
from chargerfw.drivers.gpio import PinFactory, RPiGpioPinFactory, SimulatedPinFactory
from chargerfw.drivers.i2c import I2cBus, SimulatedSmbus, open_i2c_bus
from chargerfw.drivers.lock import ConnectorLock
from chargerfw.drivers.pilot import Ads1115, ControlPilot
from chargerfw.drivers.simulated.gpio_devices import (
    SimulatedContactorMirror,
    SimulatedFaultSwitch,
    SimulatedLockMechanism,
    SimulatedRcm,
)
from chargerfw.drivers.simulated.i2c_devices import (
    SIMULATED_SENSORS,
    SimulatedAds1115,
    SimulatedTemperatureChip,
)
from chargerfw.drivers.simulated.vehicle import SimulatedPilotLine, SimulatedVehicle
from chargerfw.drivers.temperature import SENSOR_MODELS, TemperatureSensor


class BoardError(ValueError):
    """A config the board cannot be built from (for example two chips at one I2C address)."""


@dataclass
class ConnectorSim:
    """The simulated parts of one connector (only with ``hardware = "sim"``)."""

    vehicle: SimulatedVehicle  # plug_in(), request_charge(), unplug(), current_a, ...
    pilot_line: SimulatedPilotLine
    # weld(), fail_to_close(), repair(), is_closed; cut_wire(), mend_wire() (the feedback wire)
    contactor: SimulatedContactorMirror
    lock: SimulatedLockMechanism | None = None  # jam(), repair()
    temperature: SimulatedTemperatureChip | None = None  # .temperature_c


@dataclass
class ConnectorDevices:
    id: int
    contactor: Contactor
    pilot: ControlPilot
    lock: ConnectorLock | None = None
    temperature: TemperatureSensor | None = None
    sim: ConnectorSim | None = None


@dataclass
class BoardSim:
    """Station-wide simulated parts."""

    buses: dict[int, SimulatedSmbus] = field(default_factory=dict)
    adcs: dict[tuple[int, int], SimulatedAds1115] = field(default_factory=dict)  # (bus, address)
    rcm: SimulatedRcm | None = None  # trip(), clear(), break_self_test(), cut_wire(), mend_wire()
    emergency_stop: SimulatedFaultSwitch | None = None  # press(), release(), cut_wire(), ...
    tamper: SimulatedFaultSwitch | None = None  # trip() = the enclosure opened, clear()


@dataclass
class Board:
    hardware: str
    pin_factory: PinFactory
    buses: dict[int, I2cBus]
    connectors: dict[int, ConnectorDevices]
    rcm: Rcm | None = None
    emergency_stop: FaultInput | None = None
    sim: BoardSim | None = None
    tamper: FaultInput | None = None  # [security.tamper]: the enclosure's tamper contact

    def open_all_contactors(self) -> None:
        """Any thread; for shutdown and last-resort safety."""
        for connector in self.connectors.values():
            connector.contactor.open()

    def close(self) -> None:
        """Open the contactors, then release every pin and bus."""
        self.open_all_contactors()
        self.pin_factory.close()
        for bus in self.buses.values():
            bus.close()


def _check_i2c_addresses(config: StationConfig) -> None:
    """Pilots may share one ADS1115 (one channel each) and connectors one sensor, but an ADC and
    a sensor cannot share an address, nor two pilots a channel."""
    owners: dict[tuple[int, int], tuple[str, str]] = {}
    channels: dict[tuple[int, int, int], str] = {}
    problems = []
    for c in config.connector:
        entries = [
            ("adc", f"connector[{c.id}].pilot.adc_address", c.pilot.adc_bus, c.pilot.adc_address)
        ]
        if c.temperature:
            t = c.temperature
            entries.append((t.sensor, f"connector[{c.id}].temperature.address", t.bus, t.address))
        for kind, key, bus, address in entries:
            known = owners.setdefault((bus, address), (kind, key))
            if known[0] != kind:
                problems.append(
                    f"I2C bus {bus} address 0x{address:02x} is used by both {known[1]} ({known[0]}) and {key} ({kind})"
                )
        channel_key = (c.pilot.adc_bus, c.pilot.adc_address, c.pilot.adc_channel)
        if channel_key in channels:
            problems.append(
                f"ADC channel {c.pilot.adc_channel} is used by both {channels[channel_key]} and connector[{c.id}].pilot"
            )
        channels[channel_key] = f"connector[{c.id}].pilot"
    if problems:
        raise BoardError("; ".join(problems))


def build_board(
    config: StationConfig,
    *,
    pin_factory: PinFactory | None = None,
    open_bus: Callable[[int], I2cBus] | None = None,
) -> Board:
    """The station's devices. ``pin_factory`` / ``open_bus`` override the backends (tests)."""
    _check_i2c_addresses(config)
    if config.hardware == "sim":
        return _build_sim(config, pin_factory)
    factory = pin_factory or RPiGpioPinFactory()
    opener = open_bus or open_i2c_bus
    buses: dict[int, I2cBus] = {}

    def bus(number: int) -> I2cBus:
        if number not in buses:
            buses[number] = opener(number)
        return buses[number]

    return _build_devices(config, factory, bus, buses)


def _build_devices(
    config: StationConfig,
    factory: PinFactory,
    bus: Callable[[int], I2cBus],
    buses: dict[int, I2cBus],
    adc_sample_interval_s: float = 1.0 / Ads1115.SAMPLES_PER_SECOND,
) -> Board:
    adcs: dict[tuple[int, int], Ads1115] = {}
    sensors: dict[tuple[int, int], TemperatureSensor] = {}
    connectors: dict[int, ConnectorDevices] = {}
    for c in config.connector:
        prefix = f"connector[{c.id}]"
        contactor = Contactor.from_config(c.contactor, factory, name=f"{prefix}.contactor")
        adc_key = (c.pilot.adc_bus, c.pilot.adc_address)
        if adc_key not in adcs:
            adcs[adc_key] = Ads1115(
                bus(c.pilot.adc_bus), c.pilot.adc_address, sample_interval_s=adc_sample_interval_s
            )
        pilot = ControlPilot.from_config(c.pilot, factory, adcs[adc_key], name=f"{prefix}.pilot")
        lock = ConnectorLock.from_config(c.lock, factory, name=f"{prefix}.lock") if c.lock else None
        sensor = None
        if c.temperature:
            key = (c.temperature.bus, c.temperature.address)
            if key not in sensors:
                sensors[key] = SENSOR_MODELS[c.temperature.sensor](
                    bus(c.temperature.bus), c.temperature.address
                )
            sensor = sensors[key]
        connectors[c.id] = ConnectorDevices(c.id, contactor, pilot, lock, sensor)
    rcm = Rcm.from_config(config.rcm, factory) if config.rcm else None
    estop = (
        FaultInput.from_config(config.emergency_stop, factory, name="emergency_stop")
        if config.emergency_stop
        else None
    )
    tamper = (
        FaultInput.from_config(config.security.tamper, factory, name="tamper")
        if config.security.tamper
        else None
    )
    return Board(config.hardware, factory, buses, connectors, rcm, estop, tamper=tamper)


def _contacts_closed(mirror: SimulatedContactorMirror) -> Callable[[], bool]:
    """Whether power flows into the cable: the contactor's main contacts are closed."""
    return lambda: mirror.is_closed


def _build_sim(config: StationConfig, pin_factory: PinFactory | None) -> Board:
    factory = pin_factory or SimulatedPinFactory()
    if not isinstance(factory, SimulatedPinFactory):
        raise BoardError('hardware = "sim" needs a SimulatedPinFactory')
    sim = BoardSim()
    buses: dict[int, I2cBus] = {}
    temperature_chips: dict[tuple[int, int], SimulatedTemperatureChip] = {}  # (bus, address)
    # Devices go on the simulated buses before the drivers touch them.
    for c in config.connector:
        raw = sim.buses.setdefault(c.pilot.adc_bus, SimulatedSmbus())
        if (c.pilot.adc_bus, c.pilot.adc_address) not in sim.adcs:
            adc = SimulatedAds1115()
            raw.attach(c.pilot.adc_address, adc)
            sim.adcs[(c.pilot.adc_bus, c.pilot.adc_address)] = adc
        if c.temperature:
            raw_t = sim.buses.setdefault(c.temperature.bus, SimulatedSmbus())
            if c.temperature.address not in raw_t.devices:
                chip = SIMULATED_SENSORS[c.temperature.sensor]()
                raw_t.attach(c.temperature.address, chip)
                temperature_chips[(c.temperature.bus, c.temperature.address)] = chip

    def bus(number: int) -> I2cBus:
        if number not in buses:
            buses[number] = I2cBus(
                sim.buses.setdefault(number, SimulatedSmbus()), f"sim-i2c-{number}"
            )
        return buses[number]

    # The trip contacts are on their lines before the drivers first read them (with the
    # fail-safe wiring a line that nothing holds reads as tripped).
    if config.rcm:
        sim.rcm = SimulatedRcm(
            factory.pin(config.rcm.pin),
            factory.pin(config.rcm.test_pin) if config.rcm.test_pin is not None else None,
            wiring=config.rcm.contact_wiring,
        )
    if config.emergency_stop:
        sim.emergency_stop = SimulatedFaultSwitch(
            factory.pin(config.emergency_stop.pin), wiring=config.emergency_stop.contact_wiring
        )
    if config.security.tamper:
        sim.tamper = SimulatedFaultSwitch(
            factory.pin(config.security.tamper.pin), wiring=config.security.tamper.contact_wiring
        )
    # No real conversion time to wait for in simulation.
    board = _build_devices(config, factory, bus, buses, adc_sample_interval_s=0.0)
    for c in config.connector:
        devices = board.connectors[c.id]
        mirror = SimulatedContactorMirror(
            factory.pin(c.contactor.pin),
            factory.pin(c.contactor.feedback_pin) if c.contactor.feedback_pin is not None else None,
            coil_active_high=c.contactor.active_high,
            feedback_wiring=c.contactor.feedback_contact_wiring,
        )
        line = SimulatedPilotLine(
            factory.pin(c.pilot.pwm_pin),
            frequency_hz=c.pilot.pwm_frequency_hz,
            adc_scale=c.pilot.adc_scale,
            adc_offset=c.pilot.adc_offset,
            power_on=_contacts_closed(mirror),
        )
        sim.adcs[(c.pilot.adc_bus, c.pilot.adc_address)].connect(
            c.pilot.adc_channel, line.adc_volts
        )
        vehicle = SimulatedVehicle(line, max_current_a=c.max_current_a, phases=c.phases)
        lock_sim = None
        if c.lock:
            lock_sim = SimulatedLockMechanism(
                factory.pin(c.lock.pin),
                factory.pin(c.lock.feedback_pin) if c.lock.feedback_pin is not None else None,
                active_high=c.lock.active_high,
                feedback_active_high=c.lock.feedback_active_high,
            )
        temp_sim = None
        if c.temperature:
            temp_sim = temperature_chips[(c.temperature.bus, c.temperature.address)]
        devices.sim = ConnectorSim(vehicle, line, mirror, lock_sim, temp_sim)
    board.sim = sim
    return board
