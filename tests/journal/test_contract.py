"""The journal contract, run against the LMDB `Journal` and the `MemoryJournal` model.

The first part is one suite of example tests; the `journals` fixture runs each
of them against both implementations.  The second part is a Hypothesis state
machine that drives an LMDB journal and the model side by side with random
batches, deliveries, clock jumps and reopens, and checks that every answer is
the same.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path as FsPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from moat_log.errors import ClockError, IntegrityError, InvalidEventError
from moat_log.event import Event, Op, Value
from moat_log.ids import MAX_U64, EventId
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import MAX_KEY_BYTES, Path
from moat_log.testing import (
    DEFAULT_NOW,
    FakeWallClock,
    MemoryJournal,
    WriteResult,
    changes,
    events,
    paths,
    values,
)
from moat_log.vclock import VectorClock

NOW = DEFAULT_NOW
SECOND = 10**9

AnyJournal = Journal | MemoryJournal


class Journals:
    """Makes journals of one kind for a test; `reopen` closes one and opens it again."""

    def __init__(self, kind: str, base: FsPath) -> None:
        self.kind = kind
        self.base = base
        self._open: list[AnyJournal] = []
        self._clocks: dict[str, FakeWallClock] = {}

    def create(self, node: str = "a", clock: FakeWallClock | None = None) -> AnyJournal:
        clock = FakeWallClock() if clock is None else clock
        self._clocks[node] = clock
        journal: AnyJournal
        if self.kind == "lmdb":
            journal = Journal.create(self.base / node, node, wall_clock=clock)
        else:
            journal = MemoryJournal(node, wall_clock=clock)
        self._open.append(journal)
        return journal

    def reopen(self, journal: AnyJournal) -> AnyJournal:
        if isinstance(journal, MemoryJournal):
            return journal  # memory is its own persistence
        journal.close()
        self._open.remove(journal)
        again = Journal.open(self.base / journal.node, wall_clock=self._clocks[journal.node])
        self._open.append(again)
        return again

    def close_all(self) -> None:
        for journal in self._open:
            journal.close()


@pytest.fixture(params=["lmdb", "memory"])
def journals(request: pytest.FixtureRequest, tmp_path: FsPath) -> Iterator[Journals]:
    made = Journals(request.param, tmp_path)
    yield made
    made.close_all()


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
def journal(journals: Journals, clock: FakeWallClock) -> AnyJournal:
    return journals.create("a", clock)


def p(text: str) -> Path:
    return Path.parse(text)


def foreign(
    origin: str,
    seq: int,
    hlc: int,
    path: str = "x",
    value: Value = None,
    *,
    op: Op = Op.SET,
    deps: dict[str, int] | None = None,
) -> Event:
    return Event(origin, seq, hlc, VectorClock(deps or {}), p(path), op, value, "test")


def ok(results: Sequence[WriteResult]) -> list[Event]:
    """The events of a batch that must have succeeded entirely."""
    assert all(isinstance(r, Event) for r in results), results
    return [r for r in results if isinstance(r, Event)]


def seqs(events: Iterator[Event]) -> list[tuple[str, int]]:
    return [(e.origin, e.seq) for e in events]


# ------------------------------------------------------------------ local appends


def test_an_empty_journal_has_no_events_and_clock_zero(journal: AnyJournal) -> None:
    assert journal.clock == 0
    assert journal.summary() == IdSet()
    assert list(journal.scan()) == []
    assert journal.write_batch([]) == []
    assert journal.get(EventId("a", 1)) is None


def test_a_change_becomes_the_nodes_next_event(journal: AnyJournal) -> None:
    cause = EventId("b", 7)
    event = journal.append(Change(p("home.light"), True, source="cli:alice", cause=cause))
    assert event == Event(
        "a", 1, NOW, VectorClock(), p("home.light"), Op.SET, True, "cli:alice", cause
    )
    assert journal.get(event.id) == event
    assert journal.summary() == IdSet.parse("a:1")
    assert journal.clock == NOW


def test_seqs_count_up_within_and_across_batches(journal: AnyJournal) -> None:
    first = ok(journal.write_batch([Change(p("x"), i) for i in range(3)]))
    second = ok(journal.write_batch([Change(p("y"), i) for i in range(2)]))
    assert [e.seq for e in first + second] == [1, 2, 3, 4, 5]
    assert journal.summary() == IdSet.parse("a:1-5")


def test_hlc_is_the_wall_clock_when_it_moves_forward(
    journal: AnyJournal, clock: FakeWallClock
) -> None:
    assert journal.append(Change(p("x"), 1)).hlc == NOW
    clock.advance(SECOND)
    assert journal.append(Change(p("x"), 2)).hlc == NOW + SECOND
    assert journal.clock == NOW + SECOND


def test_hlc_counts_on_while_the_wall_clock_stands_still(journal: AnyJournal) -> None:
    events = ok(journal.write_batch([Change(p("x"), i) for i in range(3)]))
    events.append(journal.append(Change(p("x"), 3)))
    assert [e.hlc for e in events] == [NOW, NOW + 1, NOW + 2, NOW + 3]


def test_hlc_never_runs_back_with_the_wall_clock(journal: AnyJournal, clock: FakeWallClock) -> None:
    first = journal.append(Change(p("x"), 1))
    clock.advance(-3600 * SECOND)
    second = journal.append(Change(p("x"), 2))
    assert second.hlc == first.hlc + 1
    clock.set(NOW + 5)
    assert journal.append(Change(p("x"), 3)).hlc == NOW + 5


def test_a_change_at_a_future_time_gets_that_time(journal: AnyJournal) -> None:
    journal.append(Change(p("x"), 1))
    event = journal.append(Change(p("x"), 2, at=NOW + 3600 * SECOND))
    assert event.hlc == NOW + 3600 * SECOND
    assert journal.clock == NOW + 3600 * SECOND
    assert journal.append(Change(p("x"), 3)).hlc == NOW + 3600 * SECOND + 1


@pytest.mark.parametrize("at", [NOW - SECOND, NOW], ids=["before", "equal"])
def test_a_change_not_after_the_clock_is_refused_alone(journal: AnyJournal, at: int) -> None:
    journal.append(Change(p("x"), 0))
    results = journal.write_batch([Change(p("x"), 1), Change(p("y"), 2, at=at), Change(p("z"), 3)])
    assert isinstance(results[1], ClockError)
    written = [r for r in results if isinstance(r, Event)]
    assert [(e.seq, e.value) for e in written] == [(2, 1), (3, 3)], "no seq is used up"
    assert [e.value for _, e in journal.scan()] == [0, 1, 3]
    with pytest.raises(ClockError):
        journal.append(Change(p("y"), 2, at=at))


def test_a_refused_batch_leaves_the_journal_unchanged(journal: AnyJournal) -> None:
    journal.append(Change(p("x"), 0))
    before = (journal.summary(), journal.clock, list(journal.scan()))
    results = journal.write_batch([Change(p("x"), 1, at=1), Change(p("x"), 2, at=NOW)])
    assert all(isinstance(r, ClockError) for r in results)
    assert (journal.summary(), journal.clock, list(journal.scan())) == before


def test_an_event_too_large_to_pack_is_refused_alone(journal: AnyJournal) -> None:
    results = journal.write_batch([Change(p("x"), "v" * (1 << 20)), Change(p("y"), 1)])
    assert isinstance(results[0], InvalidEventError)
    assert isinstance(results[1], Event)
    assert results[1].seq == 1


def test_deps_are_the_contiguous_ends_of_the_other_origins(journal: AnyJournal) -> None:
    for seq in (1, 2, 4):
        journal.insert(foreign("b", seq, NOW - 100 + seq))
    journal.insert(foreign("c", 2, NOW - 50))  # c:1 missing: nothing contiguous
    event = journal.append(Change(p("x"), 1))
    assert event.deps == VectorClock({"b": 2})
    journal.insert(foreign("b", 3, NOW - 97))
    assert journal.append(Change(p("x"), 2)).deps == VectorClock({"b": 4})


def test_deps_include_events_earlier_in_the_same_batch(journal: AnyJournal) -> None:
    results = journal.write_batch(
        [
            Change(p("x"), 1),
            foreign("b", 1, NOW - 10),
            Change(p("x"), 2),
            foreign("b", 2, NOW - 9),
            foreign("a", 9, NOW - 8),  # our own origin never appears in deps
            Change(p("x"), 3),
        ]
    )
    events = [r for r in results if isinstance(r, Event)]
    assert [e.deps for e in events] == [VectorClock(), VectorClock({"b": 1}), VectorClock({"b": 2})]
    assert [e.seq for e in events] == [1, 2, 10], "own seqs continue after the inserted a:9"


def test_deps_never_fall_behind_the_newest_own_event(journal: AnyJournal) -> None:
    """A node that lost its data got its own events back, but few of the others'."""
    journal.write_batch([foreign("b", seq, NOW - 100 + seq) for seq in (1, 2)])
    journal.insert(foreign("a", 1, NOW - 50, deps={"b": 30, "c": 7}))
    event = journal.append(Change(p("x"), 1))
    assert event.deps == VectorClock({"b": 30, "c": 7}), "what its previous event had seen"
    journal.write_batch([foreign("b", seq, NOW - 100 + seq) for seq in range(3, 41)])
    assert journal.append(Change(p("x"), 2)).deps == VectorClock({"b": 40, "c": 7})


