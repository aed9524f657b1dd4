"""`Journal.select`: the indexed read of a ``log`` selection equals the full scan.

The full scan is what ``log`` did before it used the ``paths`` and ``ids``
indexes: every event of the time window, filtered by `EventSelection.matches`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from itertools import islice
from pathlib import Path as FsPath
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moat_log.event import Event, Op
from moat_log.journal import store
from moat_log.journal.change import Change
from moat_log.journal.selection import EventSelection
from moat_log.journal.store import Journal
from moat_log.node._log import held_events
from moat_log.path import Path
from moat_log.testing import DEFAULT_NOW, FakeWallClock, changes, events, paths, values

NODE = "m"
ORIGINS = ["b", "bb", "c"]  # "b" is a prefix of "bb": origins compare whole
SEGMENTS: st.SearchStrategy[str | int] = st.sampled_from(["x", "y", "", "x\x00", 0, 1, -1])
small_paths = paths(SEGMENTS, max_depth=3)
HLCS = st.integers(DEFAULT_NOW - 20, DEFAULT_NOW + 20)

local_changes = changes(
    paths=small_paths,
    values=values(max_leaves=2),
    at=st.none() | st.integers(DEFAULT_NOW - 10, DEFAULT_NOW + 10),
)
# Foreign events need not have hlc rising with seq: the selection may not assume it.
foreign_events = events(
    ORIGINS, seqs=st.integers(1, 8), hlcs=HLCS, paths=small_paths, values=values(max_leaves=2)
)
items = st.lists(st.one_of(local_changes, foreign_events), min_size=1, max_size=40)


@st.composite
def selections(draw: st.DrawFn, held: list[Event]) -> EventSelection:
    hlcs = sorted({e.hlc + d for e in held for d in (-1, 0, 1)}) or [DEFAULT_NOW]
    bound = st.none() | st.sampled_from(hlcs)
    held_paths = [e.path[:n] for e in held for n in range(len(e.path) + 1)]
    prefix = st.none() | small_paths | (st.sampled_from(held_paths) if held_paths else st.none())
    return EventSelection(
        draw(prefix), draw(bound), draw(bound), draw(st.sampled_from([None, NODE, *ORIGINS, "z"]))
    )


def full_scan(journal: Journal, selection: EventSelection, *, reverse: bool) -> list[Event]:
    found = journal.by_time(selection.since, selection.until, reverse=reverse)
    return [e for e in found if selection.matches(e)]


def packed(found: Iterator[Event] | list[Event]) -> list[bytes]:
    return [e.pack() for e in found]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items, st.data(), st.sampled_from([1, 2, 3, 1024]), st.sampled_from([2, 100_000]))
def test_select_reads_what_the_full_scan_filters(
    batch: list[Change | Event], data: st.DataObject, chunk: int, sort_limit: int
) -> None:
    with (
        mock.patch.object(store, "SCAN_CHUNK", chunk),  # resuming between transactions
        mock.patch.object(store, "SELECT_SORT_LIMIT", sort_limit),  # falling back to the scan
        tempfile.TemporaryDirectory() as data_dir,
        Journal.create(data_dir, NODE, wall_clock=FakeWallClock()) as journal,
    ):
        journal.write_batch(batch)
        held = [e for _, e in journal.scan()]
        for selection in data.draw(st.lists(selections(held), min_size=1, max_size=6)):
            for reverse in (False, True):
                want = packed(full_scan(journal, selection, reverse=reverse))
                assert packed(journal.select(selection, reverse=reverse)) == want, selection
            limit = data.draw(st.integers(1, 5))
            newest = full_scan(journal, selection, reverse=True)[:limit][::-1]
            summary = journal.summary()
            assert packed(held_events(journal, selection, summary, limit)) == packed(newest)


@pytest.mark.parametrize(
    "selection",
    [
        EventSelection(prefix=Path(("a",))),
        EventSelection(origin="b"),
        EventSelection(Path(("a",)), DEFAULT_NOW, DEFAULT_NOW + 5, "b"),
    ],
)
def test_a_path_or_origin_selection_does_not_read_the_time_index(
    tmp_path: FsPath, selection: EventSelection
) -> None:
    with Journal.create(tmp_path, NODE, wall_clock=FakeWallClock()) as journal:
        journal.write_batch([Change(Path(("z", n)), n) for n in range(50)])
        foreign = [Event("b", n + 1, DEFAULT_NOW + n, {}, ("a", n), Op.SET, n) for n in range(10)]
        journal.write_batch(foreign)
        want = full_scan(journal, selection, reverse=False)
        assert want
        with mock.patch.object(Journal, "by_time", side_effect=AssertionError("full scan")):
            assert packed(journal.select(selection)) == packed(want)
            assert packed(islice(held_events(journal, selection, journal.summary(), 2), 9)) == (
                packed(want[-2:])
            )


def test_a_selection_matching_more_than_the_sort_limit_streams_the_time_scan(
    tmp_path: FsPath,
) -> None:
    """Memory stays bounded: past the limit the matches are not collected to sort."""
    with (
        mock.patch.object(store, "SELECT_SORT_LIMIT", 20),
        Journal.create(tmp_path, NODE, wall_clock=FakeWallClock()) as journal,
    ):
        journal.write_batch([Change(Path(("a", n)), n) for n in range(50)])
        for selection in (EventSelection(prefix=Path(("a",))), EventSelection(origin=NODE)):
            want = full_scan(journal, selection, reverse=False)
            assert len(want) == 50
            scanned = mock.MagicMock(wraps=journal.by_time)
            with mock.patch.object(journal, "by_time", scanned):
                assert packed(journal.select(selection)) == packed(want)
            scanned.assert_called_once()
