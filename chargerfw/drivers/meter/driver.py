"""The energy meter driver: Modbus RTU (RS-485) or Modbus TCP through pymodbus.

``read_sample()`` returns a :class:`MeterSample` or raises :class:`MeterReadError` (typed by a
:class:`MeterFaultKind`); nothing else escapes. ``events()`` polls and yields samples and
fault transitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chargerfw.drivers.meter.codec import DecodeError, decode
from chargerfw.drivers.meter.planner import ReadBlock, plan_sample, quantity_words
from chargerfw.drivers.meter.plausibility import PlausibilityLimits, SampleMonitor, sample_problem
from chargerfw.drivers.meter.regmap import MeterMap, MeterMapError, load_meter_map
from chargerfw.drivers.types import MeterFault, MeterFaultKind, MeterSample
from chargerfw.logs import get_logger

# pymodbus is loaded when a meter is first polled: the maps, the codec and the CLI's listing
# need none of it.
if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

    from chargerfw.config import MeterSection

log = get_logger(__name__)

MODBUS_EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "server device failure", 5: "acknowledge", 6: "server device busy",
    10: "gateway path unavailable", 11: "gateway target failed to respond",
}


def quiet_pymodbus() -> None:
    """Silence pymodbus' own log lines (it logs every timeout as an ERROR, each poll); the
    driver reports each fault once, typed. Left alone when DEBUG logging is on."""
    pymodbus_log = logging.getLogger("pymodbus")
    if not pymodbus_log.isEnabledFor(logging.DEBUG):
        pymodbus_log.setLevel(logging.CRITICAL)


def describe_block(block: ReadBlock) -> str:
    return f"fc {block.function_code} at {block.address} x{block.count}"


class MeterError(Exception):
    """Base of the meter driver's errors."""


