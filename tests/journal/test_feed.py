"""The journal feed: every stored event, once, in position order, whoever wrote it.

"Another process" is a real one (`_writer_child.py`) writing to the same
journal: the feed sees its commits only by reading the journal.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path as FsPath

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moat_log.errors import FeedOverflowError
from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.journal.change import Change
from moat_log.journal.feed import FeedItem, JournalFeed, Subscription
from moat_log.journal.group_commit import open_journal
from moat_log.journal.store import Journal
from moat_log.path import Path

CHILD = FsPath(__file__).with_name("_writer_child.py")


def change(name: str, value: int) -> Change:
    return Change(Path(["k", name]), value)


class OtherProcess:
    """Writes batches to the journal from a child process."""

    def __init__(self, process: trio.Process) -> None:
        self._process = process
        self._answers = b""

    async def write(self, count: int, name: str) -> None:
        """Write *count* changes under ``k.NAME`` in one transaction; returns once committed."""
        assert self._process.stdin is not None and self._process.stdout is not None
        await self._process.stdin.send_all(f"{count} {name}\n".encode())
        while b"\n" not in self._answers:
            data = await self._process.stdout.receive_some()
            assert data, "the writer child died"
            self._answers += data
        line, _, self._answers = self._answers.partition(b"\n")
        assert line == b"done"


@asynccontextmanager
async def other_process(directory: FsPath) -> AsyncIterator[OtherProcess]:
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, str(CHILD), str(directory)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
        try:
            yield OtherProcess(process)
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()


async def held(subscription: Subscription) -> list[tuple[int, Event]]:
    """What the feed has handed to *subscription* so far, taken without waiting for more."""
    with trio.testing.assert_no_checkpoints():  # a wait here would be a hand-out still to come
        items = await subscription.receive_through(subscription.position)
    return [(item.position, item.event) for item in items]


async def received(subscription: Subscription, count: int) -> list[tuple[int, Event]]:
    """The next *count* items of *subscription*, waiting for them."""
    items: list[FeedItem] = []
    while len(items) < count:
        items += await subscription.receive_batch(count - len(items))
    return [(item.position, item.event) for item in items]


async def test_own_commits_are_heard_before_the_writer_is_answered(tmp_path: FsPath) -> None:
    async with open_journal(tmp_path, node="a") as writer:
        feed = JournalFeed(writer.journal)
        writer.on_commit = feed.committed
        with feed.subscribe() as subscription:
            first = await writer.append(change("x", 1))
            assert await held(subscription) == [(1, first)]  # no task ran in between: no read
            second = await writer.append(change("y", 2))
            assert await held(subscription) == [(2, second)]
        assert feed.position == 2


async def test_history_before_the_feed_started_is_not_handed_out(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, "a") as journal:
        journal.append(change("old", 1))
    async with open_journal(tmp_path) as writer:
        feed = JournalFeed(writer.journal)
        writer.on_commit = feed.committed
        with feed.subscribe() as subscription:
            new = await writer.append(change("new", 2))
            assert await held(subscription) == [(2, new)]


async def test_a_gap_left_by_another_process_is_filled_first(tmp_path: FsPath) -> None:
    async with open_journal(tmp_path, node="a") as writer:
        feed = JournalFeed(writer.journal, poll_interval=3600)  # only gaps wake it
        writer.on_commit = feed.committed
        with feed.subscribe() as subscription:
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run)
                mine = await writer.append(change("mine", 1))
                async with other_process(tmp_path) as other:
                    await other.write(3, "theirs")
                later = await writer.append(change("later", 2))
                assert await held(subscription) == [(1, mine)]  # "later" waits behind the gap
                rest = await received(subscription, 4)
                nursery.cancel_scope.cancel()
        theirs = list(writer.journal.scan(2, 4))
    assert [str(event.path) for _, event in theirs] == ["k.theirs"] * 3
    assert rest == [*theirs, (5, later)]
    assert feed.position == 5


async def test_writes_of_another_process_at_the_end_are_polled(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, "a") as journal:
        feed = JournalFeed(journal, poll_interval=0.25)
        with feed.subscribe() as subscription:
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run)
                async with other_process(tmp_path) as other:
                    await other.write(1, "theirs")
                got = await received(subscription, 1)
                nursery.cancel_scope.cancel()
        assert got == [(1, journal.get(EventId("a", 1)))]


async def test_a_new_poll_interval_applies_at_once_not_after_the_wait_under_way(
    tmp_path: FsPath,
) -> None:
    with Journal.create(tmp_path, "a") as journal:
        feed = JournalFeed(journal, poll_interval=3600)
        with feed.subscribe() as subscription:
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run)  # it waits up to an hour now
                feed.poll_interval = 0.05
                async with other_process(tmp_path) as other:
                    await other.write(1, "theirs")
                with trio.fail_after(5):  # the hour's wait would still run without the change
                    await received(subscription, 1)
                nursery.cancel_scope.cancel()


async def test_caught_up_waits_for_the_position_and_reads_it_at_once(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, "a") as journal:
        feed = JournalFeed(journal, poll_interval=3600)
        with feed.subscribe() as subscription:
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run)
                await feed.caught_up(0)  # nothing to wait for
                async with other_process(tmp_path) as other:
                    await other.write(3, "theirs")
                with trio.fail_after(5):  # a hang would be a bug: the poll never comes
                    await feed.caught_up(3)
                assert [position for position, _ in await held(subscription)] == [1, 2, 3]
                nursery.cancel_scope.cancel()


async def test_a_failing_or_stalled_subscriber_does_not_stop_the_others(tmp_path: FsPath) -> None:
    """A failing consumer's subscription closes with it; one that stops taking overflows, alone."""
    async with open_journal(tmp_path, node="a") as writer:
        feed = JournalFeed(writer.journal)
        writer.on_commit = feed.committed
        with feed.subscribe() as steady, feed.subscribe(limit=1) as stalled:
            with pytest.raises(RuntimeError, match="subscriber bug"), feed.subscribe():
                first = await writer.append(change("x", 1))
                raise RuntimeError("subscriber bug")
            assert feed.subscriptions == 2  # the failed consumer's is gone from the feed
            second = await writer.append(change("y", 2))  # more than stalled holds: no wait
            third = await writer.append(change("z", 3))
            assert await held(steady) == [(1, first), (2, second), (3, third)]
            assert await received(stalled, 1) == [(1, first)]
            with pytest.raises(FeedOverflowError) as raised:
                await stalled.receive_batch()
            assert raised.value.position == 1
            fourth = await writer.append(change("w", 4))
            assert await held(steady) == [(4, fourth)]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 4)), min_size=1, max_size=12))
