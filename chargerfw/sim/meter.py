"""A simulated Modbus energy meter, generated from any ``hw/meters`` register map.

It serves the map's registers over Modbus TCP or RTU (a serial port or a pty) with the vendor's
encoding, from a simulated load: set power per phase, voltage and frequency; energy integrates
power over time. Faults can be injected: no reply, exception replies, corrupted frames, frozen
registers, energy going backwards.

    meter = SimulatedMeter("eastron-sdm630-v2")
    meter.set_load(power_w=7400)
    async with serve_tcp(meter) as (host, port):
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import math
import os
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from chargerfw.config import MeterSection
from chargerfw.drivers.meter.codec import encode
from chargerfw.drivers.meter.driver import (
    MODBUS_EXCEPTION_NAMES,
    EnergyMeter,
    MeterReadError,
    describe_block,
)
from chargerfw.drivers.meter.planner import ReadBlock
from chargerfw.drivers.meter.regmap import MeterMap, Quantity, load_meter_map
from chargerfw.drivers.types import MeterFaultKind
from chargerfw.logs import get_logger

log = get_logger(__name__)

PHASES = ("l1", "l2", "l3")


class SimFault(enum.StrEnum):
    NO_REPLY = "no_reply"  # swallow the reply: the client times out
    EXCEPTION = "exception"  # answer with a Modbus exception code
    CORRUPT = "corrupt"  # RTU: flip the CRC; TCP: drop the last byte
    FROZEN = "frozen"  # registers stop changing
    ENERGY_BACKWARDS = "energy_backwards"  # import counter shown lower than before


REQUEST_LOG_SIZE = 1000


@dataclass
class SimBusCounters:
    """What the simulated meter saw and sent; for tests and the bench."""

    requests: int = 0
    replies: int = 0
    reply_bytes: int = 0
    dropped: int = 0
    corrupted: int = 0
    # The latest requests only: a simulator serving a bench or a fleet runs for hours.
    request_log: deque[tuple[int, int, int]] = field(
        default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))  # fc, address, count
    request_times: deque[float] = field(
        default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))  # time.monotonic() of each


class SimulatedMeter:
    """The simulated meter's state: load, energy counters, injected faults, and its registers.

    ``clock`` (monotonic seconds) can be replaced in tests to integrate energy without waiting.
    ``voltage_jitter_v`` adds a small random wobble to each voltage read, as a real meter shows;
    keep it 0 where exact numbers are asserted.
    """

    def __init__(
        self,
        model: str | MeterMap,
        *,
        unit_id: int | None = None,
        energy_import_wh: float = 0.0,
        energy_export_wh: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        voltage_jitter_v: float = 0.0,
        seed: int = 1,
        register_file: Path | None = None,
    ) -> None:
        self.map = load_meter_map(model) if isinstance(model, str) else model
        self.unit_id = unit_id if unit_id is not None else self.map.serial.unit_id
        self._clock = clock
        self._last_tick = clock()
        self.energy_import_wh = float(energy_import_wh)
        self.energy_export_wh = float(energy_export_wh)
        # A real meter's registers outlive the station's process: kept here, the simulated
        # one goes on from its exact register after a restart (or a SIGKILL), not from the
        # whole Wh the store saw last.
        self._register_file = register_file
        self._saved: tuple[float, float] | None = None
        if register_file is not None:
            saved = _read_registers(register_file)
            if saved is not None:
                self.energy_import_wh, self.energy_export_wh = saved
                self._saved = saved
        self.voltage_v = {p: 230.0 for p in PHASES}
        self.power_w = {p: 0.0 for p in PHASES}
        self.frequency_hz = 50.0
        self.power_factor = 1.0
        self.voltage_jitter_v = voltage_jitter_v
        self._random = random.Random(seed)
        self.faults: dict[SimFault, float | int | None] = {}
        self._frozen_words: dict[tuple[int, int], int] | None = None
        self._raw_overrides: dict[Quantity, list[int]] = {}
        self.counters = SimBusCounters()
        self.phases = PHASES if self.map.phases == 3 else PHASES[:1]

    # -- the simulated load ----------------------------------------------------------------

    def _integrate(self) -> None:
        now = self._clock()
        hours = max(0.0, now - self._last_tick) / 3600
        self._last_tick = now
        total = sum(self.power_w[p] for p in self.phases)
        if total >= 0:
            self.energy_import_wh += total * hours
        else:
            self.energy_export_wh += -total * hours

    def set_load(
        self,
        power_w: float | None = None,
        *,
        power_l1_w: float | None = None,
        power_l2_w: float | None = None,
        power_l3_w: float | None = None,
        voltage_v: float | None = None,
        voltage_l1_v: float | None = None,
        voltage_l2_v: float | None = None,
        voltage_l3_v: float | None = None,
        frequency_hz: float | None = None,
        power_factor: float | None = None,
    ) -> None:
        """Change the load from now on. ``power_w`` is shared equally by the meter's phases;
        negative power is export."""
        values = [power_w, power_l1_w, power_l2_w, power_l3_w, voltage_v, voltage_l1_v,
                  voltage_l2_v, voltage_l3_v, frequency_hz, power_factor]
        if any(v is not None and not math.isfinite(v) for v in values):
            raise ValueError("load values must be finite numbers")
        if voltage_v is not None and voltage_v < 0 or frequency_hz is not None and frequency_hz < 0:
            raise ValueError("voltage and frequency must not be negative")
        if power_factor is not None and not 0 < power_factor <= 1:
            raise ValueError("power_factor must be in (0, 1]")
        self._integrate()
        if power_w is not None:
            for p in self.phases:
                self.power_w[p] = power_w / len(self.phases)
        for p, value in zip(PHASES, (power_l1_w, power_l2_w, power_l3_w), strict=True):
            if value is not None:
                if p not in self.phases:
                    raise ValueError(f"a {self.map.phases}-phase meter has no {p.upper()}")
                self.power_w[p] = value
        if voltage_v is not None:
            for p in PHASES:
                self.voltage_v[p] = voltage_v
        for p, value in zip(PHASES, (voltage_l1_v, voltage_l2_v, voltage_l3_v), strict=True):
            if value is not None:
                if value < 0:
                    raise ValueError("voltage must not be negative")
                self.voltage_v[p] = value
        if frequency_hz is not None:
            self.frequency_hz = frequency_hz
        if power_factor is not None:
            self.power_factor = power_factor

    def set_energy(self, import_wh: float | None = None, export_wh: float | None = None) -> None:
        self._integrate()
        if import_wh is not None:
            self.energy_import_wh = float(import_wh)
        if export_wh is not None:
            self.energy_export_wh = float(export_wh)


    def _save_registers(self) -> None:
        """Written before a reading is served, so no reading seen outside is above what a
        restarted meter starts from."""
        registers = (self.energy_import_wh, self.energy_export_wh)
        if self._register_file is None or registers == self._saved:
            return
        tmp = self._register_file.with_name(self._register_file.name + ".tmp")
        tmp.write_text(json.dumps({"energy_import_wh": registers[0],
                                   "energy_export_wh": registers[1]}))
        os.replace(tmp, self._register_file)
        self._saved = registers

    def values(self) -> dict[Quantity, float]:
        """What the meter measures right now, in the sample's units (Wh, W, V, A, Hz)."""
        self._integrate()
        self._save_registers()
        out: dict[Quantity, float] = {
            Quantity.ENERGY_IMPORT: self.energy_import_wh,
            Quantity.ENERGY_EXPORT: self.energy_export_wh,
            Quantity.POWER: sum(self.power_w[p] for p in self.phases),
            Quantity.FREQUENCY: self.frequency_hz,
        }
        backwards = self.faults.get(SimFault.ENERGY_BACKWARDS)
        if backwards is not None:
            out[Quantity.ENERGY_IMPORT] = max(0.0, self.energy_import_wh - float(backwards))
        for p in self.phases:
            volts = self.voltage_v[p]
            if self.voltage_jitter_v:
                volts += self._random.uniform(-self.voltage_jitter_v, self.voltage_jitter_v)
            out[Quantity(f"voltage_{p}")] = volts
            out[Quantity(f"power_{p}")] = self.power_w[p]
            amps = abs(self.power_w[p]) / (volts * self.power_factor) if volts > 1 else 0.0
            out[Quantity(f"current_{p}")] = amps
        return out

    # -- registers -------------------------------------------------------------------------

    def register_words(self) -> dict[tuple[int, int], int]:
        """Every mapped register, {(function code, address): word}, encoded per the map."""
        if self._frozen_words is not None:
            return dict(self._frozen_words)
        words: dict[tuple[int, int], int] = {}
        for quantity, value in self.values().items():
            spec = self.map.quantities.get(quantity)
            if spec is None:
                continue
            regs, exponent = encode(spec, value, self.map.unit_factor(quantity))
            for i, word in enumerate(regs):
                words[(spec.function_code, spec.address + i)] = word
            if exponent is not None and spec.exponent_address is not None:
                words[(spec.function_code, spec.exponent_address)] = exponent
        for quantity, raw in self._raw_overrides.items():
            spec = self.map.quantities[quantity]
            for i, word in enumerate(raw):
                words[(spec.function_code, spec.address + i)] = word
        return words

    def set_raw(self, quantity: Quantity | str, words: list[int] | None) -> None:
        """Serve these raw words for ``quantity`` instead of its value (a vendor's NaN marker,
        say); ``None`` goes back to the simulated value."""
        quantity = Quantity(quantity)
        if quantity not in self.map.quantities:
            raise ValueError(f"{self.map.name} has no {quantity}")
        if words is None:
            self._raw_overrides.pop(quantity, None)
            return
        width = self.map.quantities[quantity].width
        if len(words) != width or not all(0 <= w <= 0xFFFF for w in words):
            raise ValueError(f"{quantity} needs {width} words of 0..0xFFFF")
        self._raw_overrides[quantity] = list(words)

    # -- faults ----------------------------------------------------------------------------

    def inject(self, fault: SimFault | str, value: float | int | None = None) -> None:
        """Start a fault. ``value``: the exception code for EXCEPTION (default 4, device
        failure), the Wh to take off the import counter for ENERGY_BACKWARDS (default 1000)."""
        fault = SimFault(fault)
        if fault is SimFault.EXCEPTION:
            value = int(value if value is not None else ExcCodes.DEVICE_FAILURE)
            ExcCodes(value)  # raises ValueError for a code Modbus does not define
        elif fault is SimFault.ENERGY_BACKWARDS:
            value = float(value if value is not None else 1000.0)
            if value <= 0:
                raise ValueError("energy_backwards needs a positive Wh amount")
        elif fault is SimFault.FROZEN:
            self._frozen_words = self.register_words()
        self.faults[fault] = value
        log.info("sim.meter.inject", model=self.map.name, fault=str(fault), value=value)

    def clear(self, fault: SimFault | str | None = None) -> None:
        """End one fault, or all of them."""
        for f in [SimFault(fault)] if fault is not None else list(self.faults):
            self.faults.pop(f, None)
            if f is SimFault.FROZEN:
                self._frozen_words = None

    # -- pymodbus glue ---------------------------------------------------------------------

    def register_spans(self) -> dict[int, tuple[int, int]]:
        """{function code: (first, last)} register span the meter answers."""
        spans: dict[int, tuple[int, int]] = {}
        for spec in self.map.quantities.values():
            for fc, address in spec.registers():
                low, high = spans.get(fc, (address, address))
                spans[fc] = (min(low, address), max(high, address))
        return spans

    async def _on_access(self, function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], set_values: object) -> ExcCodes | None:
        self.counters.requests += 1
        self.counters.request_log.append((function_code, address, count))
        self.counters.request_times.append(time.monotonic())
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # meters are read-only here
        code = self.faults.get(SimFault.EXCEPTION)
        if code is not None:
            return ExcCodes(int(code))
        for (fc, reg), word in self.register_words().items():
            if fc == function_code and 0 <= reg - start_address < len(registers):
                registers[reg - start_address] = word
        return None

    def device(self) -> SimDevice:
        """A pymodbus SimDevice serving this meter (input and holding registers apart, as
        in the meters; every address in the mapped span reads, others are illegal)."""
        spans = self.register_spans()

        def block(fc: int) -> list[SimData]:
            if fc not in spans:
                return [SimData(0, datatype=DataType.INVALID)]
            low, high = spans[fc]
            return [SimData(low, count=high - low + 1, values=0, datatype=DataType.REGISTERS)]

        unused_bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        return SimDevice(
            self.unit_id,
            simdata=(unused_bits, list(unused_bits), block(3), block(4)),
            action=self._on_access,
        )

    def trace_packet(self, framer: FramerType) -> Callable[[bool, bytes], bytes]:
        """The server's packet hook: counts frames and applies the frame-level faults."""

        def trace(sending: bool, data: bytes) -> bytes:
            if not sending or not data:
                return data
            unit = data[0] if framer is FramerType.RTU else data[6] if len(data) > 6 else None
            if unit != self.unit_id or SimFault.NO_REPLY in self.faults:
                # A meter on RS-485 stays silent to other unit ids; NO_REPLY swallows all.
                self.counters.dropped += 1
                return b""
            if SimFault.CORRUPT in self.faults:
                self.counters.corrupted += 1
                data = (data[:-1] + bytes([data[-1] ^ 0xFF]) if framer is FramerType.RTU
                        else data[:-1])
            self.counters.replies += 1
            self.counters.reply_bytes += len(data)
            return data

        return trace


