"""Retention rules and the compaction planner: which events may go, which roll-ups to write.

Theory of operation
-------------------
Pure code over events, no LMDB and no clock (docs/decisions.md, "Retention
and compaction").  The shell (`moat_log.projections.compactor`) reads one
path's events in hlc order and feeds them to a `PathCompaction`; what it
plans, the journal carries out in one transaction (`Journal.compact`).

An event may be removed only when all of these hold:

* a `RetentionRule` matches its path and source, and it is older than the
  rule's raw window (``hlc < cutoff``);
* its id is in the *frontier*: every known, unretired peer has stated
  holding it;
* it is not *protected*: its path's winner, an origin's latest event on its
  path (the KV view's heads), an origin's greatest seq, the journal's last
  position (the shell names these);
* with a roll-up interval, the roll-up of its interval by its origin exists
  (written now, for this node's own events, or held already).

Roll-ups are written only by the raw events' origin, for whole intervals
that end before the cutoff, once: an interval already summarised by a
roll-up of that origin is not summarised again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.path import Path

from .change import Change

__all__ = [
    "RESERVED_SEGMENT",
    "ROLLUP_SEGMENT",
    "PathCompaction",
    "PathPattern",
    "RetentionRule",
    "format_interval",
    "is_reserved",
    "rollup_path",
    "rule_for",
]

#: The first segment of the journal's own events (roll-ups, retirements).
RESERVED_SEGMENT: Final = "moat-log"
ROLLUP_SEGMENT: Final = "rollup"
NS: Final = 1_000_000_000
_UNITS: Final = (("d", 86400 * NS), ("h", 3600 * NS), ("m", 60 * NS), ("s", NS))


def is_reserved(path: Path) -> bool:
    """Whether *path* is one of the journal's own (``moat-log.…``): no rule touches those."""
    return bool(path) and path[0] == RESERVED_SEGMENT


def format_interval(ns: int) -> str:
    """``3600 s`` as ``1h``: the largest unit that divides it."""
    for unit, size in _UNITS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise ValueError(f"an interval is a whole number of seconds, not {ns} ns")


def rollup_path(interval: int, path: Path) -> Path:
    """Where the roll-ups of *path* at *interval* go: ``moat-log.rollup.1h.`` + path."""
    return Path((RESERVED_SEGMENT, ROLLUP_SEGMENT, format_interval(interval))) + path


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A path pattern: segments, ``+`` for any one segment, a final ``#`` for any rest.

    ``home.+.temp`` matches ``home.kitchen.temp``; ``sensor.#`` matches
    ``sensor`` and everything below it (as in MQTT topic filters).
    """

    segments: tuple[object, ...]

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        if text in ("#", ""):
            return cls(("#",) if text == "#" else ())
        path = Path.parse(text)
        for index, segment in enumerate(path):
            if segment == "#" and index != len(path) - 1:
                raise ValueError("'#' may only be the last segment of a pattern")
        return cls(tuple(path))

    def matches(self, path: Path) -> bool:
        segments = self.segments
        for index, wanted in enumerate(segments):
            if wanted == "#":
                return True
            if index >= len(path) or (wanted != "+" and path[index] != wanted):
                return False
        return len(path) == len(segments)

    def __str__(self) -> str:
        return str(Path(self.segments)) if self.segments != ("#",) else "#"  # type: ignore[arg-type]


_SOURCE_CLASS: Final = re.compile(r"^[a-z][a-z0-9_-]*:$")


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Keep raw events of matching paths and sources *raw_for* ns, then roll-ups (or nothing).

    *sources* are source classes (``knx:``, ``script:``); empty matches every
    source.  *rollup* is the roll-up interval in ns; None removes old raw
    events without summarising them.
    """

    name: str
    paths: tuple[PathPattern, ...]
    raw_for: int
    rollup: int | None = None
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            raise ValueError(f"a rule name is 1-64 letters, digits, '_.-', not {self.name!r}")
        if not self.paths:
            raise ValueError(f"rule {self.name!r} names no path pattern")
        if self.raw_for <= 0:
            raise ValueError(f"rule {self.name!r}: the raw window must be positive")
        if self.rollup is not None and (self.rollup <= 0 or self.rollup % NS):
            raise ValueError(f"rule {self.name!r}: the roll-up interval is whole seconds > 0")
        for source in self.sources:
            if not _SOURCE_CLASS.match(source):
                raise ValueError(
                    f"rule {self.name!r}: {source!r} is not a source class like 'knx:'"
                )

    def matches_path(self, path: Path) -> bool:
        return not is_reserved(path) and any(p.matches(path) for p in self.paths)

    def matches_source(self, source: str) -> bool:
        return not self.sources or any(source.startswith(s) for s in self.sources)


