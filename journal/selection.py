"""Which events a ``log`` shows: a path prefix, a time window, an origin."""

from __future__ import annotations

from dataclasses import dataclass

from moat_log.event import Event
from moat_log.path import Path

__all__ = ["EventSelection"]


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
