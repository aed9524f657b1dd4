"""The sans-io core of one sync link: `SyncConnection`.

Theory of operation
-------------------
Both ends of a link run the same state machine (docs/sync-protocol.md,
"State machine"); nodes are equals, and it does not matter who dialled::

    HELLO ──hello──▶ AUTH ──auth──▶ SUMMARY ──summary──▶ LIVE ──▶ CLOSED

Each side sends its hello at once.  On the peer's hello it sends its proof;
on the peer's valid proof, its summary (what its node holds); on the peer's
summary the link is live.  From then on each side asks for what the peer's
summary offers and its node lacks (wants), answers the peer's wants with
batches, and pushes newly stored events.

As in h11 the object never touches a socket or a clock: ``receive_data``
feeds bytes (``b""``: the peer closed), ``next_event`` hands out what
happened (or `NEED_DATA`), and every method that produces bytes queues them
for ``data_to_send``, which the shell calls after each call and sends.

What crosses the link is decided here, what is read and stored is the
shell's business:

* **Wants.**  The connection asks for ids of the peer's summary that the
  node neither holds nor has asked another link for (`Holdings.claim`), at
  most ``want_size`` per want and ``window`` wants at a time.  A want counts
  until the shell reports its batch stored (`batch_stored`): that bounds
  the memory of a catch-up of any size.  A batch may carry fewer events than
  asked (a prefix); the rest is asked again.
* **Pushes.**  The shell hands every event its journal stores to `push`;
  the connection sends those the peer is not known to hold.  It knows what
  the peer holds from its summary and from everything sent either way on
  this connection (`peer_held`).  Events of this node's own summary are not
  pushed: the peer asks for those it lacks.
* **Have.**  If the peer's hello asked for it, the connection sends one
  ``have`` with the node's summary once the node holds everything the
  peer's summary offered (`caught_up`): the peer then knows its events
  are stored (``moat-log ship`` ends there).  A peer's ``have`` is
  `PeerHas`.
* **Strictness.**  A peer gets nothing wrong unnoticed: a want for events
  this node did not offer, or asked twice; a batch that is not a prefix of
  its want, in order; a push of an event the peer knew this node holds or
  had sent before - each is a `RemoteProtocolError`, and the connection
  queues a goodbye saying why.
* **Forked histories.**  A summary carries the tip of each origin (its last
  seq and that event's hlc).  If the peer's tip names an event this node
  holds with another hlc, one name was used for two histories
  (`Holdings.contradiction`): the link ends with ``conflict`` before
  anything is exchanged.

Errors are sticky for receiving: after a `RemoteProtocolError` every
``next_event`` raises again.  Once the link has ended (goodbye, end of
stream, error or `close`), ``push``, ``send_batch`` and ``batch_stored`` do
nothing, so the shell's tasks need not race its end.  Ids the link had asked
for and not stored are given back to the `Holdings` then, for other links.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..event import Event
from ..ids import check_node_name
from ..idset import IdSet, IdSetBuilder
from ..protocol.connection import ConnectionClosed
from ..protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ..protocol.framing import DEFAULT_MAX_FRAME_SIZE, NEED_DATA, FrameDecoder
from .auth import NONCE_SIZE
from .batches import BatchCodec
from .events import (
    Authenticated,
    EventsReceived,
    EventsWanted,
    PeerHas,
    PeerSummary,
    SyncEvent,
)
from .handshake import Handshake
from .holdings import Holdings
from .messages import (
    MAX_BATCH_CONTENT,
    MAX_MESSAGE_CHARS,
    MAX_WANT_EVENTS,
    Batch,
    Goodbye,
    GoodbyeReason,
    Have,
    Hello,
    Message,
    Proof,
    Push,
    Summary,
    Want,
    encode,
    parse_message,
    push_frame,
)

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_HAVE_EVERY",
    "DEFAULT_MAX_AHEAD",
    "DEFAULT_WANT_SIZE",
    "DEFAULT_WINDOW",
    "MAX_FRAME_SIZE",
    "MAX_WANTS_IN_FLIGHT",
    "LinkState",
    "LinkStats",
    "SyncConnection",
]

#: The largest frame either side sends or accepts.
MAX_FRAME_SIZE: Final = DEFAULT_MAX_FRAME_SIZE
#: The most wants a node may have unanswered at its peer.
MAX_WANTS_IN_FLIGHT: Final = 8
#: Wants a connection keeps in flight unless told otherwise.
DEFAULT_WINDOW: Final = 4
#: Events a connection asks for per want unless told otherwise.
DEFAULT_WANT_SIZE: Final = 1024
#: Seconds a new link has to authenticate its peer (``sync.handshake_timeout``).
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds between the ``have``s of a standing link (``sync.have_every``).
DEFAULT_HAVE_EVERY: Final = 60.0
#: Seconds an event's time may be after the node's clock (``sync.max_clock_ahead``).
DEFAULT_MAX_AHEAD: Final = 300.0


class LinkState(enum.Enum):
    """Where a connection stands (docs: "State machine")."""

    HELLO = "waiting for the peer's hello"
    AUTH = "waiting for the peer's proof"
    SUMMARY = "waiting for the peer's summary"
    LIVE = "live"
    CLOSED = "closed"


@dataclass(slots=True)
class LinkStats:
    """What crossed a link, for status displays and tests."""

    bytes_in: int = 0
    bytes_out: int = 0
    events_in: int = 0  # in batches and pushes
    events_out: int = 0
    wants_in: int = 0
    wants_out: int = 0


_NOTHING: Final = IdSet()


@dataclass(slots=True)
class _OwnWant:
    """A want this side sent: what it asked for, and what the batch brought."""

    seqs: IdSet
    received: IdSet | None = None  # None until the batch arrived


@dataclass(slots=True)
class _Tally:
    """The ids a connection has seen go either way (strictness and peer knowledge)."""

    sent: IdSetBuilder = field(default_factory=IdSetBuilder)  # by batch or push, this connection
    received: IdSetBuilder = field(default_factory=IdSetBuilder)
    asked: IdSet = _NOTHING  # ids named by the peer's open wants


CLOSED: Final = ConnectionClosed()


class SyncConnection:
    """One end of a sync link between this node and a peer.

    *secret* is the cluster secret (at least 16 random bytes); *holdings*
    the node's `Holdings`, shared by all its links.  *random* supplies the
    nonce (tests make it fixed).  The hello is queued at once: send
    `data_to_send` first.

    A one-way link (``moat-log pull`` and ``ship``) turns one direction
    off: *offer* False sends an empty summary (the peer asks for nothing),
    *fetch* False asks for nothing.  *ask_have*: the hello asks the peer
    for a ``have`` once it holds all this node offered (`PeerHas`).
    *transfer*: the hello says this end is a one-shot transfer, so the peer
    does not take it for this node's standing link (`peer_is_transfer`).
    """

    def __init__(
        self,
        node: str,
        secret: bytes,
        holdings: Holdings,
        *,
        random: Callable[[int], bytes] = os.urandom,
        window: int = DEFAULT_WINDOW,
        want_size: int = DEFAULT_WANT_SIZE,
        offer: bool = True,
        fetch: bool = True,
        ask_have: bool = False,
        transfer: bool = False,
        compaction: bool = True,
    ) -> None:
        if not 1 <= window <= MAX_WANTS_IN_FLIGHT:
            raise ValueError(f"window must be 1 .. {MAX_WANTS_IN_FLIGHT}, not {window}")
        if not 1 <= want_size <= MAX_WANT_EVENTS:
            raise ValueError(f"want_size must be 1 .. {MAX_WANT_EVENTS}, not {want_size}")
        self.node: Final = check_node_name(node)
        self._holdings = holdings
        self._window = window
        self._offer, self._fetch = offer, fetch
        self._have_sent = False
        self._peer_asked_have = False
        #: The peer's hello said it is a one-shot transfer (pull or ship).
        self.peer_is_transfer = False
        #: The peer's hello said ``compaction``: its summary may name gone ids,
        #: ours names ours, and a standing link may repeat ``have``s.
        self.peer_compacts = False
        self._want_size = want_size
        self.nonce: Final = random(NONCE_SIZE)
        if type(self.nonce) is not bytes or len(self.nonce) != NONCE_SIZE:
            raise ValueError(f"random() must return {NONCE_SIZE} bytes")
        self._handshake = Handshake(
            self.node,
            secret,
            self.nonce,
            ask_have=ask_have,
            transfer=transfer,
            compaction=compaction,
        )
        self._decoder = FrameDecoder(MAX_FRAME_SIZE)
        self._codec = BatchCodec()
        self._outgoing = bytearray()
        self._state = LinkState.HELLO
        self._eof = False
        self._error: ProtocolError | None = None
        self._goodbye_sent = False
        self.peer: str | None = None  # once proven
        self._summary_sent = _NOTHING  # every id it named (pushes skip them)
        self._offered = _NOTHING  # those of them the peer may ask for: not gone
        self._peer_summary = _NOTHING  # what the peer's summary offers: held, not gone
        self._peer_stated = _NOTHING  # everything the peer's summary named
        self._peer_held = IdSetBuilder()  # grown by every event sent either way
        self._tally = _Tally()
        self._next_id = 1
        self._own_wants: dict[int, _OwnWant] = {}
        self._unasked = _NOTHING  # claimed by this link, to be asked (again)
        self._peer_wants: dict[int, IdSet] = {}
        self.stats: Final = LinkStats()
        self._queue(self._handshake.hello())

    # --- state ----------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def live(self) -> bool:
        """True once both summaries are exchanged, until the link ends."""
        return self._state is LinkState.LIVE

    @property
    def peer_held(self) -> IdSet:
        """What the peer is known to hold: its summary and all sent either way since."""
        return self._peer_held.build()

    @property
    def peer_offered(self) -> IdSet:
        """What the peer's summary offered: the ids it holds and has not compacted."""
        return self._peer_summary

    @property
    def wanted(self) -> IdSet:
        """What the peer's summary offers that this node does not hold (yet)."""
        return self._holdings.lacks(self._peer_summary)

    @property
    def caught_up(self) -> bool:
        """Live, and the node holds everything the peer's summary offered."""
        return self.live and not self._own_wants and not self.wanted

    def data_to_send(self) -> bytes:
        """The bytes to send now; call it after every other call.

        While the link is live this is also when the connection asks for
        more (a link gone elsewhere may have given ids back).
        """
        if self._state is LinkState.LIVE:
            self._ask()
            if self._peer_asked_have and not self._have_sent and self.caught_up:
                self._have_sent = True
                self._queue(Have(self._holdings.summary()))
        data = bytes(self._outgoing)
        self._outgoing.clear()
        self.stats.bytes_out += len(data)
        return data

    # --- receiving ------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer; ``b""`` means the peer closed its side."""
        if self._state is LinkState.CLOSED or self._eof:
            return  # the link is over: nothing more is read
        if data:
            self.stats.bytes_in += len(data)
            self._decoder.receive_data(data)
        else:
            self._eof = True

    def next_event(self) -> SyncEvent:
        """The next event, or `NEED_DATA`.

        Raises `RemoteProtocolError` when the peer broke the protocol; the
        goodbye telling it why is then in `data_to_send`.
        """
        if self._error is not None:
            raise RemoteProtocolError(
                f"the link failed earlier and cannot be used: {self._error}",
                error_type=self._error.error_type,
            ) from self._error
        if self._state is LinkState.CLOSED:
            return CLOSED
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise

    def _next_event(self) -> SyncEvent:
        while True:
            frame: object = self._decoder.next_frame()
            if frame is NEED_DATA:
                if not self._eof:
                    return NEED_DATA
                if self._decoder.buffered:
                    raise RemoteProtocolError(
                        f"the connection closed in the middle of a frame "
                        f"({self._decoder.buffered} bytes of it received)"
                    )
                self._end()
                return CLOSED
            event = self._dispatch(parse_message(frame))
            if event is not None:
                return event

    def _dispatch(self, message: Message) -> SyncEvent | None:
        kind = type(message)
        if kind is Goodbye:
            assert isinstance(message, Goodbye)
            self._end()
            return Goodbye(message.reason, message.message[:MAX_MESSAGE_CHARS])
        expected = _EXPECTED[self._state]
        if kind not in expected:
            names = " or ".join(cls.TYPE for cls in expected)
            raise RemoteProtocolError(
                f"the peer sent a {kind.TYPE} message while {self._state.value} (expected {names})"
            )
        return _HANDLERS[kind](self, message)

    # --- the handshake --------------------------------------------------------------

    def _on_have(self, have: Have) -> PeerHas:
        self._peer_held.update(have.held)
        return PeerHas(have.held)

    def _on_hello(self, hello: Hello) -> None:
        self._queue(self._handshake.answer(hello))
        self._peer_asked_have = hello.have
        self.peer_is_transfer = hello.transfer
        self.peer_compacts = hello.compaction and self._handshake.compaction
        self._state = LinkState.AUTH

    def _on_proof(self, proof: Proof) -> Authenticated:
        self.peer = self._handshake.verify(proof)
        held = self._holdings.summary() if self._offer else _NOTHING
        gone = self._holdings.gone() & held
        self._offered = held - gone
        if self.peer_compacts:
            self._summary_sent = held
            self._queue(Summary(held, self._holdings.tips(), gone))
        else:  # version 1's meaning: everything named can be served
            self._summary_sent = self._offered
            self._queue(Summary(self._offered, self._holdings.tips()))
        self._state = LinkState.SUMMARY
        return Authenticated(self.peer)

    def _on_summary(self, summary: Summary) -> PeerSummary:
        contradiction = self._holdings.contradiction(
            summary.tips, here=self.node, there=self.peer or "the peer"
        )
        if contradiction is not None:
            raise RemoteProtocolError(contradiction, error_type=GoodbyeReason.CONFLICT)
        gone = _NOTHING if summary.gone is None or not self.peer_compacts else summary.gone
        self._peer_summary = summary.held - gone
        self._peer_stated = summary.held
        self._peer_held = IdSetBuilder(summary.held)
        self._state = LinkState.LIVE
        return PeerSummary(summary.held)

    # --- the peer's wants -------------------------------------------------------------

    def _on_want(self, want: Want) -> EventsWanted:
        if want.id in self._peer_wants:
            raise RemoteProtocolError(f"the peer reused want id {want.id} while it is open")
        if len(self._peer_wants) >= MAX_WANTS_IN_FLIGHT:
            raise RemoteProtocolError(
                f"the peer has more than {MAX_WANTS_IN_FLIGHT} wants open, the limit"
            )
        not_offered = want.seqs - self._offered
        if not_offered:
            raise RemoteProtocolError(
                f"the peer wants events this node did not offer: {_show(not_offered)}"
            )
        again = (want.seqs & self._tally.sent) or (want.seqs & self._tally.asked)
        if again:
            raise RemoteProtocolError(
                f"the peer wants events it has asked for or received already: {_show(again)}"
            )
        self._peer_wants[want.id] = want.seqs
        self._tally.asked = self._tally.asked | want.seqs
        self.stats.wants_in += 1
        return EventsWanted(want.id, want.seqs)

    def send_batch(
        self, request_id: int, events: Sequence[Event], packed: Sequence[bytes] | None = None
    ) -> None:
        """Answer the peer's want *request_id* with *events*.

        They must be a non-empty prefix of the want in request order (what
        `read_batch` returns), at most `MAX_BATCH_CONTENT` bytes packed;
        otherwise `ValueError`, and nothing changes.  *packed* are their
        wire forms if the caller has them (`read_packed_batch`), put into
        the batch as they are.  Does nothing once the link has ended.
        """
        if self._ended():
            return
        seqs = self._peer_wants.get(request_id)
        if seqs is None:
            raise self._local_error(f"there is no open want {request_id} to answer")
        if not events or not _is_prefix(events, seqs):
            raise ValueError(
                f"a batch for want {request_id} must hold its first events in request order"
            )
        batch = self._codec.pack(request_id, events, packed)
        del self._peer_wants[request_id]
        self._tally.asked = self._tally.asked - seqs
        self._record_sent(events)
        self._queue(batch)

    # --- our wants --------------------------------------------------------------------

    def _ask(self) -> None:
        """Send wants while the window has room and something is missing."""
        while self._fetch and len(self._own_wants) < self._window:
            self._unasked = self._holdings.lacks(self._unasked)
            seqs = self._unasked.take(self._want_size)
            if seqs:
                self._unasked = self._unasked - seqs
            else:
                seqs = self._holdings.claim(self._peer_summary, self._want_size)
                if not seqs:
                    return
            request_id = self._next_id
            self._next_id += 1
            self._own_wants[request_id] = _OwnWant(seqs)
            self.stats.wants_out += 1
            self._queue(Want(request_id, seqs))

    def _on_batch(self, batch: Batch) -> EventsReceived:
        want = self._own_wants.get(batch.id)
        if want is None or want.received is not None:
            raise RemoteProtocolError(f"the peer sent a batch for want {batch.id}: it is not open")
        if batch.count > want.seqs.count:
            raise RemoteProtocolError(
                f"the batch for want {batch.id} announces {batch.count} events; "
                f"the want asked for {want.seqs.count}"
            )
        events = self._codec.unpack(batch)
        if not _is_prefix(events, want.seqs):
            raise RemoteProtocolError(
                f"the batch for want {batch.id} holds events that were not asked for, "
                "or not in request order"
            )
        received = IdSet.of_events(events)
        want.received = received
        self._unasked = self._unasked | (want.seqs - received)  # still claimed: ask again
        self._record_received(events)
        return EventsReceived(tuple(events), batch.id)

    def batch_stored(self, request_id: int) -> None:
        """The events of the batch for want *request_id* are stored: ask for more.

        Call it once the journal has committed them.  Does nothing once the
        link has ended.
        """
        if self._ended():
            return
        want = self._own_wants.get(request_id)
        if want is None or want.received is None:
            raise self._local_error(f"want {request_id} has no batch waiting to be stored")
        del self._own_wants[request_id]
        self._holdings.stored_ids(want.received)

    # --- confirmations ----------------------------------------------------------------

    @property
    def confirms(self) -> bool:
        """Whether this link repeats ``have``s: live, both compact, neither a transfer."""
        return (
            self.live
            and self.peer_compacts
            and not self.peer_is_transfer
            and not self._handshake.transfer
            and self._offer
        )

    def send_have(self) -> bool:
        """Tell the peer what the node holds now (a ``have``), if this link `confirms`.

        The peer records it as what this node stated holding: the frontier
        its compaction waits for.  The shell calls it every so often.
        """
        if self._ended() or not self.confirms:
            return False
        self._queue(Have(self._holdings.summary()))
        return True

    # --- pushes -----------------------------------------------------------------------

    def push(self, events: Sequence[Event], packed: Sequence[bytes] | None = None) -> int:
        """Send those of *events* the peer is not known to hold; how many that is.

        Hand it every event the node stores, in the journal's order, from
        any position up to the moment the summary was sent onward (events
        of the summary itself are skipped: the peer asks for them).  *packed*
        are their wire forms (`Event.pack`, as the journal stored them),
        spliced into the push as they are; without it they are packed here.
        Call it only while `live`; it does nothing once the link has ended.
        """
        if self._ended():
            return 0
        if self._state is not LinkState.LIVE:
            raise self._local_error(f"push() needs a live link; it is {self._state.value}")
        if packed is None:
            packed = [event.pack() for event in events]
        elif len(packed) != len(events):
            raise ValueError(f"{len(events)} events but {len(packed)} packed forms")
        fresh: list[Event] = []
        fresh_packed: list[bytes] = []
        for event, data in zip(events, packed, strict=True):
            origin, seq = event.origin, event.seq
            if self._peer_held.holds(origin, seq) or self._summary_sent.holds(origin, seq):
                continue
            fresh.append(event)
            fresh_packed.append(data)
            self._peer_held.add(origin, seq)
        if fresh:
            self._record_sent(fresh, peer_held=False)
            self._queue_pushes(fresh_packed)
        return len(fresh)

    def _queue_pushes(self, packed_events: list[bytes]) -> None:
        group: list[bytes] = []
        size = 0
        for packed in packed_events:
            if group and size + len(packed) > MAX_BATCH_CONTENT:
                self._outgoing += push_frame(group)
                group, size = [], 0
            group.append(packed)
            size += len(packed)
        self._outgoing += push_frame(group)

    def _on_push(self, push: Push) -> EventsReceived:
        for event in push.events:
            origin, seq = event.origin, event.seq
            if self._summary_sent.holds(origin, seq) or self._peer_stated.holds(origin, seq):
                raise RemoteProtocolError(
                    f"the peer pushed {event.id}, which a summary already named "
                    "(it is asked for, not pushed)"
                )
            if self._tally.received.holds(origin, seq):
                raise RemoteProtocolError(f"the peer pushed {event.id} a second time")
            self._tally.received.add(origin, seq)
        self._record_received(push.events, tallied=True)
        return EventsReceived(push.events, None)

    # --- ending -------------------------------------------------------------------------

    def send_goodbye(self, reason: str, message: str) -> None:
        """End the link, telling the peer why (*reason*: see `GoodbyeReason`)."""
        if not isinstance(reason, str) or not isinstance(message, str):
            raise TypeError("reason and message must be str")
        if not self._goodbye_sent and self._state is not LinkState.CLOSED:
            self._goodbye_sent = True
            self._queue(Goodbye(str(reason), message[:MAX_MESSAGE_CHARS]))
        self._end()

    def close(self) -> None:
        """The shell abandoned the link (e.g. the socket broke): give back its wants."""
        self._end()

    def _end(self) -> None:
        if self._state is not LinkState.CLOSED:
            self._state = LinkState.CLOSED
            unstored = self._unasked
            for want in self._own_wants.values():
                unstored = unstored | want.seqs
            self._holdings.release(unstored)
            self._own_wants.clear()
            self._unasked = _NOTHING
            self._peer_wants.clear()

    def _ended(self) -> bool:
        return self._state is LinkState.CLOSED

    def _fail(self, error: ProtocolError) -> None:
        if not self._goodbye_sent and self._state is not LinkState.CLOSED:
            self._goodbye_sent = True
            self._queue(Goodbye(str(error.error_type), str(error)[:MAX_MESSAGE_CHARS]))
        self._error = error
        self._end()

    def _local_error(self, message: str) -> LocalProtocolError:
        return LocalProtocolError(message, error_type=GoodbyeReason.INTERNAL)

    # --- bookkeeping --------------------------------------------------------------------

    def _queue(self, message: Message) -> None:
        self._outgoing += encode(message)

    def _record_sent(self, events: Sequence[Event], *, peer_held: bool = True) -> None:
        self._tally.sent.add_events(events)
        if peer_held:
            self._peer_held.add_events(events)
        self.stats.events_out += len(events)

    def _record_received(self, events: Sequence[Event], *, tallied: bool = False) -> None:
        if not tallied:
            self._tally.received.add_events(events)
        self._peer_held.add_events(events)
        self.stats.events_in += len(events)

    def __repr__(self) -> str:
        peer = self.peer or self._handshake.claimed_peer or "?"
        return f"<SyncConnection {self.node} -> {peer}: {self._state.value}>"


