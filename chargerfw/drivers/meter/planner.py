"""Plan the bus reads for one full sample: the fewest transactions, then the fewest registers.

Neighbouring registers with the same function code are merged into one block read. A block may
read across up to ``max_gap`` unused registers (one transaction usually costs more than a few
extra words on the wire) and never asks for more than 125 registers (the Modbus limit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from chargerfw.drivers.meter.regmap import MAX_REGISTERS_PER_READ, MeterMap, Quantity

RTU_REQUEST_BYTES = 8  # id, fc, address(2), count(2), crc(2)
RTU_REPLY_OVERHEAD = 5  # id, fc, byte count, crc(2)
TCP_REQUEST_BYTES = 12  # MBAP header (7) + fc, address(2), count(2)
TCP_REPLY_OVERHEAD = 9  # MBAP header (7) + fc, byte count


@dataclass(frozen=True, order=True, slots=True)
class ReadBlock:
    """One read transaction: ``count`` registers from ``address`` with ``function_code``."""

    function_code: int
    address: int
    count: int

    @property
    def end(self) -> int:
        """Last register address in the block (inclusive)."""
        return self.address + self.count - 1

    def rtu_bytes(self) -> tuple[int, int]:
        """(request, reply) bytes of this read as an RTU frame."""
        return RTU_REQUEST_BYTES, RTU_REPLY_OVERHEAD + 2 * self.count

    def tcp_bytes(self) -> tuple[int, int]:
        return TCP_REQUEST_BYTES, TCP_REPLY_OVERHEAD + 2 * self.count


def _atoms(items: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted (first, last) register spans that must each be read whole. Spans that overlap
    (a shared exponent register, say) merge; spans that merely touch stay apart, so a long
    row of values can still be cut between two of them."""
    atoms: list[tuple[int, int]] = []
    for first, last in sorted(items):
        if atoms and first <= atoms[-1][1]:
            atoms[-1] = (atoms[-1][0], max(atoms[-1][1], last))
        else:
            atoms.append((first, last))
    return atoms


def plan_blocks(values: Iterable[tuple[int, int, int]], max_gap: int = 0,
                max_count: int = MAX_REGISTERS_PER_READ) -> list[ReadBlock]:
    """Cover every value ``(function code, address, register count)`` with the fewest block
    reads, then the fewest registers; a value is never split across two reads.

    Per function code, a dynamic programme over the sorted values picks where blocks end:
    ``cost[i]`` is the best (transactions, registers) that covers values ``0..i-1``.
    """
    if max_gap < 0:
        raise ValueError("max_gap must be >= 0")
    if not 1 <= max_count <= MAX_REGISTERS_PER_READ:
        raise ValueError(f"max_count must be 1..{MAX_REGISTERS_PER_READ}")
    by_code: dict[int, list[tuple[int, int]]] = {}
    for function_code, address, count in values:
        if count < 1:
            raise ValueError(f"register count must be >= 1, got {count}")
        by_code.setdefault(function_code, []).append((address, address + count - 1))
    blocks: list[ReadBlock] = []
    for function_code in sorted(by_code):
        atoms = _atoms(by_code[function_code])
        for first, last in atoms:
            if last - first + 1 > max_count:
                raise ValueError(f"registers {first}..{last} exceed one read of {max_count}")
        n = len(atoms)
        cost: list[tuple[int, int]] = [(0, 0)] + [(n + 1, 0)] * n
        cut: list[int] = [0] * (n + 1)
        for i in range(1, n + 1):
            # Try a block made of values j..i-1, growing it leftwards while it stays legal.
            for j in range(i - 1, -1, -1):
                if j < i - 1 and atoms[j + 1][0] - atoms[j][1] - 1 > max_gap:
                    break
                span = atoms[i - 1][1] - atoms[j][0] + 1
                if span > max_count:
                    break
                candidate = (cost[j][0] + 1, cost[j][1] + span)
                if candidate < cost[i]:
                    cost[i], cut[i] = candidate, j
        chosen: list[ReadBlock] = []
        i = n
        while i > 0:
            j = cut[i]
            chosen.append(ReadBlock(function_code, atoms[j][0], atoms[i - 1][1] - atoms[j][0] + 1))
            i = j
        blocks.extend(reversed(chosen))
    return blocks


def _values(meter_map: MeterMap) -> list[tuple[int, int, int]]:
    values: list[tuple[int, int, int]] = []
    for spec in meter_map.quantities.values():
        values.append((spec.function_code, spec.address, spec.width))
        if spec.exponent_address is not None:
            values.append((spec.function_code, spec.exponent_address, 1))
    return values


def plan_sample(meter_map: MeterMap, max_gap: int | None = None,
                max_count: int = MAX_REGISTERS_PER_READ) -> list[ReadBlock]:
    """The reads for one full sample of ``meter_map`` (``max_gap`` defaults to the map's)."""
    gap = meter_map.max_read_gap if max_gap is None else max_gap
    return plan_blocks(_values(meter_map), gap, max_count)


def naive_plan(meter_map: MeterMap) -> list[ReadBlock]:
    """One read per quantity (and per exponent register): what a hand-written driver does."""
    return sorted(ReadBlock(*value) for value in _values(meter_map))


def registers_of(results: Mapping[ReadBlock, Sequence[int]], function_code: int,
                 address: int, count: int) -> list[int]:
    """Cut ``count`` registers at ``address`` out of the block replies that hold them."""
    for block, words in results.items():
        if block.function_code == function_code and block.address <= address \
                and address + count - 1 <= block.end:
            offset = address - block.address
            return list(words[offset:offset + count])
    raise KeyError(f"fc {function_code} registers {address}..{address + count - 1} not read")


def quantity_words(meter_map: MeterMap, quantity: Quantity,
                   results: Mapping[ReadBlock, Sequence[int]]) -> tuple[list[int], int | None]:
    """(value words, exponent word or None) of ``quantity`` from the block replies."""
    spec = meter_map.quantities[quantity]
    words = registers_of(results, spec.function_code, spec.address, spec.width)
    exponent = None
    if spec.exponent_address is not None:
        exponent = registers_of(results, spec.function_code, spec.exponent_address, 1)[0]
    return words, exponent
