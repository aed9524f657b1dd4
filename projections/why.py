"""Why a path has its value: the chain of events that led to it.

Theory of operation
-------------------
A chain starts at the event that set a path (its winner as of some moment)
and follows ``cause`` links back (docs/event-format.md): a script's write
names the event it reacted to, that event names its own cause, and so on,
until an event written without a cause, the chain's *origin*: a bus frame
(``knx:1/2/3``), a command (``cli:alice``), a message (``mqtt:...``).

Each step also says what the event displaced on its path, from the vector
clocks: the value its writer saw and *overwrote* knowingly (the latest
earlier event of the path that the writer had seen), and, when the path's
previous winner was a write it had not seen, that *conflict* (a concurrent
write that lost).  The walk does not follow those side links: they explain
what the value replaced, not why it was written.

Where the chain breaks, the end says precisely why: a cause this node never
held (sync may still bring it), a cause held once but no longer (compacted),
a cause already in the chain (a corrupt or foreign journal: the walk never
loops), or the depth limit.

The walk is pure: it reads through a `ChainSource` (three lookups), so it is
tested on events in memory; `JournalChainSource` reads a journal.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.idset import IdSet

__all__ = [
    "DEFAULT_DEPTH",
    "Chain",
    "ChainEnd",
    "ChainSource",
    "EndKind",
    "EventsInMemory",
    "Held",
    "Step",
    "displaced",
    "unseen",
    "walk_chain",
]

#: Steps a chain shows unless told otherwise (``why --depth``).
DEFAULT_DEPTH = 32


class Held(enum.Enum):
    """Whether a node holds an event: the three answers a broken link needs."""

    HELD = "held"
    NEVER = "never held"  # not in the journal's summary: never received
    NO_LONGER = "no longer held"  # in the summary, but the read finds nothing: compacted


class ChainSource(Protocol):
    """What the walk reads: events by id, whether an id was held, a path's order."""

    def event(self, event_id: EventId) -> Event | None:
        """The event with this id, or None if it is not held now."""

    def held(self, event_id: EventId) -> Held:
        """Whether the event is held now, was never held, or was held and is gone."""

    def before(self, event: Event) -> Event | None:
        """The event of the same path just before *event* in winning order, or None."""


class EndKind(enum.Enum):
    """Why a chain ends where it does."""

    ORIGIN = "origin"  # written without a cause: the chain's start
    NEVER_HELD = "never-held"
    NO_LONGER_HELD = "no-longer-held"
    CYCLE = "cycle"
    DEPTH = "depth"


@dataclass(frozen=True, slots=True)
class ChainEnd:
    """The end of a chain; *cause* is the link that could not be followed (None: origin)."""

    kind: EndKind
    cause: EventId | None
    #: The last step's event: its source is the origin's "who".
    last: Event

    def describe(self) -> str:
        """One line for a person: what ended the chain and what that means."""
        source = self.last.source or "an unnamed source"
        if self.kind is EndKind.ORIGIN:
            return f"origin: written by {source} without a cause"
        if self.kind is EndKind.NEVER_HELD:
            return (
                f"broken: the cause {self.cause} was never held by this node "
                f"(sync with {self.cause.origin if self.cause else '?'} may bring it)"
            )
        if self.kind is EndKind.NO_LONGER_HELD:
            return f"broken: the cause {self.cause} is no longer held (compacted)"
        if self.kind is EndKind.CYCLE:
            return (
                f"broken: the cause {self.cause} is already in this chain "
                "(a corrupt or foreign journal; causes cannot form cycles)"
            )
        return f"stopped: the cause {self.cause} is beyond the depth limit (raise --depth)"


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a chain and what it displaced on its path.

    *overwrote* is the latest earlier event of the path that the event's
    origin had seen: the value it knowingly replaced.  *conflict_with* is the
    path's previous winner if the origin had not seen it: a concurrent write
    that lost.  Either, both or (a path's first event) neither may be set.
    """

    event: Event
    overwrote: Event | None = None
    conflict_with: Event | None = None


@dataclass(frozen=True, slots=True)
class Chain:
    """The steps from an event back to its origin (or to where the chain breaks)."""

    steps: tuple[Step, ...]
    end: ChainEnd


#: Unseen earlier events looked past for the one a writer had seen (bounds a
#: path written by many nodes at once).
UNSEEN_LIMIT = 16


def unseen(event: Event, previous: Event | None) -> Event | None:
    """*previous* (the path's winner before *event*) if *event*'s origin had not seen it."""
    if previous is None or previous.happened_before(event):
        return None
    return previous


def displaced(event: Event, source: ChainSource) -> Step:
    """*event*'s step: the value it knowingly overwrote, and the conflict it won, if any."""
    previous = source.before(event)
    conflict = unseen(event, previous)
    looked = 0
    while previous is not None and not previous.happened_before(event):
        looked += 1
        if looked > UNSEEN_LIMIT:
            return Step(event, conflict_with=conflict)
        previous = source.before(previous)
    return Step(event, overwrote=previous, conflict_with=conflict)


def walk_chain(start: Event, source: ChainSource, *, depth: int = DEFAULT_DEPTH) -> Chain:
    """The chain from *start* back along its causes: at most *depth* steps, never a loop."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    steps: list[Step] = []
    seen: set[EventId] = set()
    event = start
    while True:
        seen.add(event.id)
        steps.append(displaced(event, source))
        end = _end_at(event, source, seen, len(steps) >= depth)
        if isinstance(end, ChainEnd):
            return Chain(tuple(steps), end)
        event = end


def _end_at(event: Event, source: ChainSource, seen: set[EventId], full: bool) -> ChainEnd | Event:
    """The chain's end after *event*, or the event to go on with."""
    cause = event.cause
    if cause is None:
        return ChainEnd(EndKind.ORIGIN, None, event)
    if cause in seen:
        return ChainEnd(EndKind.CYCLE, cause, event)
    if full:
        return ChainEnd(EndKind.DEPTH, cause, event)
    found = source.event(cause)
    if found is not None:
        return found
    gone = source.held(cause) is Held.NO_LONGER
    return ChainEnd(EndKind.NO_LONGER_HELD if gone else EndKind.NEVER_HELD, cause, event)


class EventsInMemory:
    """A `ChainSource` over events in memory (tests, tools): *summary* says what
    was ever held (default: the events themselves)."""

    def __init__(self, events: Iterable[Event], *, summary: IdSet | None = None) -> None:
        self._events = {e.id: e for e in events}
        self._summary = summary if summary is not None else IdSet.of_events(self._events.values())

    def event(self, event_id: EventId) -> Event | None:
        return self._events.get(event_id)

    def held(self, event_id: EventId) -> Held:
        if event_id in self._events:
            return Held.HELD
        return Held.NO_LONGER if event_id in self._summary else Held.NEVER

    def before(self, event: Event) -> Event | None:
        earlier = [
            e
            for e in self._events.values()
            if e.path == event.path and (e.hlc, e.origin) < (event.hlc, event.origin)
        ]
        return max(earlier, key=lambda e: (e.hlc, e.origin), default=None)
