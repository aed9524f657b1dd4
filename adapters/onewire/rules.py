"""What the 1-Wire adapter reads and writes: its ``[adapters.NAME]`` table, read strictly.

Theory of operation
-------------------
Each ``[[adapters.NAME.map]]`` table is a `Rule`: one attribute
(``temperature``, ``PIO.0``, ``counters.A``) of the devices it selects
(a ``family``, one ``device``, or every device), polled every
``interval`` seconds, stored under a path made from a pattern with the
device as variables, as in the MQTT adapter's patterns (`+name` is one
segment, adapters/mqtt/topics.py):

==========  ================================  ===========================
variable    segment                           for ``28.4AEC29CDBAAB``
==========  ================================  ===========================
``+id``     the whole id                      ``28.4AEC29CDBAAB`` (text ``28:.4AEC29CDBAAB``)
``+family`` the family code                   ``28``
``+code``   the 12 hex digits after it        ``4AEC29CDBAAB``
==========  ================================  ===========================

``onewire.+family.+code.temperature`` gives the path whose text form is
``onewire.28.4AEC29CDBAAB.temperature``.  A pattern uses ``+id``, or
``+family`` and ``+code`` both, or (with ``device``) no variable.

A reading becomes an event only if it is a change (`Rule.is_change`):
numbers must differ from the stored value by at least ``min_delta``
(1-Wire can only be polled; without a deadband every poll of a noisy
sensor would be an event).  A DS18x20 reports 85 °C after a power-on
reset, before its first conversion: with ``reject_power_on_reset`` (the
default) such a reading of a temperature is bad data, not a value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from moat_log.address import host_and_port
from moat_log.errors import PathSyntaxError
from moat_log.event import Value
from moat_log.path import Path, Segment
from moat_log.records import FieldError, parse, read

from ..codec import BoolCodec, NumberCodec, PayloadCodec, codec_from_config

__all__ = [
    "DEFAULT_PORT",
    "DevicePattern",
    "OnewireSettings",
    "Rule",
    "device_family",
    "is_device_id",
    "read_onewire_settings",
]

DEFAULT_PORT: Final = 4304
#: owserver's cache keeps volatile values (temperatures, PIO) this long (s).
VOLATILE_CACHE: Final = 15.0
#: A device id as owserver lists it with the default format: family, '.', 12 hex digits.
_DEVICE_ID: Final = re.compile(r"[0-9A-F]{2}\.[0-9A-F]{12}")
_FAMILY: Final = re.compile(r"[0-9A-F]{2}")
_ATTRIBUTE: Final = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")
#: Families whose temperature reads 85 °C after a power-on reset (DS18S20, DS1822, DS18B20, DS1825).
POWER_ON_RESET_FAMILIES: Final = frozenset({"10", "22", "28", "3B"})
POWER_ON_RESET: Final = 85.0
_TEMPERATURE_ATTRIBUTES: Final = re.compile(r"(temperature(9|10|11|12)?|latesttemp|fasttemp)")
_VARIABLES: Final = ("id", "family", "code")


def is_device_id(text: str) -> bool:
    """Whether *text* is a device id as owserver lists it (``28.4AEC29CDBAAB``)."""
    return _DEVICE_ID.fullmatch(text) is not None


def device_family(device: str) -> str:
    return device[:2]


@dataclass(frozen=True, slots=True)
class DevicePattern:
    """A path pattern whose variables are a device's id, or its family and code."""

    text: str
    parts: tuple[Segment | None, ...]  # None: a variable, named in *variables* by position
    variables: tuple[str, ...]

    @classmethod
    def compile(cls, text: str, where: str, *, literal_ok: bool = False) -> DevicePattern:
        try:
            path = Path.parse(text)
        except PathSyntaxError as exc:
            raise FieldError(where, f"{text!r} is not a path pattern: {exc}") from None
        parts: list[Segment | None] = []
        names: list[str] = []
        for segment in path:
            if isinstance(segment, str) and segment[:1] in ("+", "#"):
                name = segment[1:]
                if segment[0] == "#" or name not in _VARIABLES:
                    raise FieldError(
                        where,
                        f"{text!r}: {segment!r} is no variable; use +id, or +family and +code",
                    )
                if name in names:
                    raise FieldError(where, f"{text!r} uses {segment!r} twice")
                names.append(name)
                parts.append(None)
            else:
                parts.append(segment)
        chosen = set(names)
        if chosen not in ({"id"}, {"family", "code"}) and not (literal_ok and not chosen):
            need = "+id, or +family and +code" + (" (or none, with device)" if literal_ok else "")
            raise FieldError(where, f"{text!r}: a pattern names its device by {need}")
        return cls(text, tuple(parts), tuple(names))

    @property
    def prefix(self) -> Path:
        """The literal leading segments: every path of the pattern is under it."""
        literal: list[Segment] = []
        for part in self.parts:
            if part is None:
                break
            literal.append(part)
        return Path(literal)

    def path_for(self, device: str) -> Path:
        values = {"id": device, "family": device[:2], "code": device[3:]}
        names = iter(self.variables)
        return Path([values[next(names)] if part is None else part for part in self.parts])

    def device_of(self, path: Path) -> str | None:
        """The device whose path *path* is, or None if *path* is not of the pattern."""
        if len(path) != len(self.parts):
            return None
        bound: dict[str, Segment] = {}
        names = iter(self.variables)
        for part, segment in zip(self.parts, path, strict=True):
            if part is None:
                bound[next(names)] = segment
            elif type(part) is not type(segment) or part != segment:
                return None
        if not bound:
            return ""  # a literal pattern: the rule's one device
        device = bound["id"] if "id" in bound else f"{bound['family']}.{bound['code']}"
        return device if isinstance(device, str) and is_device_id(device) else None


