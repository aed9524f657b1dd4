"""One connection of the KNX adapter to its gateway, as the node's bus session.

Theory of operation
-------------------
xknx runs on the node's asyncio loop (`moat_log.adapters.knx.bus`); its
telegram callback hands each group telegram, as plain data, to a trio
memory channel.  `KnxSession.serve` takes what is there in one go, decodes
each telegram with the mapping's codec, and writes the changes in one
burst through the node's writer:

* a payload the entry's datapoint type cannot hold (a wrong length, 7F FF)
  is bad data: counted, logged rarely, never stored;
* with ``changes_only`` (the default) a value equal to the path's current
  value is no event (``suppressed``): an actuator's feedback of a value we
  sent, a periodic re-send, the answers to our reads on start;
* our own telegrams are not read back: a tunnel does not deliver them,
  routing ignores its own frames, and a telegram with our individual
  address as its source is dropped.

If the channel is full (the journal slower than the bus for a long time),
telegrams are dropped and counted in the ``lost`` detail of status, never
silently.

`KnxSession.send` writes each owned path's new value as a GroupValueWrite,
confirmed by the gateway one after the other; a telegram the gateway does
not confirm ends the connection (`BusUnavailableError`) and the same
changes go to the next one.  Not sent: a value this node stored from a
telegram on the path's listened address (a wall switch on a ``both``
address, an actuator's report on its state address; the event's source
says so), as the bus has it already; a delete (KNX has no "no value"); a
value the datapoint type cannot carry (logged and counted as bad).

On connecting, the session asks for the current value of every listened
address whose entry says ``read_on_start`` (GroupValueRead, at most
``rate_limit`` per second); the answers (GroupValueResponse) are stored like
any telegram.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import trio

from moat_log.errors import BusDataError, BusUnavailableError
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem
from moat_log.path import Path

from ..asyncio_bridge import AsyncioBridge
from ..contract import AdapterLink
from .bus import send_reads, send_writes
from .dpt import Value
from .mapping import BusTelegram, GroupPoint, KnxMapping, format_group_address

__all__ = ["KnxSession"]

log = logging.getLogger("moat_log.adapters.knx")

#: Telegrams written to the journal in one burst at most.
BURST: Final = 500


class KnxSession:
    """Serves one gateway connection: telegrams in, owned changes out."""

    def __init__(
        self,
        link: AdapterLink,
        mapping: KnxMapping,
        bridge: AsyncioBridge,
        xknx: Any,
        telegrams: trio.MemoryReceiveChannel[BusTelegram],
        *,
        interval: float,
    ) -> None:
        self.link = link
        self.mapping = mapping
        self.bridge = bridge
        self.xknx = xknx
        self.telegrams = telegrams
        self.interval = interval
        self._lock = trio.Lock()
        #: Set when xknx says the connection went away.
        self.lost = trio.Event()

    @property
    def start_position(self) -> int:
        return 0  # KNX keeps no state to repair from; every change is sent once more at most

    # ------------------------------------------------------------------ out

    async def send(self, items: Sequence[FeedItem]) -> None:
        writes: list[tuple[int, bytes | int]] = []
        for item in items:
            event = item.event
            if event.op is Op.DELETE:
                continue
            if self._came_from_bus(event):
                continue  # the bus has it
            try:
                writes.append(self.mapping.outgoing(event.path, event.value))
            except BusDataError as exc:
                point = self.mapping.point_of(event.path)
                where = str(event.path) if point is None else format_group_address(point.address)
                self.link.bad_data(f"{where} (sending {event.path})", str(exc))
        if not writes:
            return
        async with self._lock:
            if self.lost.is_set():
                raise BusUnavailableError("KNX: the connection is gone")
            try:
                sent = await self.bridge.run(send_writes, self.xknx, writes, self.interval)
            except BusUnavailableError:
                self.lost.set()  # the connection ends: serve() stops, the supervisor reconnects
                raise
            self.link.status.count("sent", sent)

    def _came_from_bus(self, event: Event) -> bool:
        """Whether this node stored *event* from a telegram on the path's listened address."""
        point = self.mapping.point_of(event.path)
        listen = None if point is None else point.listen_address
        if listen is None or event.origin != self.link.node_name:
            return False
        return event.source.startswith(self.link.source(f"{format_group_address(listen)} from "))

    # ------------------------------------------------------------------- in

    async def read_on_start(self) -> None:
        """Ask the bus for the current values of the entries that say so."""
        addresses = self.mapping.reads_on_start()
        if addresses:
            async with self._lock:
                await self.bridge.run(send_reads, self.xknx, addresses, self.interval)

    async def serve(self) -> None:
        """Turn telegrams into events until the connection goes (`BusUnavailableError`)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_connection, nursery.cancel_scope.cancel)
            nursery.start_soon(self.read_on_start)
            while True:
                batch = [await self.telegrams.receive()]
                while len(batch) < BURST:
                    try:
                        batch.append(self.telegrams.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self.take(batch)
        raise BusUnavailableError("KNX: the gateway closed the connection")

    async def _watch_connection(self, stop: Callable[[], None]) -> None:
        await self.lost.wait()
        stop()

    async def take(self, telegrams: Sequence[BusTelegram]) -> None:
        """Store what *telegrams* say (bad data and unchanged values apart)."""
        link = self.link
        link.status.count("received", len(telegrams))
        decoded: list[tuple[BusTelegram, GroupPoint, Value]] = []
        for telegram in telegrams:
            try:
                found = self.mapping.incoming(telegram)
            except BusDataError as exc:
                link.bad_data(_address(telegram), str(exc))
                continue
            if found is not None:
                decoded.append((telegram, *found))
        if not decoded:
            return
        changes = await self._changes(decoded)
        if changes:
            await link.write(changes)

    async def _changes(
        self, decoded: Sequence[tuple[BusTelegram, GroupPoint, Value]]
    ) -> list[Change]:
        watched = sorted({point.path for _, point, _ in decoded if point.changes_only})
        current: dict[Path, object] = {}
        if watched:
            for path, event in zip(watched, await self.link.current(watched), strict=True):
                if event is not None and event.op is not Op.DELETE:
                    current[path] = event.value
        changes: list[Change] = []
        for telegram, point, value in decoded:
            if point.changes_only and point.path in current and _same(current[point.path], value):
                self.link.status.count("suppressed")
                continue
            current[point.path] = value
            changes.append(Change(point.path, value, source=self.link.source(_address(telegram))))
        return changes


def _address(telegram: BusTelegram) -> str:
    """The source's bus address: ``1/2/3 from 1.1.5`` (the group address, then the sender)."""
    return f"{format_group_address(telegram.destination)} from {telegram.source}"


def _same(stored: object, value: Value) -> bool:
    return type(stored) is type(value) and stored == value
