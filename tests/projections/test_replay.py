"""Replay, diff and restore against a naive model of "the state as of T".

The model: for each path, the event with the greatest ``(hlc, origin)``
among those with ``hlc <= T``.  Hypothesis draws event sets from several
origins with clashing times, inserts them into LMDB journals in shuffled
orders, and compares.  The scan's tuning constants are drawn too, so that
runs are stepped, skipped by seeking and split across read transactions.
"""

from __future__ import annotations

import gc
import random
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path as FsPath
from unittest import mock

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from moat_log.errors import InvalidEventError, JournalCorruptError
from moat_log.event import Event, Op, Value
from moat_log.ids import MAX_U64, EventId
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path, Segment
from moat_log.projections import default_views, kv_view, open_journal
from moat_log.projections import replay as replay_module
from moat_log.projections.replay import (
    Difference,
    diff,
    replay,
    restore_changes,
    restoring,
    state_at,
)
from moat_log.testing import DEFAULT_NOW, FakeWallClock, events, paths, values
from moat_log.vclock import VectorClock

ORIGINS = ("a", "b", "ab", "c")
NODE = "n"  # the journals' own node: restores are its appends
# Few paths, so that each has a history: shared prefixes, children after
# parents, NULs and empty strings in keys.
SEGMENTS: st.SearchStrategy[Segment] = st.sampled_from(["x", "x\x00", "", -1, 7])
PATHS = paths(SEGMENTS, max_depth=2)
PREFIXES = paths(SEGMENTS, max_depth=2)
# Few distinct times: equal hlcs from different origins are decided by origin.
HLCS = st.integers(DEFAULT_NOW, DEFAULT_NOW + 8)
# Values that Python calls equal but moat-log does not.
TRICKY = st.sampled_from([1, 1.0, True, 0, 0.0, -0.0, False, None, "1", b"1", [1], {"a": 1}])
VALUES = st.one_of(TRICKY, values(max_leaves=3))
MOMENTS = st.one_of(st.none(), st.integers(DEFAULT_NOW - 1, DEFAULT_NOW + 9))
TUNING = st.tuples(st.sampled_from([1, 2, 3, 16]), st.sampled_from([1, 2, 5, 1024]))

_packb = msgpack.Packer(use_bin_type=True).pack


@st.composite
def event_sets(
    draw: st.DrawFn, *, paths: st.SearchStrategy[Path] = PATHS, max_size: int = 36
) -> list[Event]:
    """Foreign events with unique ids and unique ``(hlc, origin)`` (as a journal holds)."""
    drawn = draw(
        st.lists(
            events(ORIGINS, seqs=st.integers(1, 40), hlcs=HLCS, paths=paths, values=VALUES),
            max_size=max_size,
            unique_by=(lambda e: e.id, lambda e: (e.hlc, e.origin)),
        )
    )
    return drawn


def model(events: Sequence[Event], until: int | None, prefix: Path) -> dict[Path, Event]:
    """Per path under *prefix*, the winner among the events with ``hlc <= until``."""
    best: dict[Path, Event] = {}
    for event in events:
        if (until is None or event.hlc <= until) and prefix.is_prefix_of(event.path):
            held = best.get(event.path)
            if held is None or (event.hlc, event.origin) > (held.hlc, held.origin):
                best[event.path] = event
    return dict(sorted(best.items(), key=lambda item: item[0].key))


def live_values(state: dict[Path, Event]) -> dict[Path, bytes]:
    """Path -> packed value of the paths that have a value."""
    return {path: _packb(e.value) for path, e in state.items() if e.op is Op.SET}


@contextmanager
def journal_with(
    events: Sequence[Event], *, seed: int = 0, views: bool = False
) -> Iterator[Journal]:
    """A fresh LMDB journal holding *events*, inserted in a shuffled order and batches.

    With *views* it keeps the node's views (the KV view), else none.
    """
    order = list(events)
    rnd = random.Random(seed)
    rnd.shuffle(order)
    with tempfile.TemporaryDirectory() as data_dir:
        clock = FakeWallClock(DEFAULT_NOW + 100)
        kept = default_views() if views else []
        with open_journal(
            data_dir, create_node=NODE, wall_clock=clock, projections=kept
        ) as journal:
            while order:
                size = rnd.randint(1, 8)
                batch, order = order[:size], order[size:]
                assert all(r is True for r in journal.write_batch(batch))
            yield journal


