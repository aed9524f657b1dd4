"""Serving ``log``: which events match, the initial read, and the follower.

Theory of operation
-------------------
A log sends the matching events the journal holds in ``(hlc, origin)``
order; with ``follow``, then the live marker and every matching event the
node stores from then on, in the order it stores them
(docs/client-protocol.md, "log").  No event may be lost or sent twice
between the two parts, although events keep arriving while the first part
is read (the node's own writes, other nodes' and other processes').

The dividing line is a journal position *P* and the journal's *summary* up
to it (the set of event ids it holds: per origin, a `RangeSet` of seqs),
taken together in one read transaction (`Journal.summary_at`):

1. **The summary.**  The initial read sends only events it holds
   (`held_events`).  Each of them was committed before the summary was
   taken, so every read transaction of the initial read, all of which begin
   later, sees it.
2. **Live.**  After the marker, a journal feed subscription from *P* on
   (``feed.subscribe(after=P)``) delivers every event stored after *P*, in
   the order the journal stores them: exactly the events not in the
   summary.  It starts after the initial read and catches up from the
   journal, so nothing is buffered while the initial read runs.

The summary also makes the initial read one consistent set without
``follow``: events stored while it runs are left out, and the two passes of
``limit`` (find the oldest of the newest *limit*, then read forwards from
it) agree on what they count.  Reading runs in chunks in worker threads; the
iterators here are synchronous and read the journal in short transactions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from itertools import islice

from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.journal.selection import EventSelection
from moat_log.journal.store import Journal
from moat_log.protocol import ErrorType, LogRequest, RequestError
from moat_log.timespec import TimeSpec

__all__ = [
    "LogSelection",
    "held_events",
    "is_held",
    "resolve_time",
    "selection_of",
]


def resolve_time(journal: Journal, spec: TimeSpec | None, argument: str) -> int | None:
    """A request's time as ns since the epoch; an event id stands for that event's hlc.

    Raises `RequestError` ``not-found`` for an event the journal does not hold.
    """
    if not isinstance(spec, EventId):
        return spec
    event = journal.get(spec)
    if event is None:
        raise RequestError(
            ErrorType.NOT_FOUND,
            f"argument '{argument}' names the event {spec}, which this node does not hold",
        )
    return event.hlc


#: The filters of a ``log`` request, with its times resolved to ns.
LogSelection = EventSelection


def selection_of(journal: Journal, request: LogRequest) -> LogSelection:
    """The selection of *request*; reads the journal for times given as event ids."""
    return EventSelection(
        request.path,
        resolve_time(journal, request.since, "since"),
        resolve_time(journal, request.until, "until"),
        request.origin,
    )


def is_held(summary: IdSet, event: Event) -> bool:
    """True if *event* is one of the events *summary* (`Journal.summary`) names."""
    return summary.holds(event.origin, event.seq)


def held_events(
    journal: Journal, selection: LogSelection, summary: IdSet, limit: int | None = None
) -> Iterator[Event]:
    """The events in *summary* that *selection* matches, in ``(hlc, origin)`` order.

    With *limit*, only the newest *limit* of them: one pass backwards finds
    the oldest of those, a second reads forwards from it, so memory does not
    grow with the limit (an indexed read sorts the positions of the matches,
    see `Journal.select`).  A generator: it reads where it is advanced.
    """

    def wanted(event: Event) -> bool:
        return is_held(summary, event)

    if limit is None:
        yield from filter(wanted, journal.select(selection))
        return
    newest_first = filter(wanted, journal.select(selection, reverse=True))
    last = deque(islice(newest_first, limit), maxlen=1)  # keeps only the oldest of them
    if not last:
        return
    oldest = last[0]
    first = (oldest.hlc, oldest.origin)
    for event in journal.select(replace(selection, since=oldest.hlc)):
        if (event.hlc, event.origin) >= first and wanted(event):
            yield event
