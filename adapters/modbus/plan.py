"""Which read requests poll a device's map: adjacent values combined into one request.

Theory of operation
-------------------
Every request to a Modbus device costs a round trip (and on a serial line
the bus's whole attention), so values of one function (holding registers,
input registers, coils, discrete inputs) that lie close together are read
with one request.  `plan_reads` sorts a poll group's values by address and
grows a request while the next value starts at most *max_gap* registers
(or bits) after the end of the request so far and the request stays within
the size limit: 125 registers or 2000 bits per read (Modbus Application
Protocol 1.1b3, 6.1-6.4), or less where a device cannot take that many.
The gap is read through and ignored.  Values may overlap (two views of one
register): they share the request.

A device that does not serve a register in a gap answers the combined
request with an exception (illegal data address) although every value of
it is fine; `split` turns such a request into one request per value, so
that only the value that is really missing is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "BIT_FUNCTIONS",
    "FUNCTIONS",
    "MAX_BITS",
    "MAX_REGISTERS",
    "Function",
    "Read",
    "Span",
    "plan_reads",
    "split",
]

Function = Literal["coil", "discrete_input", "holding", "input"]

#: The functions of the config, by their Modbus names.
FUNCTIONS: Final[tuple[Function, ...]] = ("coil", "discrete_input", "holding", "input")
#: The functions that address single bits.
BIT_FUNCTIONS: Final = frozenset({"coil", "discrete_input"})
#: The most registers one read may ask for (function codes 3 and 4).
MAX_REGISTERS: Final = 125
#: The most bits one read may ask for (function codes 1 and 2).
MAX_BITS: Final = 2000


@dataclass(frozen=True, slots=True)
class Span:
    """Where one value lies: *width* registers (or bits) of *function* from *address*."""

    function: Function
    address: int
    width: int

    @property
    def end(self) -> int:
        """The address after the value's last register."""
        return self.address + self.width


@dataclass(frozen=True, slots=True)
class Read:
    """One read request, and which values (indices into the planned spans) it carries."""

    function: Function
    address: int
    count: int
    members: tuple[int, ...]

    def offset(self, span: Span) -> int:
        """Where *span*'s first register is in this read's answer."""
        return span.address - self.address


def plan_reads(
    spans: Sequence[Span],
    *,
    max_gap: int = 0,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
) -> tuple[Read, ...]:
    """The fewest reads (greedy by address) that cover *spans*, per function.

    Reads are ordered by function (as in `FUNCTIONS`) and address; each
    read's members are in address order.  Raises `ValueError` for a span
    wider than the limit of its function.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, not {max_gap}")
    reads: list[Read] = []
    for function in FUNCTIONS:
        limit = max_bits if function in BIT_FUNCTIONS else max_registers
        order = sorted(
            (i for i, span in enumerate(spans) if span.function == function),
            key=lambda i: (spans[i].address, spans[i].width),
        )
        start = end = 0
        members: list[int] = []
        for index in order:
            span = spans[index]
            if span.width > limit:
                raise ValueError(f"a value of {span.width} exceeds the read limit {limit}")
            if members and span.address - end <= max_gap and max(end, span.end) - start <= limit:
                members.append(index)
                end = max(end, span.end)
                continue
            if members:
                reads.append(Read(function, start, end - start, tuple(members)))
            start, end, members = span.address, span.end, [index]
        if members:
            reads.append(Read(function, start, end - start, tuple(members)))
    return tuple(reads)


def split(read: Read, spans: Sequence[Span]) -> tuple[Read, ...]:
    """*read* as one read per value (after the device refused the combined one)."""
    return tuple(Read(read.function, spans[i].address, spans[i].width, (i,)) for i in read.members)
