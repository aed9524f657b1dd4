"""A bus in the test's memory, and an adapter for it: the adapter contract without a network.

`FakeBus` is what a test controls: whether it is up, what it sends in, what
it was sent.  `FakeAdapter` follows the contract (moat_log/adapters/contract.py)
like a real adapter: it connects, reports a session, turns bus messages into
changes and owned changes into bus writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from moat_log.adapters.config import AdapterConfig
from moat_log.adapters.contract import AdapterLink, BusSession
from moat_log.errors import BusDataError, BusUnavailableError
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem
from moat_log.path import Path


@dataclass
class FakeBus:
    """The far side: up or down, its messages in, what it was sent."""

    up: bool = True
    #: Raise this (not BusUnavailableError) when connecting: a bug in an adapter.
    crash: Exception | None = None
    sent: list[tuple[Path, Any, int]] = field(default_factory=list)  # (path, value, position)
    connects: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)
    _inbox: list[tuple[str, bytes]] = field(default_factory=list)
    _dropped: trio.Event = field(default_factory=trio.Event)
    #: How many sends block until `release` (a slow bus).
    blocked: trio.Event | None = None

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, predicate: Any) -> None:
        while not predicate():
            await self._changed.wait()

    def message(self, address: str, payload: bytes) -> None:
        self._inbox.append((address, payload))
        self.changed()

    def drop(self) -> None:
        """The bus goes away (the adapter's connection breaks)."""
        self.up = False
        self._dropped.set()
        self._dropped = trio.Event()
        self.changed()


class FakeSession:
    def __init__(self, bus: FakeBus, start_position: int) -> None:
        self.bus = bus
        self._start = start_position
        self.alive = True

    @property
    def start_position(self) -> int:
        return self._start

    async def send(self, items: Sequence[FeedItem]) -> None:
        if self.bus.blocked is not None:
            await self.bus.blocked.wait()
        if not self.alive or not self.bus.up:
            raise BusUnavailableError("fake bus: gone while sending")
        for item in items:
            self.bus.sent.append((item.event.path, item.event.value, item.position))
        self.bus.changed()


@dataclass
class FakeAdapter:
    name: str
    bus: FakeBus
    owned: Path = field(default_factory=lambda: Path(["out"]))
    type: str = "fake"
    repair: bool = False

    def owns(self, path: Path) -> bool:
        return path[: len(self.owned)] == self.owned

    async def run(self, link: AdapterLink, *, task_status: trio.TaskStatus[BusSession]) -> None:
        bus = self.bus
        bus.connects += 1
        bus.changed()
        if bus.crash is not None:
            raise bus.crash
        if not bus.up:
            raise BusUnavailableError("fake bus: nobody there")
        start = 0
        if self.repair:
            start, events = await link.snapshot([self.owned])
            for event in events:
                bus.sent.append((event.path, event.value, 0))
        session = FakeSession(bus, start)
        link.detail("bus", "fake")
        task_status.started(session)
        try:
            while bus.up:
                while bus._inbox:
                    address, payload = bus._inbox.pop(0)
                    link.status.count("received")
                    try:
                        value = int(payload)
                    except ValueError:
                        link.bad_data(address, str(BusDataError(f"{payload!r} is no number")))
                        continue
                    await link.write(
                        [Change(Path(["in", address]), value, source=link.source(address))]
                    )
                    bus.changed()
                await bus._changed.wait()
            raise BusUnavailableError("fake bus: went away")
        finally:
            session.alive = False


@dataclass(frozen=True)
class FakeSettings:
    name: str
    bus: FakeBus
    repair: bool = False

    def create(self) -> FakeAdapter:
        return FakeAdapter(self.name, self.bus, repair=self.repair)

    def describe(self) -> list[dict[str, object]]:
        return [
            {"path": "out", "address": "*", "direction": "out", "type": "int"},
            {"path": "in.+key", "address": "{key}", "direction": "in", "type": "int"},
        ]


def fake_config(name: str, bus: FakeBus, **kwargs: Any) -> AdapterConfig:
    repair = kwargs.pop("repair", False)
    kwargs.setdefault("reconnect_first", 0.001)
    kwargs.setdefault("reconnect_max", 0.002)
    return AdapterConfig(name, "fake", FakeSettings(name, bus, repair), **kwargs)
