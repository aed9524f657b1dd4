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

Nothing here is durable: after a restart the holdings are rebuilt from the
journal's summary and nothing is requested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..event import Event
from ..rangeset import RangeSet
from .held import Held, add_events, copy_held, count, merge, subtract, take

__all__ = ["Holdings"]


class Holdings:
    """What one node holds, and which missing events its links have asked for."""

    __slots__ = ("_held", "_requested")

    def __init__(self, held: Mapping[str, RangeSet] | None = None) -> None:
        """Start from *held*, e.g. ``journal.summary()``."""
        self._held: Held = copy_held(held or {})
        self._requested: Held = {}

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

    def __repr__(self) -> str:
        return (
            f"<Holdings: {count(self._held)} events of {len(self._held)} origins held, "
            f"{count(self._requested)} requested>"
        )
