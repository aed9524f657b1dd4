"""Group addresses <-> paths: the KNX adapter's ``map`` and what a telegram means (sans-io).

Each ``[[adapters.NAME.map]]`` entry ties one group address to one path,
with its datapoint type (`moat_log.adapters.knx.dpt`) and a direction:

* ``in``: telegrams on *address* (GroupValueWrite, GroupValueResponse)
  become events of *path*;
* ``out``: the path is owned; each new value is sent to *address* as a
  GroupValueWrite, and the bus is not listened to;
* ``both``: owned and sent to *address*, and telegrams on the listened
  address become events: *state_address* if given (an actuator's
  feedback), else *address* (a wall switch writes there too).

An address is listened to by one entry at most, and a path is in one
entry at most, so that a telegram means exactly one change and a change
exactly one telegram.  `KnxMapping.incoming` turns a `BusTelegram` into a
path and a plain value; `KnxMapping.outgoing` a path's value into a
destination and a payload.  Neither touches a socket.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from moat_log.errors import BusDataError
from moat_log.path import Path
from moat_log.records import FieldError, parse, read

from ..direction import Direction
from .dpt import DptCodec, Payload, Value, dpt_codec

__all__ = [
    "BusTelegram",
    "Direction",
    "GroupPoint",
    "KnxMapping",
    "format_group_address",
    "mapping_from_config",
    "parse_group_address",
]

_THREE_LEVEL: Final = re.compile(r"(\d{1,2})/(\d)/(\d{1,3})")
_TWO_LEVEL: Final = re.compile(r"(\d{1,2})/(\d{1,4})")


def parse_group_address(text: str) -> int:
    """``"1/2/3"`` (main 0..31 / middle 0..7 / sub 0..255) or ``"1/515"`` as its 16-bit value."""
    three = _THREE_LEVEL.fullmatch(text)
    if three is not None:
        main, middle, sub = (int(part) for part in three.groups())
        if main <= 31 and middle <= 7 and sub <= 255:
            return main << 11 | middle << 8 | sub
    two = _TWO_LEVEL.fullmatch(text)
    if two is not None:
        main, sub = (int(part) for part in two.groups())
        if main <= 31 and sub <= 2047:
            return main << 11 | sub
    raise ValueError("a group address is MAIN/MIDDLE/SUB (0..31/0..7/0..255) or MAIN/SUB")


def format_group_address(raw: int) -> str:
    """The three-level text of a 16-bit group address: ``2563`` -> ``"1/2/3"``."""
    return f"{raw >> 11 & 0x1F}/{raw >> 8 & 0x07}/{raw & 0xFF}"


@dataclass(frozen=True, slots=True)
class BusTelegram:
    """A group telegram as the adapter sees it: plain data, no xknx objects.

    *kind* is ``write``, ``response`` or ``read``; *payload* is None for a read.
    """

    destination: int
    source: str
    kind: Literal["write", "response", "read"]
    payload: Payload | None = None


@dataclass(frozen=True, slots=True)
class GroupPoint:
    """One ``map`` entry."""

    address: int
    path: Path
    codec: DptCodec
    direction: Direction = Direction.IN
    state_address: int | None = None
    read_on_start: bool = True
    changes_only: bool = True

    @property
    def listen_address(self) -> int | None:
        """The address whose telegrams become events (None: not listened to)."""
        if not self.direction.incoming:
            return None
        return self.address if self.state_address is None else self.state_address

    def describe(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "address": format_group_address(self.address),
            "state_address": (
                None if self.state_address is None else format_group_address(self.state_address)
            ),
            "direction": self.direction.value,
            "type": f"DPT {self.codec.number}",
            "unit": self.codec.unit,
            "read_on_start": self.read_on_start and self.listen_address is not None,
            "changes_only": self.changes_only,
        }


class KnxMapping:
    """Every entry, indexed by listened address and by path."""

    __slots__ = ("_by_address", "_by_path", "points")

    def __init__(self, points: Sequence[GroupPoint]) -> None:
        self.points = tuple(points)
        self._by_address: Mapping[int, GroupPoint] = _index_by_address(self.points)
        self._by_path: Mapping[Path, GroupPoint] = {point.path: point for point in self.points}

    def point_listening_on(self, address: int) -> GroupPoint | None:
        return self._by_address.get(address)

    def point_of(self, path: Path) -> GroupPoint | None:
        return self._by_path.get(path)

    def owns(self, path: Path) -> bool:
        point = self.point_of(path)
        return point is not None and point.direction.outgoing

    def incoming(self, telegram: BusTelegram) -> tuple[GroupPoint, Value] | None:
        """The entry and value *telegram* carries; None if nothing listens; `BusDataError`."""
        if telegram.kind == "read" or telegram.payload is None:
            return None
        point = self.point_listening_on(telegram.destination)
        if point is None:
            return None
        return point, point.codec.decode(telegram.payload)

    def outgoing(self, path: Path, value: object) -> tuple[int, Payload]:
        """The destination and payload for *path*'s new *value*; raises `BusDataError`."""
        point = self.point_of(path)
        if point is None or not point.direction.outgoing:
            raise BusDataError(f"{path} is not sent to the KNX bus by this mapping")
        return point.address, point.codec.encode(value)

    def reads_on_start(self) -> list[int]:
        """The addresses to ask for their values (GroupValueRead) when connected."""
        return [
            address
            for point in self.points
            if point.read_on_start and (address := point.listen_address) is not None
        ]


