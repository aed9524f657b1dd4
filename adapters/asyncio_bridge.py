"""An asyncio event loop in a thread of its own, driven from trio.

Theory of operation
-------------------
Some bus libraries are asyncio-only (xknx, pymodbus's server).  They run on
one asyncio loop per node, in a thread of its own, and trio talks to them
through an `AsyncioBridge`:

* `AsyncioBridge.run` runs a coroutine function on the loop and waits for it
  in trio: its result comes back, its exception is raised in trio, and a
  cancellation of the waiting trio task cancels the asyncio task (and waits
  until it has ended, so nothing of it outlives the call).  An asyncio task
  cancelled from its own side (the loop stopping) raises
  `AsyncioCancelledError` in trio.
* `AsyncioBridge.call_in_trio` is for the library's callbacks, which run in
  the loop's thread: it schedules a plain function in the trio run without
  waiting (``trio.lowlevel.TrioToken.run_sync_soon``), and
  `AsyncioBridge.feeder` makes such a function that puts items into a trio
  memory channel, counting what a full channel could not take.
* Leaving `open_asyncio_bridge` cancels whatever still runs on the loop,
  stops it, closes it and joins its thread: no thread is left behind.

Not trio-asyncio: it fails to import on Python >= 3.14 (python-trio/
trio-asyncio#160) and needs the deprecated loop policies; a thread and two
thread-safe hand-overs (``loop.call_soon_threadsafe`` one way,
``run_sync_soon`` the other) are all a bus library needs.

A node's adapters share one loop: `LazyAsyncioBridge` starts it the first
time an adapter asks (`AdapterLink.asyncio_bridge`) and stops it when the
node's adapters stop, so a node without an asyncio library has no thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import outcome
import trio

from moat_log.errors import AdapterError

__all__ = [
    "AsyncioBridge",
    "AsyncioCancelledError",
    "LazyAsyncioBridge",
    "open_asyncio_bridge",
    "open_lazy_asyncio_bridge",
]

T = TypeVar("T")

#: How long closing waits for the loop's tasks to end after cancelling them.
CLOSE_TIMEOUT: Final = 5.0


class AsyncioCancelledError(AdapterError):
    """The asyncio task was cancelled on the asyncio side (its loop is stopping)."""


class AsyncioBridge:
    """One asyncio loop in its own thread, and the ways between it and trio.

    Made by `open_asyncio_bridge` (or `LazyAsyncioBridge`), used from the
    trio run that made it.
    """

    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, name="moat-log asyncio loop", daemon=True
        )
        self._closed = False
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            asyncio.set_event_loop(None)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` as an asyncio task on the loop; its result, or its exception."""
        if self._closed:
            raise AdapterError("the asyncio bridge is closed")
        done = trio.Event()
        result: list[outcome.Outcome[T]] = []
        task: list[asyncio.Task[T]] = []

        def finished(ended: asyncio.Task[T]) -> None:  # in the loop's thread
            result.append(outcome.capture(ended.result))
            self._soon(done.set)

        def start() -> None:  # in the loop's thread
            task.append(self.loop.create_task(_call(fn, args)))
            task[0].add_done_callback(finished)

        def cancel() -> None:  # in the loop's thread, after start (FIFO)
            task[0].cancel()

        self.loop.call_soon_threadsafe(start)
        try:
            await done.wait()
        except trio.Cancelled:
            self.loop.call_soon_threadsafe(cancel)
            with trio.CancelScope(shield=True):
                await done.wait()  # the task has ended: nothing of it runs on
            raise
        ended = result[0]
        if isinstance(ended, outcome.Error) and isinstance(ended.error, asyncio.CancelledError):
            raise AsyncioCancelledError(
                f"{getattr(fn, '__qualname__', fn)} was cancelled on the asyncio side"
            )
        return ended.unwrap()

    def call_in_trio(self, fn: Callable[..., object], *args: Any) -> bool:
        """From the loop's thread: run ``fn(*args)`` soon in trio, without waiting.

        *fn* must not raise (trio treats an exception there as its own
        crash).  Returns False if the trio run has ended (nothing to call).
        """
        return self._soon(fn, *args)

    def _soon(self, fn: Callable[..., object], *args: Any) -> bool:
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            return False
        return True

    def feeder(
        self, send: trio.MemorySendChannel[T], on_full: Callable[[T], object] | None = None
    ) -> Callable[[T], None]:
        """A function for the loop's thread that puts items into *send*, never blocking.

        An item the channel has no room for goes to *on_full* (in trio)
        instead; after the channel closed, items are dropped.
        """

        def put(item: T) -> None:
            try:
                send.send_nowait(item)
            except trio.WouldBlock:
                if on_full is not None:
                    on_full(item)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

        def feed(item: T) -> None:
            self._soon(put, item)

        return feed

    async def aclose(self) -> None:
        """Cancel what runs on the loop, stop it, close it and join its thread."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            stopped = asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop)
            await trio.to_thread.run_sync(stopped.result)
            self.loop.call_soon_threadsafe(self.loop.stop)
            await trio.to_thread.run_sync(self._thread.join)
            self.loop.close()


async def _call(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    return await fn(*args)


async def _cancel_all() -> None:
    me = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not me]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
    await asyncio.get_running_loop().shutdown_asyncgens()


@asynccontextmanager
async def open_asyncio_bridge() -> AsyncIterator[AsyncioBridge]:
    """An asyncio loop in a new thread for the duration of the block."""
    bridge = AsyncioBridge()
    try:
        yield bridge
    finally:
        await bridge.aclose()


class LazyAsyncioBridge:
    """The node's one asyncio loop, started when an adapter first needs it."""

    def __init__(self) -> None:
        self._bridge: AsyncioBridge | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._bridge is not None

    def get(self) -> AsyncioBridge:
        """The loop (started now if it was not yet)."""
        if self._closed:
            raise AdapterError("the node's asyncio loop has stopped")
        if self._bridge is None:
            self._bridge = AsyncioBridge()
        return self._bridge

    async def aclose(self) -> None:
        self._closed = True
        if self._bridge is not None:
            await self._bridge.aclose()


@asynccontextmanager
async def open_lazy_asyncio_bridge() -> AsyncIterator[LazyAsyncioBridge]:
    """A `LazyAsyncioBridge` whose loop (if it was started) stops when the block ends."""
    lazy = LazyAsyncioBridge()
    try:
        yield lazy
    finally:
        await lazy.aclose()
