"""Driver against the simulator over real Modbus TCP on loopback: every map round-trips with
its vendor encoding, the planner's transactions are what goes on the wire, and injected faults
come back as the right typed fault, once, with their recovery."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from fakes import FakeClock
from pymodbus.client import AsyncModbusTcpClient

from chargerfw.config import MeterSection, known_meter_models
from chargerfw.drivers.meter import EnergyMeter, MeterReadError, PlausibilityLimits, Quantity
from chargerfw.drivers.meter.planner import plan_sample
from chargerfw.drivers.types import MeterFault, MeterFaultKind, MeterSample
from chargerfw.sim.meter import SimFault, SimulatedMeter, serve_tcp

pytestmark = pytest.mark.timeout(30)
K = MeterFaultKind


def tcp_section(model: str, port: int, **kw) -> MeterSection:
    return MeterSection(model=model, transport="tcp", host="127.0.0.1", tcp_port=port,
                        timeout_s=kw.pop("timeout_s", 0.3), **kw)


def tolerance(meter_map, quantity: Quantity) -> float:
    """Half a step of the register's resolution in sample units (float32: relative)."""
    spec = meter_map.quantities[quantity]
    if spec.data_type.value == "float32":
        return 0.0
    return abs(spec.scale) * meter_map.unit_factor(quantity) / 2 + 1e-9


def load_for(sim: SimulatedMeter) -> None:
    if sim.map.phases == 3:
        sim.set_load(power_l1_w=2300.0, power_l2_w=1150.0, power_l3_w=-460.0,
                     voltage_l1_v=231.0, voltage_l2_v=229.5, voltage_l3_v=230.0,
                     frequency_hz=49.97)
    else:
        sim.set_load(power_w=2300.0, voltage_v=231.0, frequency_hz=49.97)


@pytest.mark.parametrize("model", known_meter_models())
async def test_every_map_round_trips_through_its_simulator(model):
    clock = FakeClock()
    sim = SimulatedMeter(model, energy_import_wh=1_234_567.0, energy_export_wh=4321.0,
                         clock=clock)
    load_for(sim)
    expected = sim.values()
    async with serve_tcp(sim) as (_, port), EnergyMeter(tcp_section(model, port)) as meter:
        sample = await meter.read_sample()
    assert isinstance(sample, MeterSample)
    for quantity in sim.map.quantities:
        got = getattr(sample, quantity.sample_field)
        want = expected[quantity]
        tol = tolerance(sim.map, quantity)
        assert got == pytest.approx(want, rel=1e-6, abs=tol), quantity
    # Fields the model does not measure stay None rather than a made-up zero.
    for field in ("voltage_l2_v", "current_l3_a", "power_l2_w"):
        if Quantity(field.rsplit("_", 1)[0]) not in sim.map.quantities:
            assert getattr(sample, field) is None
    # Transactions on the wire are exactly the planned block reads.
    plan = plan_sample(sim.map)
    assert list(sim.counters.request_log) == [(b.function_code, b.address, b.count) for b in plan]
    assert meter.counters.transactions == len(plan)


# One known value per encoding, checked as raw words read by a plain pymodbus client.
RAW_VOLTAGE_230 = {
    "eastron-sdm630-v2": [0x4366, 0x0000],  # float32, high word first
    "eastron-sdm72d-m-v2": [0x4366, 0x0000],
    "eastron-sdm120": [0x4366, 0x0000],
    "abb-b23": [0x0000, 0x08FC],  # uint32 x0.1 V, high word first, holding register
    "carlo-gavazzi-em340": [0x08FC, 0x0000],  # int32 x0.1 V, LOW word first
    "iskra-wm3m4": [0xFC23, 0x1860],  # T5: exponent -4, mantissa 2300000
}


@pytest.mark.parametrize("model", sorted(RAW_VOLTAGE_230))
async def test_raw_words_on_the_wire_use_the_vendor_encoding(model):
    sim = SimulatedMeter(model)
    sim.set_load(voltage_v=230.0)
    spec = sim.map.quantities[Quantity.VOLTAGE_L1]
    async with serve_tcp(sim) as (host, port):
        client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0)
        await client.connect()
        try:
            read = (client.read_holding_registers if spec.function_code == 3
                    else client.read_input_registers)
            reply = await read(spec.address, count=2, device_id=sim.unit_id)
            wrong_table = await (client.read_input_registers if spec.function_code == 3
                                 else client.read_holding_registers)(
                spec.address, count=2, device_id=sim.unit_id)
        finally:
            client.close()
    assert reply.registers == RAW_VOLTAGE_230[model]
    # Input and holding registers are separate spaces, as in the meters.
    assert wrong_table.isError() and wrong_table.exception_code == 2