class MeterReadError(MeterError):
    """A sample could not be read; ``kind`` says why in the station's terms."""

    def __init__(self, kind: MeterFaultKind, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


@dataclass(frozen=True, slots=True)
class BusSettings:
    """Where and how to reach the meter, with the map's defaults filled in."""

    transport: str
    unit_id: int
    timeout_s: float
    port: str | None = None
    baudrate: int | None = None
    parity: str | None = None
    stopbits: int | None = None
    host: str | None = None
    tcp_port: int | None = None

    @classmethod
    def from_section(cls, section: MeterSection, meter_map: MeterMap) -> BusSettings:
        serial = meter_map.serial
        unit_id = section.unit_id if section.unit_id is not None else serial.unit_id
        if section.transport == "tcp":
            return cls("tcp", unit_id, section.timeout_s, host=section.host,
                       tcp_port=section.tcp_port)
        return cls(
            "rtu", unit_id, section.timeout_s, port=section.port,
            baudrate=section.baudrate or serial.baudrate,
            parity=section.parity or serial.parity,
            stopbits=section.stopbits or serial.stopbits,
        )

    def describe(self) -> str:
        if self.transport == "tcp":
            return f"tcp {self.host}:{self.tcp_port} unit {self.unit_id}"
        return (f"rtu {self.port} {self.baudrate} 8{self.parity}{self.stopbits} "
                f"unit {self.unit_id}")


@dataclass
class BusCounters:
    """What went over the bus; requests are counted as sent, replies as complete frames."""

    transactions: int = 0
    request_bytes: int = 0
    failures: dict[str, int] = field(default_factory=dict)


class EnergyMeter:
    """One energy meter on RS-485 (RTU) or Ethernet (TCP), described by a ``hw/meters`` map."""

    def __init__(
        self,
        section: MeterSection,
        *,
        meter_map: MeterMap | None = None,
        max_gap: int | None = None,
        limits: PlausibilityLimits | None = None,
        stale_after_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.section = section
        self.map = meter_map or load_meter_map(section.model)
        self.bus = BusSettings.from_section(section, self.map)
        self.plan: list[ReadBlock] = plan_sample(self.map, max_gap)
        self.limits = limits or PlausibilityLimits()
        self.poll_interval_s = section.poll_interval_s
        self.stale_after_s = (stale_after_s if stale_after_s is not None
                              else 3 * section.poll_interval_s + section.timeout_s)
        self.counters = BusCounters()
        self._clock = clock
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient | None = None
        self._rx_during_request = False
        self._last_query_end = 0.0
        self._monitor: SampleMonitor | None = None

    @classmethod
    def from_config(cls, section: MeterSection, **kwargs: Any) -> EnergyMeter:
        try:
            meter_map = load_meter_map(section.model)
        except MeterMapError as exc:
            raise MeterError(str(exc)) from None
        return cls(section, meter_map=meter_map, **kwargs)

    # -- connection ------------------------------------------------------------------------

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # Called by pymodbus with every frame sent and every receive buffer; lets us tell a
        # garbled reply (bytes arrived, no valid frame) from silence.
        if sending:
            self.counters.request_bytes += len(data)
            self._rx_during_request = False
        elif data:
            self._rx_during_request = True
        return data

    def _make_client(self) -> AsyncModbusSerialClient | AsyncModbusTcpClient:
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

        bus = self.bus
        if bus.transport == "tcp":
            assert bus.host is not None and bus.tcp_port is not None
            return AsyncModbusTcpClient(
                bus.host, port=bus.tcp_port, timeout=bus.timeout_s, retries=0,
                reconnect_delay=0.1, reconnect_delay_max=2.0, trace_packet=self._trace_packet,
            )
        # from_section fills every serial setting for RTU (the map's defaults where unset).
        assert bus.port is not None and bus.baudrate is not None
        assert bus.parity is not None and bus.stopbits is not None
        # Always pass the serial settings: pymodbus defaults to 19200 baud, no meter does.
        return AsyncModbusSerialClient(
            bus.port, framer=FramerType.RTU, baudrate=bus.baudrate, bytesize=8,
            parity=bus.parity, stopbits=bus.stopbits, timeout=bus.timeout_s, retries=0,
            reconnect_delay=0.1, reconnect_delay_max=2.0, trace_packet=self._trace_packet,
        )

    async def connect(self) -> None:
        """Open the serial port or TCP connection; :class:`MeterReadError` if it cannot."""
        if self._client is None:
            self._client = self._make_client()
        if self._client.connected:
            return
        try:
            ok = await self._client.connect()
        except Exception as exc:  # pyserial/termios errors are not all OSErrors
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            reason = "connection refused or port missing"
        if not ok:
            raise MeterReadError(MeterFaultKind.TIMEOUT,
                                 f"cannot open {self.bus.describe()}: {reason}")

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def __aenter__(self) -> EnergyMeter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- one sample ------------------------------------------------------------------------

    async def _respect_query_gap(self) -> None:
        gap = self.map.min_query_gap_ms / 1000
        if gap <= 0:
            return
        wait = self._last_query_end + gap - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _read_block(self, block: ReadBlock) -> list[int]:
        """One block read over the bus; :class:`MeterReadError` for anything but a good reply."""
        from pymodbus.exceptions import ModbusException

        assert self._client is not None
        await self._respect_query_gap()
        self.counters.transactions += 1
        self._rx_during_request = False
        read = (self._client.read_holding_registers if block.function_code == 3
                else self._client.read_input_registers)
        where = describe_block(block)
        try:
            reply = await read(block.address, count=block.count, device_id=self.bus.unit_id)
        except (TimeoutError, ModbusException, OSError) as exc:
            if self._rx_during_request:
                raise MeterReadError(MeterFaultKind.CRC_ERROR,
                                     f"corrupted reply to {where}") from exc
            raise MeterReadError(MeterFaultKind.TIMEOUT,
                                 f"no reply to {where} within {self.bus.timeout_s:g} s") from exc
        finally:
            self._last_query_end = time.monotonic()
        if reply.isError():
            code = getattr(reply, "exception_code", 0)
            name = MODBUS_EXCEPTION_NAMES.get(code, "unknown")
            raise MeterReadError(MeterFaultKind.EXCEPTION_REPLY,
                                 f"exception {code} ({name}) to {where}")
        registers = list(getattr(reply, "registers", []) or [])
        if len(registers) != block.count:
            raise MeterReadError(MeterFaultKind.BAD_VALUE,
                                 f"{len(registers)} registers in reply to {where}")
        return registers

    def decode_sample(self, results: dict[ReadBlock, list[int]], timestamp: float) -> MeterSample:
        """Turn block replies into a sample; :class:`MeterReadError` (bad_value) if any
        quantity is not available or not a number."""
        values: dict[str, float] = {}
        for quantity, spec in self.map.quantities.items():
            words, exponent = quantity_words(self.map, quantity, results)
            try:
                values[quantity.sample_field] = decode(
                    spec, words, exponent, self.map.unit_factor(quantity))
            except DecodeError as exc:
                raise MeterReadError(MeterFaultKind.BAD_VALUE, f"{quantity}: {exc}") from None
        sample = MeterSample(timestamp=timestamp, **values)
        problem = sample_problem(sample)
        if problem:
            raise MeterReadError(MeterFaultKind.BAD_VALUE, problem)
        return sample

    async def read_sample(self) -> MeterSample:
        """Read every quantity of the map in the planned block reads."""
        try:
            await self.connect()
            results: dict[ReadBlock, list[int]] = {}
            for block in self.plan:
                results[block] = await self._read_block(block)
            return self.decode_sample(results, self._clock())
        except MeterReadError as exc:
            self.counters.failures[exc.kind] = self.counters.failures.get(exc.kind, 0) + 1
            log.debug("meter.read_failed", model=self.map.name, kind=str(exc.kind),
                      detail=exc.detail)
            raise
        except Exception as exc:  # never let an untyped error reach the station
            log.exception("meter.unexpected_error", model=self.map.name)
            raise MeterReadError(MeterFaultKind.BAD_VALUE,
                                 f"unexpected {type(exc).__name__}: {exc}") from exc

    # -- polling ---------------------------------------------------------------------------

    @property
    def active_faults(self) -> dict[MeterFaultKind, str]:
        return self._monitor.active_faults if self._monitor else {}

    async def events(self) -> AsyncIterator[MeterSample | MeterFault]:
        """Poll every ``poll_interval_s``; yield accepted samples and fault transitions."""
        monitor = self._monitor = SampleMonitor(self.limits, self.stale_after_s, self._clock())
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                sample = await self.read_sample()
            except MeterReadError as exc:
                items: list[MeterSample | MeterFault] = list(
                    monitor.on_failure(exc.kind, exc.detail, self._clock()))
            else:
                items = monitor.on_sample(sample, self._clock())
            items.extend(monitor.check_stale(self._clock()))
            for item in items:
                if isinstance(item, MeterFault):
                    log.info("meter.fault", model=self.map.name, kind=str(item.kind),
                             active=item.active, detail=item.detail)
                yield item
            await asyncio.sleep(max(0.0, self.poll_interval_s - (loop.time() - started)))
