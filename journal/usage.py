"""What the journal's events cost: bytes per path class, events and bytes per day.

A fold over the stored events (`Usage.add`), for ``moat-log stats --usage``.
A *path class* is a path's first segment (``home``, ``sensor``, ``moat-log``
for roll-ups and retirements).  Bytes are the packed event plus its three
index entries (keys and values); LMDB's pages add some overhead on top, and
each commit rewrites the pages it touches, so the bytes stored per day are
a lower bound of what the card is written (docs/operator-guide.md,
"Retention").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moat_log.event import Event

from . import keys

__all__ = ["Usage"]

NS_PER_DAY = 86400 * 10**9
_POSITION = 8  # every index entry's value: a u64 position


@dataclass(slots=True)
class Usage:
    """Per path class, events and bytes; per UTC day (days since the epoch), the same."""

    by_class: dict[str, list[int]] = field(default_factory=dict)  # class -> [events, bytes]
    by_day: dict[int, list[int]] = field(default_factory=dict)  # day -> [events, bytes]

    def add(self, event: Event, packed_size: int) -> None:
        origin = len(event.origin.encode())
        path_key = len(keys.cached_path_key(event.path))
        size = (
            packed_size
            + 8  # the events key
            + (origin + 9 + _POSITION)  # ids
            + (path_key + 9 + origin + _POSITION)  # paths
            + (8 + origin + _POSITION)  # times
        )
        name = str(event.path[0]) if event.path else ":"
        for table, key in ((self.by_class, name), (self.by_day, event.hlc // NS_PER_DAY)):
            entry = table.setdefault(key, [0, 0])  # type: ignore[arg-type]
            entry[0] += 1
            entry[1] += size