async def test_energy_integrates_power_over_time():
    clock = FakeClock()
    sim = SimulatedMeter("eastron-sdm630-v2", energy_import_wh=500.0, clock=clock)
    sim.set_load(power_w=7200.0)
    clock.now += 1800  # half an hour at 7.2 kW
    sim.set_load(power_w=-1000.0)
    clock.now += 3600  # then an hour exporting 1 kW
    values = sim.values()
    assert values[Quantity.ENERGY_IMPORT] == pytest.approx(500.0 + 3600.0)
    assert values[Quantity.ENERGY_EXPORT] == pytest.approx(1000.0)
    assert values[Quantity.CURRENT_L1] == pytest.approx(1000.0 / 3 / 230.0)


def test_simulator_refuses_bad_commands():
    sim = SimulatedMeter("eastron-sdm120")
    with pytest.raises(ValueError, match="no L2"):
        sim.set_load(power_l2_w=100.0)
    with pytest.raises(ValueError, match="finite"):
        sim.set_load(power_w=float("inf"))
    with pytest.raises(ValueError, match="power_factor"):
        sim.set_load(power_factor=0)
    with pytest.raises(ValueError):
        sim.inject("melt")
    with pytest.raises(ValueError):
        sim.inject(SimFault.EXCEPTION, 99)
    with pytest.raises(ValueError, match="has no voltage_l2"):
        sim.set_raw("voltage_l2", [0, 0])
    with pytest.raises(ValueError, match="needs 2 words"):
        sim.set_raw("voltage_l1", [0])


async def test_read_failures_are_typed():
    sim = SimulatedMeter("abb-b23")
    sim.set_load(power_w=3000.0)
    async with serve_tcp(sim) as (_, port), \
            EnergyMeter(tcp_section("abb-b23", port, timeout_s=0.2)) as meter:
        assert (await meter.read_sample()).power_w == pytest.approx(3000.0)
        sim.inject(SimFault.EXCEPTION, 4)
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
        assert info.value.kind is K.EXCEPTION_REPLY and "exception 4" in info.value.detail
        sim.clear()
        sim.set_raw(Quantity.VOLTAGE_L2, [0xFFFF, 0xFFFF])  # ABB's "not available"
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
        assert info.value.kind is K.BAD_VALUE and "voltage_l2" in info.value.detail
        sim.set_raw(Quantity.VOLTAGE_L2, None)
        sim.inject(SimFault.NO_REPLY)
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
        assert info.value.kind is K.TIMEOUT
        sim.inject(SimFault.CORRUPT)
        sim.clear(SimFault.NO_REPLY)
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
        assert info.value.kind is K.CRC_ERROR
        sim.clear()
        assert (await meter.read_sample()).power_w == pytest.approx(3000.0)
        assert meter.counters.failures == {K.EXCEPTION_REPLY: 1, K.BAD_VALUE: 1, K.TIMEOUT: 1,
                                           K.CRC_ERROR: 1}


async def test_wrong_unit_id_gets_silence_not_an_answer():
    sim = SimulatedMeter("eastron-sdm630-v2")
    async with serve_tcp(sim) as (_, port), \
            EnergyMeter(tcp_section("eastron-sdm630-v2", port, unit_id=7, timeout_s=0.2)) as meter:
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
    assert info.value.kind is K.TIMEOUT
    assert sim.counters.dropped == 1


async def test_nobody_listening_is_a_typed_timeout():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with EnergyMeter(tcp_section("eastron-sdm630-v2", port, timeout_s=0.2)) as meter:
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
    assert info.value.kind is K.TIMEOUT and "cannot open" in info.value.detail


class EventReader:
    """Consume a meter's events() and wait for specific ones."""

    def __init__(self, meter: EnergyMeter) -> None:
        self.queue: asyncio.Queue[MeterSample | MeterFault] = asyncio.Queue()
        self.seen: list[MeterSample | MeterFault] = []
        self.task = asyncio.create_task(self._pump(meter))

    async def _pump(self, meter: EnergyMeter) -> None:
        async for item in meter.events():
            self.seen.append(item)
            await self.queue.put(item)

    async def until(self, predicate, timeout: float = 5.0) -> list:
        got = []
        async with asyncio.timeout(timeout):
            while True:
                item = await self.queue.get()
                got.append(item)
                if predicate(item):
                    return got

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def fault(kind, active):
    return lambda item: isinstance(item, MeterFault) and item.kind is kind and item.active is active


def is_sample(item) -> bool:
    return isinstance(item, MeterSample)


