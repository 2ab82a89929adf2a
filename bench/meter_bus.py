"""Bus cost of one full meter sample, per model: transactions, bytes on the wire, and the
sample time those bytes imply at 9600 baud.

Columns
  planned     the driver's plan (block reads merged per the map's max_read_gap)
  floor       the minimum the map allows: reads may span any hole, only the 125-register
              limit and the function codes split them (one read per function code if it fits)
  naive       one read per quantity, as a hand-written driver does
  bytes       RTU bytes per sample, requests (8 each) + replies (5 + 2n each)
  ms@9600     bytes x bits per character / 9600, + 3.5 character times of silence before each
              frame, + the model's inter-query wait before each transaction (steady polling);
              a character is start + 8 data + parity bit (if any) + stop bits: 10 for 8N1,
              11 for 8E1
  measured    frames and RTU-equivalent bytes counted against the simulator over Modbus TCP on
              loopback (a TCP frame carries 4 bytes more than its RTU twin: the 7-byte MBAP
              header instead of unit id + CRC)
"""

from __future__ import annotations

import asyncio
import sys

from chargerfw.config import MeterSection
from chargerfw.drivers.meter import EnergyMeter, MeterMap, all_meter_maps
from chargerfw.drivers.meter.planner import ReadBlock, naive_plan, plan_sample
from chargerfw.sim.meter import SimulatedMeter, serve_tcp

BAUD = 9600
MBAP_EXTRA = 4


def char_bits(meter_map: MeterMap) -> int:
    serial = meter_map.serial
    return 1 + 8 + (0 if serial.parity == "N" else 1) + serial.stopbits


def rtu_bytes(blocks: list[ReadBlock]) -> int:
    return sum(sum(block.rtu_bytes()) for block in blocks)


def sample_ms(meter_map: MeterMap, blocks: list[ReadBlock], baud: int = BAUD) -> float:
    bits = char_bits(meter_map)
    wire_s = rtu_bytes(blocks) * bits / baud
    silence_s = 2 * len(blocks) * 3.5 * bits / baud  # before the request and before the reply
    wait_s = len(blocks) * meter_map.min_query_gap_ms / 1000
    return 1000 * (wire_s + silence_s + wait_s)


async def measure(meter_map: MeterMap) -> tuple[int, int]:
    """(frames, RTU-equivalent bytes) for one sample against the simulator over TCP."""
    sim = SimulatedMeter(meter_map)
    sim.set_load(power_w=7000.0 if meter_map.phases == 3 else 3000.0)
    async with serve_tcp(sim) as (host, port):
        section = MeterSection(model=meter_map.name, transport="tcp", host=host, tcp_port=port)
        async with EnergyMeter(section, meter_map=meter_map) as meter:
            await meter.read_sample()
    frames = sim.counters.requests + sim.counters.replies
    tcp_bytes = meter.counters.request_bytes + sim.counters.reply_bytes
    return frames, tcp_bytes - MBAP_EXTRA * frames


async def main() -> int:
    header = (f"{'model':<20} {'planned':>7} {'bytes':>6} {'ms@9600':>8} | {'floor':>5} "
              f"{'bytes':>6} {'ms@9600':>8} | {'naive':>5} {'bytes':>6} {'ms@9600':>8} | "
              f"{'char':>4} {'own baud':>8} {'ms@own':>7} | {'measured':>14}")
    print(header)
    print("-" * len(header))
    mismatches = 0
    for meter_map in all_meter_maps():
        planned = plan_sample(meter_map)
        floor = plan_sample(meter_map, max_gap=125)
        naive = naive_plan(meter_map)
        frames, measured_bytes = await measure(meter_map)
        if frames != 2 * len(planned) or measured_bytes != rtu_bytes(planned):
            mismatches += 1
        own_baud = meter_map.serial.baudrate
        print(f"{meter_map.name:<20} {len(planned):>7} {rtu_bytes(planned):>6} "
              f"{sample_ms(meter_map, planned):>8.1f} | {len(floor):>5} {rtu_bytes(floor):>6} "
              f"{sample_ms(meter_map, floor):>8.1f} | {len(naive):>5} {rtu_bytes(naive):>6} "
              f"{sample_ms(meter_map, naive):>8.1f} | {char_bits(meter_map):>4} {own_baud:>8} "
              f"{sample_ms(meter_map, planned, own_baud):>7.1f} | "
              f"{frames:>3} fr {measured_bytes:>5} B")
    print()
    print("planned: the driver's reads; floor: fewest reads the map allows; naive: one read per "
          "quantity.")
    print("ms: wire time + 3.5-char silences + the model's inter-query wait per transaction.")
    if mismatches:
        print(f"MISMATCH: {mismatches} model(s) put other frames on the wire than planned")
        return 1
    print("measured frames and bytes match the plan for every model.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
