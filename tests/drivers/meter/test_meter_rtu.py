"""Modbus RTU between the driver and the simulator over a real socat pty pair, and mbpoll
(an independent client) reading the simulator over RTU and TCP."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest
from realstack import socat_pty_pair

from chargerfw.config import MeterSection
from chargerfw.drivers.meter import EnergyMeter, MeterReadError
from chargerfw.drivers.types import MeterFaultKind
from chargerfw.sim.meter import SimFault, SimulatedMeter, serve_rtu, serve_tcp

pytestmark = pytest.mark.timeout(30)
MBPOLL = shutil.which("mbpoll") or "mbpoll"


@pytest.fixture
def pty():
    with socat_pty_pair() as pair:
        yield pair


def rtu_section(model: str, port: str, **kw) -> MeterSection:
    return MeterSection(model=model, transport="rtu", port=port,
                        timeout_s=kw.pop("timeout_s", 0.3), **kw)


@pytest.mark.parametrize("model", ["carlo-gavazzi-em340", "iskra-wm3m4", "eastron-sdm630-v2"])
async def test_driver_reads_simulator_over_rtu_pty(pty, model):
    sim = SimulatedMeter(model, energy_import_wh=42_000.0)
    sim.set_load(power_w=11_000.0, voltage_v=232.0)
    async with serve_rtu(sim, pty.a), EnergyMeter(rtu_section(model, pty.b)) as meter:
        assert meter.bus.baudrate == sim.map.serial.baudrate  # the map's default, not 19200
        sample = await meter.read_sample()
    assert sample.energy_import_wh == pytest.approx(42_000.0, abs=10.0)
    assert sample.power_w == pytest.approx(11_000.0)
    assert sample.voltage_l3_v == pytest.approx(232.0)
    assert sample.current_l1_a == pytest.approx(11_000.0 / 3 / 232.0, abs=0.01)


async def test_even_parity_meter_over_pty_with_parity_overridden(pty):
    # Linux ptys cannot carry a parity bit (tcsetattr refuses PARENB), so the ABB's 8E1 is
    # overridden to 8N1 on both ends here; on a real RS-485 line the map's 8E1 applies.
    sim = SimulatedMeter("abb-b23", energy_import_wh=42_000.0)
    sim.set_load(power_w=-2000.0)
    async with serve_rtu(sim, pty.a, parity="N"), \
            EnergyMeter(rtu_section("abb-b23", pty.b, parity="N")) as meter:
        sample = await meter.read_sample()
    assert sample.energy_import_wh == pytest.approx(42_000.0)
    assert sample.power_w == pytest.approx(-2000.0)
    assert sample.energy_export_wh == pytest.approx(0.0, abs=10.0)


async def test_port_that_refuses_the_settings_is_a_typed_error(pty):
    # The map's even parity on a pty: the port cannot be configured, and the caller gets a
    # typed error naming the port, not a termios exception.
    async with EnergyMeter(rtu_section("abb-b23", pty.b)) as meter:
        assert meter.bus.parity == "E"
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
    assert info.value.kind is MeterFaultKind.TIMEOUT
    assert "cannot open rtu" in info.value.detail and "8E1" in info.value.detail


async def test_rtu_faults_are_typed(pty):
    sim = SimulatedMeter("eastron-sdm630-v2")
    sim.set_load(power_w=4000.0)
    async with serve_rtu(sim, pty.a), \
            EnergyMeter(rtu_section("eastron-sdm630-v2", pty.b, timeout_s=0.2)) as meter:
        await meter.read_sample()
        sim.inject(SimFault.CORRUPT)  # bad CRC on the reply
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
        assert info.value.kind is MeterFaultKind.CRC_ERROR
        sim.clear()
        sim.inject(SimFault.NO_REPLY)
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
        assert info.value.kind is MeterFaultKind.TIMEOUT
        sim.clear()
        sim.inject(SimFault.EXCEPTION, 2)
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
        assert info.value.kind is MeterFaultKind.EXCEPTION_REPLY
        assert "illegal data address" in info.value.detail
        sim.clear()
        assert (await meter.read_sample()).power_w == pytest.approx(4000.0)
    assert sim.counters.corrupted == 1


async def test_inter_query_gap_is_respected(pty):
    # The SDM120 map needs two reads and asks for 100 ms between queries.
    sim = SimulatedMeter("eastron-sdm120")
    async with serve_rtu(sim, pty.a), EnergyMeter(rtu_section("eastron-sdm120", pty.b)) as meter:
        await meter.read_sample()
    first, second = sim.counters.request_times
    assert second - first >= 0.1


async def test_missing_serial_port_is_a_typed_error(tmp_path):
    section = rtu_section("eastron-sdm630-v2", str(tmp_path / "ttyNOPE"))
    async with EnergyMeter(section) as meter:
        with pytest.raises(MeterReadError) as info:
            await meter.read_sample()
    assert info.value.kind is MeterFaultKind.TIMEOUT
    assert "cannot open rtu" in info.value.detail and "ttyNOPE" in info.value.detail


async def mbpoll(*args: str) -> str:
    # A 5 s answer timeout: at 9600 baud through a pty pair on a busy machine one second was
    # sometimes not enough (mbpoll's default is 1 s).
    proc = await asyncio.create_subprocess_exec(
        MBPOLL, "-1", "-0", "-o", "5", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def mbpoll_values(output: str) -> dict[int, float]:
    return {int(ref): float(val) for ref, val in re.findall(r"^\[(\d+)\]:\s+(-?[\d.]+)",
                                                             output, re.MULTILINE)}


async def test_mbpoll_reads_simulator_over_tcp():
    sdm = SimulatedMeter("eastron-sdm630-v2")
    sdm.set_load(power_l1_w=1000.0, power_l2_w=2000.0, power_l3_w=3000.0, voltage_v=231.5)
    async with serve_tcp(sdm) as (host, port):
        out = await mbpoll("-m", "tcp", "-p", str(port), "-a", "1", "-t", "3:float", "-B",
                           "-r", "0", "-c", "9", host)
    values = mbpoll_values(out)
    assert values[0] == pytest.approx(231.5) and values[4] == pytest.approx(231.5)
    assert values[6] == pytest.approx(1000.0 / 231.5, abs=1e-3)
    assert (values[12], values[14], values[16]) == (1000.0, 2000.0, 3000.0)

    abb = SimulatedMeter("abb-b23")
    abb.set_load(power_w=-4500.0)  # exporting: a signed register
    async with serve_tcp(abb) as (host, port):
        out = await mbpoll("-m", "tcp", "-p", str(port), "-a", "1", "-t", "4:int", "-B",
                           "-r", str(0x5B14), "-c", "2", host)
    assert mbpoll_values(out)[0x5B14] == -450000  # 0.01 W units


async def test_mbpoll_reads_simulator_over_rtu(pty):
    sim = SimulatedMeter("carlo-gavazzi-em340", energy_import_wh=123_400.0)
    sim.set_load(power_w=3000.0, voltage_v=229.9)
    async with serve_rtu(sim, pty.a):
        # mbpoll's default 32-bit word order is low word first, like the EM340.
        out = await mbpoll("-m", "rtu", "-b", "9600", "-P", "none", "-a", "1", "-t", "3:int",
                           "-r", "0", "-c", "1", pty.b)
        volts = mbpoll_values(out)[0]
        out = await mbpoll("-m", "rtu", "-b", "9600", "-P", "none", "-a", "1", "-t", "3:int",
                           "-r", str(0x34), "-c", "1", pty.b)
        energy = mbpoll_values(out)[0x34]
    assert volts == 2299  # 229.9 V in 0.1 V
    assert energy == 1234  # 123.4 kWh in 0.1 kWh
