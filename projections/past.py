"""Run a projection over a past range of the journal, into a scratch view.

Theory of operation
-------------------
A projection that decides from events and the time (the energy schedule is
the first) can be written as a `PastProjection`: sans-io, told the events
of the paths it reads and the time, asked what it would write.  The same
object the node drives live (with the feed and the wall clock) is then
driven here over the past (docs/replay.md, "Running a projection over the
past"):

1. the state of its paths as of *since* (`replay.replay`, the winners with
   ``hlc <= since``) is observed first, at time *since*;
2. every later event of those paths up to *until* is observed in
   ``(hlc, origin)`` order, which is the order in which they won: after
   each, the projection's state is the state as of that event's time, as
   replay computes it, whatever order the events reached this journal in;
3. between events, every wakeup the projection asks for
   (`PastProjection.next_wakeup`) up to *until* is a `PastProjection.step`
   at that time.

What it writes goes to a `ScratchView` in memory: the journal is only read,
never written, so a what-if can run beside the live node on the same data
directory.  A projection whose writes feed back into its own inputs sees
them only if it says so itself (the scratch view is not observed).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.journal.selection import EventSelection
from moat_log.journal.store import Journal
from moat_log.path import Path

from .replay import replay

__all__ = ["PastProjection", "ScratchView", "ScratchWrite", "events_between", "run_over_past"]

#: Called with the time (s since the epoch) the run has reached.
Progress = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class ScratchWrite:
    """A value a projection would have written at *time* (s since the epoch)."""

    time: float
    path: Path
    value: Any
    cause: EventId | None = None


class PastProjection(Protocol):
    """A projection that can run over the past: sans-io, event- and time-driven."""

    def paths(self) -> Sequence[Path]:
        """The paths it reads (exactly these; not their subtrees)."""
        ...

    def observe(self, event: Event, now: float) -> None:
        """Take *event*, the new winner of one of its paths, at time *now*."""
        ...

    def next_wakeup(self) -> float | None:
        """When it wants `step` next (None: not before another event)."""
        ...

    def step(self, now: float) -> Sequence[ScratchWrite]:
        """Do what is due at *now*; return what it would write."""
        ...


@dataclass(slots=True)
class ScratchView:
    """What a projection wrote during a run over the past, in time order."""

    since: float
    until: float
    writes: list[ScratchWrite] = field(default_factory=list)
    observed: int = 0

    def history(self, path: Path) -> list[ScratchWrite]:
        """The writes to *path*, oldest first."""
        return [write for write in self.writes if write.path == path]

    def value_at(self, path: Path, time: float) -> Any:
        """The value *path* had at *time* in the scratch view (None: none yet)."""
        found = None
        for write in self.writes:
            if write.time > time:
                break
            if write.path == path:
                found = write.value
        return found


def events_between(
    journal: Journal, paths: Sequence[Path], since: int, until: int
) -> Iterator[Event]:
    """The events of *paths* with ``since < hlc <= until``, in ``(hlc, origin)`` order."""

    def of(path: Path) -> Iterator[Event]:
        window = EventSelection(prefix=path, since=since + 1, until=until)
        return (event for event in journal.select(window) if event.path == path)

    return heapq.merge(*(of(path) for path in paths), key=lambda e: (e.hlc, e.origin))


def run_over_past(
    journal: Journal,
    projection: PastProjection,
    since: float,
    until: float,
    *,
    progress: Progress | None = None,
) -> ScratchView:
    """Drive *projection* over the journal's events from *since* to *until* (s since the epoch)."""
    if not until > since:
        raise ValueError(f"until ({until}) must be after since ({since})")
    scratch = ScratchView(since, until)
    since_ns, until_ns = int(since * 1e9), int(until * 1e9)
    paths = list(projection.paths())
    wanted = set(paths)
    for path in paths:
        winner = replay(journal, since_ns, prefix=path).get(path)
        if winner is not None and winner.path in wanted:
            projection.observe(winner, since)
            scratch.observed += 1

    def wake_until(limit: float) -> None:
        while (wakeup := projection.next_wakeup()) is not None and wakeup <= limit:
            wakeup = max(wakeup, since)
            scratch.writes.extend(projection.step(wakeup))
            after = projection.next_wakeup()
            if after is not None and after <= wakeup:
                raise RuntimeError(f"{projection!r} asked to wake at {after} again after {wakeup}")
            if progress is not None:
                progress(wakeup)

    for event in events_between(journal, paths, since_ns, until_ns):
        now = event.hlc / 1e9
        wake_until(now)
        projection.observe(event, now)
        scratch.observed += 1
    wake_until(until)
    return scratch
