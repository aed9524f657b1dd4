"""Which way a mapped item carries values: to the bus, from the bus, or both."""

from __future__ import annotations

import enum

__all__ = ["Direction"]


class Direction(enum.Enum):
    """``out``: journal to bus (the path is owned); ``in``: bus to journal; ``both``."""

    OUT = "out"
    IN = "in"
    BOTH = "both"

    @property
    def outgoing(self) -> bool:
        return self is not Direction.IN

    @property
    def incoming(self) -> bool:
        return self is not Direction.OUT
