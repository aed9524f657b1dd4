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
from typing import Final, TypeAlias

from ..event import Event
from ..ids import EventId
from ..idset import IdSet, IdSetBuilder
from ..timespec import describe_time

__all__ = ["Holdings", "Lookup", "Tips"]

#: Reads one event of the node's journal by id (``journal.get``).
Lookup: TypeAlias = Callable[[EventId], Event | None]
#: Per origin, the last seq held and the hlc of that event.
Tips: TypeAlias = dict[str, tuple[int, int]]

_NOTHING: Final = IdSet()


class Holdings:
    """What one node holds, and which missing events its links have asked for."""

    __slots__ = ("_gone", "_held", "_lookup", "_requested")

    def __init__(
        self,
        held: IdSet = _NOTHING,
        *,
        lookup: Lookup | None = None,
        gone: Callable[[], IdSet] | None = None,
    ) -> None:
        """Start from *held*, e.g. ``journal.summary()``.

        *lookup* reads an event of the journal by id; without it the node
        names no tips and checks none.  *gone* reads the ids compaction
        removed (``journal.gone``): held, but not served.
        """
        self._gone = gone
        # Grown by every event the journal stores: a builder, not a new set each time.
        self._held = IdSetBuilder(held)
        self._requested = _NOTHING
        self._lookup = lookup

    def summary(self) -> IdSet:
        """What the node holds now."""
        return self._held.build()

    def gone(self) -> IdSet:
        """The ids held whose events compaction removed (read afresh: compaction runs aside)."""
        return _NOTHING if self._gone is None else self._gone()

    @property
    def requested(self) -> IdSet:
        """The ids asked for by some link and not stored yet."""
        return self._requested

    def holds(self, origin: str, seq: int) -> bool:
        return self._held.holds(origin, seq)

    def lacks(self, offered: IdSet) -> IdSet:
        """What of *offered* the node does not hold."""
        return offered - self._held

    def stored(self, events: Iterable[Event]) -> None:
        """These events are in the journal now (whoever stored them)."""
        if self._requested:
            self.stored_ids(IdSet.of_events(events))
        else:  # the usual case, for every commit: no set to build
            self._held.add_events(events)

    def stored_ids(self, ids: IdSet) -> None:
        """The events with these ids are in the journal now."""
        self._held.update(ids)
        if self._requested:
            self._requested = self._requested - ids

    def claim(self, offered: IdSet, limit: int) -> IdSet:
        """Mark up to *limit* ids of *offered* as requested and return them.

        Only ids neither held nor already requested are taken, the first ones
        in request order (origins in byte order, seqs ascending).
        """
        if limit <= 0:
            return _NOTHING
        claimed = (self.lacks(offered) - self._requested).take(limit)
        self._requested = self._requested | claimed
        return claimed

    def release(self, ids: IdSet) -> None:
        """Forget that these ids were requested: the link that asked is gone."""
        self._requested = self._requested - ids

    def tips(self) -> Tips:
        """Per origin held, the last seq and that event's hlc (for a summary)."""
        if self._lookup is None:
            return {}
        tips: Tips = {}
        for origin in self._held.origins:
            event = self._lookup(EventId(origin, self._held.max(origin)))
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
        held = self._held.build()
        return (
            f"<Holdings: {held.count} events of {len(held.origins)} origins held, "
            f"{self._requested.count} requested>"
        )
