"""The Modbus server adapter: paths shown as registers to Modbus TCP clients.

A device that can only poll a Modbus server (a wallbox, a PLC, a heat
pump's energy manager) reads moat-log's state and writes commands through
it (docs/adapters.md, "The Modbus server adapter").  A table with
``type = "modbus_server"``::

    [adapters.plc]
    type = "modbus_server"
    listen = "127.0.0.1:5020"
    unit_id = 1

    [[adapters.plc.map]]
    path = "home.pv.power"
    function = "input"
    address = 0
    type = "float32"

    [[adapters.plc.map]]
    path = "home.wallbox.current_limit"
    function = "holding"
    address = 100
    type = "uint16"
    scale = 0.1
    direction = "both"
    max = 32

Every ``map`` entry is one path in one function's registers.
``direction = "out"`` (the default) shows the path's current value;
``"in"`` takes a client's writes as events; ``"both"`` does both.
`ModbusServerAdapter.run` fills the image from the journal, listens, and
serves clients (`tcp_server`) until the node stops.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec
import trio
from msgspec import Meta

from moat_log.address import host_and_port, is_loopback_host, join_host_port, socket_address
from moat_log.errors import BusUnavailableError
from moat_log.path import Path
from moat_log.records import FieldError, parse, read

from ..contract import AdapterLink, BusSession
from ..direction import Direction
from .image import RegisterImage, ServedValue
from .mapping import ValueTable, read_map, read_value
from .plan import BIT_FUNCTIONS
from .server_session import ServerSession
from .tcp_server import ClientLimits, IPAddress, serve_clients

__all__ = ["ModbusServerAdapter", "ModbusServerSettings", "read_settings"]

log = logging.getLogger("moat_log.adapters")

#: Where the server listens unless the table says: this machine only.
DEFAULT_LISTEN: Final = "127.0.0.1:5020"
DEFAULT_PORT: Final = 5020


class _ServedTable(ValueTable, forbid_unknown_fields=True, frozen=True):
    direction: Direction = Direction.OUT
    minimum: float | None = msgspec.field(default=None, name="min")
    maximum: float | None = msgspec.field(default=None, name="max")
    changes_only: bool = True


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    listen: Annotated[str, Meta(description='"HOST:PORT" to listen on')] = DEFAULT_LISTEN
    unit_id: Annotated[int, Meta(ge=0, le=255, description="a unit id 0 .. 255")] = 1
    max_connections: Annotated[int, Meta(ge=1, le=1024, description="1 .. 1024")] = 8
    idle_timeout: Annotated[float, Meta(gt=0, le=86400, description="seconds, more than 0")] = 60.0
    allow: list[str] | None = None
    map: list[Any] = []


@dataclass(frozen=True, slots=True)
class ModbusServerSettings:
    """One Modbus server adapter's settings, as read from its table."""

    name: str
    host: str
    port: int
    values: tuple[ServedValue, ...]
    limits: ClientLimits

    @property
    def unit_id(self) -> int:
        return self.limits.unit_id

    @property
    def listen(self) -> str:
        return join_host_port(self.host, self.port)

    def create(self) -> ModbusServerAdapter:
        return ModbusServerAdapter(self)

    def address(self, value: ServedValue, unit: int) -> str:
        """The bus address of *value* as its events' source shows it: ``UNIT/FUNCTION/ADDR``."""
        return f"{unit}/{value.function}/{value.address}"

    def describe(self) -> list[dict[str, object]]:
        """One row per mapped value (``moat-log adapters``)."""
        rows: list[dict[str, object]] = []
        for value in self.values:
            row = value.describe(self.address(value, self.unit_id))
            row["listen"] = self.listen
            if value.minimum is not None:
                row["min"] = value.minimum
            if value.maximum is not None:
                row["max"] = value.maximum
            rows.append(row)
        return rows


def read_settings(name: str, table: object, where: str) -> ModbusServerSettings:
    """The settings of ``[adapters.NAME]`` (type modbus_server); raises `FieldError`."""
    body = read(_Table, table, where=where)
    host, port = parse(
        lambda text: host_and_port(text, DEFAULT_PORT, any_port=True),
        body.listen,
        f"{where}.listen",
    )
    allow = None if body.allow is None else _allow(body.allow, f"{where}.allow")
    values = read_map(body.map, f"{where}.map", _ServedTable, _served)
    try:
        RegisterImage(values)
    except ValueError as exc:  # two values share a register
        raise FieldError(f"{where}.map", str(exc)) from None
    limits = ClientLimits(body.unit_id, body.max_connections, body.idle_timeout, allow)
    return ModbusServerSettings(name, host, port, values, limits)


def _allow(texts: Sequence[str], where: str) -> frozenset[IPAddress]:
    addresses: set[IPAddress] = set()
    for index, text in enumerate(texts):
        try:
            addresses.add(ipaddress.ip_address(text))
        except ValueError:
            raise FieldError(f"{where}[{index}]", f"{text!r} is no IP address") from None
    return frozenset(addresses)


def _served(table: _ServedTable, where: str) -> ServedValue:
    value = read_value(table, where, direction=table.direction, writes=Direction.IN)
    limited = table.minimum is not None or table.maximum is not None
    if limited and table.function in BIT_FUNCTIONS:
        raise FieldError(f"{where}.min", "a bool has no range")
    if limited and not table.direction.incoming:
        raise FieldError(f"{where}.min", "min and max limit what clients write: direction out")
    low, high = table.minimum, table.maximum
    if low is not None and high is not None and low > high:
        raise FieldError(f"{where}.min", f"min {low} is more than max {high}")
    return ServedValue.extended(
        value,
        minimum=low,
        maximum=high,
        changes_only=table.changes_only,
    )


class ModbusServerAdapter:
    """Serves the mapped paths as registers (one instance per run of the node)."""

    type: Final = "modbus_server"

    def __init__(self, settings: ModbusServerSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._owned = frozenset(v.path for v in settings.values if v.direction.outgoing)

    def owns(self, path: Path) -> bool:
        return path in self._owned

    async def run(self, link: AdapterLink, *, task_status: trio.TaskStatus[BusSession]) -> None:
        settings = self.settings
        session = ServerSession(settings, link, RegisterImage(settings.values))
        position, events = await link.snapshot([value.path for value in settings.values])
        session.load(position, events)
        async with AsyncExitStack() as stack:
            listeners = await _listen(settings.host, settings.port)
            for listener in listeners:
                stack.push_async_callback(trio.aclose_forcefully, listener)
            addresses = [socket_address(x.socket.getsockname()) for x in listeners]
            link.detail("listen", addresses)
            if not is_loopback_host(settings.host) and settings.limits.allow is None:
                log.warning(
                    "adapter %s: Modbus has no authentication, and anyone who reaches %s "
                    "can read and write the mapped paths; name the clients in allow = [...]",
                    settings.name,
                    settings.listen,
                )
            task_status.started(session)
            await serve_clients(listeners, session, settings.limits)


async def _listen(host: str, port: int) -> list[trio.SocketListener]:
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        where = join_host_port(host, port)
        raise BusUnavailableError(
            f"modbus server: cannot listen on {where}: {exc.strerror or exc}"
        ) from None
