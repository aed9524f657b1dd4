"""The contract between the node and a bus adapter.

Theory of operation
-------------------
An adapter connects one bus (an MQTT broker, a KNX gateway, an owserver, a
Modbus device, a serial satellite) to the node.  It is configured as one
``[adapters.NAME]`` table in the node's config (`moat_log.adapters.config`)
and run by the node's supervisor (`moat_log.adapters.supervisor`), which
owns everything generic so that an adapter only speaks its bus:

* **In** (bus -> journal): the adapter turns a bus change into a `Change`
  and hands it to `AdapterLink.write`, the node's normal write path.  The
  change's ``source`` names the bus address (``mqtt:home/kitchen/light``,
  ``knx:1/2/3``: `AdapterLink.source`).  Data that does not decode goes to
  `AdapterLink.bad_data` instead: counted, logged once per address and
  then rarely, shown in status, and never stored.
* **Out** (journal -> bus): `Adapter.owns` says which paths the adapter
  writes to its bus.  The node runs a side-effect projection per adapter
  (`moat_log.adapters.output`) behind the journal: every committed change
  that wins an owned path, from any node, script or CLI, reaches
  `BusSession.send` in journal order, and after a restart it resumes from
  its checkpoint, so nothing is lost.
* **Connection**: `Adapter.run` connects, calls ``task_status.started``
  with a `BusSession` once the bus is usable, and then serves the bus
  until it goes away (raise `BusUnavailableError`) or it is cancelled.
  The supervisor reconnects with jittered back-off; whatever an adapter
  raises ends only that connection, never the node or another adapter.

Applying nothing twice is the session's part: changes the bus already
shows must not be sent again.  `AdapterLink.snapshot` returns the owned
state as of a journal position; an adapter that repairs its bus from it on
connect sets `BusSession.start_position` to that position, and the output
skips every change at or before it (the bus reflects them already).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import trio

from moat_log.errors import AdapterError, InvalidInputError
from moat_log.event import MAX_SOURCE_CHARS, Event
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem
from moat_log.path import Path

from .status import AdapterStatus, BadDataLog

if TYPE_CHECKING:
    from moat_log.durability import Durability
    from moat_log.node._node import Node

    from .asyncio_bridge import AsyncioBridge, LazyAsyncioBridge

__all__ = ["Adapter", "AdapterLink", "BusSession"]

log = logging.getLogger("moat_log.adapters")

#: Changes an adapter may have queued by `AdapterLink.submit` and not yet committed.
MAX_UNCOMMITTED: Final = 10_000


@runtime_checkable
class BusSession(Protocol):
    """One connection of an adapter to its bus, as the output side sees it."""

    @property
    def start_position(self) -> int:
        """Changes at or before this journal position are on the bus already (0: none)."""
        ...

    async def send(self, items: Sequence[FeedItem]) -> None:
        """Write *items* (owned paths' new winners, in journal order) to the bus.

        Return once the bus took them.  Raise `BusUnavailableError` if the
        connection went away: the same items go to the next session.  Must
        tolerate an item it has sent already (after a crash the output
        delivers the changes since its last checkpoint again).
        """
        ...


@runtime_checkable
class Adapter(Protocol):
    """One configured adapter instance (``[adapters.NAME]``)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    def owns(self, path: Path) -> bool:
        """Whether committed changes of *path* are written to this adapter's bus."""
        ...

    async def run(self, link: AdapterLink, *, task_status: trio.TaskStatus[BusSession]) -> None:
        """Connect, report the session when the bus is usable, then serve it.

        Raise `BusUnavailableError` (or anything) when the bus goes away:
        the supervisor reconnects after a back-off.
        """
        ...


class AdapterLink:
    """The node as one adapter sees it: write changes, read state, report trouble."""

    def __init__(
        self,
        node: Node,
        status: AdapterStatus,
        *,
        durability: Durability | None = None,
        bad_data_log: BadDataLog | None = None,
        asyncio_loop: LazyAsyncioBridge | None = None,
    ) -> None:
        self.node = node
        self.status = status
        self.durability = durability
        self._bad_data_log = bad_data_log or BadDataLog()
        self._uncommitted = 0
        self._committed = trio.Event()
        self._asyncio_loop = asyncio_loop

    @property
    def node_name(self) -> str:
        return self.node.name

    def source(self, address: str) -> str:
        """The event source for bus *address*: ``TYPE:ADDRESS``, cut to the allowed length."""
        return f"{self.status.type}:{address}"[:MAX_SOURCE_CHARS]

    async def write(self, changes: Sequence[Change]) -> list[Event | None]:
        """Append *changes* in order through the node's writer; wait until all are durable.

        Returns the stored event of each, or None where the journal refused
        it (logged, counted as ``refused``) or its value does not fit the
        path's type (`bad_data`, with the type's reason: docs/types.md); a
        refusal never ends the adapter.
        """
        results: list[Event | None] = [None] * len(changes)
        checked = self._fitting(changes)
        left = len(checked)
        done = trio.Event()

        def answered(index: int, result: object) -> None:
            nonlocal left
            results[index] = self._stored(changes[index], result)
            left -= 1
            if not left:
                done.set()

        writer = self.node.writer
        for index, change in checked:
            writer.submit(change, partial(answered, index), durability=self.durability)
        if checked:
            await done.wait()
        return results

    def _fitting(self, changes: Sequence[Change]) -> list[tuple[int, Change]]:
        """The changes (with their index) whose values fit their paths' types.

        The others are bad data from their source's address, with the
        type's reason (`moat_log.write_check`), and are not stored.
        """
        fitting = []
        for index, change in enumerate(changes):
            try:
                self.node.check(change)
            except InvalidInputError as exc:
                self.bad_data(change.source, str(exc))
                continue
            fitting.append((index, change))
        return fitting

    async def submit(self, changes: Sequence[Change]) -> None:
        """Queue *changes* for the journal in order, without waiting for their commit.

        For a bus that is read again anyway (a polled device): the next poll
        need not wait for the last one's fsync.  Refusals are logged and
        counted as for `write`.  Waits only while more than `MAX_UNCOMMITTED`
        changes of this adapter are uncommitted, so a fast bus cannot queue
        without bound.
        """
        while self._uncommitted > MAX_UNCOMMITTED:
            await self._committed.wait()
        writer = self.node.writer
        for _, change in self._fitting(changes):
            self._uncommitted += 1
            writer.submit(change, partial(self._submitted, change), durability=self.durability)
        await trio.lowlevel.checkpoint()

    def _submitted(self, change: Change, result: object) -> None:
        self._uncommitted -= 1
        self._stored(change, result)
        if self._uncommitted <= MAX_UNCOMMITTED:
            self._committed.set()
            self._committed = trio.Event()

    def _stored(self, change: Change, result: object) -> Event | None:
        """Count the writer's answer to *change* (in the writer task: must not raise)."""
        if isinstance(result, Event):
            self.status.count("written")
            return result
        self.status.count("refused")
        log.warning("adapter %s: the journal refused %s: %s", self.status.name, change.path, result)
        return None

    async def current(self, paths: Sequence[Path]) -> list[Event | None]:
        """The winning event of each of *paths* (a delete, or None if never set)."""
        kv = self.node.kv
        return await self.node.read(lambda: [kv.get(path) for path in paths])

    async def snapshot(self, prefixes: Sequence[Path]) -> tuple[int, list[Event]]:
        """The winners under *prefixes* (deletes included) and the position they are as of."""
        kv = self.node.kv
        return await self.node.read(lambda: kv.snapshot(prefixes, deleted=True))

    async def newest_from(
        self, paths: Sequence[Path], source_prefix: str, *, look_back: int = 1000
    ) -> dict[Path, Event]:
        """The newest event of each of *paths* whose source starts with *source_prefix*.

        For a bus that numbers what it reports (serial satellites): the
        journal says what was stored last, also after ``kill -9``.  Each
        path's history is read from its newest event back, at most
        *look_back* events of it; a path without such an event is left out.
        """
        journal = self.node.journal

        def newest() -> dict[Path, Event]:
            found: dict[Path, Event] = {}
            for path in paths:
                for seen, event in enumerate(journal.history(path, reverse=True)):
                    if seen >= look_back:
                        break
                    if event.source.startswith(source_prefix):
                        found[path] = event
                        break
            return found

        return await self.node.read(newest)

    def asyncio_bridge(self) -> AsyncioBridge:
        """The node's asyncio loop (started on first use), for asyncio-only bus libraries.

        Every adapter of the node shares it; it stops when the node's adapters stop.
        """
        if self._asyncio_loop is None:
            raise AdapterError("this adapter link has no asyncio loop (run_adapters gives one)")
        return self._asyncio_loop.get()

    def bad_data(self, address: str, problem: str) -> None:
        """Bus data from *address* was bad (*problem* says how): count it, log it rarely."""
        status = self.status
        status.count("bad")
        status.last_bad = f"{address}: {problem}"
        repeats = self._bad_data_log.should_log(address, time.time())
        if repeats is None:
            return
        more = f" ({repeats} more since the last report)" if repeats else ""
        log.warning(
            "adapter %s: bad data from %s, not stored: %s%s", status.name, address, problem, more
        )

    def detail(self, key: str, value: Any) -> None:
        """Show *value* under *key* in the adapter's status (its broker, its role, ...)."""
        self.status.detail(key, value)
