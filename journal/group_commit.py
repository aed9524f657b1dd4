"""Group commit: the thin trio shell around `Journal.write_batch`.

Any number of tasks call `JournalWriter.append` / `insert` concurrently.  Each
request joins the currently open batch and its task goes to sleep.  One
writer task takes the whole open batch, runs it as one LMDB transaction with
one fsync in a worker thread, then wakes every caller of the batch directly
with its own result (`trio.lowlevel.reschedule`: no event, no lookup).  While
a batch is being committed the next one fills up, so the batch size adapts to
the load: one request alone is committed at once (one fsync of latency), a
thousand concurrent requests share a few fsyncs.

Each request says how soon it wants its commit (`Durability`).  A sync
request is committed as just described.  A batched one may wait up to
*flush_interval* seconds for company: while the open batch holds batched
requests only, the writer waits until the oldest of them is that old (or the
batch is full, or the writer closes), so that a trickle of sensor readings
costs one transaction and one flush per interval instead of one per
reading.  A sync request joining such a batch ends the wait: the whole
batch is committed at once.  Every commit is durable (LMDB ``sync``), so a
batched request is acknowledged on disk too; it only waits longer.

A caller is answered only after its batch committed: an acknowledged append
is on disk.  A queued request cannot be cancelled half way: its caller waits
until the batch is committed (or refused) and then sees the cancellation, so
nobody is left wondering whether a cancelled write happened.  On shutdown,
requests already queued are committed; later ones get `JournalClosedError`.

Because callers cannot give up, the writer answers every one of them
whatever happens.  A batch refused by the journal (a `MoatLogError`, e.g.
a full disk) fails alone and the writer goes on with the next.  Anything
else (a bug, a cancellation) stops the writer: the batch it interrupted and
every batch queued behind it are refused with `JournalClosedError`.  If
`on_commit` raises, its batch is on disk, so its callers get their results
all the same before the writer stops with the listener's error.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import outcome
import trio

from moat_log.durability import DEFAULT_FLUSH_INTERVAL, Durability
from moat_log.errors import JournalClosedError, MoatLogError
from moat_log.event import Event

from .batch import WriteResult
from .change import Change
from .item import FeedItem
from .store import Journal

log = logging.getLogger("moat_log.journal")


#: Called with the result of a `JournalWriter.submit` once its batch is done.
Callback = Callable[[WriteResult], None]


class _OpenBatch:
    __slots__ = ("deadline", "items", "waiters")

    def __init__(self) -> None:
        self.items: list[Change | Event] = []
        #: Per item, the task waiting in `write`, or the callback of `submit`.
        self.waiters: list[trio.lowlevel.Task | Callback] = []
        #: When the batch must be committed: now once it holds a sync item,
        #: else its oldest batched item's time plus the flush interval.
        self.deadline = math.inf

    def answer(self, results: list[WriteResult]) -> None:
        """Wake every caller with its own result."""
        for waiter, result in zip(self.waiters, results, strict=True):
            _tell(waiter, result, outcome.Value(result))
        self.waiters = []

    def fail(self, error: BaseException) -> None:
        """Wake every caller with (its own copy of) *error*."""
        for waiter in self.waiters:
            own = copy.copy(error)
            _tell(waiter, own, outcome.Error(own))
        self.waiters = []


def _tell(
    waiter: trio.lowlevel.Task | Callback, result: Any, as_outcome: outcome.Outcome[Any]
) -> None:
    if isinstance(waiter, trio.lowlevel.Task):
        trio.lowlevel.reschedule(waiter, as_outcome)
        return
    try:
        waiter(result)
    except Exception:
        log.exception("a write's callback failed")


def _cannot_abort(_: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


class JournalWriter:
    """Appends to a `Journal` with group commit.  Create with `open_journal`."""

    def __init__(
        self,
        journal: Journal,
        *,
        max_batch: int = 8192,
        on_commit: Callable[[int, list[FeedItem]], None] | None = None,
        durability: Durability = Durability.SYNC,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        self.journal = journal
        #: What a local change that does not say gets (foreign events: sync).
        self.durability = Durability.parse(durability)
        #: Seconds a batched request waits at most for its commit.
        self.flush_interval = flush_interval
        #: Told of each commit (the position before it, the items it stored)
        #: before its callers are answered: see `moat_log.journal.feed`.
        self.on_commit = on_commit
        self._max_batch = max_batch
        self._open = _OpenBatch()
        self._sealed: list[_OpenBatch] = []  # full batches waiting for the writer
        self._taken: deque[_OpenBatch] = deque()  # taken by the writer, not yet answered
        self._work = trio.Event()
        self._closing = False
        self._stopped = trio.Event()

    async def append(self, change: Change, *, durability: Durability | None = None) -> Event:
        """Append a local change; returns the stored event once it is durable."""
        result = await self.write(change, durability=durability)
        if isinstance(result, BaseException):
            raise result
        assert isinstance(result, Event)
        return result

    async def insert(self, event: Event) -> bool:
        """Insert a foreign event durably; False if it was already held."""
        result = await self.write(event)
        if isinstance(result, BaseException):
            raise result
        return bool(result)

    async def write(
        self, item: Change | Event, *, durability: Durability | None = None
    ) -> WriteResult:
        """Queue one item and wait until its batch is committed.

        *durability* None is the writer's default (`durability`).
        """
        self._queue(item, trio.lowlevel.current_task(), durability)
        result: WriteResult = await trio.lowlevel.wait_task_rescheduled(_cannot_abort)
        return result

    def submit(
        self, item: Change | Event, callback: Callback, *, durability: Durability | None = None
    ) -> None:
        """Queue one item without waiting: *callback* gets its result once committed.

        The result is what `write` returns: the `Event`, a bool for an
        insert, or the `MoatLogError` that refused the item (also
        `JournalClosedError` if the writer stopped first).  The callback
        runs in the writer task: it must not block, and should not raise.
        Raises `JournalClosedError` at once if the writer is shut down.
        """
        self._queue(item, callback, durability)

    def _queue(
        self,
        item: Change | Event,
        waiter: trio.lowlevel.Task | Callback,
        durability: Durability | None,
    ) -> None:
        if self._closing:
            raise JournalClosedError("the journal writer is shut down; the write was refused")
        batch = self._open
        batch.items.append(item)
        batch.waiters.append(waiter)
        if durability is None:  # the default is for local changes; replication goes on at once
            durability = self.durability if isinstance(item, Change) else Durability.SYNC
        if durability is Durability.SYNC:
            batch.deadline = -math.inf
        elif batch.deadline == math.inf:
            batch.deadline = trio.current_time() + self.flush_interval
        if len(batch.items) >= self._max_batch:
            self._sealed.append(batch)
            self._open = _OpenBatch()
        self._work.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task.  Returns after `close` once everything queued is committed.

        Whatever ends it (close, cancellation, an unexpected error), requests
        still queued are refused with `JournalClosedError` and `close` returns.
        """
        task_status.started()
        try:
            await self._serve()
        finally:
            self._closing = True
            for batch in [*self._taken, *self._sealed, self._open]:
                batch.fail(JournalClosedError("the journal writer stopped; not written"))
            self._taken.clear()
            self._stopped.set()

    async def _serve(self) -> None:
        while True:
            if not self._open.items and not self._sealed:
                if self._closing:
                    return
                await self._work.wait()
                # Let every task that is already runnable (typically the callers
                # just woken by the previous commit) queue its request first, so
                # they share this batch instead of forming a train of small ones.
                # A lone request waits for one scheduler pass, microseconds.
                await trio.lowlevel.cancel_shielded_checkpoint()
            self._work = trio.Event()
            while self._lingering():  # batched requests only: wait for company
                with trio.move_on_at(self._open.deadline):
                    await self._work.wait()
                self._work = trio.Event()
            self._take_due()
            # A batch leaves `_taken` only once answered, so that `run` can
            # refuse whatever is left if a commit ends the writer.
            while self._taken:
                await self._commit(self._taken[0])
                self._taken.popleft()

    def _lingering(self) -> bool:
        """Whether the open batch may wait: batched items only, none full, not closing."""
        if self._sealed or self._closing or not self._open.items:
            return False
        return trio.current_time() < self._open.deadline

    def _take_due(self) -> None:
        """Take the full batches, and the open one unless it may wait on."""
        self._taken.extend(self._sealed)
        self._sealed = []
        batch = self._open
        if batch.items and (self._closing or trio.current_time() >= batch.deadline):
            self._taken.append(batch)
            self._open = _OpenBatch()

    async def _commit(self, batch: _OpenBatch) -> None:
        try:
            committed = await trio.to_thread.run_sync(self.journal.commit, batch.items)
        except MoatLogError as exc:
            batch.fail(exc)
        except BaseException as exc:
            batch.fail(JournalClosedError(f"the write was interrupted: {exc!r}"))
            raise
        else:
            try:
                if self.on_commit is not None and committed.items:
                    self.on_commit(committed.after, committed.items)
            finally:  # durable either way: a raising listener ends the writer after this
                batch.answer(committed.results)

    async def close(self) -> None:
        """Refuse new writes and wait until queued ones are committed."""
        self._closing = True
        self._work.set()
        await self._stopped.wait()


@asynccontextmanager
async def open_journal(
    data_dir: str | os.PathLike[str],
    *,
    node: str | None = None,
    on_commit: Callable[[int, list[FeedItem]], None] | None = None,
    durability: Durability = Durability.SYNC,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    **kwargs: Any,
) -> AsyncIterator[JournalWriter]:
    """Open (with *node*: create if needed) a journal and run its writer.

    *durability* is the writer's default for requests that do not say, and
    *flush_interval* how long a batched request waits at most (seconds).

    ``async with open_journal(dir) as writer: await writer.append(change)``
    """
    if node is None:
        journal = await trio.to_thread.run_sync(lambda: Journal.open(data_dir, **kwargs))
    else:
        journal = await trio.to_thread.run_sync(lambda: Journal.create(data_dir, node, **kwargs))
    try:
        async with trio.open_nursery() as nursery:
            writer = JournalWriter(
                journal, on_commit=on_commit, durability=durability, flush_interval=flush_interval
            )
            await nursery.start(writer.run)
            try:
                yield writer
            finally:
                with trio.CancelScope(shield=True):
                    await writer.close()
    finally:
        journal.close()
