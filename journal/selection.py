"""Which events a ``log`` shows: a path prefix, a time window, an origin.

Theory of operation
-------------------
`Journal.select` answers a selection from the narrowest index it has
(docs/journal-layout.md):

* with a path prefix (other than the root), the ``paths`` entries of that
  subtree.  Their keys hold the path, the hlc and the origin, so the window
  and the origin are checked on the keys alone, and within each path the
  walk seeks straight to *since* and skips to the next path after *until*;
* else with an origin, that origin's ``ids`` entries.  A foreign origin's
  hlc need not rise with its seq, so each event is read to check its time;
* else the ``times`` entries of the window, filtered.

The first two collect the ``(time key, position)`` pairs of the matches and
sort them, so the events come out in ``(hlc, origin)`` order like the third:
memory grows with the matches, never with the journal, and only up to
``SELECT_SORT_LIMIT`` of them: a selection matching more is answered by the
time scan, which streams.
"""

from __future__ import annotations

from dataclasses import dataclass

from moat_log.event import Event
from moat_log.ids import MAX_U64
from moat_log.path import Path, segment_end

from .keys import pack_u64

__all__ = ["EventSelection", "PathsWindow"]


@dataclass(frozen=True, slots=True)
class EventSelection:
    """The filters of ``log`` (the CLI's and the protocol's), times in ns; None: any."""

    prefix: Path | None = None
    since: int | None = None
    until: int | None = None
    origin: str | None = None

    def matches(self, event: Event) -> bool:
        return (
            (self.prefix is None or self.prefix.is_prefix_of(event.path))
            and (self.origin is None or event.origin == self.origin)
            and (self.since is None or event.hlc >= self.since)
            and (self.until is None or event.hlc <= self.until)
        )


class PathsWindow:
    """Classifies ``paths`` keys of a subtree against a selection's window and origin.

    A ``paths`` key is a path key, 0x00, then the time key (hlc, origin) the
    ``times`` index uses.  `head_length` finds where the path key ends.
    """

    def __init__(self, selection: EventSelection) -> None:
        self.since = pack_u64(selection.since or 0)
        until = selection.until
        #: Time keys at or after this are after the window; None: no end.
        self.after = None if until is None or until >= MAX_U64 else pack_u64(until + 1)
        self.origin = None if selection.origin is None else selection.origin.encode()
        self._head = b"\xff"  # never a key's head: path keys start with a tag 0x02/0x03

    def head_length(self, key: bytes) -> int:
        """The length of the path key and its 0x00 at the start of *key*."""
        head = self._head
        if not key.startswith(head):
            pos = 0
            while key[pos] != 0:  # segment tags are 0x02 or 0x03, never 0x00
                pos = segment_end(key, pos)
            head = self._head = key[: pos + 1]
        return len(head)

    def wants(self, time_key: bytes) -> bool:
        return self.origin is None or time_key[8:] == self.origin
