"""The chain read from an LMDB journal agrees with the chain read from the same events in memory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.projections.journal_chain import JournalChainSource, explain
from moat_log.projections.replay import winner_at, winner_before
from moat_log.projections.why import EndKind, EventsInMemory, Held, walk_chain
from moat_log.testing import DEFAULT_NOW, FakeWallClock, event_ids, events, paths

ORIGINS = ("a", "b", "c")
PATHS = paths(st.sampled_from(["x", "y", ""]), max_depth=2)


@contextmanager
def journal_with(events: Sequence[Event]) -> Iterator[Journal]:
    with (
        tempfile.TemporaryDirectory() as data_dir,
        open_journal(
            data_dir, create_node="n", wall_clock=FakeWallClock(DEFAULT_NOW + 100)
        ) as journal,
    ):
        journal.write_batch(list(events))
        yield journal


EVENT_SETS = st.lists(
    events(
        ORIGINS,
        seqs=st.integers(1, 12),
        hlcs=st.integers(DEFAULT_NOW, DEFAULT_NOW + 6),
        paths=PATHS,
    ),
    max_size=25,
    unique_by=(lambda e: e.id, lambda e: (e.hlc, e.origin)),
)


@settings(max_examples=60, deadline=None)
@given(EVENT_SETS, st.data())
def test_the_journal_gives_the_chain_the_model_gives(
    events: list[Event], data: st.DataObject
) -> None:
    model = EventsInMemory(events)
    with journal_with(events) as journal:
        source = JournalChainSource(journal)
        for event in events:
            assert winner_before(journal, event) == model.before(event)
        for event in events:
            assert walk_chain(event, source, depth=8) == walk_chain(event, model, depth=8)
        missing = data.draw(event_ids(ORIGINS))
        assert source.held(missing) is model.held(missing)
        path = data.draw(PATHS)
        until = data.draw(st.none() | st.integers(DEFAULT_NOW - 1, DEFAULT_NOW + 7))
        mine = [e for e in events if e.path == path and (until is None or e.hlc <= until)]
        expected = max(mine, key=lambda e: (e.hlc, e.origin), default=None)
        assert winner_at(journal, path, until) == expected


def test_explain_starts_at_the_winner_as_of_the_moment() -> None:
    light = Path.parse("home.light")
    with tempfile.TemporaryDirectory() as data_dir:
        clock = FakeWallClock(DEFAULT_NOW)
        with open_journal(data_dir, create_node="pi1", wall_clock=clock) as journal:
            frame = journal.append(Change(Path.parse("sensor.motion"), True, source="knx:1/2/3"))
            clock.advance(10**9)
            first = journal.append(Change(light, True, source="script:hall", cause=frame.id))
            clock.advance(10**9)
            second = journal.append(Change(light, False, source="cli:alice"))
            now = explain(journal, light)
            assert now is not None
            assert [s.event for s in now.steps] == [second]
            assert now.steps[0].overwrote == first
            assert now.end.kind is EndKind.ORIGIN
            then = explain(journal, light, first.hlc)
            assert then is not None
            assert [s.event for s in then.steps] == [first, frame]
            assert explain(journal, light, frame.hlc) is None
            assert explain(journal, Path.parse("nothing")) is None


def test_a_cause_compaction_removed_is_no_longer_held_and_one_never_received_never_held() -> None:
    light = Path.parse("home.light")
    with tempfile.TemporaryDirectory() as data_dir:
        clock = FakeWallClock(DEFAULT_NOW)
        with open_journal(data_dir, create_node="pi1", wall_clock=clock) as journal:
            frame = journal.append(Change(Path.parse("sensor.motion"), True, source="knx:1/2/3"))
            clock.advance(10**9)
            journal.append(Change(light, True, source="script:hall", cause=frame.id))
            journal.compact([], [frame.id])  # what retention does: gone, still in the summary
            assert journal.get(frame.id) is None and journal.summary().holds(*frame.id)
            chain = explain(journal, light)
            assert chain is not None
            assert (chain.end.kind, chain.end.cause) == (EndKind.NO_LONGER_HELD, frame.id)
            source = JournalChainSource(journal)
            assert source.held(EventId("pi2", 1)) is Held.NEVER
            assert source.held(frame.id) is Held.NO_LONGER
