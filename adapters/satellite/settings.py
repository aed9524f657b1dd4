"""The ``[adapters.NAME]`` table of a serial satellite, read strictly.

A table with ``type = "satellite"`` (docs/satellites.md)::

    [adapters.boiler]
    type = "satellite"
    port = "/dev/ttyACM0"
    prefix = "home.boiler"

    [adapters.boiler.parts.door]
    kind = "input"
    pin = 4
    pull = "up"

    [adapters.boiler.parts.pump]
    kind = "output"
    pin = 5

Each part ``P`` is the path ``PREFIX.P``.  The parts tables are the
satellite's parts config (docs/satellite-protocol.md, sections 4 and 5):
the host sends them as they were written (the kind and the keys given, the
firmware's defaults for the rest) with ``cfg`` on every connect, and the
satellite rewrites its flash only when they differ from what it holds.
Outputs and PWMs are owned paths (journal -> satellite); inputs, ADCs and
counters report (satellite -> journal).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from moat_log.errors import InvalidInputError
from moat_log.path import Path
from moat_log.records import FieldError, read

if TYPE_CHECKING:
    from .adapter import SatelliteAdapter

__all__ = ["KINDS", "OUTGOING_KINDS", "Part", "SatelliteSettings", "read_settings"]

#: What a part name may be: one plain path segment, short enough for the satellite's flash.
PART_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: What a satellite's id may be (its HELLO's ``sat_id``; the ``NAME`` of its events' source).
SAT_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

_PIN = Annotated[int, Meta(ge=0, le=255, description="a pin number 0 .. 255")]
_MS = Annotated[int, Meta(ge=0, le=86_400_000, description="milliseconds 0 .. 86400000")]
_INTERVAL = Annotated[int, Meta(ge=1, le=86_400_000, description="milliseconds 1 .. 86400000")]


class _Input(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str
    pin: _PIN
    pull: Literal["up", "down"] | None = None
    invert: bool = False
    debounce_ms: _MS = 20


class _Output(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str
    pin: _PIN
    invert: bool = False
    init: bool = False
    min_on_ms: _MS = 0
    min_off_ms: _MS = 0


class _Adc(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str
    pin: _PIN
    interval_ms: _INTERVAL = 1000
    threshold: (
        Annotated[int, Meta(ge=0, description="a number >= 0")]
        | Annotated[float, Meta(ge=0, description="a number >= 0")]
    ) = 0
    scale: int | float = 1
    offset: int | float = 0


class _Pwm(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str
    pin: _PIN
    freq: Annotated[int, Meta(ge=1, le=40_000_000, description="Hz 1 .. 40000000")] = 1000
    init: (
        Annotated[int, Meta(ge=0, le=1, description="a duty 0 .. 1")]
        | Annotated[float, Meta(ge=0, le=1, description="a duty 0 .. 1")]
    ) = 0


class _Counter(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str
    pin: _PIN
    edge: Literal["rising", "falling", "both"] = "rising"
    interval_ms: _INTERVAL = 1000


#: Each part kind and the record its table is read into (docs/satellite-protocol.md, 4).
KINDS: Final[Mapping[str, type[msgspec.Struct]]] = {
    "input": _Input,
    "output": _Output,
    "adc": _Adc,
    "pwm": _Pwm,
    "counter": _Counter,
}
#: The kinds that the host writes (``w``): their paths are owned.
OUTGOING_KINDS: Final = frozenset({"output", "pwm"})


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    port: Annotated[str, Meta(min_length=1, description="a serial port, e.g. /dev/ttyACM0")]
    prefix: Annotated[str, Meta(description="a path, e.g. home.boiler")]
    baudrate: Annotated[int, Meta(ge=50, le=4_000_000, description="baud 50 .. 4000000")] = 115_200
    id: str | None = None
    keepalive: Annotated[float, Meta(ge=0.05, le=60, description="seconds 0.05 .. 60")] = 1.0
    parts: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Part:
    """One configured part: its name, kind and path, and its config as the satellite gets it."""

    name: str
    kind: str
    path: Path
    #: The part's table as written (``kind`` and the keys given): its entry in ``cfg``.
    config: Mapping[str, Any]

    @property
    def outgoing(self) -> bool:
        return self.kind in OUTGOING_KINDS


@dataclass(frozen=True, slots=True)
class SatelliteSettings:
    """One satellite's settings, as read from its table."""

    name: str
    port: str
    prefix: Path
    sat_id: str
    baudrate: int = 115_200
    keepalive_ms: int = 1000
    parts: tuple[Part, ...] = ()
    _by_path: dict[Path, Part] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_path.update({part.path: part for part in self.parts})

    def create(self) -> SatelliteAdapter:
        from .adapter import SatelliteAdapter

        return SatelliteAdapter(self)

    def part_at(self, path: Path) -> Part | None:
        """The configured part whose path is *path*."""
        return self._by_path.get(path)

    def path_of(self, part: str) -> Path:
        """The path of the satellite's part *part* (configured or not): ``PREFIX.PART``."""
        return self.prefix / part

    def address(self, part: str) -> str:
        """A part's bus address as sources and logs name it: ``NAME/PART`` (the adapter's name)."""
        return f"{self.name}/{part}"

    def parts_config(self) -> dict[str, Any]:
        """The ``cfg`` argument (docs/satellite-protocol.md, section 5)."""
        return {
            "id": self.sat_id,
            "keepalive_ms": self.keepalive_ms,
            "parts": {part.name: dict(part.config) for part in self.parts},
        }

    def describe(self) -> list[dict[str, object]]:
        """One row per part (``moat-log adapters``)."""
        return [
            {
                "path": str(part.path),
                "address": self.address(part.name),
                "direction": "out" if part.outgoing else "in",
                "type": part.kind,
                "pin": part.config["pin"],
                "port": self.port,
            }
            for part in self.parts
        ]


