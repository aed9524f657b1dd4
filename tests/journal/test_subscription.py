"""The bookkeeping of a feed subscription, without trio and without a journal.

`SubscriptionState` is driven here the way the feed and the subscription's
reader drive it, in every order: hand-outs while a catch-up read is under
way, overflows, subscribers that take a few items at a time.  Whatever the
order, each subscriber gets every position after its start that is under
its prefix, once and in order.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from moat_log.errors import FeedOverflowError
from moat_log.event import Event, Op
from moat_log.journal.item import FeedItem, WinnerTracker
from moat_log.journal.subscription import Overflow, SubscriptionState
from moat_log.path import Path

PATHS = [Path(["a"]), Path(["a", "x"]), Path(["b"])]
PREFIXES = [None, Path(["a"]), Path(["b"])]


def item(position: int, path: Path) -> FeedItem:
    event = Event("n", position, position, {}, path, Op.SET, position)
    return FeedItem(position, event, event.pack(), True)


def items(first: int, count: int, path: Path = PATHS[0]) -> list[FeedItem]:
    return [item(first + n, path) for n in range(count)]


def is_live(state: SubscriptionState) -> bool:
    """`state.live`, without mypy narrowing it across the calls that change it."""
    return state.live


def test_a_subscription_at_the_feeds_position_is_live_and_buffers_hand_outs() -> None:
    state = SubscriptionState(3, 3)
    assert state.live
    assert state.to_read(3) is None
    state.offer(items(4, 2))
    assert [i.position for i in state.take()] == [4, 5]
    assert state.position == 5
    assert state.take() == []


def test_a_subscription_behind_the_feed_reads_in_chunks_then_goes_live() -> None:
    state = SubscriptionState(0, 5)
    assert not state.live
    state.offer(items(6, 1))  # not live yet: it will read position 6 itself
    assert state.to_read(6, chunk=4) == (1, 4)
    state.read(4, items(1, 4), 6)
    assert not state.live
    assert state.to_read(6, chunk=4) is None  # take the buffered items first
    assert [i.position for i in state.take()] == [1, 2, 3, 4]
    assert state.to_read(6, chunk=4) == (5, 6)
    state.read(6, items(5, 2), 6)
    assert is_live(state)  # the read reached the feed's position
    state.offer(items(7, 1))
    assert [i.position for i in state.take()] == [5, 6, 7]


def test_a_start_beyond_the_feed_skips_the_positions_up_to_it() -> None:
    state = SubscriptionState(4, 2)
    assert state.live
    assert state.position == 4
    state.offer(items(3, 3))
    assert [i.position for i in state.take()] == [5]


def test_the_prefix_leaves_events_out_but_the_position_moves_past_them() -> None:
    state = SubscriptionState(0, 0, prefix=Path(["a"]))
    state.offer([item(1, Path(["b"])), item(2, Path(["a", "x"])), item(3, Path(["ab"]))])
    assert [i.position for i in state.take()] == [2]
    assert state.position == 3


def test_an_overflow_raises_after_the_buffered_items_naming_the_position_reached() -> None:
    state = SubscriptionState(0, 0, limit=2)
    state.offer(items(1, 1))
    state.offer(items(2, 3))  # only position 2 fits
    assert not state.live
    assert state.overflows == 1
    assert [i.position for i in state.take(1)] == [1]
    assert [i.position for i in state.take()] == [2]
    with pytest.raises(FeedOverflowError, match="up to position 2") as raised:
        state.take()
    assert raised.value.position == 2
    state.offer(items(5, 1))  # no longer listening
    assert state.to_read(5) is None  # and not reading: it ended
    with pytest.raises(FeedOverflowError):
        state.take()


def test_an_overflow_with_catch_up_reads_the_rest_from_the_journal() -> None:
    state = SubscriptionState(0, 0, limit=2, on_overflow=Overflow.CATCH_UP)
    state.offer(items(1, 3))
    assert state.overflows == 1
    assert [i.position for i in state.take()] == [1, 2]
    assert state.to_read(3) == (3, 3)
    state.read(3, items(3, 1), 4)  # the feed went on meanwhile
    assert not state.live
    assert [i.position for i in state.take()] == [3]
    assert state.to_read(4) == (4, 4)


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SubscriptionState(0, 0, limit=0)


class _Subscriber:
    def __init__(self, state: SubscriptionState, after: int) -> None:
        self.state = state
        self.after = after
        self.got: list[FeedItem] = []
        self.reading: tuple[int, int] | None = None
        self.ended_at: int | None = None


class SubscriptionMachine(RuleBasedStateMachine):
    """A feed, its journal, and subscribers, run in every order Hypothesis finds."""

    subscribers = Bundle("subscribers")

    def __init__(self) -> None:
        super().__init__()
        self.journal: list[FeedItem] = []  # position n is journal[n - 1]
        self.feed_position = 0
        self.all: list[_Subscriber] = []

    @rule(count=st.integers(1, 4), path=st.sampled_from(PATHS))
    def store(self, count: int, path: Path) -> None:
        """A commit is durable (the feed hands it out later, as after a gap)."""
        self.journal.extend(items(len(self.journal) + 1, count, path))

    @precondition(lambda self: self.feed_position < len(self.journal))
    @rule(data=st.data())
    def hand_out(self, data: st.DataObject) -> None:
        count = data.draw(st.integers(1, len(self.journal) - self.feed_position))
        out = self.journal[self.feed_position : self.feed_position + count]
        for subscriber in self.all:
            subscriber.state.offer(out)
        self.feed_position += count

    @rule(
        target=subscribers,
        data=st.data(),
        prefix=st.sampled_from(PREFIXES),
        limit=st.integers(1, 5),
        on_overflow=st.sampled_from(Overflow),
    )
    def subscribe(
        self, data: st.DataObject, prefix: Path | None, limit: int, on_overflow: Overflow
    ) -> _Subscriber:
        after = data.draw(st.integers(0, len(self.journal) + 2))
        state = SubscriptionState(
            after, self.feed_position, prefix=prefix, limit=limit, on_overflow=on_overflow
        )
        subscriber = _Subscriber(state, after)
        self.all.append(subscriber)
        return subscriber

    @rule(subscriber=subscribers, chunk=st.integers(1, 4))
    def start_read(self, subscriber: _Subscriber, chunk: int) -> None:
        if subscriber.reading is None:
            subscriber.reading = subscriber.state.to_read(self.feed_position, chunk)

    @rule(subscriber=subscribers)
    def finish_read(self, subscriber: _Subscriber) -> None:
        """The worker thread returns: what the journal held when it read (it never changes)."""
        if subscriber.reading is not None:
            start, end = subscriber.reading
            subscriber.reading = None
            subscriber.state.read(end, self.journal[start - 1 : end], self.feed_position)

    @rule(subscriber=subscribers, max_items=st.none() | st.integers(1, 3))
    def take(self, subscriber: _Subscriber, max_items: int | None) -> None:
        try:
            subscriber.got.extend(subscriber.state.take(max_items))
        except FeedOverflowError as exc:
            subscriber.ended_at = exc.position

    @rule(subscriber=consumes(subscribers))
    def unsubscribe(self, subscriber: _Subscriber) -> None:
        self.all.remove(subscriber)

    def expected(self, subscriber: _Subscriber, up_to: int) -> list[FeedItem]:
        prefix = subscriber.state.prefix
        return [
            i
            for i in self.journal[subscriber.after : up_to]
            if prefix is None or prefix.is_prefix_of(i.event.path)
        ]

    @invariant()
    def delivered_once_in_order_without_gaps(self) -> None:
        for subscriber in self.all:
            state = subscriber.state
            assert subscriber.got == self.expected(subscriber, state.position)
            if subscriber.got:
                assert state.position >= subscriber.got[-1].position
            assert state.position <= max(self.feed_position, subscriber.after)
            # Bounded: the live buffer by the limit, a read by its chunk (at most 4).
            assert state.buffered <= max(state.limit, 4)
            if subscriber.ended_at is not None:
                assert subscriber.ended_at == state.position

    def teardown(self) -> None:
        """Hand everything out and let every subscriber drain: nothing is missing."""
        out = self.journal[self.feed_position :]
        for subscriber in self.all:
            subscriber.state.offer(out)
        self.feed_position = len(self.journal)
        for subscriber in self.all:
            self.finish_read(subscriber)
            for _ in range(len(self.journal) + 2):
                self.take(subscriber, None)
                self.start_read(subscriber, 4)
                self.finish_read(subscriber)
            if subscriber.ended_at is None:
                assert subscriber.got == self.expected(subscriber, len(self.journal))
                assert subscriber.state.live


SubscriptionMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40)
test_subscription_machine = SubscriptionMachine.TestCase


def test_the_winner_tracker_looks_each_path_up_once_and_forgets_after_a_jump() -> None:
    asked: list[tuple[Path, int]] = []
    stored_before = {PATHS[0]: (5, "n")}

    def lookup(path: Path, position: int) -> tuple[int, str] | None:
        asked.append((path, position))
        return stored_before.get(path)

    def event(hlc: int, path: Path, origin: str = "n") -> Event:
        return Event(origin, hlc, hlc, {}, path, Op.SET, None)

    tracker = WinnerTracker(lookup)
    first = [(10, event(4, PATHS[0])), (11, event(6, PATHS[0])), (12, event(1, PATHS[2]))]
    assert list(tracker.judge(10, 12, first)) == [False, True, True]
    assert asked == [(PATHS[0], 10), (PATHS[2], 10)]
    # The next range goes on from what it learnt: 6 is the best of PATHS[0] now.
    assert list(tracker.judge(13, 13, [(13, event(6, PATHS[0], "m"))])) == [False]
    assert len(asked) == 2
    # A range that does not follow starts afresh and asks the journal again.
    assert list(tracker.judge(20, 20, [(20, event(6, PATHS[0], "m"))])) == [True]
    assert asked[-1] == (PATHS[0], 20)
