"""The running node's shared state: the journal writer, the KV view, the watch hub.

Every write of the node goes through `Node.write`, which appends through
group commit and then publishes the committed event to the watchers.  Writes
by *other processes* on the same data directory (an offline ``moat-log set``)
reach the journal and the KV view, but no watcher hears of them: the node
learns of its own commits only (docs/node.md, "Limitations").
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable, Iterator
from importlib import metadata
from itertools import islice
from typing import Any, Final, TypeVar

import trio

from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.journal.group_commit import JournalWriter
from moat_log.projections import kv_view
from moat_log.protocol import PROTOCOL_VERSION, Authenticator, TokenVerifier, Verifier

from ._watch import WatchHub
from .config import NodeConfig

__all__ = ["Node"]

T = TypeVar("T")

#: Items per read of the KV view or journal in a worker thread.
READ_CHUNK: Final = 256
#: Worker threads for clients' reads at once: fewer than trio's default
#: limit, so that the group-commit writer always finds a thread.
READ_THREADS: Final = 8


def _software_version() -> str:
    try:
        return metadata.version("moat-log")
    except metadata.PackageNotFoundError:
        return "unknown"


class WriteTracker:
    """Which of the node's writes are still on their way to the watchers.

    A write counts from before its append until after its event was
    published.  `settled` waits until every write that started up to a given
    number is done: then every event committed before that moment has been
    published.  The watch dump needs this (see `moat_log.node._watch`).
    """

    def __init__(self) -> None:
        self.started = 0
        self._active: set[int] = set()
        self._heap: list[int] = []
        self._waiters: list[tuple[int, trio.Event]] = []

    def begin(self) -> int:
        self.started += 1
        self._active.add(self.started)
        heapq.heappush(self._heap, self.started)
        return self.started

    def end(self, number: int) -> None:
        self._active.discard(number)
        heap = self._heap
        while heap and heap[0] not in self._active:
            heapq.heappop(heap)
        if self._waiters:
            oldest = self._oldest()
            waiting = []
            for upto, event in self._waiters:
                if upto < oldest:
                    event.set()
                else:
                    waiting.append((upto, event))
            self._waiters = waiting

    def _oldest(self) -> float:
        return self._heap[0] if self._heap else math.inf

    async def settled(self, upto: int) -> None:
        """Wait until the writes numbered up to *upto* are all done."""
        if upto < self._oldest():
            return
        event = trio.Event()
        self._waiters.append((upto, event))
        await event.wait()


class Node:
    """What the listeners and client sessions of one node share."""

    def __init__(self, config: NodeConfig, writer: JournalWriter, *, secret: bytes | None) -> None:
        self.config: Final = config
        self.writer: Final = writer
        self.journal: Final = writer.journal
        self.name: Final = writer.journal.node
        self.kv: Final = kv_view(writer.journal)
        self.hub: Final = WatchHub()
        self.writes: Final = WriteTracker()
        self.authenticator: Final = _authenticator(config, secret)
        #: Filled in by the server once its listeners are open.
        self.addresses: list[str] = []
        self.connections = 0
        self.software: Final = _software_version()
        self._read_threads = trio.CapacityLimiter(READ_THREADS)

    async def write(self, change: Change) -> Event:
        """Append *change* durably, then tell the watchers; returns the stored event."""
        number = self.writes.begin()
        try:
            event = await self.writer.append(change)
            self._publish(event)
        finally:
            self.writes.end(number)
        return event

    def _publish(self, event: Event) -> None:
        if not self.hub.interested(event.path):
            return
        # Only the path's winner is news; if a later event already won, that
        # one is (or was) published by its own writer.
        winner = self.kv.get(event.path)
        if winner is None or (event.hlc, event.origin) >= (winner.hlc, winner.origin):
            self.hub.publish(event)

    async def read_chunk(self, items: Iterator[T], size: int = READ_CHUNK) -> list[T]:
        """The next up to *size* items of a synchronous (LMDB) iterator, read in a thread."""
        return await self.read(lambda: list(islice(items, size)))

    async def read(self, function: Callable[[], T]) -> T:
        """Run a synchronous read (LMDB) in a worker thread."""
        return await trio.to_thread.run_sync(function, limiter=self._read_threads)

    def status(self, user: str | None) -> dict[str, Any]:
        """The ``status`` result (docs/client-protocol.md and docs/node.md)."""
        stats = self.journal.stats()
        return {
            "node": self.name,
            "protocol": PROTOCOL_VERSION,
            "software": self.software,
            "user": user,
            "clock": stats.clock,
            "pid": os.getpid(),
            "journal": {
                "path": str(self.journal.path),
                "events": stats.events,
                "last_position": stats.last_position,
                "file_bytes": stats.file_bytes,
            },
            "views": {
                name: {"version": version, "checkpoint": checkpoint}
                for name, (version, checkpoint) in sorted(self.journal.views().items())
            },
            "connections": self.connections,
            "listen": list(self.addresses),
        }


def _authenticator(config: NodeConfig, secret: bytes | None) -> Authenticator | None:
    """The node's credentials; None without users (then nobody authenticates)."""
    if not config.users:
        return None
    passwords: dict[str, Verifier] = {}
    tokens: dict[str, TokenVerifier] = {}
    for name, user in config.users.items():
        if isinstance(user.verifier, Verifier):
            passwords[name] = user.verifier
        else:
            tokens[name] = user.verifier
    return Authenticator(passwords, tokens, secret=secret, decoy_params=config.scrypt_params)
