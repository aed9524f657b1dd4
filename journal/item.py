"""What the journal feed delivers: one stored event with its position, bytes and winner flag.

Theory of operation
-------------------
An event is a path's **new winner** when its ``(hlc, origin)`` is greater
than that of every event on its path stored at a *lower position* on this
node: at the moment it was stored, it became the path's current value (or
tombstone).  A later event may win in its turn; the flag says what happened
at that position, which is what a watcher replaying the changes needs.  It
is a function of the journal's position order alone, so an event read back
from the journal (a subscriber catching up) carries the same flag as when it
was handed out live.

The write transaction knows the flag for free: a local change is always a
new winner (its hlc is greater than everything the journal has seen), and so
is a foreign event with an hlc above the journal's clock; only an older
foreign event costs one look at its path's newest ``paths`` entry
(`moat_log.journal.batch`).

Read back, `WinnerTracker` remembers the greatest ``(hlc, origin)`` per path
while it walks consecutive positions, and asks the journal's ``paths`` index
for a path it meets for the first time (`Journal.greatest_before`).  Its memory is
bounded: it forgets everything between two reads once it tracks more than
*max_paths* paths, which costs lookups, never correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from moat_log.event import Event
from moat_log.path import Path

__all__ = ["FeedItem", "WinnerKey", "WinnerTracker"]

#: What decides who wins a path: an event's ``(hlc, origin)``.
WinnerKey = tuple[int, str]


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One stored event as the feed hands it out.

    *packed* are the bytes the journal stored (the event's wire form), the
    same object for every subscriber: send them as they are.  *winner*: the
    event was its path's new winner when it was stored (see the module).
    """

    position: int
    event: Event
    packed: bytes
    winner: bool


#: The greatest ``(hlc, origin)`` of a path's events at positions below a
#: position, or None if it has none there.
Lookup = Callable[[Path, int], WinnerKey | None]

#: Paths a `WinnerTracker` remembers before it starts afresh.
MAX_TRACKED_PATHS: Final = 16384


class WinnerTracker:
    """Winner flags for events read back from the journal, range after range."""

    def __init__(self, lookup: Lookup, *, max_paths: int = MAX_TRACKED_PATHS) -> None:
        self._lookup = lookup
        self._max_paths = max_paths
        self._best: dict[Path, WinnerKey | None] = {}
        self._next = 0  # the position after the last range judged

    def judge(self, start: int, end: int, events: Iterable[tuple[int, Event]]) -> Iterator[bool]:
        """Winner flags of *events*, ``(position, event)`` within ``start..end`` in order.

        *events* may leave out positions of the range, but only by path
        (a prefix filter): every event of a path it includes once must be
        included each time.  A range that does not follow the last one
        starts afresh.
        """
        if start != self._next or len(self._best) > self._max_paths:
            self._best.clear()
        self._next = end + 1
        best = self._best
        for _position, event in events:
            path = event.path
            if path in best:
                current = best[path]
            else:
                current = best[path] = self._lookup(path, start)
            key = (event.hlc, event.origin)
            if current is None or key > current:
                best[path] = key
                yield True
            else:
                yield False