@contextmanager
def tuned(tuning: tuple[int, int]) -> Iterator[None]:
    steps, chunk = tuning
    with (
        mock.patch.object(replay_module, "SEQUENTIAL_STEPS", steps),
        mock.patch.object(replay_module, "CHUNK_ENTRIES", chunk),
    ):
        yield


def in_key_order(state: dict[Path, Event]) -> bool:
    keys = [path.key for path in state]
    return keys == sorted(keys)


# --- replay ---------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(event_sets(), st.lists(MOMENTS, min_size=1, max_size=4), PREFIXES, TUNING, st.integers())
def test_replay_is_the_model_whatever_the_insertion_order(
    events: list[Event],
    moments: list[int | None],
    prefix: Path,
    tuning: tuple[int, int],
    seed: int,
) -> None:
    with (
        journal_with(events, seed=seed) as one,
        journal_with(events, seed=seed + 1) as two,
        tuned(tuning),
    ):
        for until in moments:
            want = model(events, until, prefix)
            got = replay(one, until, prefix=prefix)
            assert got == want
            assert in_key_order(got)
            assert replay(two, until, prefix=prefix) == got
            live = state_at(one, until, prefix=prefix)
            assert live == {p: e for p, e in want.items() if e.op is Op.SET}


@settings(max_examples=60, deadline=None)
@given(event_sets(paths=st.lists(SEGMENTS, max_size=2).map(Path)), PREFIXES, st.integers())
def test_replay_now_is_the_kv_view(events: list[Event], prefix: Path, seed: int) -> None:
    """Two independent folds of the same events: the view kept as they arrived, and replay."""
    with journal_with(events, seed=seed, views=True) as journal:
        view = kv_view(journal)
        assert list(replay(journal, prefix=prefix).values()) == list(
            view.walk(prefix, deleted=True)
        )
        assert list(state_at(journal, None, prefix=prefix).values()) == list(view.walk(prefix))


@settings(max_examples=100, deadline=None)
@given(event_sets(), MOMENTS, MOMENTS, PREFIXES, TUNING)
def test_diff_is_the_model(
    events: list[Event],
    t1: int | None,
    t2: int | None,
    prefix: Path,
    tuning: tuple[int, int],
) -> None:
    before, after = model(events, t1, prefix), model(events, t2, prefix)
    want = []
    for path in sorted(before.keys() | after.keys(), key=Path.sort_key):
        old, new = before.get(path), after.get(path)
        if _value(old) != _value(new):
            want.append(Difference(path, old, new))
    with journal_with(events) as journal, tuned(tuning):
        assert diff(journal, t1, t2, prefix=prefix) == want
        assert [(d.path, d.after, d.before) for d in diff(journal, t2, t1, prefix=prefix)] == [
            (d.path, d.before, d.after) for d in want
        ]


def _value(event: Event | None) -> bytes | None:
    return None if event is None or event.op is Op.DELETE else _packb(event.value)


# --- restore --------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(event_sets(), MOMENTS.filter(lambda t: t is not None), PREFIXES, TUNING)
def test_restore_brings_back_the_state_of_then_under_the_prefix_only(
    events: list[Event], until: int, prefix: Path, tuning: tuple[int, int]
) -> None:
    with journal_with(events) as journal, tuned(tuning):
        then = state_at(journal, until, prefix=prefix)
        everything_before = replay(journal)
        changes = restore_changes(journal, until, prefix=prefix, source="restore:test")
        assert [c.path.key for c in changes] == sorted(c.path.key for c in changes)
        for change in changes:
            assert prefix.is_prefix_of(change.path)
            assert change.source == "restore:test"
            expected_cause = then[change.path].id if change.op is Op.SET else None
            assert change.cause == expected_cause
        written = journal.write_batch(changes)
        assert all(isinstance(e, Event) for e in written)

        assert live_values(state_at(journal, None, prefix=prefix)) == live_values(then)
        everything_after = replay(journal)
        outside = {p: e for p, e in everything_after.items() if not prefix.is_prefix_of(p)}
        assert outside == {p: e for p, e in everything_before.items() if not prefix.is_prefix_of(p)}
        assert restore_changes(journal, until, prefix=prefix, source="again") == []


