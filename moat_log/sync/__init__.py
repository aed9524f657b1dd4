"""Node-to-node replication: the sync protocol's sans-io core.

The wire format is specified in docs/sync-protocol.md; this package is its
reference implementation.  `SyncConnection` is one end of a link between two
nodes: bytes in, events out; method calls in, bytes out; no sockets, no
trio, no clock.  All links of a node share one `Holdings`: what the node
holds and what its links have asked for.

The trio shell that runs links over streams against a node's journal is
`moat_log.sync.link` (not imported here: the core needs no trio).
"""

from .auth import MIN_SECRET_SIZE
from .batches import EventReader, read_batch
from .connection import (
    DEFAULT_WANT_SIZE,
    DEFAULT_WINDOW,
    MAX_FRAME_SIZE,
    MAX_WANTS_IN_FLIGHT,
    LinkState,
    LinkStats,
    SyncConnection,
)
from .events import (
    Authenticated,
    ConnectionClosed,
    EventsReceived,
    EventsWanted,
    Goodbye,
    PeerHas,
    PeerSummary,
    SyncEvent,
)
from .holdings import Holdings, Lookup, Tips
from .messages import MAX_BATCH_CONTENT, MAX_WANT_EVENTS, PROTOCOL_VERSION, GoodbyeReason

__all__ = [
    "DEFAULT_WANT_SIZE",
    "DEFAULT_WINDOW",
    "MAX_BATCH_CONTENT",
    "MAX_FRAME_SIZE",
    "MAX_WANTS_IN_FLIGHT",
    "MAX_WANT_EVENTS",
    "MIN_SECRET_SIZE",
    "PROTOCOL_VERSION",
    "Authenticated",
    "ConnectionClosed",
    "EventReader",
    "EventsReceived",
    "EventsWanted",
    "Goodbye",
    "GoodbyeReason",
    "Holdings",
    "LinkState",
    "LinkStats",
    "Lookup",
    "PeerHas",
    "PeerSummary",
    "SyncConnection",
    "SyncEvent",
    "Tips",
    "read_batch",
]