def read_settings(name: str, table: object, where: str) -> SatelliteSettings:
    """The settings of ``[adapters.NAME]`` (type satellite); raises `FieldError`."""
    body = read(_Table, table, where=where)
    try:
        prefix = Path.parse(body.prefix)
    except InvalidInputError as exc:
        raise FieldError(f"{where}.prefix", str(exc)) from None
    if not prefix:
        raise FieldError(f"{where}.prefix", "give a path under which the parts are, not the root")
    sat_id = name if body.id is None else body.id
    if not SAT_ID.fullmatch(sat_id):
        raise FieldError(f"{where}.id", f"{sat_id!r}: 1 to 64 letters, digits, '-' or '_'")
    parts = _parts(body.parts, prefix, f"{where}.parts")
    return SatelliteSettings(
        name,
        body.port,
        prefix,
        sat_id,
        baudrate=body.baudrate,
        keepalive_ms=round(body.keepalive * 1000),
        parts=parts,
    )


def _parts(tables: dict[str, Any], prefix: Path, where: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    pins: dict[int, str] = {}
    for name, table in tables.items():
        here = f"{where}.{name}"
        if not PART_NAME.fullmatch(name):
            raise FieldError(here, "a part's name is 1 to 32 letters, digits, '-' or '_'")
        if not isinstance(table, dict):
            raise FieldError(here, "must be a table with kind and pin")
        kind = table.get("kind")
        record = KINDS.get(kind) if isinstance(kind, str) else None
        if record is None or not isinstance(kind, str):
            known = ", ".join(KINDS)
            raise FieldError(f"{here}.kind", f"{kind!r} is no part kind; known: {known}")
        pin = read(record, table, where=here).pin  # type: ignore[attr-defined]
        if pin in pins:
            raise FieldError(f"{here}.pin", f"pin {pin} is part {pins[pin]!r}'s already")
        pins[pin] = name
        parts.append(Part(name, kind, prefix / name, dict(table)))
    return tuple(parts)