def test_deps_follow_own_events_restored_in_the_same_batch(journal: AnyJournal) -> None:
    results = journal.write_batch(
        [
            foreign("b", 1, NOW - 10),
            Change(p("x"), 1),
            foreign("a", 2, NOW - 5, deps={"b": 9}),  # own event back, newer than a:1
            Change(p("x"), 2),
            foreign("a", 5, NOW - 3, deps={"b": 12}),
            foreign("a", 4, NOW - 4, deps={"b": 1}),  # older than a:5: does not count
            Change(p("x"), 3),
        ]
    )
    local = [r for r in results if isinstance(r, Event)]
    assert [(e.seq, e.deps) for e in local] == [
        (1, VectorClock({"b": 1})),
        (3, VectorClock({"b": 9})),
        (6, VectorClock({"b": 12})),
    ]


# --------------------------------------------------------------------- foreign events


def test_a_new_foreign_event_is_inserted(journal: AnyJournal) -> None:
    event = foreign("b", 1, NOW - SECOND, "home.temp", 21.5, deps={"c": 3})
    assert journal.write_batch([event]) == [True]
    assert journal.get(EventId("b", 1)) == event
    assert journal.summary() == IdSet.parse("b:1")


def test_a_held_event_is_a_duplicate_and_changes_nothing(journal: AnyJournal) -> None:
    event = foreign("b", 1, NOW - SECOND, value={"k": [1, 2]})
    journal.insert(event)
    before = (journal.summary(), journal.clock, list(journal.scan()))
    assert journal.write_batch([event, event]) == [False, False]
    assert journal.insert(Event.unpack(event.pack())) is False
    assert (journal.summary(), journal.clock, list(journal.scan())) == before


