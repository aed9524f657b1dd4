"""What a `SyncConnection` hands to its shell: one frozen dataclass per happening."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ..event import Event
from ..idset import IdSet
from ..protocol.connection import ConnectionClosed
from ..protocol.framing import NeedData
from .messages import Goodbye

__all__ = [
    "Authenticated",
    "ConnectionClosed",
    "EventsReceived",
    "EventsWanted",
    "Goodbye",
    "PeerHas",
    "PeerSummary",
    "SyncEvent",
]


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The peer proved that it knows the cluster secret; it is node *peer*."""

    peer: str


@dataclass(frozen=True, slots=True)
class PeerSummary:
    """The peer's summary arrived: the link is live, and the connection asks for what it lacks."""

    held: IdSet


@dataclass(frozen=True, slots=True)
class EventsWanted:
    """The peer asks for these events: read them and answer with ``send_batch(request_id, ...)``.

    Use `read_batch` to read them in the order a batch carries them.
    """

    request_id: int
    seqs: IdSet


@dataclass(frozen=True, slots=True)
class EventsReceived:
    """Events from the peer, to be stored (those already held are dropped by the journal).

    *request_id* is the want a batch answers, None for pushed events.  Once
    a batch's events are stored, call ``batch_stored(request_id)``: only then
    does the connection ask for more (flow control).
    """

    events: tuple[Event, ...]
    request_id: int | None


@dataclass(frozen=True, slots=True)
class PeerHas:
    """The peer's ``have``: it holds *held*, which covers all this node's summary offered."""

    held: IdSet


SyncEvent: TypeAlias = (
    Authenticated
    | PeerSummary
    | PeerHas
    | EventsWanted
    | EventsReceived
    | Goodbye
    | ConnectionClosed
    | NeedData
)
