"""A subscription to the journal feed: every stored event after a position, once, in order.

Theory of operation
-------------------
A subscription is in one of two modes.

* **Catching up**: it reads from the journal itself, a chunk of positions at
  a time in a worker thread, up to the position the feed has handed out
  (`JournalFeed.position`).  Nothing is buffered for it meanwhile: whatever
  the feed hands out is in the journal already, and the subscription reads
  it in its turn.  When a read ends exactly at the feed's position, no task
  ran in between (trio runs one task at a time), so the subscription goes
  **live** there: the next hand-out starts right after it.
* **Live**: the feed offers it every hand-out as it happens, which it keeps
  in a buffer of at most *limit* items (shared objects: a buffered item
  costs a reference, not a copy).  A hand-out that does not fit is an
  **overflow**: the subscription stops listening right after the last item
  it kept and then, by its `Overflow` policy, either ends with
  `FeedOverflowError` once its buffer is delivered, or catches up from
  the journal again (counted in `Subscription.overflows`).

So every position after *after* is delivered (or left out by the prefix
filter) exactly once and in order, whatever the feed and the subscriber do
in between.  `SubscriptionState` is that bookkeeping, pure and synchronous;
`Subscription` is the trio shell that waits and reads.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import trio

from moat_log.errors import FeedOverflowError
from moat_log.path import Path

from .item import FeedItem

if TYPE_CHECKING:
    from .feed import JournalFeed

__all__ = ["Overflow", "Subscription", "SubscriptionState"]

#: Items a live subscription buffers by default before it overflows.
DEFAULT_LIMIT: Final = 4096
#: Positions read from the journal per worker-thread call while catching up.
CATCH_UP_CHUNK: Final = 1024


class Overflow(enum.Enum):
    """What a live subscription does when a hand-out does not fit its buffer."""

    #: End with `FeedOverflowError` once the buffered items are delivered.
    RAISE = "raise"
    #: Read on from the journal, as when it started behind the feed.
    CATCH_UP = "catch-up"


#: Reads positions ``start..end`` from the journal as items under a prefix.
Reader = Callable[[int, int], list[FeedItem]]


class SubscriptionState:
    """The bookkeeping of one subscription, without trio and without the journal.

    *after*: deliver the positions after it.  *feed_position*: what the feed
    had handed out when the subscription began.
    """

    def __init__(
        self,
        after: int,
        feed_position: int,
        *,
        prefix: Path | None = None,
        limit: int = DEFAULT_LIMIT,
        on_overflow: Overflow = Overflow.RAISE,
    ) -> None:
        if limit < 1:
            raise ValueError(f"a subscription's limit must be at least 1, not {limit}")
        self.prefix: Final = prefix
        self.limit: Final = limit
        self.on_overflow: Final = on_overflow
        #: How often the live buffer overflowed.
        self.overflows = 0
        self._floor = after  # positions up to here are not delivered
        self._seen = min(after, feed_position)  # the last position buffered or skipped
        self._buffer: deque[FeedItem] = deque()
        self._ended_at: int | None = None  # set when an overflow ends the subscription
        self.live = self._seen == feed_position

    @property
    def position(self) -> int:
        """Every position up to this one was delivered or left out."""
        if self._buffer:
            return self._buffer[0].position - 1
        return max(self._seen, self._floor)

    @property
    def buffered(self) -> int:
        """Items waiting to be taken."""
        return len(self._buffer)

    @property
    def ended(self) -> bool:
        """An overflow ended it (`Overflow.RAISE`): `take` raises once the buffer is empty."""
        return self._ended_at is not None

    def wants(self, item: FeedItem) -> bool:
        """Whether *item* is for this subscription (after the start, under the prefix)."""
        if item.position <= self._floor:
            return False
        return self.prefix is None or self.prefix.is_prefix_of(item.event.path)

    # --- the feed's side ------------------------------------------------------

    def offer(self, items: Sequence[FeedItem]) -> None:
        """The feed hands out *items*, consecutive from its position + 1."""
        if not self.live or not items:
            return
        assert items[0].position == self._seen + 1, "the feed skipped or repeated positions"
        buffer = self._buffer
        fits = len(buffer) + len(items) <= self.limit
        if fits and self.prefix is None and items[0].position > self._floor:
            buffer.extend(items)  # the common case, kept fast
            self._seen = items[-1].position
            return
        for item in items:
            if self.wants(item):
                if len(buffer) >= self.limit:
                    self._overflow()
                    return
                buffer.append(item)
            self._seen = item.position

    def _overflow(self) -> None:
        self.live = False
        self.overflows += 1
        if self.on_overflow is Overflow.RAISE:
            self._ended_at = self._seen

    # --- the reader's side ----------------------------------------------------

    def to_read(self, feed_position: int, chunk: int = CATCH_UP_CHUNK) -> tuple[int, int] | None:
        """The positions to read from the journal next, or None (live, or items to take)."""
        if self.live or self._buffer or self._ended_at is not None:
            return None
        if self._seen >= feed_position:
            self.live = True
            return None
        return self._seen + 1, min(feed_position, self._seen + chunk)

    def read(self, end: int, items: Sequence[FeedItem], feed_position: int) -> None:
        """*items* are what the journal holds for us up to *end*, as asked by `to_read`.

        *feed_position* is the feed's position now: if the read reached it,
        the subscription is live from here on.
        """
        assert not self.live, "a live subscription does not read"
        self._buffer.extend(item for item in items if self.wants(item))
        self._seen = end
        if end >= feed_position:
            self.live = True

    # --- the subscriber's side ------------------------------------------------

    def take(self, max_items: int | None = None) -> list[FeedItem]:
        """Up to *max_items* buffered items (all without it); [] if there are none.

        Raises `FeedOverflowError` once an overflow ended the subscription
        and everything before it was taken.
        """
        buffer = self._buffer
        if not buffer:
            if self._ended_at is not None:
                raise FeedOverflowError(
                    f"the subscriber fell more than {self.limit} events behind the journal "
                    f"feed; everything up to position {self._ended_at} was delivered",
                    self._ended_at,
                )
            return []
        if max_items is None or max_items >= len(buffer):
            taken = list(buffer)
            buffer.clear()
            return taken
        return [buffer.popleft() for _ in range(max_items)]


class Subscription:
    """Every event stored after a position, once, in order: see `JournalFeed.subscribe`.

    Use it as a context manager (or `close` it), and receive from one task
    at a time: ``async for item in subscription`` or `receive_batch`.
    """

    def __init__(self, feed: JournalFeed, state: SubscriptionState, reader: Reader) -> None:
        self._feed = feed
        self._state = state
        self._reader = reader
        self._wakeup = trio.Event()
        self._receiving = False
        self._closed = False

    @property
    def position(self) -> int:
        """Every position up to this one was delivered (or left out by the prefix)."""
        return self._state.position

    @property
    def live(self) -> bool:
        """Whether it has caught up and hears the feed's hand-outs as they happen."""
        return self._state.live

    @property
    def overflows(self) -> int:
        """How often its buffer overflowed (with `Overflow.CATCH_UP`: how often it fell back)."""
        return self._state.overflows

    def offer(self, items: Sequence[FeedItem]) -> None:
        """Called by the feed with each hand-out (it must not block and does not raise)."""
        self._state.offer(items)
        self._wakeup.set()

    async def receive_batch(self, max_items: int | None = None) -> list[FeedItem]:
        """The next items, at least one and at most *max_items*, consecutive in position order.

        Waits for the feed when there is nothing to deliver; reads from the
        journal in a worker thread while catching up.  Raises
        `FeedOverflowError` (see `Overflow.RAISE`), `trio.ClosedResourceError`
        after `close`, `trio.BusyResourceError` if another task is receiving,
        and what the journal raises for a damaged record.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving from this subscription")
        self._receiving = True
        try:
            return await self._receive(max_items)
        finally:
            self._receiving = False

    async def _receive(self, max_items: int | None) -> list[FeedItem]:
        await trio.lowlevel.checkpoint()  # cancelled here, before anything is taken
        state = self._state
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the subscription is closed")
            items = state.take(max_items)
            if items:
                return items
            wanted = state.to_read(self._feed.position)
            if wanted is not None:
                # Not abandoned on cancellation: the read's result is kept.
                read = await trio.to_thread.run_sync(
                    self._reader, *wanted, limiter=self._feed.catch_up_limiter
                )
                state.read(wanted[1], read, self._feed.position)
                continue
            if not state.live:
                continue  # to_read has just made it live, or there is an error to take
            await self._wakeup.wait()
            self._wakeup = trio.Event()

    async def receive_through(self, position: int) -> list[FeedItem]:
        """Everything it holds up to at least *position*, perhaps nothing (and perhaps more).

        Waits until the feed has handed out *position* (`JournalFeed.caught_up`),
        reads from the journal while catching up, and then returns without
        waiting for anything newer: afterwards `position` is at least
        *position*.  A watch needs this between reading a chunk of its dump
        and going on.  Raises as `receive_batch` does; `FeedOverflowError`
        only once what came before it was returned.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving from this subscription")
        self._receiving = True
        try:
            await self._feed.caught_up(position)
            return await self._receive_through(position)
        finally:
            self._receiving = False

    async def _receive_through(self, position: int) -> list[FeedItem]:
        state = self._state
        items: list[FeedItem] = []
        while state.position < position or state.buffered:
            if self._closed:
                raise trio.ClosedResourceError("the subscription is closed")
            if items and state.ended and not state.buffered:
                return items  # the overflow is raised by the next call
            taken = state.take()
            if taken:
                items.extend(taken)
                continue
            wanted = state.to_read(self._feed.position)
            if wanted is not None:
                read = await trio.to_thread.run_sync(
                    self._reader, *wanted, limiter=self._feed.catch_up_limiter
                )
                state.read(wanted[1], read, self._feed.position)
        return items

    async def receive(self) -> FeedItem:
        """The next item; see `receive_batch`."""
        return (await self.receive_batch(1))[0]

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> FeedItem:
        return await self.receive()

    def close(self) -> None:
        """Stop listening; a task receiving gets `trio.ClosedResourceError`."""
        if not self._closed:
            self._closed = True
            self._feed._unsubscribe(self)
            self._wakeup.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
