"""`why` on a journal: the chain of the event that set a path as of a moment.

The walk itself is `moat_log.projections.why`; this is its `ChainSource` over
a journal (events by id, the summary, the ``paths`` index through replay's
seeks) and the entry point the CLI calls.
"""

from __future__ import annotations

from moat_log.event import Event
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.journal.store import Journal
from moat_log.path import Path

from .replay import winner_at, winner_before
from .why import DEFAULT_DEPTH, Chain, Held, walk_chain

__all__ = ["JournalChainSource", "explain"]


class JournalChainSource:
    """Reads a chain from a journal; the summary is read once, when first needed.

    An id the summary covers but the journal no longer finds is "no longer
    held": whatever removed it (compaction), the node had it once.
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._summary: IdSet | None = None

    def event(self, event_id: EventId) -> Event | None:
        return self._journal.get(event_id)

    def held(self, event_id: EventId) -> Held:
        if self._journal.get(event_id) is not None:
            return Held.HELD
        if self._summary is None:
            self._summary = self._journal.summary()
        return Held.NO_LONGER if self._summary.holds(*event_id) else Held.NEVER

    def before(self, event: Event) -> Event | None:
        return winner_before(self._journal, event)


def explain(
    journal: Journal, path: Path, at: int | None = None, *, depth: int = DEFAULT_DEPTH
) -> Chain | None:
    """The chain of the event that set *path* as of *at* (None: now); None if it had none."""
    winner = winner_at(journal, path, at)
    if winner is None:
        return None
    return walk_chain(winner, JournalChainSource(journal), depth=depth)