@pytest.mark.parametrize(
    "other",
    [
        foreign("b", 1, NOW, "x", 2),
        foreign("b", 1, NOW, "x", True),  # == 1 in Python, but other packed bytes
        foreign("b", 1, NOW, "x", 1.0),
        foreign("b", 1, NOW, "y", 1),
        foreign("b", 1, NOW, "x", op=Op.DELETE),
        foreign("b", 1, NOW + 1, "x", 1),
        foreign("b", 1, NOW, "x", 1, deps={"c": 1}),
    ],
    ids=["value", "bool", "float", "path", "delete", "hlc", "deps"],
)
def test_another_event_under_a_held_id_is_an_integrity_error(
    journal: AnyJournal, other: Event
) -> None:
    journal.insert(foreign("b", 1, NOW, "x", 1))
    before = list(journal.scan())
    results = journal.write_batch([other, foreign("b", 2, NOW + 2)])
    assert isinstance(results[0], IntegrityError)
    assert results[1] is True
    assert [e for _, e in journal.scan()][:1] == [e for _, e in before]
    with pytest.raises(IntegrityError):
        journal.insert(other)


def test_dict_order_is_part_of_an_events_identity(journal: AnyJournal) -> None:
    journal.insert(foreign("b", 1, NOW, "x", {"k": 1, "l": 2}))
    assert journal.insert(foreign("b", 1, NOW, "x", {"k": 1, "l": 2})) is False
    with pytest.raises(IntegrityError):
        journal.insert(foreign("b", 1, NOW, "x", {"l": 2, "k": 1}))


def test_a_reused_hlc_of_the_same_origin_is_an_integrity_error(journal: AnyJournal) -> None:
    journal.insert(foreign("b", 1, NOW))
    results = journal.write_batch([foreign("b", 2, NOW, "y"), foreign("c", 1, NOW, "y")])
    assert isinstance(results[0], IntegrityError)
    assert results[1] is True, "the same hlc from another origin is fine"
    assert journal.summary() == IdSet.parse("b:1 c:1")