@contextlib.asynccontextmanager
async def serve_tcp(meter: SimulatedMeter, host: str = "127.0.0.1",
                    port: int = 0) -> AsyncIterator[tuple[str, int]]:
    """Serve ``meter`` over Modbus TCP; yields the bound (host, port) (port 0 = a free one)."""
    from pymodbus.server import ModbusTcpServer  # the server side is loaded when it serves

    server = ModbusTcpServer(meter.device(), address=(host, port),
                             trace_packet=meter.trace_packet(FramerType.SOCKET))
    await server.serve_forever(background=True)
    try:
        listener = server.transport  # a TCP server listens through an asyncio.Server
        assert isinstance(listener, asyncio.Server)
        bound = listener.sockets[0].getsockname()
        yield bound[0], bound[1]
    finally:
        await server.shutdown()


@contextlib.asynccontextmanager
async def serve_rtu(meter: SimulatedMeter, port: str, *, baudrate: int | None = None,
                    parity: str | None = None, stopbits: int | None = None) -> AsyncIterator[str]:
    """Serve ``meter`` over Modbus RTU on a serial port (or pty); defaults from the map."""
    from pymodbus.server import ModbusSerialServer

    serial = meter.map.serial
    server = ModbusSerialServer(
        meter.device(), framer=FramerType.RTU, port=port,
        baudrate=baudrate or serial.baudrate, parity=parity or serial.parity,
        stopbits=stopbits or serial.stopbits, bytesize=8,
        trace_packet=meter.trace_packet(FramerType.RTU),
    )
    await server.serve_forever(background=True)
    try:
        yield port
    finally:
        await server.shutdown()


