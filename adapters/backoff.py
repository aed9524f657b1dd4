"""Jittered exponential back-off between an adapter's connection attempts (sans-io).

A bus that goes away is retried after a delay that doubles with every
failure in a row, up to a maximum, each delay spread at random over its
upper half ("equal jitter"), so that the nodes and adapters of a house that
lost the same broker do not all come back in the same millisecond.  A
connection that stayed up for `Backoff.stable_after` seconds counts as a
success: the next failure starts again at the first delay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays before reconnecting: *first* doubling up to *maximum* seconds, jittered."""

    first: float = 0.5
    maximum: float = 60.0
    #: Seconds a connection must last for its failure to start over at *first*.
    stable_after: float = 30.0
    #: Failures in a row so far.
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.maximum:
            raise ValueError(
                f"back-off delays need 0 < first ({self.first}) <= maximum ({self.maximum})"
            )

    def failed(self, connected_for: float | None = None) -> float:
        """A connection failed (after *connected_for* seconds up, None: it never came up).

        Returns the seconds to wait before the next attempt.
        """
        if connected_for is not None and connected_for >= self.stable_after:
            self.failures = 0
        self.failures += 1
        ceiling = min(self.first * 2.0 ** min(self.failures - 1, 62), self.maximum)
        return ceiling / 2 + self.rng.random() * ceiling / 2
