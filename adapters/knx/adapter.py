"""The KNX adapter: its ``[adapters.NAME]`` settings and its connection.

A table with ``type = "knx"`` (docs/adapters.md, "The KNX adapter", has
every key)::

    [adapters.knx]
    type = "knx"
    gateway = "192.168.1.20"          # tunnelling (the default connection)

    [[adapters.knx.map]]
    address = "1/1/1"
    state_address = "1/1/2"
    path = "home.kitchen.light"
    dpt = "1.001"
    direction = "both"

One connection (`KnxAdapter.run`) starts xknx on the node's asyncio loop
(`AdapterLink.asyncio_bridge`), connects, and serves the bus with a
`KnxSession` until the connection goes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Final, Literal

import msgspec
import trio
from msgspec import Meta

from moat_log.address import host_and_port
from moat_log.path import Path
from moat_log.records import FieldError, parse, read

from ..contract import AdapterLink, BusSession
from .bus import GatewayConfig, close_xknx, open_xknx
from .mapping import BusTelegram, KnxMapping, mapping_from_config
from .session import KnxSession

__all__ = ["KnxAdapter", "KnxSettings", "read_settings"]

log = logging.getLogger("moat_log.adapters.knx")

DEFAULT_PORT: Final = 3671
#: Telegrams read ahead at most while the journal writes (then they are lost, and counted).
DEFAULT_BUFFER: Final = 10_000
_INDIVIDUAL: Final = r"^(1[0-5]|[0-9])\.(1[0-5]|[0-9])\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$"


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    connection: Literal["tunnelling", "routing"] = "tunnelling"
    gateway: Annotated[str, Meta(description='"HOST:PORT" of a KNXnet/IP gateway')] | None = None
    local_ip: str | None = None
    individual_address: (
        Annotated[str, Meta(pattern=_INDIVIDUAL, description='an individual address "1.1.250"')]
        | None
    ) = None
    multicast_group: str = "224.0.23.12:3671"
    rate_limit: Annotated[float, Meta(ge=0, le=1000, description="telegrams/s 0 .. 1000")] = 20.0
    buffer: Annotated[int, Meta(ge=1, le=1_000_000)] = DEFAULT_BUFFER
    map: list[Any] = []


@dataclass(frozen=True, slots=True)
class KnxSettings:
    """One KNX adapter's settings, as read from its table."""

    name: str
    gateway: GatewayConfig
    mapping: KnxMapping
    rate_limit: float = 20.0
    buffer: int = DEFAULT_BUFFER

    def create(self) -> KnxAdapter:
        return KnxAdapter(self)

    def describe(self) -> list[dict[str, object]]:
        """One row per group address entry (``moat-log adapters``)."""
        return [point.describe() for point in self.mapping.points]


def read_settings(name: str, table: object, where: str) -> KnxSettings:
    """The settings of ``[adapters.NAME]`` (type knx); raises `FieldError`."""
    body = read(_Table, table, where=where)
    group, group_port = parse(
        lambda text: host_and_port(text, DEFAULT_PORT),
        body.multicast_group,
        f"{where}.multicast_group",
    )
    if body.connection == "tunnelling":
        if body.gateway is None:
            raise FieldError(f"{where}.gateway", "tunnelling needs the gateway's address")
        host, port = parse(
            lambda text: host_and_port(text, DEFAULT_PORT), body.gateway, f"{where}.gateway"
        )
    else:
        if body.gateway is not None:
            raise FieldError(f"{where}.gateway", "routing has no gateway: leave it out")
        host, port = None, DEFAULT_PORT
    gateway = GatewayConfig(
        connection=body.connection,
        gateway_ip=host,
        gateway_port=port,
        local_ip=body.local_ip,
        individual_address=body.individual_address,
        multicast_group=group,
        multicast_port=group_port,
    )
    mapping = mapping_from_config(body.map, f"{where}.map")
    return KnxSettings(name, gateway, mapping, rate_limit=body.rate_limit, buffer=body.buffer)


class KnxAdapter:
    """Maps paths to KNX group addresses both ways (one instance per run of the node)."""

    type: Final = "knx"

    def __init__(self, settings: KnxSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._lost = 0

    def owns(self, path: Path) -> bool:
        return self.settings.mapping.owns(path)

    async def run(self, link: AdapterLink, *, task_status: trio.TaskStatus[BusSession]) -> None:
        settings = self.settings
        bridge = link.asyncio_bridge()
        link.detail("gateway", settings.gateway.text)
        send, receive = trio.open_memory_channel[BusTelegram](settings.buffer)
        lost = trio.Event()

        def overflow(_: BusTelegram) -> None:
            self._lost += 1
            link.detail("lost", self._lost)
            if self._lost & (self._lost - 1) == 0:  # the 1st, 2nd, 4th, 8th, ... loss
                log.warning(
                    "adapter %s: %d telegrams lost so far: the journal is behind the bus "
                    "(buffer = %d)",
                    self.name,
                    self._lost,
                    settings.buffer,
                )

        def state_changed(state: str) -> None:
            link.detail("bus_state", state)
            if state == "disconnected":
                lost.set()

        with send, receive:
            xknx, own_address = await bridge.run(
                open_xknx,
                settings.gateway,
                bridge.feeder(send, overflow),
                partial(bridge.call_in_trio, state_changed),
            )
            try:
                link.detail("individual_address", own_address)
                link.detail("lost", self._lost)
                interval = 1 / settings.rate_limit if settings.rate_limit else 0.0
                interval = 0.0 if math.isinf(interval) else interval
                session = KnxSession(
                    link,
                    settings.mapping,
                    bridge,
                    xknx,
                    receive,
                    interval=interval,
                )
                session.lost = lost
                task_status.started(session)
                await session.serve()
            finally:
                with trio.CancelScope(shield=True):
                    await bridge.run(close_xknx, xknx)
