"""Replay: the state as of any moment, computed from the journal alone.

Theory of operation
-------------------
The state as of *T* holds, for each path, the winner among the path's events
with ``hlc <= T``: the event with the greatest ``(hlc, origin)``.  A winning
tombstone means the path has no value at *T*.  Every event the journal holds
counts, including ones that arrived after *T* but carry an earlier hlc: the
result is what we now know the state was at *T* (docs/replay.md).

The journal's ``paths`` index is ordered by path key, then hlc, then origin
(docs/journal-layout.md), so each path's entries form one run in winning
order, and a subtree is one key range.  One pass over that range finds each
path's winner as the last entry of its run with ``hlc <= T``, by comparing
8-byte key slices, without reading a single event.  A short run is stepped
through; a long one costs a few seeks (to just after *T*, then past the
run), so the cost follows the number of paths rather than the length of
their histories.  Only the winners are read and decoded.  Memory holds the
winners, never the events, and the scan reads in short read transactions
like the journal's own scans.

Several moments are found in the same pass (`diff` needs two, the restore
"then" and "now"); a path whose winners are one and the same event did not
change between them, which is decided without reading the event at all.
Values are compared by their packed msgpack bytes: ``1``, ``1.0`` and
``True`` are equal in Python but different values in moat-log.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from moat_log import cycle_collector
from moat_log.errors import InvalidEventError, JournalCorruptError
from moat_log.event import Event, Op
from moat_log.ids import MAX_U64
from moat_log.journal import keys
from moat_log.journal.change import Change, check_source
from moat_log.journal.store import Journal
from moat_log.path import ROOT, Path

__all__ = [
    "Difference",
    "diff",
    "replay",
    "restore_changes",
    "restoring",
    "state_at",
    "value_bytes",
    "walk_state_at",
    "winner_at",
    "winner_before",
]

#: Called with the cumulative number of index entries scanned so far.
Progress = Callable[[int], None]

_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack


@dataclass(frozen=True, slots=True)
class Difference:
    """A path whose value differs between two moments.

    *before* and *after* are the path's winning events at the two moments: a
    set, a tombstone (the path was deleted), or None (no event yet).
    """

    path: Path
    before: Event | None
    after: Event | None


def replay(
    journal: Journal,
    until: int | None = None,
    *,
    prefix: Path = ROOT,
    progress: Progress | None = None,
) -> dict[Path, Event]:
    """The winning event of every path under *prefix* as of *until* (None: now).

    Tombstones are included: filter with ``event.op is Op.SET``, or use
    `state_at`.  Paths come in key order (`Path.sort_key`).  *progress* is
    called now and then with the number of index entries scanned so far.
    """
    with cycle_collector.paused():  # a large result, built at once: see cycle_collector
        return {
            winner.path: winner
            for (winner,) in _winners(journal, prefix, (until,), progress)
            if winner is not None
        }


def state_at(
    journal: Journal,
    until: int | None,
    *,
    prefix: Path = ROOT,
    progress: Progress | None = None,
) -> dict[Path, Event]:
    """Like `replay`, but only the paths that have a value (no tombstones)."""
    with cycle_collector.paused():
        return {
            winner.path: winner
            for winner in walk_state_at(journal, until, prefix=prefix, progress=progress)
        }


def winner_at(journal: Journal, path: Path, until: int | None) -> Event | None:
    """The winning event of *path* itself (not its subtree) as of *until* (None: now).

    A tombstone included; None if the path had no event by then.  A few
    seeks however long the path's history: ``why`` asks this for every step
    of a chain.
    """
    for (winner,) in _WinnerScan(journal, path, (until,), None, subtree=False):
        return winner
    return None


def winner_before(journal: Journal, event: Event) -> Event | None:
    """The event of *event*'s path just before it in winning order ``(hlc, origin)``.

    The path's winner that *event* displaced (whether or not its origin had
    seen it), or None if *event* is the path's first.  One seek.
    """
    run = keys.path_prefix(event.path, subtree=False)
    with journal.read_transaction() as txn:
        cursor: Any = txn.cursor(db=journal.database("paths"))
        here = keys.path_key(event.path, event.hlc, event.origin)
        positioned = cursor.prev() if cursor.set_range(here) else cursor.last()
        if not positioned or not cursor.key().startswith(run):
            return None
        position: bytes = cursor.value()
        data: Any = txn.get(position, db=journal.database("events"))
    if data is None:
        raise _unreadable(position, None)
    try:
        return Event.unpack_trusted(data)
    except InvalidEventError as exc:
        raise _unreadable(position, exc) from exc


def walk_state_at(
    journal: Journal,
    until: int | None,
    *,
    prefix: Path = ROOT,
    progress: Progress | None = None,
) -> Iterator[Event]:
    """`state_at` as an iterator: the winning sets in key order, as the scan finds them.

    Memory holds one read transaction's worth of winners, whatever the
    number of paths: what a node streams to a client.  Each chunk is read in
    its own short transaction, so the iterator may be advanced from
    different threads (one at a time).
    """
    for (winner,) in _winners(journal, prefix, (until,), progress):
        if winner is not None and winner.op is Op.SET:
            yield winner


def diff(
    journal: Journal,
    t1: int | None,
    t2: int | None,
    *,
    prefix: Path = ROOT,
    progress: Progress | None = None,
) -> list[Difference]:
    """The paths under *prefix* whose value at *t1* differs from that at *t2*.

    A path differs when it has a value at one moment and none at the other,
    or values whose packed bytes differ.  Deleted and never set are the same
    (no value).  In path key order; one pass over the index.
    """
    with cycle_collector.paused():
        return list(_differences(journal, prefix, t1, t2, progress))


def restore_changes(
    journal: Journal, until: int, *, prefix: Path = ROOT, source: str
) -> list[Change]:
    """The changes that put every path under *prefix* back to its state at *until*.

    A path whose value now differs from its value at *until* (or that has
    none now) is set to that value, caused by the event that held it then.  A
    path that has a value now but had none at *until* is deleted.  In path
    key order; an empty list means there is nothing to restore.  Appending
    the changes (one `Journal.write_batch`) gives them hlc timestamps after
    every event held, so they win over everything the journal knows.
    """
    with cycle_collector.paused():  # memory holds the changes only, not the differences
        changes = [
            _restoring(_present(then or now).path, then, source)
            for then, now in _winners(journal, prefix, (until, None), None)
            if not _same_value(then, now)
        ]
    if changes:  # an invalid source is refused when a change is made, as by Change()
        check_source(source)
    return changes


def restoring(difference: Difference, *, source: str) -> Change:
    """The change that gives *difference*'s path its value *before* again.

    For a `Difference` between a past moment (*before*) and now (*after*).
    """
    check_source(source)
    return _restoring(difference.path, difference.before, source)


def _restoring(path: Path, then: Event | None, source: str) -> Change:
    # An event's path and value are valid (events are validated when built
    # or, read from the journal, when they were written): only *source* is new.
    if then is not None and then.op is Op.SET:
        return Change.trusted(path, then.value, Op.SET, source, then.id)
    return Change.trusted(path, None, Op.DELETE, source, None)


def value_bytes(event: Event | None) -> bytes | None:
    """The packed value of a set, None for a tombstone or no event."""
    if event is None or event.op is not Op.SET:
        return None
    data: bytes = _packb(event.value)
    return data


def _same_value(a: Event | None, b: Event | None) -> bool:
    """Whether two winners give a path the same value: ``value_bytes(a) == value_bytes(b)``."""
    a_set = a is not None and a.op is Op.SET
    b_set = b is not None and b.op is Op.SET
    if not (a_set and b_set):
        return a_set is b_set
    x, y = _present(a).value, _present(b).value
    kind = type(x)
    if kind is type(y) and kind in _EQUAL_IS_SAME_BYTES:
        return bool(x == y)
    return bool(_packb(x) == _packb(y))


#: Types whose equal values (of one type) always pack to the same bytes, and
#: unequal ones to different bytes.  Not float: 0.0 == -0.0, nan != nan.
_EQUAL_IS_SAME_BYTES = frozenset({str, int, bool, bytes, type(None)})


def _differences(
    journal: Journal,
    prefix: Path,
    t1: int | None,
    t2: int | None,
    progress: Progress | None,
) -> Iterator[Difference]:
    for before, after in _winners(journal, prefix, (t1, t2), progress):
        if not _same_value(before, after):
            yield Difference(_present(before or after).path, before, after)


def _present(event: Event | None) -> Event:
    assert event is not None
    return event


# --- the scan -----------------------------------------------------------------

#: Entries of one path stepped over one by one before the rest of its run is
#: skipped by seeking.  Stepping costs ~0.5 us an entry, a seek a few us, so
#: short runs are stepped and long ones cost a few seeks whatever their length.
SEQUENTIAL_STEPS = 16
#: Index entries handled per read transaction (as the journal's own scans).
CHUNK_ENTRIES = 1024

_NO_LIMIT = b"\xff" * 8  # every hlc is <= 2**64-1

#: Per path, the position of its winner at each moment (None: no event yet).
_Positions = list[bytes | None]


def _winners(
    journal: Journal,
    prefix: Path,
    moments: Sequence[int | None],
    progress: Progress | None,
) -> Iterator[list[Event | None]]:
    """Per path under *prefix* (key order), its winning events at *moments*.

    With one moment, every path with an event by then.  With several, only
    the paths whose winners are not all one event (with no event at any of
    the moments, or the same event at all, a path did not change).
    """
    return iter(_WinnerScan(journal, prefix, moments, progress))


class _WinnerScan:
    """One pass over the ``paths`` index under a prefix, in short read transactions.

    Each path's run of entries is stepped through until it ends, or until
    it passes every moment or `SEQUENTIAL_STEPS` entries; then the last entry
    at or before each moment is found by seeking, and the next path by
    seeking past the run.  Each read transaction handles about
    `CHUNK_ENTRIES` entries and reads the winners it found.
    """

    def __init__(
        self,
        journal: Journal,
        prefix: Path,
        moments: Sequence[int | None],
        progress: Progress | None,
        *,
        subtree: bool = True,
    ) -> None:
        self.journal = journal
        self.paths_db = journal.database("paths")
        self.events_db = journal.database("events")
        self.start = keys.path_prefix(prefix, subtree=subtree)
        self.end = keys.prefix_end(self.start)
        self.limits = [_NO_LIMIT if t is None else keys.pack_u64(t) for t in moments]
        # The hlc part of the first key after each moment; None: after the run.
        self.after = [None if t is None or t >= MAX_U64 else keys.pack_u64(t + 1) for t in moments]
        self.highest = max(self.limits)
        self.changes_only = len(moments) > 1
        self.progress = progress
        self.scanned = 0

    def __iter__(self) -> Iterator[list[Event | None]]:
        resume: bytes | None = self.start
        while resume is not None:
            with self.journal.read_transaction() as txn:
                found, resume = self._chunk(txn, resume)
            yield from found
            if self.progress is not None:
                self.progress(self.scanned)

    def _chunk(self, txn: Any, resume: bytes) -> tuple[list[list[Event | None]], bytes | None]:
        """Winners of the paths from *resume* on; the key to resume at, None at the end."""
        cursor, events = txn.cursor(db=self.paths_db), txn.cursor(db=self.events_db)
        key: bytes | None = cursor.key() if cursor.set_range(resume) else None
        found: list[list[Event | None]] = []
        budget = CHUNK_ENTRIES
        while key is not None and (self.end is None or key < self.end):
            if budget <= 0:  # resume at this path's run, to read each run in one snapshot
                return found, key[: _path_key_end(key) + 1]
            positions, key, steps = self._run(cursor, key)
            budget -= steps
            self.scanned += steps
            if self.changes_only and positions.count(positions[0]) == len(positions):
                continue
            found.append(self._read_winners(events, positions))
        return found, None

    def _read_winners(self, events: Any, positions: _Positions) -> list[Event | None]:
        """The events at one path's *positions*, each read (by an *events* cursor) once.

        The events share one `Path` object: a diff over many paths keeps two
        events per path, and memory holds one path object fewer per path.
        """
        winners: list[Event | None] = []
        path: Path | None = None
        for i, position in enumerate(positions):
            if position is None:
                winners.append(None)
                continue
            first = positions.index(position)
            if first < i:
                winners.append(winners[first])
                continue
            if not events.set_key(position):
                raise _unreadable(position, None)
            try:
                event = Event.unpack_trusted(events.value())  # validated when it was written
            except InvalidEventError as exc:
                raise _unreadable(position, exc) from exc
            if path is None:
                path = event.path
            elif event.path == path:
                event = _sharing_path(event, path)
            winners.append(event)
        return winners

    def _run(self, cursor: Any, first: bytes) -> tuple[_Positions, bytes | None, int]:
        """Winners of the path whose run starts at key *first* (the cursor's entry).

        Returns them, the first key of the next run (None: no more entries)
        and the number of entries stepped through.  The hot loop of replay.
        """
        start = _path_key_end(first) + 1
        stop = start + 8
        run = first[:start]
        highest, most = self.highest, SEQUENTIAL_STEPS
        hlcs: list[bytes] = []  # big-endian: byte order is numeric order
        positions: list[bytes] = []
        # iternext() yields the cursor's entry first: the run's first.
        for key, position in cursor.iternext():
            if not key.startswith(run):
                return self._pick(hlcs, positions), key, len(hlcs)
            hlc = key[start:stop]
            hlcs.append(hlc)
            positions.append(position)
            if hlc > highest or len(hlcs) >= most:
                best = self._pick(hlcs, positions)
                return best, self._skip_rest(cursor, run, hlc, best), len(hlcs)
        return self._pick(hlcs, positions), None, len(hlcs)

    def _pick(self, hlcs: list[bytes], positions: list[bytes]) -> _Positions:
        """Per moment, the position of the last entry at or before it (entries in run order)."""
        best: _Positions = []
        for limit in self.limits:
            found = bisect_right(hlcs, limit)
            best.append(positions[found - 1] if found else None)
        return best

    def _skip_rest(self, cursor: Any, run: bytes, hlc: bytes, best: _Positions) -> bytes | None:
        """Seek the winners in the rest of *run*, after an entry at *hlc*; return the next key."""
        for i, (limit, after) in enumerate(zip(self.limits, self.after, strict=True)):
            if hlc <= limit:  # later entries of the run may still win at this moment
                bound = run[:-1] + b"\x01" if after is None else run + after
                positioned = cursor.prev() if cursor.set_range(bound) else cursor.last()
                if positioned and cursor.key().startswith(run):
                    best[i] = cursor.value()
        # Path key + 01 sorts after the path's own entries (+ 00) and before its children's.
        return cursor.key() if cursor.set_range(run[:-1] + b"\x01") else None


def _path_key_end(key: bytes) -> int:
    """The length of the path key at the start of a ``paths`` index key."""
    found = _PATH_KEY_AND_END.match(key)
    if found is None:
        raise JournalCorruptError(
            f"the paths index holds a malformed key {key[:40].hex()}; run 'moat-log verify'"
        )
    return found.end() - 1


#: A path key (docs/paths.md: int segments 02 + 8 bytes, str segments 03 + a
#: body without 00 00 + 00 00) and the 00 that ends it in an index key.  The
#: encoding is prefix-free, so possessive repeats never need to backtrack.
_PATH_KEY_AND_END = re.compile(
    rb"(?:\x02.{8}|\x03(?:[^\x00]++|\x00\xff)*+\x00\x00)*+\x00", re.DOTALL
)


def _sharing_path(event: Event, path: Path) -> Event:
    """*event* with *path*, an equal path object, in place of its own."""
    origin, seq, hlc, deps, _, op, value, source, cause = event
    return Event.trusted(origin, seq, hlc, deps, path, op, value, source, cause)


def _unreadable(position: bytes, problem: InvalidEventError | None) -> JournalCorruptError:
    """The error for an index entry whose event is missing (no *problem*) or garbage."""
    where = keys.unpack_u64(position)
    if problem is None:
        return JournalCorruptError(
            f"the paths index points at position {where}, which holds no event; "
            "run 'moat-log verify'"
        )
    return JournalCorruptError(
        f"the event at position {where} does not unpack: {problem}; run 'moat-log verify'"
    )