def test_duplicates_and_conflicts_within_one_batch(journal: AnyJournal) -> None:
    event = foreign("b", 1, NOW)
    results = journal.write_batch(
        [event, event, foreign("b", 1, NOW, value=2), foreign("b", 2, NOW)]
    )
    assert results[:2] == [True, False]
    assert isinstance(results[2], IntegrityError)
    assert isinstance(results[3], IntegrityError)
    assert journal.get(EventId("b", 1)) == event


def test_out_of_order_seqs_leave_gaps_until_they_are_filled(journal: AnyJournal) -> None:
    assert journal.write_batch([foreign("b", 5, NOW + 5), foreign("b", 2, NOW + 2)]) == [True, True]
    assert journal.summary() == IdSet.parse("b:2,5")
    assert seqs(journal.by_origin("b")) == [("b", 2), ("b", 5)]
    journal.write_batch([foreign("b", s, NOW + s) for s in (1, 3, 4)])
    assert journal.summary() == IdSet.parse("b:1-5")


def test_a_foreign_clock_ahead_pushes_the_local_clock(journal: AnyJournal) -> None:
    ahead = NOW + 3600 * SECOND
    journal.insert(foreign("b", 1, ahead))
    assert journal.clock == ahead
    event = journal.append(Change(p("x"), 1))
    assert event.hlc == ahead + 1
    assert foreign("b", 1, ahead).happened_before(event)


def test_a_foreign_event_from_the_past_does_not_move_the_clock_back(journal: AnyJournal) -> None:
    journal.append(Change(p("x"), 1))
    journal.insert(foreign("b", 1, NOW - 3600 * SECOND))
    assert journal.clock == NOW
    assert journal.append(Change(p("x"), 2)).hlc == NOW + 1


def test_own_events_coming_back_from_a_peer(journal: AnyJournal) -> None:
    mine = journal.append(Change(p("x"), 1))
    assert journal.insert(mine) is False
    with pytest.raises(IntegrityError):
        journal.insert(foreign("a", 1, mine.hlc, value=2))
    # Restoring lost events of our own (e.g. from a peer after a disk loss):
    # they are inserted, and new local events continue after the highest seq.
    assert journal.insert(foreign("a", 3, NOW + 10)) is True
    assert journal.append(Change(p("x"), 4)).seq == 4
    assert journal.summary() == IdSet.parse("a:1,3-4")


# ---------------------------------------------------------------------------- reads


def fill(journal: AnyJournal) -> list[Event]:
    """A small journal with three origins, shared hlcs and a path tree."""
    items: list[Change | Event] = [
        Change(p("x"), 1),  # hlc NOW
        foreign("c", 1, NOW, "x.y", 1),  # the same hlc from other origins
        foreign("b", 2, NOW, "x", 2),
        Change(p("x.y"), 3),
        foreign("b", 1, NOW - 5, "x:1", 4),
        Change(p(":"), 5),
        Change(p("x.y.z"), 6),
        Change(Path(("x", "")), 7),
        Change(Path(("x\x00",)), 8),
        foreign("c", 2, NOW + 7, "w", 9),
        Change.delete(p("x")),
    ]
    results = journal.write_batch(items)
    assert all(r is True or isinstance(r, Event) for r in results), results
    return [e for _, e in journal.scan()]


def test_scan_is_arrival_order(journal: AnyJournal) -> None:
    events = fill(journal)
    assert [pos for pos, _ in journal.scan()] == list(range(1, 12))
    assert [e.value for e in events] == [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, None]
    assert [e for _, e in journal.scan(3, 5)] == events[2:5]
    assert [e for _, e in journal.scan(10)] == events[9:]
    assert [e for _, e in journal.scan(reverse=True)] == events[::-1]
    assert [pos for pos, _ in journal.scan(4, 6, reverse=True)] == [6, 5, 4]
    assert list(journal.scan(6, 5)) == []


def test_by_origin_is_seq_order_within_bounds(journal: AnyJournal) -> None:
    fill(journal)
    assert seqs(journal.by_origin("b")) == [("b", 1), ("b", 2)]
    assert seqs(journal.by_origin("a", 2, 4)) == [("a", 2), ("a", 3), ("a", 4)]
    assert seqs(journal.by_origin("a", 6)) == [("a", 6), ("a", 7)]
    assert list(journal.by_origin("a", 8)) == []
    assert list(journal.by_origin("nobody")) == []
    assert list(journal.by_origin("a", 1, 0)) == []