async def test_polling_reports_each_fault_and_recovery_exactly_once():
    sim = SimulatedMeter("carlo-gavazzi-em340", energy_import_wh=10_000.0,
                         voltage_jitter_v=0.5)
    sim.set_load(power_w=6900.0)
    limits = PlausibilityLimits(frozen_samples=4)
    async with serve_tcp(sim) as (_, port):
        section = tcp_section("carlo-gavazzi-em340", port, timeout_s=0.15, poll_interval_s=0.05)
        async with EnergyMeter(section, limits=limits, stale_after_s=0.6) as meter:
            reader = EventReader(meter)
            try:
                await reader.until(is_sample)

                sim.inject(SimFault.NO_REPLY)
                await reader.until(fault(K.TIMEOUT, True))
                await reader.until(fault(K.STALE, True))  # 0.6 s without a fresh sample
                sim.clear()
                recovered = await reader.until(is_sample)
                assert [(i.kind, i.active) for i in recovered if isinstance(i, MeterFault)] == [
                    (K.TIMEOUT, False), (K.STALE, False)]

                sim.inject(SimFault.EXCEPTION, 6)
                await reader.until(fault(K.EXCEPTION_REPLY, True))
                sim.clear()
                await reader.until(fault(K.EXCEPTION_REPLY, False))

                sim.inject(SimFault.CORRUPT)
                await reader.until(fault(K.CRC_ERROR, True))
                sim.clear()
                await reader.until(fault(K.CRC_ERROR, False))

                sim.inject(SimFault.FROZEN)
                await reader.until(fault(K.FROZEN, True))
                sim.clear()
                await reader.until(fault(K.FROZEN, False))

                sim.inject(SimFault.ENERGY_BACKWARDS, 500.0)
                await reader.until(fault(K.ENERGY_BACKWARDS, True))
                sim.clear()
                await reader.until(fault(K.ENERGY_BACKWARDS, False))

                sim.set_load(voltage_v=150.0, frequency_hz=56.0)
                await reader.until(fault(K.FREQUENCY_OUT_OF_RANGE, True))
                sim.set_load(voltage_v=230.0, frequency_hz=50.0)
                await reader.until(fault(K.FREQUENCY_OUT_OF_RANGE, False))
                await reader.until(is_sample)
            finally:
                await reader.stop()

    faults = [(i.kind, i.active) for i in reader.seen if isinstance(i, MeterFault)]
    for kind in (K.TIMEOUT, K.STALE, K.EXCEPTION_REPLY, K.CRC_ERROR, K.FROZEN,
                 K.ENERGY_BACKWARDS, K.VOLTAGE_OUT_OF_RANGE, K.FREQUENCY_OUT_OF_RANGE):
        assert faults.count((kind, True)) == 1, kind
        assert faults.count((kind, False)) == 1, kind
    assert meter.active_faults == {}
    samples = [i for i in reader.seen if isinstance(i, MeterSample)]
    energies = [s.energy_import_wh for s in samples]
    # Samples handed upwards never go backwards, even while the meter lied.
    assert energies == sorted(energies)
    # Out-of-range samples are still passed on (real numbers, flagged by the fault).
    assert any(s.frequency_hz == pytest.approx(56.0) for s in samples)


async def test_in_process_backend_decodes_and_types_faults_like_the_bus():
    from chargerfw.sim.meter import SimulatedMeterBackend

    section = MeterSection(model="iskra-wm3m4", transport="tcp")
    backend = SimulatedMeterBackend(section)
    backend.sim.set_load(power_w=9000.0)
    backend.sim.set_energy(import_wh=5555.0)
    sample = await backend.read_sample()
    assert sample.power_w == pytest.approx(9000.0)
    assert sample.energy_import_wh == pytest.approx(5555.0, abs=1.0)
    assert list(backend.sim.counters.request_log) == [
        (b.function_code, b.address, b.count) for b in plan_sample(backend.map)]
    for fault, kind in [(SimFault.NO_REPLY, K.TIMEOUT), (SimFault.CORRUPT, K.CRC_ERROR),
                        (SimFault.EXCEPTION, K.EXCEPTION_REPLY)]:
        backend.sim.inject(fault)
        with pytest.raises(MeterReadError) as info:
            await backend.read_sample()
        assert info.value.kind is kind
        backend.sim.clear()
    backend.sim.inject(SimFault.FROZEN)
    limits = PlausibilityLimits(frozen_samples=3)
    frozen = SimulatedMeterBackend(MeterSection(model="iskra-wm3m4", transport="tcp",
                                                poll_interval_s=0.01),
                                   sim=backend.sim, limits=limits)
    events = frozen.events()
    seen = [await anext(events) for _ in range(3)]
    await events.aclose()
    assert [type(i).__name__ for i in seen] == ["MeterSample", "MeterSample", "MeterFault"]
    assert seen[2].kind is K.FROZEN and seen[2].active
