"""Subscriptions to the journal feed, over a real journal.

The reference for every check is the journal itself: `reference` reads it
back in position order and decides each event's winner flag by the rule of
`moat_log.journal.item` (greater than every earlier event of its path).
"Another process" is played by `Journal.commit` called without telling the
feed, which is all the feed can see of another process's commit.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path as FsPath

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moat_log.errors import FeedOverflowError
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.journal.feed import FeedItem, JournalFeed, Overflow, Subscription
from moat_log.journal.group_commit import JournalWriter, open_journal
from moat_log.journal.store import Journal
from moat_log.path import ROOT, Path

PATHS = [Path(["k", "x", "1"]), Path(["k", "x", "2"]), Path(["k", "y"]), ROOT]
PREFIXES = [None, Path(["k"]), Path(["k", "x"])]
#: Under every prefix of `PREFIXES`: the last event of a run.
MARKER = Path(["k", "x", "end"])


def reference(journal: Journal, after: int = 0, prefix: Path | None = None) -> list[FeedItem]:
    """The items a subscription from *after* must deliver, read from the journal."""
    best: dict[Path, tuple[int, str]] = {}
    found = []
    for position, data in journal.scan_raw():
        event = Event.unpack(data)
        key = (event.hlc, event.origin)
        winner = event.path not in best or key > best[event.path]
        if winner:
            best[event.path] = key
        if position > after and (prefix is None or prefix.is_prefix_of(event.path)):
            found.append(FeedItem(position, event, data, winner))
    return found


def is_live(subscription: Subscription) -> bool:
    """`subscription.live`, without mypy narrowing it across the calls that change it."""
    return subscription.live


def foreign(origin: str, seq: int, hlc: int, path: Path) -> Event:
    return Event(origin, seq, hlc, {}, path, Op.SET, seq)


@asynccontextmanager
async def running_feed(directory: FsPath) -> AsyncIterator[tuple[JournalWriter, JournalFeed]]:
    async with open_journal(directory, node="a") as writer:
        feed = JournalFeed(writer.journal, poll_interval=3600)  # gaps and caught_up wake it
        writer.on_commit = feed.committed
        async with trio.open_nursery() as nursery:
            await nursery.start(feed.run)
            yield writer, feed
            nursery.cancel_scope.cancel()


def test_a_commit_reports_the_bytes_it_wrote_and_each_events_winner_flag(
    tmp_path: FsPath,
) -> None:
    p, q = Path(["p"]), Path(["q"])
    with Journal.create(tmp_path, "a") as journal:
        own = journal.commit([Change(p, 1), Change(ROOT, 2)]).items
        hlc = own[0].event.hlc
        batch = journal.commit(
            [
                foreign("b", 1, hlc - 1, p),  # older than a's write: not a winner
                foreign("c", 1, hlc, p),  # same time, greater origin: wins
                foreign("b", 2, hlc, p),  # same time, smaller origin than c: not a winner
                foreign("b", 3, hlc - 5, q),  # the path's first event: wins
                foreign("c", 2, hlc - 6, q),  # older than b's, in the same batch: no
                Change(q, 3),  # a local change always wins
            ]
        )
        assert [item.winner for item in own] == [True, True]
        assert [item.winner for item in batch.items] == [False, True, False, True, False, True]
        assert [item.position for item in batch.items] == list(range(3, 9))
        stored = dict(journal.scan_raw())
        assert all(item.packed == stored[item.position] for item in [*own, *batch.items])
        assert [*own, *batch.items] == reference(journal)
        assert journal.commit([foreign("b", 1, hlc - 1, p)]).items == []  # already held


def test_greatest_before_skips_what_was_stored_at_or_after_the_position(
    tmp_path: FsPath,
) -> None:
    p = Path(["p"])
    with Journal.create(tmp_path, "a") as journal:
        first = journal.append(Change(p, 1))
        journal.append(Change(Path(["p", "child"]), 2))  # not the path's own entry
        journal.commit([foreign("b", 1, first.hlc - 1, p)])  # position 3, older
        assert journal.greatest_before(p, 1) is None
        assert journal.greatest_before(p, 2) == (first.hlc, "a")
        assert journal.greatest_before(p, 4) == (first.hlc, "a")
        assert journal.greatest_before(Path(["nowhere"]), 4) is None


async def test_live_subscribers_get_a_commit_at_once_and_share_its_bytes(
    tmp_path: FsPath,
) -> None:
    async with running_feed(tmp_path) as (writer, feed):
        with feed.subscribe() as one, feed.subscribe(prefix=Path(["k"])) as two:
            assert one.live and two.live
            event = await writer.append(Change(Path(["k", "v"]), 1))
            [first] = await one.receive_batch()
            [second] = await two.receive_batch()
        assert first.event == event and first.winner and first.position == 1
        assert first.packed is second.packed  # packed once, by the journal


async def test_a_subscription_from_a_position_catches_up_then_goes_live(
    tmp_path: FsPath,
) -> None:
    async with running_feed(tmp_path) as (writer, feed):
        for n in range(5):
            await writer.append(Change(PATHS[n % 2], n))
        with feed.subscribe(after=2) as subscription:
            assert not subscription.live
            got = await subscription.receive_batch()
            assert is_live(subscription)
            await writer.append(Change(PATHS[0], 9))
            got += await subscription.receive_batch()
        assert got == reference(writer.journal, after=2)
        assert [item.position for item in got] == [3, 4, 5, 6]


async def test_an_overflow_is_raised_after_the_buffer_and_a_new_subscription_resumes(
    tmp_path: FsPath,
) -> None:
    async with running_feed(tmp_path) as (writer, feed):
        with feed.subscribe(limit=2) as subscription:
            for n in range(4):
                await writer.append(Change(PATHS[0], n))
            got = await subscription.receive_batch()
            with pytest.raises(FeedOverflowError, match="more than 2 events behind") as raised:
                await subscription.receive_batch()
        assert raised.value.position == 2 == subscription.position
        with feed.subscribe(after=raised.value.position) as again:
            got += await again.receive_batch()
        assert got == reference(writer.journal)


async def test_an_overflow_with_catch_up_loses_nothing(tmp_path: FsPath) -> None:
    async with running_feed(tmp_path) as (writer, feed):
        with feed.subscribe(limit=1, on_overflow=Overflow.CATCH_UP) as subscription:
            async with trio.open_nursery() as nursery:
                for n in range(6):
                    nursery.start_soon(writer.append, Change(PATHS[n % 3], n))
            got: list[FeedItem] = []
            while len(got) < 6:
                got += await subscription.receive_batch()
            assert subscription.overflows >= 1
        assert got == reference(writer.journal)


async def test_misuse_is_refused_clearly(tmp_path: FsPath) -> None:
    async with running_feed(tmp_path) as (_writer, feed):
        with pytest.raises(TypeError, match="journal position"):
            feed.subscribe(after="3")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="0 or more"):
            feed.subscribe(after=-1)
        with pytest.raises(ValueError, match="at least 1"):
            feed.subscribe(limit=0)
        subscription = feed.subscribe()
        woken: list[BaseException] = []

        async def receive() -> None:
            try:
                await subscription.receive()
            except trio.ClosedResourceError as exc:
                woken.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await subscription.receive()
            subscription.close()  # wakes the waiting receiver, which raises
        assert len(woken) == 1
        with pytest.raises(trio.ClosedResourceError, match="closed"):
            await subscription.receive()


@dataclass(frozen=True)
class Own:
    """Local changes through the writer (one group commit, mostly)."""

    count: int
    path: Path


@dataclass(frozen=True)
class OtherProcess:
    """Local changes committed by "another process": the feed is not told."""

    count: int
    path: Path


@dataclass(frozen=True)
class Foreign:
    """Events of other origins, ``(origin, hlc - clock, path)``, reported or not."""

    events: list[tuple[str, int, Path]]
    reported: bool


@dataclass(frozen=True)
class Subscribe:
    """A new subscriber from a fraction of the journal, receiving in its own task."""

    fraction: float
    prefix: Path | None
    limit: int
    on_overflow: Overflow
    max_items: int | None
    pause: int


Step = Own | OtherProcess | Foreign | Subscribe


class Consumer:
    """Receives from a subscription in its own task; resubscribes after an overflow."""

    def __init__(self, feed: JournalFeed, after: int, spec: Subscribe) -> None:
        self.feed, self.after, self.spec = feed, after, spec
        self.got: list[FeedItem] = []
        self.finished = trio.Event()

    def _subscribe(self, after: int) -> Subscription:
        spec = self.spec
        return self.feed.subscribe(
            after=after, prefix=spec.prefix, limit=spec.limit, on_overflow=spec.on_overflow
        )

    async def run(self) -> None:
        subscription = self._subscribe(self.after)
        try:
            while True:
                try:
                    self.got += await subscription.receive_batch(self.spec.max_items)
                except FeedOverflowError as exc:
                    assert exc.position == subscription.position
                    subscription.close()
                    subscription = self._subscribe(exc.position)
                    continue
                if self.got and self.got[-1].event.path == MARKER:
                    self.finished.set()
                for _ in range(self.spec.pause):  # a slow subscriber lets the writers run
                    await trio.lowlevel.checkpoint()
        finally:
            subscription.close()


paths = st.sampled_from(PATHS)
steps = st.one_of(
    st.builds(Own, st.integers(1, 4), paths),
    st.builds(OtherProcess, st.integers(1, 3), paths),
    st.builds(
        Foreign,
        st.lists(
            st.tuples(st.sampled_from(["b", "c"]), st.integers(-4, 2), paths),
            min_size=1,
            max_size=4,
        ),
        st.booleans(),
    ),
    st.builds(
        Subscribe,
        st.floats(0, 1),
        st.sampled_from(PREFIXES),
        st.integers(1, 4),
        st.sampled_from(Overflow),
        st.none() | st.integers(1, 3),
        st.integers(0, 3),
    ),
)


class Run:
    """Carries out the steps against a running feed."""

    def __init__(self, writer: JournalWriter, feed: JournalFeed, nursery: trio.Nursery) -> None:
        self.writer, self.feed, self.nursery = writer, feed, nursery
        self.journal = writer.journal
        self.consumers: list[Consumer] = []
        self._seqs = {"b": itertools.count(1), "c": itertools.count(1)}

    async def step(self, step: Step) -> None:
        if isinstance(step, Own):
            async with trio.open_nursery() as writers:
                for n in range(step.count):
                    writers.start_soon(self.writer.append, Change(step.path, n))
        elif isinstance(step, OtherProcess):
            changes = [Change(step.path, n) for n in range(step.count)]
            await trio.to_thread.run_sync(self.journal.commit, changes)
        elif isinstance(step, Foreign):
            await self._foreign(step)
        else:
            after = int(self.journal.last_position * step.fraction)
            consumer = Consumer(self.feed, after, step)
            self.consumers.append(consumer)
            self.nursery.start_soon(consumer.run)

    async def _foreign(self, step: Foreign) -> None:
        clock = self.journal.clock
        events = [
            foreign(origin, next(self._seqs[origin]), max(0, clock + delta), path)
            for origin, delta, path in step.events
        ]
        if not step.reported:
            await trio.to_thread.run_sync(self.journal.commit, events)
            return
        async with trio.open_nursery() as writers:
            for event in events:
                writers.start_soon(self.writer.write, event)  # a reused hlc is refused


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(steps, min_size=1, max_size=14))
async def test_every_subscriber_gets_every_position_after_its_start_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Step]
) -> None:
    """Own, foreign and unreported commits and subscriptions from random positions."""
    directory = tmp_path_factory.mktemp("subscribe")
    async with running_feed(directory) as (writer, feed), trio.open_nursery() as nursery:
        run = Run(writer, feed, nursery)
        for step in steps:
            await run.step(step)
        await writer.append(Change(MARKER, "end"))
        with trio.fail_after(30):
            for consumer in run.consumers:
                await consumer.finished.wait()
        nursery.cancel_scope.cancel()
    with Journal.open(directory) as journal:
        for consumer in run.consumers:
            expected = reference(journal, consumer.after, consumer.spec.prefix)
            assert consumer.got == expected
