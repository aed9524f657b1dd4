"""A ``[[adapters.NAME.map]]`` entry's value: where the registers are and how they code it.

The client adapter (``type = "modbus"``, a device we poll) and the server
adapter (``type = "modbus_server"``, registers we serve) map paths to
registers with the same keys: ``path``, ``function``, ``address``, ``type``,
``word_order``, ``byte_order``, ``scale``, ``offset``, ``unit`` and
``direction``.  `ValueTable` reads them, `read_value` checks them and
makes the codec, `MappedValue` holds the result; each adapter's entry adds
its own keys (a poll interval, a range of accepted values) by extending
both.  `read_map` reads the entries of a ``map`` list, each path once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Self, TypeVar

import msgspec
from msgspec import Meta

from moat_log.errors import InvalidInputError
from moat_log.path import Path
from moat_log.records import FieldError, read

from ..direction import Direction
from .plan import BIT_FUNCTIONS, Function, Span
from .registers import DATA_TYPES, BitCodec, Order, RegisterCodec

__all__ = ["MappedValue", "ValueTable", "read_map", "read_value"]

Address = Annotated[int, Meta(ge=0, le=65535, description="an address 0 .. 65535")]
#: The functions a client can write (coils and holding registers).
WRITABLE = frozenset({"coil", "holding"})


class ValueTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The keys of a map entry that say where a value is and how it is coded."""

    path: str
    function: Function
    address: Address
    type: str | None = None
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: int | float = 1
    offset: int | float = 0
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class MappedValue:
    """One path's value in *function*'s registers (or bits) from *address*."""

    path: Path
    function: Function
    address: int
    codec: RegisterCodec | BitCodec
    direction: Direction
    unit: str | None = None

    @classmethod
    def extended(cls, value: MappedValue, **more: Any) -> Self:
        """*value* with the fields of a subclass (an adapter's own keys) added."""
        return cls(
            value.path,
            value.function,
            value.address,
            value.codec,
            value.direction,
            value.unit,
            **more,
        )

    @property
    def span(self) -> Span:
        return Span(self.function, self.address, self.codec.width)

    @property
    def type_name(self) -> str:
        """The data type as ``moat-log adapters`` shows it: ``int16``, ``float32 CDAB``."""
        codec = self.codec
        if isinstance(codec, BitCodec):
            return "bool"
        layout = {
            ("big", "big"): "ABCD",
            ("little", "big"): "CDAB",
            ("big", "little"): "BADC",
            ("little", "little"): "DCBA",
        }[(codec.word_order, codec.byte_order)]
        name = codec.data_type.name
        return name if codec.width == 1 and layout == "ABCD" else f"{name} {layout}"

    def describe(self, address: str) -> dict[str, object]:
        """The row ``moat-log adapters`` shows, with the bus *address* as the adapter writes it."""
        row: dict[str, object] = {
            "path": str(self.path),
            "address": address,
            "direction": self.direction.value,
            "type": self.type_name,
        }
        codec = self.codec
        if isinstance(codec, RegisterCodec) and (codec.scale, codec.offset) != (1, 0):
            row["scale"], row["offset"] = codec.scale, codec.offset
        if self.unit is not None:
            row["unit"] = self.unit
        return row


def read_value(
    table: ValueTable, where: str, *, direction: Direction, writes: Direction
) -> MappedValue:
    """The value *table* maps (in *direction*); raises `FieldError` naming the bad key.

    *writes* is the direction that writes registers (the client's ``out``,
    the server's ``in``): only coils and holding registers may have it.
    An adapter's entry adds its own keys with `MappedValue.extended`.
    """
    try:
        path = Path.parse(table.path)
    except InvalidInputError as exc:
        raise FieldError(f"{where}.path", str(exc)) from None
    if not path:
        raise FieldError(f"{where}.path", "the empty path cannot be mapped")
    bits = table.function in BIT_FUNCTIONS
    type_name = table.type or ("bool" if bits else "uint16")
    codec: RegisterCodec | BitCodec
    if bits:
        if type_name != "bool":
            raise FieldError(f"{where}.type", f"a {table.function} is a bit: type is bool")
        codec = BitCodec()
    else:
        data_type = DATA_TYPES.get(type_name)
        if data_type is None:
            known = ", ".join(DATA_TYPES)
            raise FieldError(f"{where}.type", f"{type_name!r} is no register type; known: {known}")
        try:
            codec = RegisterCodec(
                data_type, table.word_order, table.byte_order, table.scale, table.offset
            )
        except ValueError as exc:
            raise FieldError(where, str(exc)) from None
    if table.address + codec.width > 65536:
        raise FieldError(f"{where}.address", f"a {type_name} at {table.address} ends past 65535")
    if direction in (writes, Direction.BOTH) and table.function not in WRITABLE:
        raise FieldError(
            f"{where}.direction", f"a {table.function} cannot be written: only holding and coil"
        )
    return MappedValue(path, table.function, table.address, codec, direction, table.unit)


_Entry = TypeVar("_Entry", bound=MappedValue)
_Table = TypeVar("_Table", bound=ValueTable)


def read_map(
    tables: Sequence[Any],
    where: str,
    table_type: type[_Table],
    make: Callable[[_Table, str], _Entry],
) -> tuple[_Entry, ...]:
    """The entries of a ``map`` list: each read as *table_type*, made by *make*; paths once."""
    entries: list[_Entry] = []
    paths: set[Path] = set()
    for index, raw in enumerate(tables):
        here = f"{where}[{index}]"
        entry = make(read(table_type, raw, where=here), here)
        if entry.path in paths:
            raise FieldError(f"{here}.path", f"{entry.path} is mapped twice")
        paths.add(entry.path)
        entries.append(entry)
    return tuple(entries)