def test_history_of_a_path_is_hlc_then_origin_order(journal: AnyJournal) -> None:
    fill(journal)
    assert [(e.hlc, e.origin) for e in journal.history(p("x"))] == [
        (NOW, "a"),
        (NOW, "b"),
        (NOW + 8, "a"),
    ]
    assert [e.value for e in journal.history(p("x"), reverse=True)] == [None, 2, 1]
    assert [e.value for e in journal.history(p("x.y"))] == [1, 3]
    assert list(journal.history(p("nowhere"))) == []


def test_history_of_a_subtree_is_grouped_by_path_in_key_order(journal: AnyJournal) -> None:
    fill(journal)
    # Path key order: a path before its children, ints before strings, and
    # "x" (then its children) before "x\x00".
    assert [(e.path, e.value) for e in journal.history(p("x"), subtree=True)] == [
        (p("x"), 1),
        (p("x"), 2),
        (p("x"), None),
        (p("x:1"), 4),
        (Path(("x", "")), 7),
        (p("x.y"), 1),
        (p("x.y"), 3),
        (p("x.y.z"), 6),
    ]
    assert [e.value for e in journal.history(p("x.y"), subtree=True, reverse=True)] == [6, 3, 1]


def test_history_of_the_root(journal: AnyJournal) -> None:
    events = fill(journal)
    assert [e.value for e in journal.history(Path())] == [5]
    everything = list(journal.history(Path(), subtree=True))
    assert sorted(seqs(iter(everything))) == sorted(seqs(iter(events)))
    assert everything[0].path == Path()
    assert everything[-1].path == Path(("x\x00",))


def test_by_time_is_an_inclusive_window_in_hlc_origin_order(journal: AnyJournal) -> None:
    events = fill(journal)
    ordered = sorted(events, key=lambda e: (e.hlc, e.origin))
    assert list(journal.by_time()) == ordered
    assert list(journal.by_time(reverse=True)) == ordered[::-1]
    assert [(e.hlc, e.origin) for e in journal.by_time(NOW, NOW)] == [
        (NOW, "a"),
        (NOW, "b"),
        (NOW, "c"),
    ]
    assert list(journal.by_time(NOW + 1)) == [e for e in ordered if e.hlc >= NOW + 1]
    assert list(journal.by_time(until=NOW - 1)) == [e for e in ordered if e.hlc <= NOW - 1]
    assert list(journal.by_time(NOW + 100, NOW + 1)) == []
    assert list(journal.by_time(NOW - 5, NOW, reverse=True)) == [
        e for e in ordered[::-1] if NOW - 5 <= e.hlc <= NOW
    ]


def test_reads_cross_chunk_boundaries(journal: AnyJournal) -> None:
    """Longer than the LMDB journal's read chunk (1024 entries) in every index."""
    n = 2600
    for start in range(0, n, 1000):
        ok(
            journal.write_batch(
                [Change(p("x") / (i % 3), i) for i in range(start, min(n, start + 1000))]
            )
        )
    assert [pos for pos, _ in journal.scan()] == list(range(1, n + 1))
    assert [pos for pos, _ in journal.scan(reverse=True)] == list(range(n, 0, -1))
    assert [e.seq for e in journal.by_origin("a", 2)] == list(range(2, n + 1))
    assert [e.seq for e in journal.by_time()] == list(range(1, n + 1))
    assert [e.seq for e in journal.by_time(reverse=True)] == list(range(n, 0, -1))
    subtree = [e.seq for e in journal.history(p("x"), subtree=True, reverse=True)]
    assert subtree == [s for i in (2, 1, 0) for s in range(n, 0, -1) if (s - 1) % 3 == i]


# ------------------------------------------------------------------------ lifecycle


def test_a_reopened_journal_holds_everything_and_continues(
    journals: Journals, journal: AnyJournal
) -> None:
    events = fill(journal)
    clock_before = journal.clock
    journal = journals.reopen(journal)
    assert [e for _, e in journal.scan()] == events
    assert journal.clock == clock_before
    assert journal.summary() == IdSet.parse("a:1-7 b:1-2 c:1-2")
    event = journal.append(Change(p("x"), 10))
    assert (event.seq, event.hlc) == (8, clock_before + 1)
    assert event.deps == VectorClock({"b": 2, "c": 2})