Direction = Literal["in", "out", "both"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``map`` table: an attribute of some devices, its path, how it is polled."""

    attribute: str
    pattern: DevicePattern
    codec: PayloadCodec
    families: frozenset[str] | None = None
    device: str | None = None
    interval: float = 30.0
    min_delta: float = 0.0
    direction: Direction = "in"
    uncached: bool = False
    changes_only: bool = True
    reject_power_on_reset: bool = True

    @property
    def incoming(self) -> bool:
        return self.direction != "out"

    @property
    def outgoing(self) -> bool:
        return self.direction != "in"

    def selects(self, device: str) -> bool:
        if self.device is not None:
            return device == self.device
        return self.families is None or device[:2] in self.families

    def path_for(self, device: str) -> Path:
        return self.pattern.path_for(device)

    def device_of(self, path: Path) -> str | None:
        found = self.pattern.device_of(path)
        if found == "":
            found = self.device
        return found if found is not None and self.selects(found) else None

    def bus_path(self, device: str) -> str:
        """The owserver path that a poll reads (``/uncached/...`` for short intervals)."""
        return f"{'/uncached' if self.uncached else ''}/{device}/{self.attribute}"

    def decode(self, raw: bytes) -> Value:
        """The value of what owserver read: right-aligned ASCII (``b"     21.3125"``).

        The padding is cut before the codec sees it (not for ``raw``).
        Raises `BusDataError`.
        """
        return self.codec.decode(raw if self.codec.name == "raw" else raw.strip())

    def check_reading(self, device: str, value: Value) -> str | None:
        """Why a decoded reading is no value (None: it is one)."""
        if (
            self.reject_power_on_reset
            and device[:2] in POWER_ON_RESET_FAMILIES
            and _TEMPERATURE_ATTRIBUTES.fullmatch(self.attribute)
            and value == POWER_ON_RESET
        ):
            return "85 °C is the power-on reset value of a DS18x20, not a reading"
        return None

    def is_change(self, value: Value, current: Value | None, has_current: bool) -> bool:
        """Whether *value* becomes an event when the path holds *current*."""
        if not self.changes_only or not has_current:
            return True
        if type(value) is not type(current):
            return True
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert isinstance(current, int | float)
            if self.min_delta > 0:
                return abs(value - current) >= self.min_delta
        return value != current

    def describe(self) -> dict[str, object]:
        selects = self.device or (
            f"family {', '.join(sorted(self.families))}" if self.families else "every device"
        )
        return {
            "path": self.pattern.text,
            "address": f"{selects}/{self.attribute}",
            "direction": self.direction,
            "type": self.codec.name,
            "interval": self.interval,
            "min_delta": self.min_delta,
        }


class _RuleTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    attribute: Annotated[str, Meta(description='an owserver attribute, e.g. "temperature"')]
    path: Annotated[str, Meta(description="a path pattern with +id, or +family and +code")]
    family: Annotated[str, Meta(description='two hex digits, e.g. "28"')] | list[str] | None = None
    device: Annotated[str, Meta(description='a device id, e.g. "28.4AEC29CDBAAB"')] | None = None
    interval: Annotated[float, Meta(ge=0.01, le=86400, description="seconds 0.01 .. 86400")] = 30.0
    min_delta: Annotated[float, Meta(ge=0, description="a number >= 0")] = 0.0
    codec: Any = "float"
    direction: Direction = "in"
    uncached: bool | None = None
    changes_only: bool = True
    reject_power_on_reset: bool = True


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    server: Annotated[str, Meta(description='"HOST:PORT" of the owserver')] = (
        f"127.0.0.1:{DEFAULT_PORT}"
    )
    scan_interval: Annotated[float, Meta(ge=0.01, le=86400, description="seconds")] = 30.0
    presence: Annotated[str, Meta(description='a path pattern, or "" for none')] = (
        "onewire.+family.+code.present"
    )
    connections: Annotated[int, Meta(ge=1, le=64)] = 2
    timeout: Annotated[float, Meta(gt=0, le=600, description="seconds 0 .. 600")] = 5.0
    map: list[Any] = []


@dataclass(frozen=True, slots=True)
class OnewireSettings:
    """One 1-Wire adapter's settings, as read from its table."""

    name: str
    host: str
    port: int
    rules: tuple[Rule, ...]
    presence: DevicePattern | None = None
    scan_interval: float = 30.0
    connections: int = 2
    timeout: float = 5.0

    def create(self) -> Any:
        from .adapter import OnewireAdapter

        return OnewireAdapter(self)

    def describe(self) -> list[dict[str, object]]:
        """One row per mapped item (the presence path first, if any)."""
        rows: list[dict[str, object]] = []
        if self.presence is not None:
            rows.append(
                {
                    "path": self.presence.text,
                    "address": "every device (directory listing)",
                    "direction": "in",
                    "type": "bool",
                    "interval": self.scan_interval,
                }
            )
        rows.extend(rule.describe() for rule in self.rules)
        return rows


def read_onewire_settings(name: str, table: object, where: str) -> OnewireSettings:
    body = read(_Table, table, where=where)
    host, port = parse(
        lambda text: host_and_port(text, DEFAULT_PORT), body.server, f"{where}.server"
    )
    presence = None
    if body.presence:
        presence = DevicePattern.compile(body.presence, f"{where}.presence")
    if not isinstance(body.map, list):
        raise FieldError(f"{where}.map", "must be an array of tables")
    rules = tuple(_rule(item, f"{where}.map[{index}]") for index, item in enumerate(body.map))
    return OnewireSettings(
        name,
        host,
        port,
        rules,
        presence,
        scan_interval=body.scan_interval,
        connections=body.connections,
        timeout=body.timeout,
    )


def _rule(item: object, where: str) -> Rule:
    table = read(_RuleTable, item, where=where)
    if table.family is not None and table.device is not None:
        raise FieldError(f"{where}.device", "give family or device, not both")
    families = None
    if table.family is not None:
        given = [table.family] if isinstance(table.family, str) else table.family
        families = frozenset(code.upper() for code in given)
        for code in given:
            if not _FAMILY.fullmatch(code.upper()):
                raise FieldError(f"{where}.family", f"{code!r} is not two hex digits")
        if not families:
            raise FieldError(f"{where}.family", "an empty list selects no device")
    device = table.device.upper() if table.device is not None else None
    if device is not None and not is_device_id(device):
        raise FieldError(
            f"{where}.device", f"{table.device!r} is no device id like 28.4AEC29CDBAAB"
        )
    if not _ATTRIBUTE.fullmatch(table.attribute):
        raise FieldError(f"{where}.attribute", f"{table.attribute!r} is no owserver attribute")
    pattern = DevicePattern.compile(table.path, f"{where}.path", literal_ok=device is not None)
    codec = _codec(table.codec, f"{where}.codec")
    if table.min_delta and not isinstance(codec, NumberCodec):
        raise FieldError(f"{where}.min_delta", "only numbers have a min_delta")
    if not math.isfinite(table.min_delta):
        raise FieldError(f"{where}.min_delta", "must be a finite number")
    uncached = table.uncached if table.uncached is not None else table.interval < VOLATILE_CACHE
    return Rule(
        table.attribute,
        pattern,
        codec,
        families=families,
        device=device,
        interval=table.interval,
        min_delta=table.min_delta,
        direction=table.direction,
        uncached=uncached,
        changes_only=table.changes_only,
        reject_power_on_reset=table.reject_power_on_reset,
    )


def _codec(value: object, where: str) -> PayloadCodec:
    """The codec, with owserver's ``1``/``0`` as the bool words unless the table says others."""
    if value == "bool" or (isinstance(value, dict) and value.get("type") == "bool"):
        table = {"type": "bool"} if value == "bool" else dict(value)  # type: ignore[arg-type]
        table.setdefault("payload_on", "1")
        table.setdefault("payload_off", "0")
        codec = codec_from_config(table, where)
        assert isinstance(codec, BoolCodec)
        return codec
    return codec_from_config(value, where)
