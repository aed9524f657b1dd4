"""The outbox of a client connection: order, coalescing, back-pressure, the end."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from moat_log.node._outbox import Outbox


async def test_take_returns_everything_queued_in_order_as_one_piece() -> None:
    outbox = Outbox(limit=4)
    outbox.put(b"a")
    outbox.put(b"")  # nothing to send: ignored
    await outbox.send(b"b")
    outbox.put(b"c")
    assert len(outbox) == 3
    assert await outbox.take() == b"abc"
    assert len(outbox) == 0


async def test_send_waits_while_the_limit_is_queued_put_does_not() -> None:
    outbox = Outbox(limit=2)
    outbox.put(b"1")
    outbox.put(b"2")
    outbox.put(b"3")  # a reply of a committed write: never waits
    sent = trio.Event()

    async def producer() -> None:
        await outbox.send(b"4")
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert await outbox.take() == b"123"
        await trio.testing.wait_all_tasks_blocked()
        assert sent.is_set()
    assert await outbox.take() == b"4"


async def test_take_waits_for_a_frame_and_ends_after_close() -> None:
    outbox = Outbox(limit=2)
    taken: list[bytes | None] = []

    async def writer() -> None:
        while (data := await outbox.take()) is not None:
            taken.append(data)
        taken.append(None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert taken == []
        outbox.put(b"x")
        await trio.testing.wait_all_tasks_blocked()
        outbox.put(b"goodbye")
        outbox.close()
    assert taken == [b"x", b"goodbye", None]
    assert not outbox.put(b"late")  # dropped


async def test_a_broken_writer_releases_and_refuses_producers() -> None:
    outbox = Outbox(limit=1)
    outbox.put(b"queued")
    errors: list[BaseException] = []

    async def producer() -> None:
        try:
            await outbox.send(b"more")
        except trio.ClosedResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        outbox.broken()
    assert len(errors) == 1
    with pytest.raises(trio.ClosedResourceError):
        await outbox.wait_for_room()
    assert await outbox.take() is None
