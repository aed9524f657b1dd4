"""The compaction shell: reads the journal, asks the planner, removes in chunks.

`compact_journal` is synchronous (run it in a worker thread from trio): it
works out the frontier (`frontier_of`), walks the KV view's paths, feeds
each path that a rule covers to a `PathCompaction`, and hands what it
plans to `Journal.compact` a chunk at a time.  Each chunk is one durable
transaction holding whole intervals: a roll-up is never committed without
the removal of the raw events it summarises being in the same transaction,
or after it.  A run interrupted between chunks leaves a consistent journal;
the next run goes on where it stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from moat_log.errors import CompactionRunningError
from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.journal.compaction import (
    RESERVED_SEGMENT,
    PathCompaction,
    RetentionRule,
    rolled_intervals,
    rollup_path,
    rule_for,
)
from moat_log.journal.peers import PeerRecord
from moat_log.journal.store import Journal
from moat_log.path import ROOT, Path

from .kv import KVView

__all__ = [
    "CompactionReport",
    "Frontier",
    "ThinnedPath",
    "compact_journal",
    "frontier_of",
    "retirement_path",
    "thinned_before",
]

#: Events removed per transaction.
CHUNK = 50_000
#: The file in the data directory whose flock a running compaction holds.
COMPACTION_LOCK = "compacting.lock"


def retirement_path(peer: str) -> Path:
    """The path of the event that retires *peer*: ``moat-log.peer.<name>.retired``."""
    return Path((RESERVED_SEGMENT, "peer", peer, "retired"))


@dataclass(frozen=True, slots=True)
class Frontier:
    """What compaction may remove: the ids every counted peer stated holding."""

    ids: IdSet
    counted: tuple[PeerRecord, ...]
    retired: dict[str, int]  # peer -> hlc of its retirement (not counted)
    #: Configured peers whose name no link has told yet: nothing is confirmed for them.
    unanswered: int = 0


def frontier_of(journal: Journal, view: KVView, *, unanswered: int = 0) -> Frontier:
    """The frontier now: held ids that every known peer not retired has stated holding.

    A peer retired and then seen again after its retirement counts again.
    With *unanswered* configured peers whose name is unknown, it is empty.
    """
    held = journal.summary() - journal.gone()
    counted: list[PeerRecord] = []
    retired: dict[str, int] = {}
    for name, record in sorted(journal.peers().items()):
        event = view.get(retirement_path(name))
        if event is not None and event.op is Op.SET and record.seen <= event.hlc:
            retired[name] = event.hlc
            continue
        counted.append(record)
    ids = IdSet() if unanswered else held
    for record in counted:
        ids = ids & record.held
    return Frontier(ids, tuple(counted), retired, unanswered)


@dataclass(slots=True)
class CompactionReport:
    """What a run removed or, with ``dry_run``, would remove."""

    removed: int = 0
    removed_bytes: int = 0
    rollups: int = 0
    paths: int = 0  # paths a rule covers
    kept_unconfirmed: int = 0  # old enough, but a peer has not confirmed holding them
    per_rule: dict[str, int] = field(default_factory=dict)  # removed per rule
    frontier: Frontier | None = None


def compact_journal(
    journal: Journal,
    view: KVView,
    rules: Sequence[RetentionRule],
    *,
    now: int,
    unanswered: int = 0,
    dry_run: bool = False,
    chunk: int = CHUNK,
) -> CompactionReport:
    """Apply *rules* at time *now* (ns): write roll-ups, remove what the frontier allows.

    One compaction at a time per journal (the node's and ``moat-log compact``
    would both write the same roll-ups): a second one meanwhile raises
    `CompactionRunningError`.
    """
    with _compacting(journal) if not dry_run else contextlib.nullcontext():
        return _compact(
            journal, view, rules, now=now, unanswered=unanswered, dry_run=dry_run, chunk=chunk
        )


@contextlib.contextmanager
def _compacting(journal: Journal) -> Iterator[None]:
    """Hold the data directory's compaction lock (an flock, released if the process dies)."""
    path = journal.path.parent / COMPACTION_LOCK
    with open(path, "a") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactionRunningError(
                f"another compaction of {journal.path.parent} runs now (the node's, or "
                "another 'moat-log compact'); try again when it is done"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _compact(
    journal: Journal,
    view: KVView,
    rules: Sequence[RetentionRule],
    *,
    now: int,
    unanswered: int,
    dry_run: bool,
    chunk: int,
) -> CompactionReport:
    frontier = frontier_of(journal, view, unanswered=unanswered)
    report = CompactionReport(frontier=frontier)
    if not rules:
        return report
    protected = _global_protection(journal)
    rollups: list[Change] = []
    removals: list[Event] = []
    for path, heads in view.heads():
        rule = rule_for(rules, path)
        if rule is None:
            continue
        report.paths += 1
        plan = _plan_path(journal, path, rule, heads, protected, frontier.ids, now)
        report.kept_unconfirmed += plan.kept_unconfirmed
        report.per_rule[rule.name] = report.per_rule.get(rule.name, 0) + len(plan.removals)
        report.rollups += len(plan.rollups)
        rollups.extend(plan.rollups)
        removals.extend(plan.removals)
        if len(removals) >= chunk:
            _apply(journal, rollups, removals, report, dry_run)
            rollups, removals = [], []
    _apply(journal, rollups, removals, report, dry_run)
    return report


def _global_protection(journal: Journal) -> set[EventId]:
    """Each origin's greatest seq, and the event at the journal's last position."""
    summary = journal.summary()
    protected = {EventId(origin, summary.max(origin)) for origin in summary.origins}
    newest = journal.newest()
    if newest is not None:
        protected.add(newest[1].id)
    return protected


def _plan_path(  # noqa: PLR0917 - one call site, all of it the path's context
    journal: Journal,
    path: Path,
    rule: RetentionRule,
    heads: dict[str, int],
    protected: set[EventId],
    frontier: IdSet,
    now: int,
) -> PathCompaction:
    rolled = {}
    if rule.rollup is not None:
        rolled = rolled_intervals(journal.history(rollup_path(rule.rollup, path)))
    here = protected | {EventId(origin, seq) for origin, seq in heads.items()}
    plan = PathCompaction(
        path,
        rule,
        node=journal.node,
        cutoff=now - rule.raw_for,
        frontier=frontier,
        protected=here,
        rolled=rolled,
    )
    for event in journal.history(path):
        if event.hlc >= plan.cutoff:
            break
        plan.feed(event)
    plan.finish()
    return plan


def _apply(
    journal: Journal,
    rollups: list[Change],
    removals: Iterable[Event],
    report: CompactionReport,
    dry_run: bool,
) -> None:
    removals = list(removals)
    if not rollups and not removals:
        return
    if dry_run:
        report.removed += len(removals)
        report.removed_bytes += sum(len(event.pack()) for event in removals)
        return
    result = journal.compact(rollups, removals)
    report.removed += result.removed
    report.removed_bytes += result.removed_bytes


@dataclass(frozen=True, slots=True)
class ThinnedPath:
    """A path whose raw events before *raw_since* were replaced by roll-ups at *rollups*."""

    path: Path
    raw_since: int
    rollups: Path
    interval: str


def thinned_before(
    journal: Journal, view: KVView, moment: int, prefix: Path = ROOT
) -> list[ThinnedPath]:
    """The paths under *prefix* whose raw events at *moment* were compacted into roll-ups.

    For replay and diff to say that the state they compute before a path's
    oldest raw event is not the whole story (the roll-ups are).
    """
    found = []
    for rollup in view.walk(Path((RESERVED_SEGMENT, "rollup"))):
        raw = Path(rollup.path[3:])
        if len(rollup.path) < 4 or not prefix.is_prefix_of(raw):
            continue
        first_raw = next(journal.history(raw), None)
        first_rollup = next(journal.history(rollup.path), None)
        if first_raw is None or first_rollup is None or moment >= first_raw.hlc:
            continue
        start = first_rollup.value.get("from") if isinstance(first_rollup.value, dict) else None
        if isinstance(start, int) and start <= moment:
            found.append(ThinnedPath(raw, first_raw.hlc, rollup.path, str(rollup.path[2])))
    return found
