"""Register codecs: a typed value and the 16-bit registers (or bits) a Modbus device holds.

Theory of operation
-------------------
A Modbus device holds 16-bit registers (holding, input) and single bits
(coils, discrete inputs).  A value wider than one register spans 2 or 4
consecutive registers, and devices disagree on the layout: the spec says
big-endian bytes in a register, and nothing about the order of registers.
So the codec has two independent flags (BUSES.md 3.3, the complaints about
"swapped floats"):

* *word_order* ``big``: the most significant register first (ABCD);
  ``little``: the least significant first (CDAB);
* *byte_order* ``big``: the most significant byte of each register first
  (the spec); ``little``: swapped in each register (BADC, or DCBA with a
  little word order).

``21.5`` as float32 is ``0x41AC0000``: ABCD ``[0x41AC, 0x0000]``, CDAB
``[0x0000, 0x41AC]``, BADC ``[0xAC41, 0x0000]``, DCBA ``[0x0000, 0xAC41]``.

The stored value is ``raw * scale + offset``, in decimal arithmetic (``215``
with ``scale = 0.1`` stores ``21.5``, not ``21.500000000000004``).  It is an
int when the data type is an integer type and *scale* and *offset* are
ints; otherwise a float.  A float32 is stored as the shortest decimal that
is the same float32 (``0.1``, not ``0.10000000149011612``), so that writing
it back gives the same bits.

Encoding (a set of an owned path) inverts it: ``raw = (value - offset) /
scale``, rounded half to even to the register's resolution for integer
types.  A raw value that does not fit the type (a set of ``40000`` for an
int16) is refused with `BusDataError`, never truncated or wrapped.  NaN and
infinity are refused both ways (an event cannot usefully hold them, and a
device that sends them has no reading).

Pure functions of their arguments: no I/O, no clock.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Final, Literal

from moat_log.errors import BusDataError

__all__ = ["DATA_TYPES", "BitCodec", "DataType", "Order", "RegisterCodec"]

Order = Literal["big", "little"]


@dataclass(frozen=True, slots=True)
class DataType:
    """One register data type: its struct code, its width in registers and its range."""

    name: str
    code: str
    registers: int
    integer: bool
    minimum: int = 0
    maximum: int = 0


def _int(name: str, code: str, registers: int, *, signed: bool) -> DataType:
    bits = 16 * registers
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return DataType(name, code, registers, True, low, high)


#: The register data types by config name (``bool`` is the bits' type: `BitCodec`).
DATA_TYPES: Final[Mapping[str, DataType]] = {
    t.name: t
    for t in (
        _int("int16", "h", 1, signed=True),
        _int("uint16", "H", 1, signed=False),
        _int("int32", "i", 2, signed=True),
        _int("uint32", "I", 2, signed=False),
        _int("int64", "q", 4, signed=True),
        _int("uint64", "Q", 4, signed=False),
        DataType("float32", "f", 2, False),
        DataType("float64", "d", 4, False),
    )
}

# Enough digits that raw * scale + offset of 20-digit integers and 17-digit
# scales loses nothing before the result is rounded to a float.
_ARITHMETIC: Final = Context(prec=60, Emax=10_000, Emin=-10_000)


@dataclass(frozen=True, slots=True)
class RegisterCodec:
    """A number in 1, 2 or 4 registers: ``stored = raw * scale + offset``."""

    data_type: DataType
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: int | float = 1
    offset: int | float = 0

    def __post_init__(self) -> None:
        for label, number in (("scale", self.scale), ("offset", self.offset)):
            if not math.isfinite(number):
                raise ValueError(f"{label} must be a finite number, not {number!r}")
        if self.scale == 0:
            raise ValueError("scale must not be 0 (every raw value would store as the offset)")

    @property
    def width(self) -> int:
        """How many registers the value spans."""
        return self.data_type.registers

    @property
    def stores_int(self) -> bool:
        """Whether decoded values are ints (an integer type, int scale and offset)."""
        return self.data_type.integer and type(self.scale) is int and type(self.offset) is int

    # ---------------------------------------------------------------- decode

    def decode(self, registers: Sequence[int]) -> int | float:
        """The stored value of *registers* (exactly `width` of them, each 0 .. 0xFFFF)."""
        kind = self.data_type
        if len(registers) != kind.registers:
            raise BusDataError(
                f"{kind.name}: expected {kind.registers} register(s), got {len(registers)}"
            )
        raw = struct.unpack(">" + kind.code, self._bytes(registers))[0]
        if kind.integer:
            return self._stored(Decimal(raw))
        if not math.isfinite(raw):
            raise BusDataError(f"{kind.name}: the device sent {raw!r}, not a number")
        text = _shortest(raw, kind.code)
        if (self.scale, self.offset) == (1, 0):
            return float(text)  # as it is (decimal addition would turn -0.0 into 0.0)
        return self._stored(Decimal(text))

    def _bytes(self, registers: Sequence[int]) -> bytes:
        words = list(registers)
        if self.word_order == "little":
            words.reverse()
        order: Order = self.byte_order
        try:
            return b"".join(w.to_bytes(2, order) for w in words)
        except OverflowError:
            raise BusDataError(f"registers {list(registers)} are not all 16-bit") from None

    def _stored(self, raw: Decimal) -> int | float:
        stored = _ARITHMETIC.add(
            _ARITHMETIC.multiply(raw, _decimal(self.scale)), _decimal(self.offset)
        )
        if self.stores_int:
            return int(stored)
        value = float(stored)
        if not math.isfinite(value):
            raise BusDataError(f"{self.data_type.name}: {stored} is too large for a float")
        return value

    # ---------------------------------------------------------------- encode

    def encode(self, value: object) -> tuple[int, ...]:
        """The registers that hold *value* (a stored value); `BusDataError` if it cannot."""
        kind = self.data_type
        if type(value) not in (int, float):
            raise BusDataError(f"{kind.name}: expected a number, got {_describe(value)}")
        assert isinstance(value, int | float)
        if not math.isfinite(value):
            raise BusDataError(f"{kind.name}: {value!r} cannot be written (not a finite number)")
        raw = self._raw(value)
        data = self._pack(raw, value)
        words = [int.from_bytes(data[i : i + 2], self.byte_order) for i in range(0, len(data), 2)]
        if self.word_order == "little":
            words.reverse()
        return tuple(words)

    def _raw(self, value: int | float) -> Decimal:
        try:
            return _ARITHMETIC.divide(
                _ARITHMETIC.subtract(_decimal(value), _decimal(self.offset)),
                _decimal(self.scale),
            )
        except InvalidOperation:  # pragma: no cover - finite operands, scale != 0
            raise BusDataError(f"{self.data_type.name}: cannot scale {value!r}") from None

    def _pack(self, raw: Decimal, value: int | float) -> bytes:
        kind = self.data_type
        scaled = "" if (self.scale, self.offset) == (1, 0) else f" (raw {_text(raw)})"
        if kind.integer:
            whole = int(raw.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=_ARITHMETIC))
            if not kind.minimum <= whole <= kind.maximum:
                raise BusDataError(
                    f"{value!r}{scaled} does not fit {kind.name} "
                    f"({kind.minimum} .. {kind.maximum}); not written"
                )
            return struct.pack(">" + kind.code, whole)
        number = float(raw)
        try:
            data = struct.pack(">" + kind.code, number)
        except OverflowError:
            data = b""
        if not data or not math.isfinite(struct.unpack(">" + kind.code, data)[0]):
            raise BusDataError(f"{value!r}{scaled} is too large for {kind.name}; not written")
        return data


@dataclass(frozen=True, slots=True)
class BitCodec:
    """A coil or discrete input: True or False, nothing else."""

    width: int = 1

    def decode(self, bits: Sequence[bool]) -> bool:
        if len(bits) != 1:
            raise BusDataError(f"bool: expected 1 bit, got {len(bits)}")
        return bool(bits[0])

    def encode(self, value: object) -> tuple[bool, ...]:
        if type(value) is not bool:
            raise BusDataError(f"bool: expected true or false, got {_describe(value)}")
        return (value,)


def _decimal(number: int | float) -> Decimal:
    """The decimal that *number* was written as (``0.1``, not its binary expansion)."""
    return Decimal(number) if type(number) is int else Decimal(repr(number))


def _shortest(number: float, code: str) -> str:
    """The shortest decimal text that packs to the same float32 (float64: ``repr``)."""
    if code == "d":
        return repr(number)
    exact = struct.pack(">f", number)
    for digits in range(6, 10):
        text = f"{number:.{digits}g}"
        if struct.pack(">f", float(text)) == exact:
            return text
    return repr(number)  # pragma: no cover - 9 digits always round-trip a float32


def _text(number: Decimal) -> str:
    return format(number.normalize(_ARITHMETIC), "f")


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"
