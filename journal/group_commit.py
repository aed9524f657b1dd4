"""Group commit: the thin trio shell around `Journal.write_batch`.

Any number of tasks call `JournalWriter.append` / `insert` concurrently.  Each
request joins the currently open batch and waits on that batch's event.  One
writer task takes the whole open batch, runs it as one LMDB transaction with
one fsync in a worker thread, then wakes every caller of the batch with its
own result.  While a batch is being committed the next one fills up, so the
batch size adapts to the load: one request alone is committed at once (one
fsync of latency), a thousand concurrent requests share a few fsyncs.

A caller is answered only after its batch committed: an acknowledged append
is on disk.  On shutdown, requests already queued are committed; later ones
get `JournalClosedError`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from moat_log.errors import JournalClosedError, MoatLogError
from moat_log.event import Event

from .batch import WriteResult
from .change import Change
from .store import Journal


class _OpenBatch:
    __slots__ = ("committed", "error", "items", "results")

    def __init__(self) -> None:
        self.items: list[Change | Event] = []
        self.results: list[WriteResult] = []
        self.error: BaseException | None = None
        self.committed = trio.Event()


class JournalWriter:
    """Appends to a `Journal` with group commit.  Create with `open_journal`."""

    def __init__(self, journal: Journal, *, max_batch: int = 8192) -> None:
        self.journal = journal
        self._max_batch = max_batch
        self._open = _OpenBatch()
        self._sealed: list[_OpenBatch] = []  # full batches waiting for the writer
        self._work = trio.Event()
        self._closing = False
        self._stopped = trio.Event()

    async def append(self, change: Change) -> Event:
        """Append a local change; returns the stored event once it is durable."""
        result = await self.write(change)
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

    async def write(self, item: Change | Event) -> WriteResult:
        """Queue one item and wait until its batch is committed."""
        if self._closing:
            raise JournalClosedError("the journal writer is shut down; the write was refused")
        batch = self._open
        index = len(batch.items)
        batch.items.append(item)
        if len(batch.items) >= self._max_batch:
            self._sealed.append(batch)
            self._open = _OpenBatch()
        self._work.set()
        await batch.committed.wait()
        if batch.error is not None:
            raise batch.error
        return batch.results[index]

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
            for batch in [*self._sealed, self._open]:
                if batch.items and not batch.committed.is_set():
                    batch.error = JournalClosedError("the journal writer stopped; not written")
                    batch.committed.set()
            self._stopped.set()

    async def _serve(self) -> None:
        while True:
            await self._work.wait()
            # Let every task that is already runnable (typically the callers
            # just woken by the previous commit) queue its request first, so
            # they share this batch instead of forming a train of small ones.
            # A lone request waits for one scheduler pass, microseconds.
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._work = trio.Event()
            pending, self._sealed = self._sealed, []
            if self._open.items:
                pending.append(self._open)
                self._open = _OpenBatch()
            for batch in pending:
                await self._commit(batch)
            if self._closing and not self._open.items and not self._sealed:
                return

    async def _commit(self, batch: _OpenBatch) -> None:
        try:
            batch.results = await trio.to_thread.run_sync(self.journal.write_batch, batch.items)
        except MoatLogError as exc:
            batch.error = exc
        except BaseException as exc:
            batch.error = JournalClosedError(f"the write was interrupted: {exc!r}")
            batch.committed.set()
            raise
        batch.committed.set()

    async def close(self) -> None:
        """Refuse new writes and wait until queued ones are committed."""
        self._closing = True
        self._work.set()
        await self._stopped.wait()


@asynccontextmanager
async def open_journal(
    data_dir: str | os.PathLike[str], *, node: str | None = None, **kwargs: Any
) -> AsyncIterator[JournalWriter]:
    """Open (with *node*: create if needed) a journal and run its writer.

    ``async with open_journal(dir) as writer: await writer.append(change)``
    """
    if node is None:
        journal = await trio.to_thread.run_sync(lambda: Journal.open(data_dir, **kwargs))
    else:
        journal = await trio.to_thread.run_sync(lambda: Journal.create(data_dir, node, **kwargs))
    try:
        async with trio.open_nursery() as nursery:
            writer = JournalWriter(journal)
            await nursery.start(writer.run)
            try:
                yield writer
            finally:
                with trio.CancelScope(shield=True):
                    await writer.close()
    finally:
        journal.close()
