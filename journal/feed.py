"""The journal feed: every event a journal stores, in position order, whoever stored it.

The feed is the node's one in-process bus: every part that reacts to
committed events subscribes to it::

    with feed.subscribe(after=checkpoint, prefix=Path.parse("home")) as subscription:
        async for item in subscription:      # a FeedItem
            item.position, item.event, item.packed, item.winner

A subscription starts from any position (catching up from the journal,
then live, with no gap and no duplicate), is bounded, and reports an
overflow (`moat_log.journal.subscription`).  Each item carries the bytes the
journal stored, shared by every subscriber, and whether the event was its
path's new winner when it was stored (`moat_log.journal.item`).

Theory of operation
-------------------
Subscribers must hear of every event the journal stores:
the node's own writes, foreign events arriving by sync, and writes of
*other processes* on the same data directory (an offline ``moat-log set``,
an import).  Positions are gapless and LMDB commits are atomic, so "every
event, in order" is simply "every position, in order".

The feed keeps `position`, the last position handed out.

* The writer of this process reports each commit (`committed`) right after
  it is durable and before its callers are answered.  When the commit
  starts where the feed stands, its items go to the subscribers at once: no
  read, no task switch, no latency.
* When a commit starts *after* the feed's position, somebody else wrote in
  between (a gap).  The commit waits in `_pending`; the `run` task reads the
  gap from the journal (in a worker thread, in chunks), hands it out, then
  the pending commits follow in order.
* Commits by other processes at the end of the journal show no gap until
  the next local commit, so `run` also polls the journal's last position
  every *poll_interval* seconds.

`caught_up(position)` waits until everything up to *position* was handed
out; a watch needs that between reading its dump and going live
(`moat_log.projections.watch`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Final

import trio

from moat_log.errors import FeedOverflowError, JournalCorruptError, MoatLogError
from moat_log.event import Event
from moat_log.path import Path

from .item import FeedItem, WinnerTracker
from .store import Journal
from .subscription import DEFAULT_LIMIT, Overflow, Subscription, SubscriptionState

__all__ = [
    "FeedItem",
    "FeedOverflowError",
    "JournalFeed",
    "Overflow",
    "Subscription",
]

log = logging.getLogger("moat_log.journal")

#: Events read from the journal per worker-thread call while filling a gap.
GAP_CHUNK: Final = 1024
#: Subscriptions reading from the journal at once (see `JournalFeed.catch_up_limiter`).
CATCH_UP_THREADS: Final = 2
#: How often the feed looks for commits of other processes at the journal's end.
POLL_INTERVAL: Final = 0.25


class JournalReader:
    """Reads positions back from the journal as feed items (in a worker thread).

    One reader per sequence of consecutive reads: its `WinnerTracker`
    carries each path's greatest ``(hlc, origin)`` from one read to the next.
    """

    def __init__(self, journal: Journal, prefix: Path | None = None) -> None:
        self._journal = journal
        self._prefix = prefix
        self._winners = WinnerTracker(journal.greatest_before)

    def __call__(self, start: int, end: int) -> list[FeedItem]:
        """The items at positions ``start..end`` (under the prefix); all must exist."""
        raw = list(self._journal.scan_raw(start, end))
        if len(raw) != end - start + 1:
            raise JournalCorruptError(
                f"positions {start}..{end} should all hold events, "
                f"{len(raw)} do; run 'moat-log verify'"
            )
        read = [(position, Event.unpack_trusted(data), data) for position, data in raw]
        prefix = self._prefix
        if prefix is not None:
            read = [entry for entry in read if prefix.is_prefix_of(entry[1].path)]
        flags = self._winners.judge(start, end, ((p, e) for p, e, _ in read))
        return [
            FeedItem(position, event, data, winner)
            for (position, event, data), winner in zip(read, flags, strict=True)
        ]


class JournalFeed:
    """Hands every event stored in *journal* after *position* to its subscribers."""

    def __init__(
        self,
        journal: Journal,
        *,
        position: int | None = None,
        poll_interval: float = POLL_INTERVAL,
        catch_up_threads: int = CATCH_UP_THREADS,
    ) -> None:
        self.journal: Final = journal
        #: Bounds the worker threads of subscriptions catching up at once, so
        #: that many of them never keep the group-commit writer from a thread.
        self.catch_up_limiter: Final = trio.CapacityLimiter(catch_up_threads)
        #: The last position handed to the subscriptions.
        self.position = journal.last_position if position is None else position
        self._poll_interval = poll_interval
        self._subscriptions: list[Subscription] = []
        self._reader = JournalReader(journal)
        self._pending: deque[tuple[int, Sequence[FeedItem]]] = deque()
        self._waiters: list[tuple[int, trio.Event]] = []
        self._wakeup = trio.Event()
        self._failure = ""  # the last error reported by `run`

    @property
    def poll_interval(self) -> float:
        """Seconds between looks for other processes' commits."""
        return self._poll_interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        """Change the interval; it applies at once, not after the wait under way."""
        self._poll_interval = seconds
        self._wakeup.set()

    def subscribe(
        self,
        *,
        after: int | None = None,
        prefix: Path | None = None,
        limit: int = DEFAULT_LIMIT,
        on_overflow: Overflow = Overflow.RAISE,
    ) -> Subscription:
        """Subscribe to every event stored at a position after *after*.

        Each is delivered once, in position order, as a `FeedItem`.
        Without *after* the subscription starts at the feed's `position`
        (what is stored from now on).  An *after* behind the feed is caught
        up from the journal in chunks (in a worker thread) before the
        subscription goes live; one beyond the feed skips the positions up
        to it.  With *prefix*, only events of that path and the paths below
        it are delivered (the others are still counted in
        `Subscription.position`).

        A live subscription buffers at most *limit* items for a subscriber
        that does not keep up; then *on_overflow* decides (`Overflow`): end
        with `FeedOverflowError` after delivering what it buffered (the
        default), or fall back to reading from the journal.

        Use the subscription as a context manager, or `Subscription.close` it.
        """
        if type(after) is not int and after is not None:
            raise TypeError(f"after must be a journal position (an int), not {after!r}")
        if after is not None and after < 0:
            raise ValueError(f"after must be a journal position (0 or more), not {after}")
        state = SubscriptionState(
            self.position if after is None else after,
            self.position,
            prefix=prefix,
            limit=limit,
            on_overflow=on_overflow,
        )
        subscription = Subscription(self, state, JournalReader(self.journal, prefix))
        self._subscriptions.append(subscription)
        return subscription

    @property
    def subscriptions(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscriptions)

    def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    # --- input --------------------------------------------------------------

    def committed(self, after: int, items: Sequence[FeedItem]) -> None:
        """This process committed *items* at positions ``after + 1`` ... (in commit order)."""
        if items:
            self._pending.append((after, items))
            self._drain()

    async def caught_up(self, position: int) -> None:
        """Wait until every event up to *position* was handed to the subscriptions."""
        if position <= self.position:
            return
        done = trio.Event()
        self._waiters.append((position, done))
        self._wakeup.set()  # it may be another process's write: look now
        await done.wait()

    # --- the task -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fill gaps and pick up other processes' commits, until cancelled."""
        task_status.started()
        while True:
            with trio.move_on_after(self._poll_interval):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            try:
                await self._fill_gaps()
            except MoatLogError as exc:  # a damaged journal: say so (once), keep trying
                if str(exc) != self._failure:
                    self._failure = str(exc)
                    log.error(  # noqa: TRY400 - the message says it all; no traceback per poll
                        "the journal feed cannot read past position %d: %s", self.position, exc
                    )
            else:
                self._failure = ""

    async def _fill_gaps(self) -> None:
        while True:
            if self._pending:
                target = self._pending[0][0]
            else:
                target = await trio.to_thread.run_sync(lambda: self.journal.last_position)
            start = self.position + 1
            if target < start:
                return
            end = min(target, start + GAP_CHUNK - 1)
            items = await trio.to_thread.run_sync(self._read, start, end)
            # While we read, the writer may have reported a commit that the
            # read also found (committed before the read began, reported
            # after it): the position moved past part of what we read.
            handed_out = self.position - (start - 1)
            self._hand_out(items[handed_out:], self.position)
            self._drain()

    def _read(self, start: int, end: int) -> list[FeedItem]:
        return self._reader(start, end)

    # --- output ---------------------------------------------------------------

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            after, events = pending[0]
            if after + len(events) <= self.position:
                pending.popleft()  # the gap reader got these already
                continue
            if after > self.position:
                self._wakeup.set()  # somebody else wrote in between: read it
                break
            assert after == self.position, "commits overlap"
            pending.popleft()
            self._hand_out(events, after)

    def _hand_out(self, items: Sequence[FeedItem], after: int) -> None:
        if not items:
            return
        for subscription in list(self._subscriptions):
            subscription.offer(items)
        self.position = after + len(items)
        if self._waiters:
            waiting = []
            for position, done in self._waiters:
                if position <= self.position:
                    done.set()
                else:
                    waiting.append((position, done))
            self._waiters = waiting
