"""The KV view: winners, tombstones, conflicts, and order-independence."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path as FsPath
from typing import Any
from unittest import mock

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moat_log.errors import JournalError
from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path, Segment
from moat_log.projections import kv as kv_module
from moat_log.projections import kv_view, open_journal
from moat_log.projections.kv import Conflict, KVView
from moat_log.testing import kv_conflicts, kv_winners, paths

ORIGINS = ("a", "b", "c")
PATHS = [Path(("home", name)) for name in ("light", "heat", "door")] + [Path(("home",))]


def p(text: str) -> Path:
    return Path.parse(text)


# ---------------------------------------------------------------- simulation


class Node:
    """A writer with partial knowledge, obeying the clock rules of the journal."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: dict[str, int] = {}  # origin -> highest contiguous seq known
        self.clock = 0
        self.seq = 0

    def write(self, path: Path, op: Op, value: object, wall: int) -> Event:
        self.seq += 1
        self.clock = max(wall, self.clock + 1)
        deps = {o: s for o, s in self.seen.items() if o != self.name}
        return Event(self.name, self.seq, self.clock, deps, path, op, value)

    def learn(self, events: list[Event], origin: str, upto: int) -> None:
        for event in events:
            if event.origin == origin and event.seq <= upto:
                self.clock = max(self.clock, event.hlc)
        self.seen[origin] = max(self.seen.get(origin, 0), upto)


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Events of three nodes writing a few paths while partly out of touch."""
    nodes = {name: Node(name) for name in ORIGINS}
    events: list[Event] = []
    wall = 1_000
    for _ in range(draw(st.integers(1, 40))):
        wall += draw(st.integers(-50, 100))  # wall clocks jitter and step back
        node = nodes[draw(st.sampled_from(ORIGINS))]
        if draw(st.booleans()):
            other = draw(st.sampled_from(ORIGINS))
            written = sum(1 for e in events if e.origin == other)
            node.learn(events, other, draw(st.integers(0, written)))
            continue
        op = draw(st.sampled_from([Op.SET, Op.SET, Op.DELETE]))
        value = None if op is Op.DELETE else draw(st.integers(0, 5))
        events.append(node.write(draw(st.sampled_from(PATHS)), op, value, wall))
    return events


def view_bytes(journal: Journal) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every entry of the view's databases, as stored."""
    dumped = {}
    for name, handle in journal._view_dbs["kv"].items():
        with journal._read() as txn:
            dumped[name] = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=handle)]
    return dumped


@pytest.fixture
def fresh(tmp_path: FsPath) -> Iterator[object]:
    opened: list[Journal] = []

    def make(name: str = "x") -> Journal:
        journal = open_journal(tmp_path / f"{name}{len(opened)}", create_node=name)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()


def insert_in_order(journal: Journal, events: list[Event], rnd: random.Random) -> None:
    """Insert *events* shuffled, in random batches, some of them twice."""
    pending = events + rnd.sample(events, k=len(events) // 3)
    rnd.shuffle(pending)
    while pending:
        size = rnd.randint(1, 7)
        batch, pending = pending[:size], pending[size:]
        journal.write_batch(batch)


# ------------------------------------------------------------------ properties


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=histories(), seed=st.integers(0, 2**32))
def test_the_view_is_a_function_of_the_event_set(
    tmp_path_factory: pytest.TempPathFactory, events: list[Event], seed: int
) -> None:
    base = tmp_path_factory.mktemp("kv")
    rnd = random.Random(seed)
    dumps = []
    for i in range(3):
        with open_journal(base / str(i), create_node="x") as journal:
            insert_in_order(journal, events, rnd)
            dumps.append(view_bytes(journal))
            view = kv_view(journal)
            winners = kv_winners(events)
            for path in PATHS:
                assert view.get(path) == winners.get(path)
            found = {(c.path, c.loser) for c in view.conflicts()}
            assert found == kv_conflicts(events)
            if i == 0:
                journal.rebuild_view("kv")
                assert view_bytes(journal) == dumps[0], "a rebuild gives identical bytes"
    assert dumps[0] == dumps[1] == dumps[2], "byte-identical whatever the order"


# Segments that are prefixes of each other (a, ab, a NUL), NULs, the empty
# string, and ints whose keys end in 00 or FF bytes (the seek past a child
# increments the last byte that is not FF).
CHILD_SEGMENTS: st.SearchStrategy[Segment] = st.sampled_from(
    ["a", "ab", "a\x00", "a\x00b", "", "b", 0, -1, 255, 256, 2**63 - 1, -(2**63)]
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(st.tuples(paths(CHILD_SEGMENTS, max_depth=3), st.booleans()), max_size=30),
    elsewhere=st.lists(paths(CHILD_SEGMENTS, max_depth=3), max_size=3),
    chunk=st.sampled_from([1, 2, 1024]),
)
def test_children_are_the_next_segments_of_the_live_paths_in_walk(
    tmp_path_factory: pytest.TempPathFactory,
    writes: list[tuple[Path, bool]],
    elsewhere: list[Path],
    chunk: int,
) -> None:
    """children() equals its definition, for every prefix, deletes and the root included."""
    changes = [Change.delete(path) if deleted else Change(path, 1) for path, deleted in writes]
    prefixes = {path[:n] for path, _ in writes for n in range(len(path) + 1)}
    with open_journal(tmp_path_factory.mktemp("children"), create_node="x") as journal:
        journal.write_batch(changes)
        view = kv_view(journal)
        # Small chunks make the scan resume in new read transactions.
        with mock.patch.object(kv_module, "_SCAN_CHUNK", chunk):
            for prefix in sorted({Path(), *prefixes, *elsewhere}, key=Path.sort_key):
                depth = len(prefix)
                below = (e.path[depth] for e in view.walk(prefix) if len(e.path) > depth)
                assert view.children(prefix) == list(dict.fromkeys(below)), prefix