async def test_every_position_is_heard_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[bool, int]]
) -> None:
    """Own group commits and another process's commits, interleaved at random."""
    directory = tmp_path_factory.mktemp("feed")
    async with open_journal(directory, node="a") as writer:
        feed = JournalFeed(writer.journal, poll_interval=3600)
        writer.on_commit = feed.committed
        with feed.subscribe() as subscription:
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run)
                async with other_process(directory) as other:
                    for index, (own, count) in enumerate(steps):
                        if own:
                            async with trio.open_nursery() as writers:
                                for n in range(count):
                                    writers.start_soon(writer.append, change(f"s{index}", n))
                        else:
                            await other.write(count, f"s{index}")
                total = sum(count for _, count in steps)
                await feed.caught_up(total)
                heard = await held(subscription)
                nursery.cancel_scope.cancel()
        stored = list(writer.journal.scan())
    assert len(stored) == total
    assert heard == stored


async def test_a_commit_reported_while_the_gap_reader_reads_it_is_heard_once(
    tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's report of a commit can come after the gap reader already read it."""
    with Journal.create(tmp_path, "a") as journal:
        feed = JournalFeed(journal, poll_interval=3600)
        with feed.subscribe() as subscription:
            stored = journal.commit([change("x", 1), change("y", 2)])  # not reported yet
            real_read = feed._read

            def read_then_report(start: int, end: int) -> list[FeedItem]:
                items = real_read(start, end)
                trio.from_thread.run_sync(feed.committed, stored.after, stored.items)
                return items

            monkeypatch.setattr(feed, "_read", read_then_report)
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run)
                await feed.caught_up(2)
                nursery.cancel_scope.cancel()
            expected = [(item.position, item.event) for item in stored.items]
            assert await held(subscription) == expected
