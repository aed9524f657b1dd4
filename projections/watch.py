"""Watching a subtree: the KV view's current winners, then every new winner from the feed.

A watch sends the current subtree, then the live marker, then every change
(docs/client-protocol.md, "watch"), with no change lost and none sent twice.
`SubtreeWatch` is that, for the node's ``watch`` request and for
``moat-log watch`` on a journal no node runs: both use this code.

Theory of operation
-------------------
1. **Subscribe first.**  The watch's feed subscription (`JournalFeed.subscribe`
   with the prefix) starts at the feed's position: every event stored from
   then on reaches it, with its winner flag (`moat_log.journal.item`).
   Only winners are news; an older event that arrives late changes nothing.
2. **Dump** the KV view's winners chunk by chunk.  The dump and the feed
   overlap: an event stored while the dump runs may or may not be in the
   chunk that holds its path.  `CatchUp` decides.  Winners of a path only
   grow (by ``(hlc, origin)``), so a buffered winner is already reflected in
   the dump exactly when the winner the dump read for its path is at least
   as great.  After each chunk the watch takes from its subscription
   everything up to a journal position at least as new as the chunk
   (`Subscription.receive_through`): every event the chunk may reflect is
   then in `CatchUp` before the chunk is compared, and events taken later
   were stored after the read and are newer than anything in it.
3. **Live.**  The caller sends the marker; `changes` gives the buffered
   winners that survived, then whatever the subscription receives.

A watcher that falls behind by more than *limit* changes is not allowed to
hold memory: the subscription overflows (`FeedOverflowError`, the node's
``overflow``), as does a dump during which more than *limit* changes wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from itertools import islice
from typing import Final

import trio

from moat_log.errors import FeedOverflowError
from moat_log.event import Event, Op
from moat_log.journal.feed import FeedItem, JournalFeed, Overflow, Subscription
from moat_log.path import Path

from .kv import KVView

__all__ = ["CatchUp", "SubtreeWatch"]

#: Reads the next chunk of a synchronous (LMDB) iterator in a worker thread,
#: and a journal position at least as new as what the chunk read.
ChunkReader = Callable[[Iterator[Event]], Awaitable[tuple[list[Event], int]]]

#: Winners read from the KV view per worker-thread call.
DUMP_CHUNK: Final = 256


def _sort_key(event: Event) -> tuple[int, str]:
    return event.hlc, event.origin


class CatchUp:
    """Winners taken from the feed during a dump, minus those the dump already holds.

    Pure bookkeeping, see the module docstring: `buffer` the winners
    received since the subscription began, tell it each winner the dump
    read (`dumped`, deleted paths included), and send `remaining` after the
    live marker.
    """

    def __init__(self) -> None:
        self._items: list[FeedItem | None] = []  # None: dropped
        self._by_path: dict[Path, list[int]] = {}
        self._kept = 0

    def __len__(self) -> int:
        """The number of buffered winners still to be sent."""
        return self._kept

    def buffer(self, item: FeedItem) -> None:
        self._by_path.setdefault(item.event.path, []).append(len(self._items))
        self._items.append(item)
        self._kept += 1

    def dumped(self, winner: Event) -> None:
        """The dump read *winner* for its path: drop the buffered winners it reflects."""
        indices = self._by_path.pop(winner.path, None)
        if indices is None:
            return
        read = _sort_key(winner)
        later = []
        for index in indices:
            item = self._items[index]
            assert item is not None
            if _sort_key(item.event) <= read:
                self._items[index] = None
                self._kept -= 1
            else:
                later.append(index)
        if later:
            self._by_path[winner.path] = later

    def remaining(self) -> Iterator[FeedItem]:
        """The winners to send after the live marker, in position order."""
        return (item for item in self._items if item is not None)


class SubtreeWatch:
    """The current subtree of *prefix* (`dump`), then each new winner (`changes`).

    Use it as a context manager (it holds a feed subscription).
    *read_chunk* reads the KV view in a worker thread (the node passes its
    own, with its limit of threads).  *limit* and *on_overflow* are the
    subscription's (`JournalFeed.subscribe`).
    """

    def __init__(
        self,
        feed: JournalFeed,
        kv: KVView,
        prefix: Path,
        *,
        limit: int,
        on_overflow: Overflow = Overflow.RAISE,
        read_chunk: ChunkReader | None = None,
    ) -> None:
        self.prefix: Final = prefix
        self.limit: Final = limit
        self._feed = feed
        self._kv = kv
        self._read_chunk = read_chunk or self._read_in_thread
        self._subscription: Subscription = feed.subscribe(
            prefix=prefix, limit=limit, on_overflow=on_overflow
        )
        self._catch_up = CatchUp()

    def __enter__(self) -> SubtreeWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._subscription.close()

    async def dump(self) -> AsyncIterator[Event]:
        """The subtree's current events (deleted paths left out), in path order."""
        winners = self._kv.walk(self.prefix, deleted=True)
        while True:
            chunk, position = await self._read_chunk(winners)
            self._buffer(await self._subscription.receive_through(position))
            for event in chunk:
                self._catch_up.dumped(event)
                if event.op is Op.SET:
                    yield event
            if not chunk:
                return

    async def _read_in_thread(self, winners: Iterator[Event]) -> tuple[list[Event], int]:
        journal = self._feed.journal

        def read() -> tuple[list[Event], int]:
            return list(islice(winners, DUMP_CHUNK)), journal.last_position

        return await trio.to_thread.run_sync(read)

    def _buffer(self, items: list[FeedItem]) -> None:
        catch_up = self._catch_up
        for item in items:
            if item.winner:
                catch_up.buffer(item)
        if len(catch_up) > self.limit:
            raise FeedOverflowError(
                f"more than {self.limit} changes arrived while the subtree was read",
                self._subscription.position,
            )

    async def changes(self) -> AsyncIterator[FeedItem]:
        """After the dump: every event that became its path's winner, in position order."""
        for item in self._catch_up.remaining():
            yield item
        self._catch_up = CatchUp()
        subscription = self._subscription
        while True:
            for item in await subscription.receive_batch():
                if item.winner:
                    yield item