def test_restore_sets_changed_and_deleted_paths_and_deletes_new_ones(tmp_path: FsPath) -> None:
    t = DEFAULT_NOW
    history = [
        foreign("a", 1, t + 1, "x", 1),  # changed later: set back to 1
        foreign("a", 2, t + 2, "y", "same"),  # unchanged: left alone
        foreign("a", 3, t + 3, "z", [1]),  # deleted later: set again
        foreign("a", 4, t + 4, "gone", 5, op=Op.DELETE),  # deleted then, set later: deleted
        foreign("a", 5, t + 10, "x", True),  # == 1 in Python, a different value here
        foreign("a", 6, t + 11, "z", None, op=Op.DELETE),
        foreign("a", 7, t + 12, "gone", "back"),
        foreign("a", 8, t + 13, "new", 1.5),  # did not exist then: deleted
        foreign("a", 9, t + 14, "new2", None, op=Op.DELETE),  # no value now or then: alone
    ]
    with Journal.create(tmp_path, NODE) as journal:
        journal.write_batch(history)
        changes = restore_changes(journal, t + 5, source="restore:then")
        assert [(str(c.path), c.op, c.value, c.cause) for c in changes] == [
            ("gone", Op.DELETE, None, None),
            ("new", Op.DELETE, None, None),
            ("x", Op.SET, 1, EventId("a", 1)),
            ("z", Op.SET, [1], EventId("a", 3)),
        ]
        journal.write_batch(changes)
        assert restore_changes(journal, t + 5, source="again") == []
        now = state_at(journal, None)
        assert {str(p): e.value for p, e in now.items()} == {"x": 1, "y": "same", "z": [1]}
        assert type(now[Path(["x"])].value) is int


@given(events(ORIGINS, paths=PATHS, values=VALUES), st.sampled_from(["restore:x", ""]))
def test_restoring_builds_the_change_the_validating_constructor_builds(
    event: Event, source: str
) -> None:
    then = Difference(event.path, event, None)
    if event.op is Op.SET:
        expected = Change(event.path, event.value, source=source, cause=event.id)
    else:
        expected = Change.delete(event.path, source=source)
    assert restoring(then, source=source) == expected
    assert restoring(Difference(event.path, None, event), source=source) == Change.delete(
        event.path, source=source
    )


def test_restoring_refuses_an_invalid_source() -> None:
    event = foreign("a", 1, DEFAULT_NOW, "x", 1)
    with pytest.raises(InvalidEventError, match="source"):
        restoring(Difference(event.path, event, None), source="s" * 300)


# --- examples and edges ---------------------------------------------------------------------


def foreign(origin: str, seq: int, hlc: int, path: str, value: Value, *, op: Op = Op.SET) -> Event:
    if op is Op.DELETE:
        value = None
    return Event(origin, seq, hlc, VectorClock(), Path.parse(path), op, value, "test")


def test_equal_times_are_decided_by_origin_and_tombstones_win_like_sets(tmp_path: FsPath) -> None:
    t = DEFAULT_NOW
    with Journal.create(tmp_path, NODE) as journal:
        journal.write_batch(
            [
                foreign("b", 1, t, "x", "from b"),
                foreign("a", 1, t, "x", "from a"),
                foreign("a", 2, t + 1, "y", "set"),
                foreign("ab", 1, t + 1, "y", None, op=Op.DELETE),  # "ab" > "a"
            ]
        )
        state = replay(journal, t + 1)
        assert state[Path(["x"])].value == "from b"
        assert state[Path(["y"])].op is Op.DELETE
        assert Path(["y"]) not in state_at(journal, t + 1)
        assert replay(journal, t - 1) == {}