def test_an_exhausted_clock_refuses_the_append_alone(journal: AnyJournal) -> None:
    journal.insert(foreign("b", 1, MAX_U64))  # a peer's garbage clock
    results = journal.write_batch([Change(p("x"), 1), foreign("b", 2, 5)])
    assert isinstance(results[0], ClockError)
    assert results[1] is True


def test_the_longest_valid_path_can_be_stored(journals: Journals, clock: FakeWallClock) -> None:
    node = "n" * 64
    journal = journals.create(node, clock)
    longest = Path(["s" * (MAX_KEY_BYTES - 3)])
    assert len(longest.key) == MAX_KEY_BYTES
    results = journal.write_batch([Change(p("x"), 1), Change(longest, 2)])
    assert [type(r) for r in results] == [Event, Event]
    assert [e.value for e in journal.history(longest)] == [2]


# =========================================================== the state machine

# The node's name sorts between its peers', so its index keys are sometimes
# the last ones (appended in LMDB's append mode) and sometimes not.
NODE = "m"
REMOTES = {"b": NOW - 3, "z": NOW + 10 * SECOND}  # where each remote node's clock starts
SEGMENTS: st.SearchStrategy[str | int] = st.sampled_from(["x", "y", "", "x\x00", 0, 1, -1])
small_paths = paths(SEGMENTS, max_depth=3)
small_values = values(max_leaves=3)
CLOCK_MOVES = st.sampled_from([0, 0, 1, 1000, SECOND, 3600 * SECOND, -1, -SECOND, -3600 * SECOND])
HLC_STEPS = st.sampled_from([1, 2, 1000, SECOND])


def assert_same_event(got: Event, want: Event) -> None:
    assert got == want
    assert got.pack() == want.pack()


def assert_same_results(got: Sequence[WriteResult], want: Sequence[WriteResult]) -> None:
    assert len(got) == len(want)
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        if isinstance(w, Event):
            assert isinstance(g, Event), f"item {index}: {g!r} instead of {w!r}"
            assert_same_event(g, w)
        elif isinstance(w, Exception):
            assert type(g) is type(w), f"item {index}: {g!r} instead of {w!r}"
        else:
            assert g is w, f"item {index}: {g!r} instead of {w!r}"


def assert_same_events(got: Iterator[Event], want: Iterator[Event]) -> None:
    got_list, want_list = list(got), list(want)
    assert [e.id for e in got_list] == [e.id for e in want_list]
    for g, w in zip(got_list, want_list, strict=True):
        assert_same_event(g, w)