class CountingCursor:
    """An LMDB cursor that records each of its moves (seeks and steps)."""

    MOVES = frozenset({"set_range", "set_key", "next", "prev", "first", "last"})

    def __init__(self, cursor: Any, moves: list[str]) -> None:
        self._cursor, self._moves = cursor, moves

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._cursor, name)
        if name not in self.MOVES:
            return attr

        def move(*args: Any) -> Any:
            self._moves.append(name)
            return attr(*args)

        return move


def count_cursor_moves(view: KVView, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make *view*'s read transactions hand out cursors that record their moves."""
    moves: list[str] = []
    reading = view._journal_read

    class CountingTxn:
        def __init__(self, txn: Any) -> None:
            self._txn = txn

        def cursor(self, **kwargs: Any) -> CountingCursor:
            return CountingCursor(self._txn.cursor(**kwargs), moves)

    @contextmanager
    def counting_read() -> Iterator[CountingTxn]:
        with reading() as txn:
            yield CountingTxn(txn)

    monkeypatch.setattr(view, "_journal_read", counting_read)
    return moves


def test_children_seek_past_a_large_subtree(fresh, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """10,000 paths under one child cost one seek, not 10,000 steps."""
    journal = fresh()
    journal.write_batch(
        [Change(p(f"big.dev{i}.value"), i) for i in range(10_000)]
        + [Change(p("a"), 1), Change(p("gone.x"), 2), Change(p("zz.x"), 3)]
    )
    journal.write_batch([Change.delete(p("big.dev0.value")), Change.delete(p("gone.x"))])
    view = kv_view(journal)
    moves = count_cursor_moves(view, monkeypatch)
    assert view.children() == ["a", "big", "zz"]
    # The first seek, one seek past each child, and one step over each of the
    # two tombstones met first (big.dev0.value, gone.x).
    assert len(moves) == 1 + 3 + 2, moves
    assert moves.count("next") == 2


# ------------------------------------------------------------------- examples


def test_the_latest_write_wins_and_a_delete_hides_the_value(fresh) -> None:  # type: ignore[no-untyped-def]
    journal = fresh()
    view = kv_view(journal)
    journal.write_batch([Change(p("home.light"), True), Change(p("home.heat"), 20)])
    journal.append(Change(p("home.light"), False))
    journal.append(Change.delete(p("home.heat")))
    assert view.value(p("home.light")) is False
    assert view.value(p("home.heat"), "gone") == "gone"
    tombstone = view.get(p("home.heat"))
    assert tombstone is not None and tombstone.op is Op.DELETE
    assert view.get(p("home.never")) is None


def test_an_older_set_arriving_late_does_not_bring_a_deleted_value_back(fresh) -> None:  # type: ignore[no-untyped-def]
    journal = fresh()
    view = kv_view(journal)
    journal.write_batch([Event("b", 2, 200, {}, p("a.b"), Op.DELETE)])
    journal.write_batch([Event("b", 1, 100, {}, p("a.b"), Op.SET, 5)])
    assert view.value(p("a.b")) is None


def test_ties_on_hlc_are_broken_by_origin(fresh) -> None:  # type: ignore[no-untyped-def]
    journal = fresh()
    journal.write_batch(
        [Event("b", 1, 100, {}, p("k"), Op.SET, "b"), Event("a", 1, 100, {}, p("k"), Op.SET, "a")]
    )
    assert kv_view(journal).value(p("k")) == "b"


def test_children_and_walk_list_live_values_only(fresh) -> None:  # type: ignore[no-untyped-def]
    journal = fresh()
    view = kv_view(journal)
    journal.write_batch(
        [
            Change(p("home.kitchen.light"), True),
            Change(p("home.kitchen.temp"), 21.5),
            Change(p("home.hall:2.light"), False),
            Change(p("home.gone.x"), 1),
            Change(p("other"), 1),
        ]
    )
    journal.append(Change.delete(p("home.gone.x")))
    assert view.children(p("home")) == [*["hall", "kitchen"]]
    assert view.children(p("home.hall")) == [2]
    assert [str(e.path) for e in view.walk(p("home"))] == [
        "home.hall:2.light",
        "home.kitchen.light",
        "home.kitchen.temp",
    ]
    assert next(str(e.path) for e in view.walk(p("home"), deleted=True)) == "home.gone.x"
    assert view.children() == ["home", "other"]


def test_a_write_that_saw_the_other_is_no_conflict(fresh) -> None:  # type: ignore[no-untyped-def]
    journal = fresh()
    view = kv_view(journal)
    journal.write_batch(
        [
            Event("a", 1, 100, {}, p("k"), Op.SET, 1),
            Event("b", 1, 200, {"a": 1}, p("k"), Op.SET, 2),  # b had seen a:1
        ]
    )
    assert list(view.conflicts()) == []
    journal.write_batch([Event("c", 1, 300, {}, p("k"), Op.SET, 3)])  # c had seen nothing
    winner = view.get(p("k"))
    assert winner is not None
    assert sorted(view.conflicts(), key=lambda c: c.loser) == [
        Conflict(p("k"), winner, EventId("a", 1)),
        Conflict(p("k"), winner, EventId("b", 1)),
    ]


def test_a_writer_without_the_view_is_refused_and_a_new_view_is_built(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, "pi1") as plain:  # an old journal, no views yet
        plain.write_batch([Change(p("a"), 1), Change(p("b"), 2), Change(p("a"), 3)])
    with open_journal(tmp_path) as journal:  # the view is built on opening
        assert kv_view(journal).value(p("a")) == 3
        assert journal.views() == {"kv": (2, 3)}
    with Journal.open(tmp_path) as plain, pytest.raises(JournalError, match="views kv"):
        plain.append(Change(p("c"), 1))
    with Journal.open(tmp_path) as plain:
        assert len(list(plain.scan())) == 3, "reading is still allowed"


def test_the_checkpoint_follows_the_journal(fresh) -> None:  # type: ignore[no-untyped-def]
    journal = fresh()
    journal.write_batch([Change(p("a"), i) for i in range(5)])
    assert journal.views()["kv"] == (2, journal.last_position) == (2, 5)


def test_verify_compares_the_view_with_a_fresh_fold(fresh) -> None:  # type: ignore[no-untyped-def]
    from moat_log.journal.verify import verify_journal

    journal = fresh()
    journal.write_batch([Change(p("a.b"), 1), Change(p("a.c"), 2), Change(p("a.b"), 3)])
    assert verify_journal(journal).ok
    kv = journal._view_dbs["kv"]["kv"]
    with journal._env.begin(write=True) as txn:  # damage the view behind the journal's back
        txn.put(p("a.c").key, txn.get(p("a.b").key, db=kv), db=kv)
        txn.put(p("ghost").key, txn.get(p("a.b").key, db=kv), db=kv)
        txn.delete(p("a.b").key, db=kv)
    problems = verify_journal(journal).problems
    assert "kv view: the record of a.c is not the fold" in problems
    assert "kv view: ghost has a record but no events" in problems
    assert "kv view: a.b has events but no record" in problems
    journal.rebuild_view("kv")
    assert verify_journal(journal).ok


def test_the_root_path_has_a_value_like_any_other(fresh) -> None:  # type: ignore[no-untyped-def]
    from moat_log.journal.verify import verify_journal

    journal = fresh()
    view = kv_view(journal)
    journal.write_batch([Change(Path(), "root"), Change(p("a"), 1)])
    assert view.value(Path()) == "root"
    assert [str(e.path) for e in view.walk()] == [":", "a"]
    assert view.children() == ["a"]
    assert [str(e.path) for e in view.walk(p("a"))] == ["a"]
    journal.append(Change.delete(Path()))
    assert view.value(Path()) is None
    assert verify_journal(journal).ok


@pytest.mark.parametrize("damage", ["not msgpack", "invalid event"])
def test_a_rebuild_that_meets_a_corrupt_record_names_its_position(fresh, damage: str) -> None:  # type: ignore[no-untyped-def]
    from moat_log.errors import JournalCorruptError
    from moat_log.journal import keys

    journal = fresh()
    journal.write_batch([Change(p("a"), i) for i in range(3)])
    view = view_bytes(journal)
    if damage == "not msgpack":
        record = b"\xc1garbage"
    else:  # well-formed msgpack, but seq 0 is no event
        fields = msgpack.unpackb(dict(journal.scan_raw())[2])
        fields[2] = 0
        record = msgpack.packb(fields)
    with journal._env.begin(write=True) as txn:
        txn.put(keys.pack_u64(2), record, db=journal._dbs["events"])
    with pytest.raises(JournalCorruptError, match="position 2 does not unpack"):
        journal.rebuild_view("kv")
    assert view_bytes(journal) == view  # rolled back: the view is as it was


def test_verify_reports_a_corrupt_record_of_a_journal_with_views(fresh) -> None:  # type: ignore[no-untyped-def]
    from moat_log.journal import keys
    from moat_log.journal.verify import verify_journal

    journal = fresh()
    journal.write_batch([Change(p("a"), i) for i in range(3)])
    with journal._env.begin(write=True) as txn:
        txn.put(keys.pack_u64(2), b"\xc1garbage", db=journal._dbs["events"])
    problems = verify_journal(journal).problems
    assert any("position 2: the record does not unpack" in problem for problem in problems)
