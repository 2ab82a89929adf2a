"""The read planner: fewest transactions, then fewest registers, within Modbus limits."""

from __future__ import annotations

import itertools
import random

import pytest

from chargerfw.drivers.meter.planner import (
    ReadBlock,
    _atoms,
    naive_plan,
    plan_blocks,
    plan_sample,
    registers_of,
)
from chargerfw.drivers.meter.regmap import all_meter_maps, load_meter_map


def vals(fc, *addresses, width=1):
    """Values of ``width`` registers at each address, as the planner takes them."""
    return [(fc, a, width) for a in addresses]


def covers(blocks, values):
    """Every value lies whole inside one block."""
    return all(any(b.function_code == fc and b.address <= a and a + n - 1 <= b.end
                   for b in blocks) for fc, a, n in values)


def test_neighbours_merge_and_gaps_within_limit_are_read_across():
    registers = vals(4, 0, 2, width=2) + vals(4, 10, width=2)
    assert plan_blocks(registers, max_gap=0) == [ReadBlock(4, 0, 4), ReadBlock(4, 10, 2)]
    assert plan_blocks(registers, max_gap=5) == [ReadBlock(4, 0, 4), ReadBlock(4, 10, 2)]
    assert plan_blocks(registers, max_gap=6) == [ReadBlock(4, 0, 12)]


def test_function_codes_never_share_a_block():
    registers = vals(3, 0, width=2) + vals(4, 2, width=2)
    assert plan_blocks(registers, max_gap=100) == [ReadBlock(3, 0, 2), ReadBlock(4, 2, 2)]


def test_no_block_exceeds_125_registers():
    # 100 floats back to back: 200 registers in a row must become two reads.
    registers = vals(4, *range(0, 200, 2), width=2)
    blocks = plan_blocks(registers, max_gap=0)
    assert [b.count for b in blocks] == [124, 76]
    assert covers(blocks, registers)


def test_a_value_is_never_split_across_two_reads():
    # A 2-register value at 123/124 and another at 125/126: one block of 127 is too long,
    # so the cut must fall between the values, not inside one.
    registers = vals(4, 0, 123, 125, width=2)
    blocks = plan_blocks(registers, max_gap=130)
    # [0..124] + [125..126] would also be two reads; it picks the one with fewer registers.
    assert blocks == [ReadBlock(4, 0, 2), ReadBlock(4, 123, 4)]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="max_gap"):
        plan_blocks(vals(4, 0), max_gap=-1)
    with pytest.raises(ValueError, match="max_count"):
        plan_blocks(vals(4, 0), max_count=126)
    with pytest.raises(ValueError, match="exceed one read"):
        plan_blocks(vals(4, 0, width=4), max_count=3)
    with pytest.raises(ValueError, match="register count"):
        plan_blocks([(4, 0, 0)])


def brute_force(registers, max_gap, max_count):
    """Try every way to cut the runs into consecutive groups; best (blocks, registers)."""
    best = None
    for fc in sorted({fc for fc, _, _ in registers}):
        runs = _atoms((a, a + n - 1) for f, a, n in registers if f == fc)
        n = len(runs)
        fc_best = None
        for cuts in itertools.product([False, True], repeat=n - 1):
            groups, start = [], 0
            for i, cut in enumerate(cuts, start=1):
                if cut:
                    groups.append(runs[start:i])
                    start = i
            groups.append(runs[start:])
            ok = all(
                g[-1][1] - g[0][0] + 1 <= max_count
                and all(g[k + 1][0] - g[k][1] - 1 <= max_gap for k in range(len(g) - 1))
                for g in groups)
            if ok:
                cost = (len(groups), sum(g[-1][1] - g[0][0] + 1 for g in groups))
                fc_best = cost if fc_best is None or cost < fc_best else fc_best
        best = fc_best if best is None else (best[0] + fc_best[0], best[1] + fc_best[1])
    return best


def test_plan_is_optimal_against_brute_force():
    rng = random.Random(7)
    for _ in range(150):
        registers = []
        for fc in (3, 4):
            for _ in range(rng.randint(1, 7)):
                registers += vals(fc, rng.randint(0, 300), width=rng.choice((1, 2, 4)))
        max_gap = rng.choice((0, 3, 10, 40))
        max_count = rng.choice((20, 60, 125))
        blocks = plan_blocks(registers, max_gap, max_count)
        assert covers(blocks, registers)
        assert all(b.count <= max_count for b in blocks)
        got = (len(blocks), sum(b.count for b in blocks))
        assert got == brute_force(registers, max_gap, max_count)


@pytest.mark.parametrize(("model", "transactions"), [
    ("eastron-sdm630-v2", 1), ("eastron-sdm72d-m-v2", 1), ("eastron-sdm120", 2),
    ("abb-b23", 2), ("carlo-gavazzi-em340", 1), ("iskra-wm3m4", 2),
])
def test_shipped_maps_plan_few_transactions(model, transactions):
    meter_map = load_meter_map(model)
    blocks = plan_sample(meter_map)
    assert len(blocks) == transactions
    needed = [(spec.function_code, spec.address, spec.width)
              for spec in meter_map.quantities.values()]
    needed += [(spec.function_code, spec.exponent_address, 1)
               for spec in meter_map.quantities.values() if spec.exponent_address is not None]
    assert covers(blocks, needed)
    assert len(naive_plan(meter_map)) > len(blocks)


def test_wider_gap_merges_sdm120_into_one_read():
    sdm120 = load_meter_map("eastron-sdm120")
    assert plan_sample(sdm120, max_gap=125) == [ReadBlock(4, 0, 0x4C)]


def test_every_map_plan_respects_limits():
    for meter_map in all_meter_maps():
        for block in plan_sample(meter_map):
            assert 1 <= block.count <= 125


def test_registers_are_cut_from_the_right_block():
    results = {ReadBlock(4, 10, 4): [1, 2, 3, 4], ReadBlock(3, 10, 2): [9, 8]}
    assert registers_of(results, 4, 12, 2) == [3, 4]
    assert registers_of(results, 3, 10, 1) == [9]
    with pytest.raises(KeyError):
        registers_of(results, 4, 13, 2)


def test_wire_bytes_per_block():
    block = ReadBlock(4, 0, 76)
    assert block.rtu_bytes() == (8, 5 + 152)
    assert block.tcp_bytes() == (12, 9 + 152)
