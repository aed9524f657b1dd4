"""When a write is acknowledged: after its own durable commit, or after a shared one.

Both choices acknowledge a write only once the LMDB transaction holding it
is committed with fsync: nothing acknowledged is lost, whatever crashes.
They differ in when that commit happens (docs/journal-layout.md,
"Durability"):

* `Durability.SYNC` commits as soon as the writer is free: one fsync of
  latency, and a fsync (and the pages of one transaction) per lone write.
* `Durability.BATCHED` lets the write wait up to the flush interval for
  company, so that all writes of the interval share one transaction and one
  flush: on an SD card that is far fewer bytes written per event.  A batch
  that holds any sync write is committed at once, its batched writes with it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["DEFAULT_FLUSH_INTERVAL", "MAX_FLUSH_INTERVAL", "Durability", "check_flush_interval"]

#: Seconds a batched write waits at most for its commit.
DEFAULT_FLUSH_INTERVAL: Final = 1.0
#: The longest flush interval a node accepts, in seconds.
MAX_FLUSH_INTERVAL: Final = 60.0


class Durability(StrEnum):
    """How soon a write's durable commit happens; see the module docstring."""

    SYNC = "sync"
    BATCHED = "batched"

    @classmethod
    def parse(cls, value: object) -> Durability:
        """The durability *value* names; `ValueError` saying the choices otherwise."""
        if type(value) is cls:
            return value
        if isinstance(value, str):
            for durability in cls:
                if durability.value == value:
                    return durability
        raise ValueError(f"must be 'sync' or 'batched', not {value!r}")


def check_flush_interval(seconds: object) -> float:
    """*seconds* as a flush interval: a number more than 0 and at most 60."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"must be a number of seconds, not {seconds!r}")
    if not 0 < seconds <= MAX_FLUSH_INTERVAL:
        raise ValueError(f"must be more than 0 and at most {MAX_FLUSH_INTERVAL:g} seconds")
    return float(seconds)