def _index_by_address(points: Sequence[GroupPoint]) -> dict[int, GroupPoint]:
    index: dict[int, GroupPoint] = {}
    for point in points:
        if point.listen_address is not None:
            index[point.listen_address] = point
    return index


# --- config ----------------------------------------------------------------


class _Entry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    address: Annotated[str, Meta(description='a group address "MAIN/MIDDLE/SUB"')]
    path: Annotated[str, Meta(description="a path")]
    dpt: Annotated[str, Meta(description='a datapoint type "9.001"')]
    direction: Literal["in", "out", "both"] = "in"
    state_address: str | None = None
    read_on_start: bool = True
    changes_only: bool = True


def mapping_from_config(entries: Sequence[Any], where: str) -> KnxMapping:
    """The ``map`` list, read strictly; raises `FieldError` naming the entry's key."""
    points: list[GroupPoint] = []
    listened: dict[int, str] = {}
    paths: dict[Path, str] = {}
    for index, raw in enumerate(entries):
        here = f"{where}[{index}]"
        entry = read(_Entry, raw, where=here)
        point = GroupPoint(
            address=parse(parse_group_address, entry.address, f"{here}.address"),
            path=parse(Path.parse, entry.path, f"{here}.path"),
            codec=parse(dpt_codec, entry.dpt, f"{here}.dpt"),
            direction=Direction(entry.direction),
            state_address=(
                None
                if entry.state_address is None
                else parse(parse_group_address, entry.state_address, f"{here}.state_address")
            ),
            read_on_start=entry.read_on_start,
            changes_only=entry.changes_only,
        )
        if point.state_address is not None and point.direction is not Direction.BOTH:
            raise FieldError(f"{here}.state_address", 'a state address needs direction = "both"')
        if point.path in paths:
            raise FieldError(
                f"{here}.path", f"{point.path} is mapped already by {paths[point.path]}"
            )
        paths[point.path] = here
        listen = point.listen_address
        if listen is not None:
            if listen in listened:
                raise FieldError(
                    f"{here}.{'address' if point.state_address is None else 'state_address'}",
                    f"{format_group_address(listen)} is listened to already by {listened[listen]}",
                )
            listened[listen] = here
        points.append(point)
    return KnxMapping(tuple(points))