def test_the_root_path_and_the_whole_u64_range(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, NODE) as journal:
        journal.write_batch(
            [
                foreign("a", 1, 0, ":", "root"),
                foreign("a", 2, 5, "x", "child"),
                foreign("a", 3, MAX_U64, ":", "end of time"),
            ]
        )
        assert replay(journal, 0) == {Path(): journal.get(EventId("a", 1))}
        assert state_at(journal, MAX_U64 - 1)[Path()].value == "root"
        assert state_at(journal, MAX_U64)[Path()].value == "end of time"
        assert state_at(journal, None)[Path()].value == "end of time"
        assert list(replay(journal, None, prefix=Path(["x"]))) == [Path(["x"])]


def test_progress_counts_index_entries(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, NODE) as journal:
        journal.write_batch([Change(Path(["p", i % 3]), i) for i in range(50)])
        seen: list[int] = []
        with tuned((1000, 7)):
            replay(journal, progress=seen.append)
        assert seen == sorted(seen) and seen[-1] == 50 and len(seen) > 1
        seen.clear()
        with tuned((2, 1024)):  # long runs are skipped by seeking: fewer entries read
            assert len(replay(journal, progress=seen.append)) == 3
        assert seen[-1] < 50


def test_a_long_history_is_skipped_not_read(tmp_path: FsPath) -> None:
    """Long runs cost a few seeks: the scan steps over few of their entries."""
    with Journal.create(tmp_path, NODE) as journal:
        for batch in range(10):
            journal.write_batch([Change(Path(["p", i % 4]), batch * 1000 + i) for i in range(1000)])
        seen: list[int] = []
        state = replay(journal, progress=seen.append)
        assert [e.value for e in state.values()] == [9996, 9997, 9998, 9999]
        assert seen[-1] <= 4 * replay_module.SEQUENTIAL_STEPS


@given(paths(), st.integers(0, MAX_U64), st.sampled_from(ORIGINS))
@example(Path(["a\x00b", "\x00"]), 0, "a")  # escaped NULs
@example(Path([-(2**63), 0, ""]), 2**8, "b")  # int bodies of 00 bytes, an empty string
def test_the_path_key_ends_where_the_index_key_says(path: Path, hlc: int, origin: str) -> None:
    key = path.key + b"\x00" + hlc.to_bytes(8, "big") + origin.encode()
    assert replay_module._path_key_end(key) == len(path.key)


@pytest.mark.parametrize(
    "key",
    [b"\x04", b"\x03abc", b"\x02\x00\x00", b"", b"\x03a\x00\x00\x01"],
)
def test_a_malformed_index_key_is_reported_as_corruption(key: bytes) -> None:
    with pytest.raises(JournalCorruptError, match="paths index"):
        replay_module._path_key_end(key)


def test_an_index_entry_without_its_event_is_reported(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, NODE) as journal:
        journal.write_batch([Change(Path(["x"]), 1)])
        with journal._env.begin(write=True) as txn:
            txn.delete((1).to_bytes(8, "big"), db=journal._dbs["events"])
        with pytest.raises(JournalCorruptError, match="position 1"):
            replay(journal)


MAYBE_EVENTS = st.none() | events(ORIGINS, paths=PATHS, values=VALUES)


@given(MAYBE_EVENTS, MAYBE_EVENTS)
@example(foreign("a", 1, 1, "x", 0.0), foreign("a", 2, 2, "x", -0.0))
@example(foreign("a", 1, 1, "x", float("nan")), foreign("a", 2, 2, "x", float("nan")))
@example(foreign("a", 1, 1, "x", 1), foreign("a", 2, 2, "x", True))
def test_same_value_means_same_packed_value(a: Event | None, b: Event | None) -> None:
    same = replay_module._same_value(a, b)
    assert same == (replay_module.value_bytes(a) == replay_module.value_bytes(b))


def test_the_cycle_collector_is_paused_while_a_result_is_built(tmp_path: FsPath) -> None:
    """It would rescan the growing result again and again (docs/decisions.md)."""
    with Journal.create(tmp_path, NODE) as journal:
        journal.write_batch([Change(Path(["p", i]), i) for i in range(3)])
        seen: list[bool] = []
        replay(journal, progress=lambda _: seen.append(gc.isenabled()))
        diff(journal, None, DEFAULT_NOW, progress=lambda _: seen.append(gc.isenabled()))
        assert seen and not any(seen)
        assert gc.isenabled()