def rule_for(rules: Iterable[RetentionRule], path: Path) -> RetentionRule | None:
    """The first rule matching *path*; None: the path is kept for ever."""
    for rule in rules:
        if rule.matches_path(path):
            return rule
    return None


@dataclass(slots=True)
class _Interval:
    """A roll-up being summed: this node's raw events of one interval."""

    start: int
    count: int = 0
    total: float = 0.0
    numbers: int = 0
    low: Any = None
    high: Any = None
    last: Any = None
    waiting: list[Event] = field(default_factory=list)  # removable once it is written

    def add(self, event: Event) -> None:
        self.count += 1
        value: Any = event.value if event.op is Op.SET else None
        self.last = value
        if type(value) in (int, float):
            self.numbers += 1
            self.total += value
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)

    def summary(self, interval: int) -> dict[str, Any]:
        return {
            "from": self.start,
            "until": self.start + interval,
            "count": self.count,
            "min": self.low,
            "max": self.high,
            "mean": self.total / self.numbers if self.numbers else None,
            "last": self.last,
        }


class PathCompaction:
    """The plan for one path: feed its events in hlc order, then `finish`.

    *rolled* maps an origin to the interval starts its roll-ups of this path
    already cover (from the roll-up path's events).  Afterwards `removals`
    are the events to delete and `rollups` the changes to write with them.
    """

    def __init__(
        self,
        path: Path,
        rule: RetentionRule,
        *,
        node: str,
        cutoff: int,
        frontier: IdSet,
        protected: frozenset[EventId] | set[EventId],
        rolled: Mapping[str, set[int]] | None = None,
    ) -> None:
        self.path, self.rule, self.node = path, rule, node
        self.cutoff = cutoff
        self._frontier, self._protected = frontier, protected
        self._rolled = {origin: set(starts) for origin, starts in (rolled or {}).items()}
        self._open: _Interval | None = None
        self.removals: list[Event] = []
        self.rollups: list[Change] = []
        self.kept_recent = 0  # events inside the raw window
        self.kept_unconfirmed = 0  # old enough, but some peer has not confirmed them

    def feed(self, event: Event) -> None:
        """The path's next event in hlc order (events at or after the cutoff are kept)."""
        rule = self.rule
        if event.hlc >= self.cutoff:
            self.kept_recent += 1
            return
        if not rule.matches_source(event.source):
            return
        interval = rule.rollup
        if interval is None:
            self._consider(event)
            return
        start = event.hlc - event.hlc % interval
        if start + interval > self.cutoff:
            self.kept_recent += 1
            return
        own = event.origin == self.node
        if own and start not in self._rolled.get(self.node, ()):
            self._summing(start).add(event)
            if self._removable(event.id):
                self._summing(start).waiting.append(event)
            return
        if start in self._rolled.get(event.origin, ()):
            self._consider(event)

    def finish(self) -> None:
        """Write the roll-up still being summed."""
        self._close()

    def _summing(self, start: int) -> _Interval:
        if self._open is None or self._open.start != start:
            self._close()
            self._open = _Interval(start)
        return self._open

    def _close(self) -> None:
        summed, self._open = self._open, None
        if summed is None:
            return
        interval = self.rule.rollup
        assert interval is not None
        self.rollups.append(
            Change(
                rollup_path(interval, self.path),
                summed.summary(interval),
                source=f"rollup:{self.rule.name}",
            )
        )
        self._rolled.setdefault(self.node, set()).add(summed.start)
        self.removals.extend(summed.waiting)

    def _removable(self, event_id: EventId) -> bool:
        if event_id in self._protected:
            return False
        if not self._frontier.holds(*event_id):
            self.kept_unconfirmed += 1
            return False
        return True

    def _consider(self, event: Event) -> None:
        if self._removable(event.id):
            self.removals.append(event)


def rolled_intervals(rollups: Iterable[Event]) -> dict[str, set[int]]:
    """Per origin, the interval starts its roll-up events (of one roll-up path) cover."""
    rolled: dict[str, set[int]] = {}
    for event in rollups:
        value = event.value
        if event.op is Op.SET and isinstance(value, dict) and type(value.get("from")) is int:
            rolled.setdefault(event.origin, set()).add(value["from"])
    return rolled
