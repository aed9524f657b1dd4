"""Hybrid logical clock.

An hlc timestamp is one unsigned 64-bit integer: nanoseconds since the Unix
epoch, UTC.  The logical counter of the classic HLC (Kulkarni et al., 2014) is
folded into the low digits: when the wall clock has not advanced past the last
timestamp (a burst of events within one clock tick, a wall clock stepped back
by NTP, or an event seen from a node whose clock runs ahead), the next
timestamp is the last one plus 1 ns.  This keeps three properties with a
single number that still reads as a time:

* strictly increasing on each node,
* greater than every timestamp the node has seen (so if A happened before B,
  ``hlc(A) < hlc(B)``),
* within the clock skew of real time while the wall clock is sane.

`next_hlc` and `observe_hlc` are pure functions; the journal keeps the last
timestamp in its meta database and applies them inside its write transaction,
so several processes writing to one journal never reuse a timestamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .ids import MAX_U64


def next_hlc(last: int, wall_ns: int) -> int:
    """The timestamp for a new event, given the last one issued or seen."""
    hlc = max(wall_ns, last + 1)
    if hlc > MAX_U64:
        raise OverflowError("hybrid logical clock exhausted the 64-bit range")
    return hlc


def observe_hlc(last: int, seen: int) -> int:
    """The clock state after seeing a foreign event with timestamp *seen*."""
    return max(last, seen)


class HybridClock:
    """An in-memory hybrid logical clock with a replaceable wall clock.

    The journal does not use this class (its clock state lives in LMDB); it is
    for sans-io cores and tests that need a clock of their own.
    """

    def __init__(self, wall_clock: Callable[[], int] = time.time_ns, last: int = 0) -> None:
        self._wall_clock = wall_clock
        self.last = last

    def tick(self) -> int:
        """Issue a new timestamp."""
        self.last = next_hlc(self.last, self._wall_clock())
        return self.last

    def observe(self, seen: int) -> None:
        """Account for a timestamp received from elsewhere."""
        self.last = observe_hlc(self.last, seen)
