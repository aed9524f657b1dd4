"""A watch or followed log bigger than the client's buffer, against a node in this process.

The dump before the live marker is the answer the reader asked for, sized by
the subtree (or the log), not a backlog of changes: it must arrive whole
however slowly the reader starts, and only what follows the marker is held
to `WATCH_BUFFER`.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from node_support import config, running_node

from moat_log import open_client
from moat_log.client import WATCH_BUFFER, Client, Stream
from moat_log.errors import StreamOverflowError
from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.protocol import LIVE

PATHS = WATCH_BUFFER + 2_000


def fill(data_dir: FsPath) -> None:
    """More paths under ``big`` than a client buffers, written before the node starts."""
    with open_journal(data_dir, create_node="pi1") as journal:
        journal.write_batch([Change(Path(("big", f"p{n:05}")), n) for n in range(PATHS)])


async def everything_until_live(stream: Stream[Any]) -> None:
    """Wait, without reading, until the client holds the whole dump and the marker.

    The slowest reader there is: it takes nothing until the node sent all of it.
    """
    pending = stream._pending
    while LIVE not in pending.items:
        if pending.error is not None or pending.done:
            return  # the next read raises it
        await pending.wait()


async def dump_then_one_change(client: Client, stream: Stream[Any]) -> tuple[list[Any], Any]:
    """Read *stream* as the slowest reader does: its items before `LIVE`, then one change.

    The change is ``big.new`` set after the marker arrived.
    """
    await everything_until_live(stream)
    before = []
    async for item in stream:
        if item is LIVE:
            break
        before.append(item)
    await client.set("big.new", "live")
    return before, await stream.__anext__()


async def test_a_watch_bigger_than_the_buffer_dumps_it_goes_live_and_bounds_the_backlog(
    data_dir: FsPath,
) -> None:
    fill(data_dir)
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:
        with trio.fail_after(60):
            async with client.watch("big") as watch:
                dumped, change = await dump_then_one_change(client, watch)
                assert [e.value for e in dumped] == list(range(PATHS))
                assert isinstance(change, Event)
                assert (str(change.path), change.value) == ("big.new", "live")
                # Live changes are a backlog: a reader WATCH_BUFFER behind is stopped.
                async with trio.open_nursery() as nursery:
                    for start in range(0, WATCH_BUFFER + 10, 500):
                        nursery.start_soon(set_many, client, range(start, start + 500))
                with pytest.raises(StreamOverflowError, match="overflow"):
                    async for _ in watch:
                        pass


async def test_a_followed_log_bigger_than_the_buffer_sends_it_then_goes_live(
    data_dir: FsPath,
) -> None:
    fill(data_dir)
    async with running_node(config(data_dir)), open_client(data_dir=data_dir) as client:
        with trio.fail_after(60):
            async with client.log(path="big", follow=True) as log:
                held, change = await dump_then_one_change(client, log)
                assert [e.value for e in held] == list(range(PATHS))
                assert isinstance(change, Event)
                assert (str(change.path), change.value) == ("big.new", "live")


async def set_many(client: Client, numbers: range) -> None:
    for n in numbers:
        await client.set(f"big.p{n:05}", n)
