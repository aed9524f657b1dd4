"""Check that a journal is internally consistent.

Two streaming passes, bounded memory (per-origin range sets only):

1. Over ``events`` in position order: every record unpacks and validates, and
   its three index entries (``ids``, ``paths``, ``times``) exist and point
   back at it.  Since every event's index keys are distinct, equal entry
   counts then prove that no index holds anything else.
2. Over ``ids`` in (origin, seq) order: each origin's hlc rises with its seq,
   and its deps never decrease.

Then the per-origin ranges in ``meta`` must equal the seqs actually found, the
node's own seqs must be gapless, the clock must not be behind any event, and
every view the journal was opened with must be at the journal's last position
and equal to a fresh fold of the journal.
Gaps in a foreign origin's seqs are warnings: they are events still in flight.
Deps that decrease are warnings too: the journal holds those events as their
origin wrote them (an older moat-log did, after it lost its data), and no
repair can change them, but `moat-log conflicts` may list writes with them
that were not concurrent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

import msgpack

from moat_log.errors import InvalidEventError
from moat_log.event import Event
from moat_log.idset import IdSet, IdSetBuilder
from moat_log.rangeset import RangeSet

from . import keys
from .keys import unpack_u64
from .store import SCAN_CHUNK, Journal

MAX_REPORTED = 100

T = TypeVar("T")


@dataclass
class VerifyReport:
    """What `verify_journal` found.  At most `MAX_REPORTED` problems are listed."""

    events: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(message)


def verify_journal(
    journal: Journal, *, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Check every record and index of *journal*; see the module docstring."""
    report = VerifyReport()
    found, max_hlc = _check_events(journal, report, progress)
    _check_index_sizes(journal, report)
    _check_origin_order(journal, report)
    _check_ranges(journal, found, report)
    clock = journal.clock
    if clock < max_hlc:
        report.problem(f"the journal's clock {clock} is behind its newest event's hlc {max_hlc}")
    views, last = journal.views(), journal.last_position
    for name, projection in journal.projections.items():
        _, checkpoint = views.get(name, (None, 0))
        if checkpoint != last:
            report.problem(f"view {name}: checkpoint {checkpoint}, journal at {last}")
        for problem in projection.check():
            report.problem(problem)
    return report


def _check_events(
    journal: Journal, report: VerifyReport, progress: Callable[[int], None] | None
) -> tuple[IdSet, int]:
    found = IdSetBuilder()
    max_hlc = 0
    for chunk in batched(journal.scan_raw(), SCAN_CHUNK):
        events = []
        for position, data in chunk:
            try:
                events.append((position, Event.unpack(data)))
            except InvalidEventError as exc:
                report.problem(f"position {position}: the record does not unpack: {exc}")
        for event in _check_index_entries(journal, events, report):
            found.add(event.origin, event.seq)
            max_hlc = max(max_hlc, event.hlc)
        report.events += len(chunk)
        if progress is not None:
            progress(report.events)
    return found.build(), max_hlc


def _check_index_entries(
    journal: Journal, events: list[tuple[int, Event]], report: VerifyReport
) -> list[Event]:
    dbs = {name: journal.database(name) for name in ("ids", "paths", "times")}
    with journal.read_transaction() as txn:
        for position, event in events:
            expected = keys.pack_u64(position)
            entries = {
                "ids": txn.get(keys.id_key(event.origin, event.seq), db=dbs["ids"]),
                "paths": txn.get(
                    keys.path_key(event.path, event.hlc, event.origin), db=dbs["paths"]
                ),
                "times": txn.get(keys.time_key(event.hlc, event.origin), db=dbs["times"]),
            }
            for index, pos in entries.items():
                if pos != expected:
                    where = "missing" if pos is None else f"at position {unpack_u64(pos)}"
                    report.problem(
                        f"event {event.id} at position {position}: its {index} entry is {where}"
                    )
    return [event for _, event in events]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to *size* items (itertools.batched arrives in Python 3.12)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _check_index_sizes(journal: Journal, report: VerifyReport) -> None:
    stats = journal.stats().databases
    for index in ("ids", "paths", "times"):
        if stats[index].entries != stats["events"].entries:
            report.problem(
                f"the {index} index has {stats[index].entries} entries for "
                f"{stats['events'].entries} events"
            )


def _check_origin_order(journal: Journal, report: VerifyReport) -> None:
    """Per origin in seq order: hlc rises, deps never decrease."""
    previous = _Previous("", 0, -1, {})
    for chunk in batched(journal.scan_database("ids", b"", None), SCAN_CHUNK):
        with journal.read_transaction() as txn:
            records = [(key, txn.get(pos, db=journal.database("events"))) for key, pos in chunk]
        for key, data in records:
            origin, seq = keys.split_id_key(key)
            if origin != previous.origin:
                previous = _Previous(origin, 0, -1, {})
            if data is None:
                report.problem(f"the ids entry of {origin}:{seq} points at a missing event")
                continue
            try:
                fields = msgpack.unpackb(data, raw=False, strict_map_key=False)
                hlc, deps = fields[3], fields[4]
            except Exception:
                continue  # _check_events reports the record
            if hlc <= previous.hlc:
                report.problem(f"event {origin}:{seq} has hlc {hlc}, not after its predecessor's")
            deps = deps if isinstance(deps, dict) else {}  # else _check_events reports it
            _check_deps_order(previous, seq, deps, report)
            previous = _Previous(origin, seq, hlc, deps)


@dataclass(frozen=True, slots=True)
class _Previous:
    """An origin's event before the one checked (seq 0: none yet)."""

    origin: str
    seq: int
    hlc: int
    deps: dict[str, int]


def _check_deps_order(
    previous: _Previous, seq: int, deps: dict[str, int], report: VerifyReport
) -> None:
    for other, seen in previous.deps.items():
        claimed = deps.get(other, 0)
        if claimed < seen:
            origin = previous.origin
            report.warnings.append(
                f"origin {origin}: deps decrease from {origin}:{previous.seq} to {origin}:{seq} "
                f"({other} {seen} -> {claimed}); 'moat-log conflicts' may list writes that "
                f"{origin}:{seq} had seen"
            )
            return


def _check_ranges(journal: Journal, found: IdSet, report: VerifyReport) -> None:
    recorded = journal.summary()
    gone = journal.gone()
    for origin in sorted({*found.origins, *recorded.origins}):
        removed = gone.seqs(origin)
        if removed & found.seqs(origin):
            report.problem(
                f"origin {origin}: meta records seqs {removed & found.seqs(origin)} as "
                "removed by compaction, but the journal holds them"
            )
        held = found.seqs(origin) | removed  # compacted ids stay held in the summary's sense
        claimed = recorded.seqs(origin)
        if held != claimed:
            report.problem(
                f"origin {origin}: meta records seqs {claimed or 'none'}, "
                f"the journal holds {found.seqs(origin) or 'none'}"
                + (f" and compaction removed {removed}" if removed else "")
            )
        gaps = RangeSet([(1, held.max)]) - held if held else RangeSet()
        if not gaps:
            continue
        if origin == journal.node:
            report.problem(f"this node's own seqs have gaps: {gaps} missing")
        else:
            report.warnings.append(f"origin {origin}: seqs {gaps} not received yet")
