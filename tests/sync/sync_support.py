"""Simulated nodes and links for the sync tests: the sans-io core with in-memory journals.

A `SimNode` is what a node's shell does around its `SyncConnection`s: a
`MemoryJournal`, the node's `Holdings`, and a list of received events not
yet stored (lost on a restart, like a real node's memory).  A `SimLink`
joins two nodes with a pair of connections and holds the bytes in flight
each way; the test decides when and how much of them arrives.  Each end
keeps a feed cursor: the journal position up to which it has handed events
to `push`, as the real shell does with the journal feed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.protocol.framing import NEED_DATA
from moat_log.sync import (
    MAX_BATCH_CONTENT,
    Authenticated,
    ConnectionClosed,
    EventsReceived,
    EventsWanted,
    Goodbye,
    Holdings,
    Lookup,
    PeerHas,
    PeerSummary,
    SyncConnection,
    SyncEvent,
    read_batch,
)
from moat_log.testing import DEFAULT_NOW, FakeWallClock, MemoryJournal

#: The cluster secret of the tests (and of the test vector in docs/sync-protocol.md).
SECRET: Final = b"correct horse battery staple 42!"
OTHER_SECRET: Final = b"a different secret of 32 bytes!!"
NONCE_A: Final = bytes(range(0x00, 0x20))
NONCE_B: Final = bytes(range(0x20, 0x40))


def lookup_of_tips(tips: Mapping[str, tuple[int, int]]) -> Lookup:
    """A journal read that knows only these events: per origin, (seq, hlc)."""

    def lookup(event_id: EventId) -> Event | None:
        tip = tips.get(event_id.origin)
        if tip is None or tip[0] != event_id.seq:
            return None
        return Event(event_id.origin, tip[0], tip[1], {}, Path(("x",)), Op.SET, 1)

    return lookup


def fixed_random(data: bytes) -> Callable[[int], bytes]:
    """A stand-in for os.urandom that returns the start of *data*."""
    return lambda size: data[:size]


def events_of(conn: SyncConnection) -> list[SyncEvent]:
    """Every event *conn* has ready, up to NEED_DATA or the end."""
    found: list[SyncEvent] = []
    while (event := conn.next_event()) is not NEED_DATA:
        found.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return found


def handshake(a: SyncConnection, b: SyncConnection) -> None:
    """Run the handshake of two fresh connections to the end (both live)."""
    for _ in range(3):
        for sender, receiver in ((a, b), (b, a)):
            if data := sender.data_to_send():
                receiver.receive_data(data)
        events_of(a)
        events_of(b)
    assert a.live and b.live


class SimNode:
    """One simulated node: journal, holdings, and received events not yet stored."""

    def __init__(self, name: str, *, now: int = DEFAULT_NOW) -> None:
        self.name = name
        self.clock = FakeWallClock(now)
        self.journal = MemoryJournal(name, wall_clock=self.clock)
        self.holdings = self._holdings()
        #: Received and not yet stored: (the end that received them, the event).
        self.pending: list[tuple[End, EventsReceived]] = []
        #: How many times the node lost its data (`wipe`).
        self.generation = 0
        #: Per peer, its generation when it made the statement recorded here.
        self.stated_by: dict[str, int] = {}

    def _holdings(self, held: IdSet | None = None) -> Holdings:
        journal = self.journal
        return Holdings(held or IdSet(), lookup=journal.get, gone=journal.gone)

    def compact(self, rollups: list[Change], removals: list[Event]) -> list[Event]:
        """Compaction as the node runs it: roll-ups written, events removed (ids stay held)."""
        written = self.journal.compact(rollups, removals)
        self.holdings.stored(written)
        return written

    def write(self, path: tuple[str | int, ...], value: object, *, delete: bool = False) -> Event:
        """A local write, committed; the holdings learn of it as from the feed."""
        change = Change(Path(path), None, Op.DELETE) if delete else Change(Path(path), value)
        event = self.journal.append(change)
        self.holdings.stored([event])
        return event

    def store(self, events: Iterable[Event]) -> None:
        """Store foreign events as the shell does; they must not conflict."""
        batch = list(events)
        for event, result in zip(batch, self.journal.write_batch(batch), strict=True):
            assert not isinstance(result, Exception), f"{self.name} refused {event.id}: {result}"
        self.holdings.stored(batch)

    def store_pending(self, index: int = 0) -> None:
        """Store one received item and, for a batch, tell its connection."""
        end, received = self.pending.pop(index)
        self.store(received.events)
        if received.request_id is not None:
            end.conn.batch_stored(received.request_id)

    def restart(self) -> None:
        """Lose everything in memory; the journal survives (links are cut by the caller)."""
        self.pending.clear()
        self.holdings = self._holdings(self.journal.summary())

    def wipe(self) -> None:
        """Lose the journal too (a new SD card); the clock and the name stay."""
        self.pending.clear()
        self.journal = MemoryJournal(self.name, wall_clock=self.clock)
        self.holdings = self._holdings()
        self.generation += 1
        self.stated_by.clear()

    def event_set(self) -> set[bytes]:
        return {event.pack() for _, event in self.journal.scan()}

    def log_after(self, position: int) -> list[Event]:
        return [event for _, event in self.journal.scan(position + 1)]

    def __repr__(self) -> str:
        return f"<SimNode {self.name}>"


@dataclass
class End:
    """One end of a link: its node, its connection, and what crossed into it."""

    node: SimNode
    conn: SyncConnection
    cursor: int  # journal position handed to push() so far
    received_ids: set[EventId] = field(default_factory=set)
    duplicates: int = 0  # events received that the node held or had received already
    #: How a want is answered: the most bytes of events per batch.
    batch_bytes: int = MAX_BATCH_CONTENT
    #: The node at the other end (for its generation, see `SimNode.stated_by`).
    peer: SimNode | None = None

    def handle(self, event: SyncEvent) -> None:
        """What the shell does with one event of the connection."""
        if isinstance(event, EventsWanted):
            read = self.node.journal.by_origin
            events = read_batch(event.seqs, read, self.batch_bytes)
            if not events:  # compacted after the summary offered them: the shell's goodbye
                self.conn.send_goodbye("internal", "this node cannot read events it offered")
                return
            self.conn.send_batch(event.request_id, events)
        elif isinstance(event, EventsReceived):
            for received in event.events:
                assert received.id not in self.received_ids, f"{received.id} twice on one link"
                self.received_ids.add(received.id)
                if self.node.holdings.holds(*received.id) or self._pending(received.id):
                    self.duplicates += 1
            self.node.pending.append((self, event))
        elif isinstance(event, (PeerSummary, PeerHas)):
            self.state(event.held)
        else:
            assert isinstance(event, (Authenticated, Goodbye)), f"unexpected {event}"

    def state(self, held: IdSet) -> None:
        """The peer stated what it holds: record it, as the shell does (the frontier)."""
        assert self.peer is not None and self.conn.peer is not None
        self.node.journal.record_peer(self.conn.peer, held, self.node.clock())
        self.node.stated_by[self.conn.peer] = self.peer.generation

    def _pending(self, event_id: EventId) -> bool:
        return any(
            event_id == event.id
            for end, received in self.node.pending
            for event in received.events
            if end is not self
        )

    def pump_feed(self) -> None:
        """Hand the connection what the journal stored since the cursor (once live)."""
        if self.conn.live:
            self.conn.push(self.node.log_after(self.cursor))
            self.cursor = self.node.journal.last_position


class SimLink:
    """Two nodes joined by a pair of connections, with the bytes in flight each way."""

    def __init__(
        self,
        a: SimNode,
        b: SimNode,
        *,
        secrets: tuple[bytes, bytes] = (SECRET, SECRET),
        random: Callable[[int], bytes] = os.urandom,
        window: int = 4,
        want_size: int = 1024,
    ) -> None:
        self.ends: dict[str, End] = {}
        self.flight: dict[str, bytearray] = {}  # bytes sent by that node, not yet delivered
        for node, secret in zip((a, b), secrets, strict=True):
            conn = SyncConnection(
                node.name,
                secret,
                node.holdings,
                random=random,
                window=window,
                want_size=want_size,
            )
            self.ends[node.name] = End(node, conn, node.journal.last_position)
            self.flight[node.name] = bytearray()
        self.ends[a.name].peer, self.ends[b.name].peer = b, a
        self.bytes_sent = 0

    def end(self, name: str) -> End:
        return self.ends[name]

    def other(self, name: str) -> End:
        (other,) = (end for key, end in self.ends.items() if key != name)
        return other

    def collect(self) -> bool:
        """Move what both connections have to send into flight; whether there was any."""
        moved = False
        for name, end in self.ends.items():
            data = end.conn.data_to_send()
            if data:
                self.flight[name] += data
                self.bytes_sent += len(data)
                moved = True
        return moved

    def deliver(self, sender: str, size: int | None = None) -> bool:
        """Deliver up to *size* bytes sent by *sender* (all by default) and handle them."""
        flight = self.flight[sender]
        if not flight:
            return False
        size = len(flight) if size is None else max(1, min(size, len(flight)))
        data = bytes(flight[:size])
        del flight[:size]
        receiver = self.other(sender)
        receiver.conn.receive_data(data)
        for event in events_of(receiver.conn):
            receiver.handle(event)
        return True

    def cut(self) -> None:
        """The link breaks: bytes in flight are lost, both ends give up their wants."""
        for name, end in self.ends.items():
            end.conn.close()
            self.flight[name].clear()

    def duplicates(self) -> int:
        return sum(end.duplicates for end in self.ends.values())


def settle(nodes: Iterable[SimNode], links: Iterable[SimLink], *, max_rounds: int = 10_000) -> None:
    """Run everything until nothing moves: deliver, serve, store, push."""
    nodes, links = list(nodes), list(links)
    for _ in range(max_rounds):
        moved = False
        for link in links:
            for end in link.ends.values():
                end.pump_feed()
            moved |= link.collect()
            for sender in link.ends:
                moved |= link.deliver(sender)
        for node in nodes:
            while node.pending:
                node.store_pending()
                moved = True
        if not moved:
            return
    raise AssertionError(f"still moving after {max_rounds} rounds")
