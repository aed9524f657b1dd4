"""The asyncio loop thread that asyncio-only bus libraries run on (adapters/asyncio_bridge.py).

Results and exceptions come back to trio, cancellation goes both ways,
callbacks of the loop's thread reach trio channels, and leaving the bridge
stops the loop and its thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TypeVar

import pytest
import trio
import trio.testing

from moat_log.adapters.asyncio_bridge import (
    AsyncioCancelledError,
    open_asyncio_bridge,
    open_lazy_asyncio_bridge,
)
from moat_log.errors import AdapterError

T = TypeVar("T")


async def echo(value: T) -> T:
    await asyncio.sleep(0)
    return value


def bridge_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "moat-log asyncio loop"]


async def test_a_coroutine_runs_on_the_loop_thread_and_its_result_comes_back() -> None:
    async def where(a: int, b: int) -> tuple[int, str, bool]:
        await asyncio.sleep(0)
        return a + b, threading.current_thread().name, asyncio.get_running_loop().is_running()

    async with open_asyncio_bridge() as bridge:
        assert await bridge.run(where, 2, 3) == (5, "moat-log asyncio loop", True)


async def test_an_exception_of_the_coroutine_is_raised_in_trio() -> None:
    async def fails() -> None:
        raise KeyError("from asyncio")

    async with open_asyncio_bridge() as bridge:
        with pytest.raises(KeyError, match="from asyncio"):
            await bridge.run(fails)
        assert await bridge.run(echo, "still usable") == "still usable"


async def test_cancelling_the_trio_side_cancels_the_asyncio_task_and_waits_for_it() -> None:
    started, seen = trio.Event(), []

    async with open_asyncio_bridge() as bridge:

        async def forever() -> None:
            bridge.call_in_trio(started.set)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                seen.append("cancelled in asyncio")
                await asyncio.sleep(0)  # clean-up that awaits still runs
                seen.append("cleaned up")
                raise

        async with trio.open_nursery() as nursery:
            nursery.start_soon(bridge.run, forever)
            await started.wait()
            nursery.cancel_scope.cancel()
        assert seen == ["cancelled in asyncio", "cleaned up"]  # before run() returned


async def test_a_task_cancelled_on_the_asyncio_side_raises_in_trio() -> None:
    async def cancelled_by_asyncio() -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        await asyncio.sleep(0)

    async with open_asyncio_bridge() as bridge:
        with pytest.raises(AsyncioCancelledError, match="cancelled on the asyncio side"):
            await bridge.run(cancelled_by_asyncio)


async def test_closing_the_bridge_cancels_a_running_call_and_stops_the_thread() -> None:
    started = trio.Event()
    outcome: list[BaseException] = []
    async with open_asyncio_bridge() as bridge:

        async def forever() -> None:
            bridge.call_in_trio(started.set)
            await asyncio.Event().wait()

        async def caller() -> None:
            try:
                await bridge.run(forever)
            except AsyncioCancelledError as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await started.wait()
            await bridge.aclose()
        thread = bridge.thread
    assert len(outcome) == 1
    assert not thread.is_alive()
    assert bridge.loop.is_closed()
    with pytest.raises(AdapterError, match="closed"):
        await bridge.run(echo, 0)


async def test_callbacks_of_the_loop_thread_feed_a_trio_channel_in_order() -> None:
    send, receive = trio.open_memory_channel[int](1000)
    async with open_asyncio_bridge() as bridge:
        feed = bridge.feeder(send)

        async def produce() -> None:
            loop = asyncio.get_running_loop()
            for n in range(500):
                loop.call_soon(feed, n)  # as a library's callback would
            await asyncio.sleep(0)

        await bridge.run(produce)
        got = [await receive.receive() for _ in range(500)]
    assert got == list(range(500))


async def test_a_full_channel_hands_the_item_to_on_full_instead_of_blocking() -> None:
    send, receive = trio.open_memory_channel[int](2)
    lost: list[int] = []
    async with open_asyncio_bridge() as bridge:
        feed = bridge.feeder(send, lost.append)

        async def produce() -> None:
            for n in range(5):
                feed(n)

        await bridge.run(produce)
        got = [await receive.receive() for _ in range(2)]
        # The items after the first two were handed to on_full, in trio, by now:
        # feed() schedules in order and run()'s answer came after them.
        await trio.testing.wait_all_tasks_blocked()
    assert (got, lost) == ([0, 1], [2, 3, 4])


async def test_a_closed_channel_drops_items_quietly() -> None:
    send, receive = trio.open_memory_channel[int](2)
    async with open_asyncio_bridge() as bridge:
        feed = bridge.feeder(send)
        await receive.aclose()

        async def produce() -> None:
            feed(1)

        await bridge.run(produce)
        await trio.testing.wait_all_tasks_blocked()


async def test_no_thread_is_left_behind_after_many_bridges() -> None:
    before = len(bridge_threads())
    for _ in range(20):
        async with open_asyncio_bridge() as bridge:
            assert await bridge.run(echo, 1) == 1
    assert len(bridge_threads()) == before


async def test_the_lazy_bridge_starts_one_shared_loop_on_first_use_and_stops_it() -> None:
    before = len(bridge_threads())
    async with open_lazy_asyncio_bridge() as lazy:
        assert not lazy.started
        assert len(bridge_threads()) == before  # no thread until someone asks
        first, second = lazy.get(), lazy.get()
        assert first is second
        assert len(bridge_threads()) == before + 1
    assert len(bridge_threads()) == before
    assert not first.thread.is_alive()
    with pytest.raises(AdapterError, match="stopped"):
        lazy.get()
