"""The Modbus adapter: its ``[adapters.NAME]`` settings and its connection.

One adapter instance is one device: a TCP address (or a serial port) and a
unit id (docs/adapters.md, "The Modbus adapter").  A table with
``type = "modbus"``::

    [adapters.boiler]
    type = "modbus"
    host = "192.168.1.20:502"
    unit_id = 1

    [[adapters.boiler.map]]
    path = "home.boiler.flow_temperature"
    function = "input"
    address = 0
    type = "int16"
    scale = 0.1
    unit = "°C"
    threshold = 0.2

    [[adapters.boiler.map]]
    path = "home.boiler.setpoint"
    function = "holding"
    address = 10
    type = "int16"
    scale = 0.5
    direction = "both"

Every ``map`` entry is one value at one path; ``direction = "in"`` (the
default) polls it, ``"out"`` writes every committed change of its path to
the device, ``"both"`` does both.  `ModbusAdapter.run` connects and hands
the connection to a `ModbusSession`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import msgspec
import trio
from msgspec import Meta

from moat_log.address import host_and_port
from moat_log.path import Path
from moat_log.records import FieldError, parse, read

from ..contract import AdapterLink, BusSession
from ..direction import Direction
from .client import Endpoint
from .device import open_device
from .mapping import MappedValue, ValueTable, read_map, read_value
from .plan import BIT_FUNCTIONS, MAX_BITS, MAX_REGISTERS
from .session import ModbusSession

__all__ = ["Entry", "ModbusAdapter", "ModbusSettings", "read_settings"]

DEFAULT_PORT: Final = 502
_SECONDS = Annotated[float, Meta(gt=0, le=86400, description="seconds, more than 0")]


class _EntryTable(ValueTable, forbid_unknown_fields=True, frozen=True):
    interval: _SECONDS | None = None
    threshold: Annotated[float, Meta(ge=0, description="a number >= 0")] = 0.0
    direction: Direction = Direction.IN
    changes_only: bool = True


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: Annotated[str, Meta(description='"HOST:PORT" of the Modbus TCP device')] | None = None
    serial: Annotated[str, Meta(description="a serial port, e.g. /dev/ttyUSB0")] | None = None
    baudrate: Annotated[int, Meta(ge=50, le=4_000_000)] = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: Annotated[int, Meta(ge=0, le=255, description="a unit id 0 .. 255")] = 1
    timeout: Annotated[float, Meta(gt=0, le=60, description="seconds, more than 0, at most 60")] = (
        1.0
    )
    retries: Annotated[int, Meta(ge=0, le=10, description="an integer 0 .. 10")] = 1
    interval: _SECONDS = 10.0
    max_gap: Annotated[int, Meta(ge=0, le=MAX_REGISTERS, description="0 .. 125")] = 4
    max_registers: Annotated[int, Meta(ge=1, le=MAX_REGISTERS, description="1 .. 125")] = (
        MAX_REGISTERS
    )
    max_bits: Annotated[int, Meta(ge=1, le=MAX_BITS, description="1 .. 2000")] = MAX_BITS
    map: list[Any] = []


@dataclass(frozen=True, slots=True)
class Entry(MappedValue):
    """One polled or written value: where the device holds it, and how often to poll it."""

    interval: float = 10.0
    threshold: float = 0.0
    changes_only: bool = True

    @property
    def polled(self) -> bool:
        return self.direction.incoming

    @property
    def owned(self) -> bool:
        return self.direction.outgoing


@dataclass(frozen=True, slots=True)
class ModbusSettings:
    """One Modbus adapter's settings (one device), as read from its table."""

    name: str
    endpoint: Endpoint
    entries: tuple[Entry, ...]
    unit_id: int = 1
    timeout: float = 1.0
    retries: int = 1
    max_gap: int = 4
    max_registers: int = MAX_REGISTERS
    max_bits: int = MAX_BITS

    def create(self) -> ModbusAdapter:
        return ModbusAdapter(self)

    def address(self, entry: Entry) -> str:
        """The bus address of *entry*, as its events' source shows it: ``UNIT/FUNCTION/ADDR``."""
        return f"{self.unit_id}/{entry.function}/{entry.address}"

    def describe(self) -> list[dict[str, object]]:
        """One row per mapped value (``moat-log adapters``)."""
        rows: list[dict[str, object]] = []
        for entry in self.entries:
            row = entry.describe(self.address(entry))
            row["device"] = str(self.endpoint)
            if entry.polled:
                row["interval"] = entry.interval
            if entry.threshold:
                row["threshold"] = entry.threshold
            rows.append(row)
        return rows


def read_settings(name: str, table: object, where: str) -> ModbusSettings:
    """The settings of ``[adapters.NAME]`` (type modbus); raises `FieldError`."""
    body = read(_Table, table, where=where)
    if (body.host is None) == (body.serial is None):
        raise FieldError(where, "give host (Modbus TCP) or serial (Modbus RTU), one of them")
    if body.host is not None:
        host, port = parse(
            lambda text: host_and_port(text, DEFAULT_PORT), body.host, f"{where}.host"
        )
        endpoint = Endpoint(host, port)
    else:
        endpoint = Endpoint(
            serial=body.serial,
            baudrate=body.baudrate,
            parity=body.parity,
            stopbits=body.stopbits,
            bytesize=body.bytesize,
        )
    entries = _entries(body.map, body.interval, f"{where}.map")
    return ModbusSettings(
        name,
        endpoint,
        entries,
        unit_id=body.unit_id,
        timeout=body.timeout,
        retries=body.retries,
        max_gap=body.max_gap,
        max_registers=body.max_registers,
        max_bits=body.max_bits,
    )


def _entries(tables: Sequence[Any], interval: float, where: str) -> tuple[Entry, ...]:
    def entry(table: _EntryTable, here: str) -> Entry:
        value = read_value(table, here, direction=table.direction, writes=Direction.OUT)
        if table.threshold and table.function in BIT_FUNCTIONS:
            raise FieldError(f"{here}.threshold", "a bool has no threshold")
        return Entry.extended(
            value,
            interval=table.interval or interval,
            threshold=table.threshold,
            changes_only=table.changes_only,
        )

    return read_map(tables, where, _EntryTable, entry)


class ModbusAdapter:
    """Polls one Modbus device and writes owned paths to it (one instance per run)."""

    type: Final = "modbus"

    def __init__(self, settings: ModbusSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._owned = frozenset(e.path for e in settings.entries if e.owned)

    def owns(self, path: Path) -> bool:
        return path in self._owned

    async def run(self, link: AdapterLink, *, task_status: trio.TaskStatus[BusSession]) -> None:
        settings = self.settings
        link.detail("device", f"{settings.endpoint} unit {settings.unit_id}")
        async with open_device(
            settings.endpoint,
            settings.unit_id,
            request_timeout=settings.timeout,
            retries=settings.retries,
        ) as device:
            session = ModbusSession(settings, link, device)
            await session.start()
            task_status.started(session)
            await session.serve()
