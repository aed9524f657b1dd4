"""A node's holdings: what its journal holds, and what its links have asked for.

Theory of operation
-------------------
A node has one `Holdings`, shared by all its sync links (`SyncConnection`).
It answers two questions without touching the journal:

* *What do I hold?*  ``held`` follows the journal: the shell reports every
  stored event (`stored`, from the journal feed, and `SyncConnection`
  reports the batches it was told are stored).  A link's summary is a copy
  of it.
* *What is already being fetched?*  ``requested`` holds the ids that some
  link has asked its peer for and that are not stored yet.  A link asks only
  for ids that are neither held nor requested (`claim`), so a node that
  missed the same events as two of its peers fetches them once, not twice.
  A link that ends gives its unanswered ids back (`release`), and the other
  links may then ask for them.

* *Is the peer's history of an origin the same as mine?*  `tips` names, per
  origin, the last seq held and the hlc of that event; a summary carries
  them.  `contradiction` compares a peer's tips with the journal's events
  (looked up with *lookup*, e.g. ``journal.get``).  Two events with one id
  and different hlcs mean a node's name was used twice for different
  events, typically by a node whose data was lost and that wrote again
  under its old name before it caught up.  Nothing else would notice:
  each side would keep its own event under that id for ever.

Nothing here is durable: after a restart the holdings are rebuilt from the
journal's summary and nothing is requested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias

from ..event import Event
from ..ids import EventId
from ..rangeset import RangeSet
from ..timespec import describe_time
from .held import Held, add_events, copy_held, count, merge, subtract, take

__all__ = ["Holdings", "Lookup", "Tips"]

#: Reads one event of the node's journal by id (``journal.get``).
Lookup: TypeAlias = Callable[[EventId], Event | None]
#: Per origin, the last seq held and the hlc of that event.
Tips: TypeAlias = dict[str, tuple[int, int]]


class Holdings:
    """What one node holds, and which missing events its links have asked for."""

    __slots__ = ("_held", "_lookup", "_requested")

    def __init__(
        self, held: Mapping[str, RangeSet] | None = None, *, lookup: Lookup | None = None
    ) -> None:
        """Start from *held*, e.g. ``journal.summary()``.

        *lookup* reads an event of the journal by id; without it the node
        names no tips and checks none.
        """
        self._held: Held = copy_held(held or {})
        self._requested: Held = {}
        self._lookup = lookup

    def summary(self) -> Held:
        """A copy of what the node holds."""
        return copy_held(self._held)

    @property
    def requested(self) -> Held:
        """A copy of the ids asked for by some link and not stored yet."""
        return copy_held(self._requested)

    def holds(self, origin: str, seq: int) -> bool:
        seqs = self._held.get(origin)
        return seqs is not None and seq in seqs

    def lacks(self, offered: Mapping[str, RangeSet]) -> Held:
        """What of *offered* the node does not hold."""
        return subtract(offered, self._held)

    def stored(self, events: Iterable[Event]) -> None:
        """These events are in the journal now (whoever stored them)."""
        stored: Held = {}
        add_events(stored, events)
        self.stored_ids(stored)

    def stored_ids(self, ids: Mapping[str, RangeSet]) -> None:
        """The events with these ids are in the journal now."""
        merge(self._held, ids)
        self._requested = subtract(self._requested, ids)

    def claim(self, offered: Mapping[str, RangeSet], limit: int) -> Held:
        """Mark up to *limit* ids of *offered* as requested and return them.

        Only ids neither held nor already requested are taken, the first ones
        in request order (origins in byte order, seqs ascending).
        """
        if limit <= 0:
            return {}
        free = subtract(subtract(offered, self._held), self._requested)
        claimed = take(free, limit)
        merge(self._requested, claimed)
        return claimed

    def release(self, ids: Mapping[str, RangeSet]) -> None:
        """Forget that these ids were requested: the link that asked is gone."""
        self._requested = subtract(self._requested, ids)

    def tips(self) -> Tips:
        """Per origin held, the last seq and that event's hlc (for a summary)."""
        if self._lookup is None:
            return {}
        tips: Tips = {}
        for origin, seqs in self._held.items():
            event = self._lookup(EventId(origin, seqs.max))
            if event is not None:
                tips[origin] = (event.seq, event.hlc)
        return tips

    def contradiction(
        self, tips: Mapping[str, tuple[int, int]], *, here: str, there: str
    ) -> str | None:
        """Why a peer's *tips* contradict this node's journal, or None if they do not.

        Only ids this node holds are compared: the peer checks the others
        against its own journal.  *here* and *there* name this node and the
        peer in the message, which both sides log.
        """
        if self._lookup is None:
            return None
        for origin, (seq, hlc) in sorted(tips.items()):
            if not self.holds(origin, seq):
                continue
            event = self._lookup(EventId(origin, seq))
            if event is not None and event.hlc != hlc:
                return (
                    f"{origin}:{seq} is two different events: {there} holds one of "
                    f"{describe_time(hlc)} (hlc {hlc}), {here} one of "
                    f"{describe_time(event.hlc)} (hlc {event.hlc}).  The name {origin!r} was "
                    f"used again for new events, most likely by a node that lost its data "
                    f"and wrote before it caught up.  Nothing of this link is exchanged; "
                    f"see the operator guide, 'A node lost its data'"
                )
        return None

    def __repr__(self) -> str:
        return (
            f"<Holdings: {count(self._held)} events of {len(self._held)} origins held, "
            f"{count(self._requested)} requested>"
        )
