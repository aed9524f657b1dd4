"""The running node's shared state: the journal writer and feed, the KV view.

Every event the journal stores reaches the watchers, followers and sync
links through their subscriptions to the journal feed
(`moat_log.journal.feed`): the node's own writes right after their commit,
before the writer is answered (and without reading the KV view again: the
commit says which events won their paths), and writes of other processes on
the same data directory (an offline ``moat-log set``, an import) as soon as
the feed reads them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from importlib import metadata
from itertools import islice
from typing import Any, Final, TypeVar

import trio

from moat_log.adapters.output import output_name
from moat_log.adapters.status import AdapterStatus
from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.journal.feed import JournalFeed
from moat_log.journal.group_commit import JournalWriter
from moat_log.journal.item import FeedItem
from moat_log.projections import kv_view
from moat_log.projections.runner import RunnerState, side_effect_status
from moat_log.protocol import PROTOCOL_VERSION, Authenticator, TokenVerifier, Verifier
from moat_log.reserved import RESERVED
from moat_log.write_check import WriteCheck

from ._in_process import InProcessListener
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


class Node:
    """What the listeners and client sessions of one node share."""

    def __init__(self, config: NodeConfig, writer: JournalWriter, *, secret: bytes | None) -> None:
        self.config: Final = config
        self.writer: Final = writer
        self.journal: Final = writer.journal
        self.name: Final = writer.journal.node
        self.kv: Final = kv_view(writer.journal)
        #: Run `feed.run` beside the node (the server does).
        self.feed: Final = JournalFeed(writer.journal)
        #: The types and the rules of ``:.moat`` every local write is checked against;
        #: `moat_log.node._types` keeps them current.
        self.checks: Final = WriteCheck()
        writer.on_commit = self._committed
        self.authenticator: Final = _authenticator(config, secret)
        #: Filled in by the server once its listeners are open.
        self.addresses: list[str] = []
        #: The node's replication (`moat_log.node._sync.SyncState`), if configured.
        self.sync: Any = None
        #: Each side-effect projection's runner (`moat_log.projections.runner`), by name.
        self.side_effects: dict[str, RunnerState] = {}
        #: Each bus adapter's status (`moat_log.adapters.status`), by name.
        self.adapters: dict[str, AdapterStatus] = {}
        #: The node's scripts (`moat_log.scripts.runner.ScriptSupervisor`), once they run.
        self.scripts: Any = None
        #: Each energy schedule's run (`moat_log.projections.ems.runner`), by name.
        self.schedules: dict[str, Any] = {}
        #: Connections from this process (`connect_in_process`); the server accepts them.
        self.in_process: Final = InProcessListener()
        self.connections = 0
        self.software: Final = _software_version()
        self._read_threads = trio.CapacityLimiter(READ_THREADS)

    def live_nodes(self) -> set[str]:
        """This node and the peers whose sync link is up: who may act for the cluster now.

        Scripts placed on "any" node and the energy schedule's writer are
        chosen from these.
        """
        peers = self.sync.replicator.peers() if self.sync is not None else {}
        return {self.name, *peers}

    def connect_in_process(self) -> trio.SocketStream:
        """A connection to this node from its own process, served like a local one.

        Raises `NodeConnectionError` once the node has stopped.
        """
        return self.in_process.connect()

    def _committed(self, after: int, items: list[FeedItem]) -> None:
        """Hand a commit to the feed, and learn its types before its writers are answered.

        So a client that stored a type and then writes a path of it is
        checked against it, whichever task serves the next write.  Types
        that other processes store reach `moat_log.node._types` by the feed.
        """
        self.feed.committed(after, items)
        reserved = RESERVED[0]
        for item in items:
            path = item.event.path
            if path and tuple.__getitem__(path, 0) == reserved:  # no Path.__getitem__: hot
                self.checks.types.apply(item.event)

    def check(self, change: Change, user: str | None = None) -> None:
        """Raise unless *change* may be written (its type, the reserved paths: `WriteCheck`)."""
        self.checks.check(change.path, change.op, change.value, user)

    async def write(self, change: Change, *, user: str | None = None) -> Event:
        """Check and append *change* durably; returns the stored event (watchers know already)."""
        self.check(change, user)
        return await self.writer.append(change)

    async def read_chunk_at(
        self, items: Iterator[T], size: int = READ_CHUNK
    ) -> tuple[list[T], int]:
        """`read_chunk`, and a journal position at least as new as what the chunk read."""

        def read() -> tuple[list[T], int]:
            chunk = list(islice(items, size))
            return chunk, self.journal.last_position

        return await self.read(read)

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
            "side_effects": side_effect_status(
                self.side_effects, self.journal.checkpoints(), stats.last_position
            ),
            "adapters": {
                name: adapter.report(self._output_lag(name, stats.last_position))
                for name, adapter in self.adapters.items()
            },
            **({"scripts": self.scripts.status()} if self.scripts is not None else {}),
            "ems": {name: run.status() for name, run in self.schedules.items()},
            "connections": self.connections,
            "listen": list(self.addresses),
            **({"sync": self.sync.status()} if self.sync is not None else {}),
        }

    def _output_lag(self, adapter: str, last_position: int) -> int | None:
        runner = self.side_effects.get(output_name(adapter))
        return None if runner is None else max(last_position - runner.applied, 0)


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