class JournalAgainstModel(RuleBasedStateMachine):
    """An LMDB journal and the `MemoryJournal` model, fed the same writes."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="moat-log-contract-")
        self.clock = FakeWallClock()
        self.journal = Journal.create(self.dir, NODE, wall_clock=self.clock)
        self.model = MemoryJournal(NODE, wall_clock=self.clock)
        # Each remote node's events, made in seq order with rising hlc and
        # delivered in any order, any number of times.
        self.made: dict[str, list[Event]] = {origin: [] for origin in REMOTES}

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- building items ----------------------------------------------------

    def remote_event(self, data: st.DataObject, origin: str, seq: int) -> Event:
        made = self.made[origin]
        while len(made) < seq:
            hlc = (made[-1].hlc if made else REMOTES[origin]) + data.draw(HLC_STEPS)
            op = data.draw(st.sampled_from(Op))
            own = self.model.summary().seqs(NODE)
            deps = {NODE: data.draw(st.integers(0, own.max))} if own else {}
            made.append(
                Event(
                    origin,
                    len(made) + 1,
                    hlc,
                    VectorClock(deps),
                    data.draw(small_paths),
                    op,
                    None if op is Op.DELETE else data.draw(small_values),
                    f"remote:{origin}",
                )
            )
        return made[seq - 1]

    def change(self, data: st.DataObject) -> Change:
        base = self.model.clock
        at = st.none() | st.sampled_from([-1, 0, 1, 2, SECOND]).map(lambda d: max(1, base + d))
        return data.draw(changes(paths=small_paths, values=small_values, at=at))

    def delivery(self, data: st.DataObject) -> Event:
        """A remote event: new, out of order (leaving a gap), or already held."""
        origin = data.draw(st.sampled_from(sorted(REMOTES)))
        seq = data.draw(st.integers(1, len(self.made[origin]) + 3))
        return self.remote_event(data, origin, seq)

    def conflict(self, data: st.DataObject) -> Event:
        """An event that must be refused, or a forged one that takes an id first."""
        held = [e for _, e in self.model.scan()]
        kind = data.draw(st.sampled_from(["content", "hlc"]))
        if kind == "hlc" and held:
            # A new seq far beyond any real one, reusing a held (hlc, origin).
            victim = data.draw(st.sampled_from(held))
            seq = 10**6 + data.draw(st.integers(0, 5))
            return Event(victim.origin, seq, victim.hlc, victim.deps, victim.path, Op.SET, 0)
        # Another event under a made or held id.  If the real one was not
        # delivered yet, the forgery wins the id and the real one is refused.
        candidates = held + [e for made in self.made.values() for e in made]
        if not candidates:
            return self.delivery(data)
        victim = data.draw(st.sampled_from(candidates))
        value = data.draw(st.sampled_from([["forged"], victim.value, 0, False]))
        return Event(
            victim.origin, victim.seq, victim.hlc, victim.deps, victim.path, Op.SET, value, "forged"
        )

    def foreign_item(self, data: st.DataObject) -> Event:
        kind = data.draw(st.sampled_from(["delivery", "delivery", "delivery", "conflict", "echo"]))
        if kind == "conflict":
            return self.conflict(data)
        own = list(self.model.by_origin(NODE))
        if kind == "echo" and own:  # a peer sends one of our own events back
            return data.draw(st.sampled_from(own))
        return self.delivery(data)

    # --- writes ------------------------------------------------------------

    def write(self, items: list[Change | Event]) -> None:
        held_before = max((e.hlc for _, e in self.model.scan()), default=0)
        want = self.model.write_batch(items)
        got = self.journal.write_batch(items)
        assert_same_results(got, want)
        for result in got:
            if isinstance(result, Event) and result.seq > 1:  # deps never decrease
                previous = self.journal.get(EventId(NODE, result.seq - 1))
                assert previous is not None
                assert previous.deps.first_decrease(result.deps) is None, (previous, result)
        # HLC: a local event is later than everything the journal held before it.
        newest = held_before
        for item, result in zip(items, got, strict=True):
            if isinstance(result, Event):
                assert result.hlc > newest
                newest = result.hlc
            elif result is True:
                assert isinstance(item, Event)
                newest = max(newest, item.hlc)

    @rule(data=st.data(), move=CLOCK_MOVES, size=st.integers(1, 5))
    def append_changes(self, data: st.DataObject, move: int, size: int) -> None:
        self.clock.advance(move)
        self.write([self.change(data) for _ in range(size)])

    @rule(data=st.data(), size=st.integers(1, 5))
    def insert_foreign_events(self, data: st.DataObject, size: int) -> None:
        self.write([self.foreign_item(data) for _ in range(size)])

    @rule(data=st.data(), move=CLOCK_MOVES, kinds=st.lists(st.booleans(), min_size=2, max_size=8))
    def write_mixed_batch(self, data: st.DataObject, move: int, kinds: list[bool]) -> None:
        self.clock.advance(move)
        self.write([self.change(data) if local else self.foreign_item(data) for local in kinds])

    @rule(data=st.data(), count=st.integers(1, 3))
    def own_events_come_back(self, data: st.DataObject, count: int) -> None:
        """Own events the node wrote before it lost its data, with what they had seen.

        Their deps may name events of other origins the journal does not hold.
        """
        seq, hlc = self.model.summary().max(NODE), self.model.clock
        restored: list[Change | Event] = []
        for _ in range(count):
            seq, hlc = seq + 1, hlc + data.draw(HLC_STEPS)
            deps = {o: data.draw(st.integers(0, len(made) + 3)) for o, made in self.made.items()}
            restored.append(Event(NODE, seq, hlc, VectorClock(deps), p("x"), Op.SET, seq, "old"))
        self.write(restored)

    @rule()
    def reopen(self) -> None:
        self.journal.close()
        self.journal = Journal.open(self.dir, wall_clock=self.clock)

    # --- queries -----------------------------------------------------------

    @rule(path=small_paths, subtree=st.booleans(), reverse=st.booleans())
    def same_history(self, path: Path, subtree: bool, reverse: bool) -> None:
        assert_same_events(
            self.journal.history(path, subtree=subtree, reverse=reverse),
            self.model.history(path, subtree=subtree, reverse=reverse),
        )

    @rule(data=st.data(), reverse=st.booleans())
    def same_by_time(self, data: st.DataObject, reverse: bool) -> None:
        hlcs = sorted({e.hlc + d for _, e in self.model.scan() for d in (-1, 0, 1)})
        bound = st.none() | (st.sampled_from(hlcs) if hlcs else st.integers(NOW - 5, NOW + 5))
        since, until = data.draw(bound), data.draw(bound)
        assert_same_events(
            self.journal.by_time(since, until, reverse=reverse),
            self.model.by_time(since, until, reverse=reverse),
        )

    @rule(
        origin=st.sampled_from([NODE, *REMOTES, "nobody"]),
        first=st.integers(1, 12),
        last=st.none() | st.integers(0, 12),
    )
    def same_by_origin(self, origin: str, first: int, last: int | None) -> None:
        assert_same_events(
            self.journal.by_origin(origin, first, last), self.model.by_origin(origin, first, last)
        )

    @rule(start=st.integers(1, 40), end=st.none() | st.integers(0, 40), reverse=st.booleans())
    def same_scan_window(self, start: int, end: int | None, reverse: bool) -> None:
        got = list(self.journal.scan(start, end, reverse=reverse))
        want = list(self.model.scan(start, end, reverse=reverse))
        assert [pos for pos, _ in got] == [pos for pos, _ in want]
        assert_same_events(iter(e for _, e in got), iter(e for _, e in want))

    @rule(origin=st.sampled_from([NODE, *REMOTES]), seq=st.integers(1, 12 + 10**6))
    def same_get(self, origin: str, seq: int) -> None:
        got, want = self.journal.get(EventId(origin, seq)), self.model.get(EventId(origin, seq))
        if want is None:
            assert got is None
        else:
            assert got is not None
            assert_same_event(got, want)

    # --- invariants --------------------------------------------------------

    @invariant()
    def same_summary_clock_and_arrival_order(self) -> None:
        assert self.journal.summary() == self.model.summary()
        assert self.journal.clock == self.model.clock
        assert self.journal.last_position == self.model.last_position
        assert_same_events(
            iter(e for _, e in self.journal.scan()), iter(e for _, e in self.model.scan())
        )

    @invariant()
    def hlc_rises_with_seq_per_origin(self) -> None:
        for origin in self.journal.summary().origins:
            hlcs = [e.hlc for e in self.journal.by_origin(origin) if e.seq < 10**6]
            assert hlcs == sorted(set(hlcs)), f"{origin}: hlc does not rise with seq"

    @invariant()
    def own_seqs_are_gapless(self) -> None:
        own = self.journal.summary().seqs(NODE)
        assert not own or list(own.ranges()) == [(1, own.max)]


JournalAgainstModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestJournalAgainstModel = JournalAgainstModel.TestCase


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(changes(), events()), min_size=1, max_size=12), CLOCK_MOVES)
def test_any_batch_gives_the_models_results(items: list[Change | Event], move: int) -> None:
    """The default strategies' whole value space: big ints, inf, -0.0, NUL, bytes, unicode."""
    clock = FakeWallClock()
    model = MemoryJournal("a", wall_clock=clock)
    with (
        tempfile.TemporaryDirectory() as data_dir,
        Journal.create(data_dir, "a", wall_clock=clock) as journal,
    ):
        for batch in (items[: len(items) // 2], items[len(items) // 2 :]):
            want = model.write_batch(batch)
            assert_same_results(journal.write_batch(batch), want)
            clock.advance(move)
        assert_same_events(iter(e for _, e in journal.scan()), iter(e for _, e in model.scan()))
        assert journal.summary() == model.summary()


def test_reads_up_to_the_largest_u64_bound(tmp_path: FsPath) -> None:
    """Inclusive upper bounds at 2**64-1 mean "no bound", not an overflow."""
    from moat_log.ids import MAX_U64
    from moat_log.journal.store import Journal

    with Journal.create(tmp_path, "pi1") as journal:
        journal.write_batch([Change(Path(("x",)), 1)])
        assert len(list(journal.by_time(until=MAX_U64))) == 1
        assert len(list(journal.by_origin("pi1", 1, MAX_U64))) == 1
        assert len(list(journal.scan(1, MAX_U64))) == 1