_EXPECTED: Final[dict[LinkState, tuple[type[Any], ...]]] = {
    LinkState.HELLO: (Hello,),
    LinkState.AUTH: (Proof,),
    LinkState.SUMMARY: (Summary,),
    LinkState.LIVE: (Want, Batch, Push, Have),
    LinkState.CLOSED: (),
}

#: What a connection does with each message it expects (all but goodbye).
_HANDLERS: Final[dict[type[Any], Callable[[SyncConnection, Any], SyncEvent | None]]] = {
    Hello: SyncConnection._on_hello,
    Proof: SyncConnection._on_proof,
    Summary: SyncConnection._on_summary,
    Want: SyncConnection._on_want,
    Batch: SyncConnection._on_batch,
    Push: SyncConnection._on_push,
    Have: SyncConnection._on_have,
}


def _is_prefix(events: Sequence[Event], seqs: IdSet) -> bool:
    """Whether *events* are the first ids of *seqs* in request order."""
    if len(events) > seqs.count:
        return False
    # Range by range, comparing origin and seq: no EventId per event (a
    # batch is checked on both sides of a catch-up).
    index = 0
    for origin, first, last in seqs.ranges():
        for seq in range(first, min(last, first + len(events) - index - 1) + 1):
            event = events[index]
            if event.origin != origin or event.seq != seq:
                return False
            index += 1
        if index == len(events):
            return True
    return True


def _show(held: IdSet) -> str:
    text = ", ".join(f"{origin}:{seqs}" for origin, seqs in held.items())
    return text if len(text) <= 200 else text[:200] + "..."