class SimulatedMeterBackend(EnergyMeter):
    """The meter driver wired straight to a :class:`SimulatedMeter`, without a Modbus
    transport: the same plan, decoding, plausibility and typed faults, for a station on
    simulated hardware or a fleet of hundreds of simulated chargers in one process."""

    def __init__(self, section: MeterSection, sim: SimulatedMeter | None = None,
                 **kwargs: Any) -> None:
        super().__init__(section, **kwargs)  # the driver's keyword options, unchanged
        self.sim = sim or SimulatedMeter(self.map, unit_id=self.bus.unit_id)

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _read_block(self, block: ReadBlock) -> list[int]:
        self.counters.transactions += 1
        sim, where = self.sim, describe_block(block)
        sim.counters.requests += 1
        sim.counters.request_log.append((block.function_code, block.address, block.count))
        if sim.unit_id != self.bus.unit_id or SimFault.NO_REPLY in sim.faults:
            raise MeterReadError(MeterFaultKind.TIMEOUT,
                                 f"no reply to {where} within {self.bus.timeout_s:g} s")
        if SimFault.CORRUPT in sim.faults:
            raise MeterReadError(MeterFaultKind.CRC_ERROR, f"corrupted reply to {where}")
        code = sim.faults.get(SimFault.EXCEPTION)
        low_high = sim.register_spans().get(block.function_code)
        if code is None and (low_high is None or block.address < low_high[0]
                             or block.end > low_high[1]):
            code = ExcCodes.ILLEGAL_ADDRESS
        if code is not None:
            name = MODBUS_EXCEPTION_NAMES.get(int(code), "unknown")
            raise MeterReadError(MeterFaultKind.EXCEPTION_REPLY,
                                 f"exception {int(code)} ({name}) to {where}")
        words = sim.register_words()
        sim.counters.replies += 1
        return [words.get((block.function_code, a), 0) for a in range(block.address,
                                                                       block.end + 1)]


def _read_registers(path: Path) -> tuple[float, float] | None:
    """The registers a simulated meter kept, or None (none kept, or unreadable: then it
    starts where the station's store last saw it)."""
    try:
        data = json.loads(path.read_text())
        values = (float(data["energy_import_wh"]), float(data["energy_export_wh"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return values if all(math.isfinite(v) and v >= 0 for v in values) else None
