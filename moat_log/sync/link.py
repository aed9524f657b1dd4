"""The trio shell: sync links over trio streams, against the node's journal.

Theory of operation
-------------------
`open_replicator` gives a node its `Replicator`: the node's `Holdings`,
read from the journal's summary and kept up to date by a journal feed
subscription from the position the summary was read at (so no stored event
is missed; `Replicator.held_through` says how far they reach), and the links
that are up.  Each connection, dialled or accepted, is handed to
`Replicator.run_link`, which runs one `SyncConnection` over the stream until
the link ends, with a few tasks that only move bytes and events:

* *receive*: bytes from the stream into the connection; what comes out is
  routed (wants to *serve*, received events to *store*);
* *send*: the one task that writes to the stream, whatever the connection
  has queued;
* *serve*: reads a want's events with `Journal.by_origin_packed` in a
  worker thread and answers with a batch of the bytes the journal stored;
* *store*: inserts received events through the group-commit
  `JournalWriter` (the feed tells the holdings and every link of them once
  committed), then reports a batch stored - which lets the connection ask
  for more: memory stays bounded by the window whatever the catch-up;
* *push*: hands the connection every event stored after the peer
  authenticated, from a journal feed subscription that starts where the
  holdings (and so the summary just sent) stand; the peer asks for the
  events of the summary itself.  The subscription buffers a bounded number
  of events and reads from the journal when the peer fell behind
  (`Overflow.CATCH_UP`), so a slow peer costs disk reads, not memory, and
  the journal's bytes of each event go out without being packed again.

A link whose peer has not authenticated within the replicator's
*handshake_timeout* ends with a goodbye ``protocol``.

Two nodes that dial each other get two links; the one dialled by the node
whose name sorts first is kept on both sides, the other ends with a goodbye
``duplicate-link``; a one-shot transfer (pull or ship, at either end)
takes no part in that rule.  A link never raises for what its peer did: it returns a
`LinkEnded` saying how it ended, for the log.  Reconnecting with back-off is
the caller's (`moat_log.node`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Final, Literal, TypeAlias

import trio

from ..address import peer_address
from ..errors import (
    IntegrityError,
    InvalidEventError,
    JournalClosedError,
    MoatLogError,
)
from ..event import Event
from ..idset import IdSet
from ..journal.batch import WriteResult
from ..journal.feed import JournalFeed, Overflow, Subscription
from ..journal.group_commit import JournalWriter
from ..journal.store import Journal
from ..protocol.errors import RemoteProtocolError
from ..streams import single_errors_unwrapped
from ..timespec import describe_time
from .batches import read_packed_batch
from .connection import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_HAVE_EVERY,
    DEFAULT_MAX_AHEAD,
    DEFAULT_WANT_SIZE,
    DEFAULT_WINDOW,
    MAX_WANTS_IN_FLIGHT,
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
)
from .holdings import Holdings
from .link_log import link_ended, link_up
from .messages import GoodbyeReason
from .repeats import DEFAULT_REMIND_EVERY, RepeatFilter

__all__ = [
    "LinkEnded",
    "OneWay",
    "PeerStatus",
    "Replicator",
    "open_replicator",
    "replicating",
]

log = logging.getLogger("moat_log.sync")

#: A one-way link: ``pull`` offers nothing and only fetches, ``ship`` only
#: offers, and asks the peer for a ``have`` once it stored everything.
OneWay: TypeAlias = Literal["pull", "ship"]

#: Bytes read from the stream at a time.
RECEIVE_SIZE: Final = 64 * 1024
#: Events a link's push subscription keeps before it reads from the journal instead.
PUSH_BUFFER: Final = 4096
#: The most events handed to the connection in one push.
PUSH_READ: Final = 1024
#: Events the holdings' subscription keeps before it reads from the journal instead.
HOLDINGS_BUFFER: Final = 16384
#: How long a goodbye may take to go out when the link is being cancelled.
GOODBYE_TIMEOUT: Final = 1.0


@dataclass(frozen=True, slots=True)
class LinkEnded:
    """How a link ended: the goodbye's reason (or ``closed``/``broken``) and who ended it."""

    peer: str | None  # None if the peer never authenticated
    reason: str
    message: str
    by_peer: bool
    stats: LinkStats


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One link, live or the last one with a peer that is gone, for ``moat-log status``."""

    peer: str
    dialled: bool  # this node opened the connection
    since: float  # time.time() when the link went live
    held: IdSet  # what the peer is known to hold
    missing_here: int  # events the peer offered that this node does not hold yet
    stats: LinkStats
    has: IdSet | None = None  # the peer's have, if it sent one
    #: time.time() when the link ended: set for a peer that is gone
    #: (`Replicator.departed`), None while the link is live.
    until: float | None = None
    #: How the link ended (``reason: message``), for a peer that is gone.
    last_error: str = ""
    #: What the peer's summary offered: what it held less what it compacted.
    offered: IdSet = field(default_factory=IdSet)


class Replicator:
    """A node's sync links.  Create it with `open_replicator`."""

    def __init__(
        self,
        writer: JournalWriter,
        feed: JournalFeed,
        secret: bytes,
        *,
        window: int = DEFAULT_WINDOW,
        want_size: int = DEFAULT_WANT_SIZE,
        random: Callable[[int], bytes] = os.urandom,
        one_way: OneWay | None = None,
        max_ahead: float = DEFAULT_MAX_AHEAD,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        remind_every: float = DEFAULT_REMIND_EVERY,
        have_every: float = DEFAULT_HAVE_EVERY,
    ) -> None:
        self.writer: Final = writer
        #: A standing link with a compacting peer tells it what this node
        #: holds (a ``have``) this often, if it changed: the peer's frontier.
        self.have_every: Final = have_every
        #: Which repeats of a failure reach the log (`moat_log.sync.link_log`).
        self.repeats: Final = RepeatFilter(remind_every)
        #: A link whose peer has not authenticated after this many seconds ends.
        self.handshake_timeout: Final = handshake_timeout
        #: Events timed more than this many seconds after the journal's wall
        #: clock are refused (see `_Link._too_far_ahead`).
        self.max_ahead: Final = max_ahead
        self.journal: Final = writer.journal
        self.feed: Final = feed
        self.node: Final = writer.journal.node
        self.holdings: Final = Holdings(lookup=self.journal.get, gone=self.journal.gone)
        #: The holdings hold every event stored up to this journal position.
        self.held_through = 0
        self._secret = secret
        self._window, self._want_size, self._random = window, want_size, random
        #: "pull" or "ship": every link of this replicator is a one-shot transfer.
        self.one_way: Final = one_way
        self._links: set[_Link] = set()
        self._departed: dict[str, PeerStatus] = {}
        self._changed = trio.Event()

    async def wait_until(self, condition: Callable[[Replicator], bool]) -> None:
        """Wait until *condition(replicator)* holds.

        It is checked whenever the holdings learn of stored events, a link
        goes live, stores or serves a batch, hears a ``have``, or ends.
        """
        while not condition(self):
            await self._changed.wait()

    def _note_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def peers(self) -> dict[str, PeerStatus]:
        """The live links by peer name (a node's own link before a transfer under its name)."""
        live = [link for link in self._links if link.peer is not None and link.conn.live]
        live.sort(key=lambda link: not link.transfer)  # standing links last: they win
        return {link.peer: link.status() for link in live if link.peer is not None}

    def departed(self) -> dict[str, PeerStatus]:
        """Per peer that had a live link and has none now, how that link ended.

        What the peer was known to hold then stays the best guess of what it
        holds (shown by ``status`` during a partition).
        """
        live = self.peers()
        return {name: peer for name, peer in sorted(self._departed.items()) if name not in live}

    async def run_link(
        self, stream: trio.abc.Stream, *, dialled: bool, address: str = ""
    ) -> LinkEnded:
        """Run one link over *stream* until it ends; the stream is closed afterwards.

        *address* names the peer's end in the log (by default the socket's).
        """
        if not address and isinstance(stream, trio.SocketStream):
            address = peer_address(stream)
        one_way = self.one_way
        conn = SyncConnection(
            self.node,
            self._secret,
            self.holdings,
            window=self._window,
            want_size=self._want_size,
            random=self._random,
            offer=one_way != "pull",
            fetch=one_way != "ship",
            ask_have=one_way == "ship",
            transfer=one_way is not None,
        )
        link = _Link(self, conn, stream, dialled, address)
        self._links.add(link)
        try:
            return await link.run()
        finally:
            ended = link.ending
            if ended is not None:
                self._log_end(link, ended)
            if link.peer is not None and not link.transfer:
                self._depart(link, ended)
            link.close()
            self._links.discard(link)
            conn.close()  # gives back what it had asked for: the other links may ask now
            for other in self._links:
                other.wake()
            self._note_change()
            await trio.aclose_forcefully(stream)

    def _depart(self, link: _Link, ended: LinkEnded | None) -> None:
        """Remember how the link with an authenticated peer ended, for ``status``.

        A link refused before it went live (a fork seen in the summary) says
        why the peer is down, and keeps the last guess of what it holds.
        """
        assert link.peer is not None
        reason = "" if ended is None else f"{ended.reason}: {ended.message}"
        before = self._departed.get(link.peer)
        if link.since:
            self._departed[link.peer] = link.status(until=time.time(), last_error=reason)
        elif ended is not None and ended.reason != GoodbyeReason.DUPLICATE_LINK:
            gone = link.status() if before is None else before
            self._departed[link.peer] = replace(gone, until=time.time(), last_error=reason)

    def _log_up(self, link: _Link) -> None:
        assert link.peer is not None
        ours, theirs = self.holdings.summary(), link.conn.peer_held
        link_up(
            self.repeats,
            trio.current_time(),
            node=self.node,
            peer=link.peer,
            address=link.address,
            dialled=link.dialled,
            lacks_here=(theirs - ours).count,
            lacks_there=(ours - theirs).count,
        )

    def _log_end(self, link: _Link, ended: LinkEnded) -> None:
        live_for = None if link.live_at is None else trio.current_time() - link.live_at
        link_ended(
            self.repeats,
            trio.current_time(),
            ended,
            address=link.address,
            live_for=live_for,
            unsent=link.unsent,
        )

    async def _hold(self, stored: Subscription) -> None:
        """Keep the holdings up to date with everything the journal stores."""
        while True:
            items = await stored.receive_batch()
            self.holdings.stored([item.event for item in items])
            self.held_through = stored.position
            self._note_change()

    def _admit(self, new: _Link) -> None:
        """*new* authenticated its peer: keep one link per peer (see the module doc)."""
        assert new.peer is not None
        if new.transfer:
            return  # a pull or ship beside a standing link: both stay
        first = min(self.node, new.peer)
        for old in list(self._links):
            if old is new or old.peer != new.peer or old.ended or old.transfer:
                continue
            # Keep the link dialled by the node named first; of two alike, the newer
            # (the older is likely dead without either side knowing yet).
            keep_old = old.dialler == first and new.dialler != first
            loser = new if keep_old else old
            loser.end(
                GoodbyeReason.DUPLICATE_LINK, f"{self.node} and {new.peer} are linked already"
            )
            if loser is new:
                return


@asynccontextmanager
async def open_replicator(
    writer: JournalWriter,
    feed: JournalFeed,
    secret: bytes,
    *,
    window: int = DEFAULT_WINDOW,
    want_size: int = DEFAULT_WANT_SIZE,
    one_way: OneWay | None = None,
    max_ahead: float = DEFAULT_MAX_AHEAD,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    remind_every: float = DEFAULT_REMIND_EVERY,
    have_every: float = DEFAULT_HAVE_EVERY,
) -> AsyncIterator[Replicator]:
    """The node's `Replicator`; run ``feed.run`` beside it (the node server does).

    ``async with open_replicator(node.writer, node.feed, secret) as replicator:``
    then ``await replicator.run_link(stream, dialled=...)`` for each connection.
    """
    replicator = Replicator(
        writer,
        feed,
        secret,
        window=window,
        want_size=want_size,
        one_way=one_way,
        max_ahead=max_ahead,
        handshake_timeout=handshake_timeout,
        remind_every=remind_every,
        have_every=have_every,
    )
    held, position = await trio.to_thread.run_sync(writer.journal.summary_at)
    replicator.holdings.stored_ids(held)
    replicator.held_through = position
    stored = feed.subscribe(after=position, limit=HOLDINGS_BUFFER, on_overflow=Overflow.CATCH_UP)
    with stored, single_errors_unwrapped():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(replicator._hold, stored)
            yield replicator
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def replicating(
    journal: Journal,
    secret: bytes,
    *,
    want_size: int = DEFAULT_WANT_SIZE,
    one_way: OneWay | None = None,
) -> AsyncIterator[Replicator]:
    """A `Replicator` for a journal no node runs: with its own writer and feed.

    For ``moat-log pull``/``ship``, benchmarks and tests.  On leaving, what
    the writer has queued is committed first.
    """
    async with trio.open_nursery() as nursery:
        feed = JournalFeed(journal)
        writer = JournalWriter(journal, on_commit=feed.committed)
        await nursery.start(writer.run)
        await nursery.start(feed.run)
        async with open_replicator(
            writer, feed, secret, want_size=want_size, one_way=one_way
        ) as replicator:
            yield replicator
        await writer.close()
        nursery.cancel_scope.cancel()


class _Link:
    """One link's tasks around its connection."""

    def __init__(
        self,
        replicator: Replicator,
        conn: SyncConnection,
        stream: trio.abc.Stream,
        dialled: bool,
        address: str = "",
    ) -> None:
        self.replicator = replicator
        self.conn = conn
        self.stream = stream
        self.dialled = dialled
        self.address = address  # the peer's end, for the log
        self.peer: str | None = None
        self.since = 0.0
        self.live_at: float | None = None  # trio.current_time() when the link went live
        self.unsent = 0  # events the peer offered and did not send before it ended the link
        self.peer_has: IdSet | None = None
        self.ended = False
        self._ending: LinkEnded | None = None
        self._wake_sender = trio.Event()
        self._wake_pusher = trio.Event()
        self._wants_in, self._wants_out = trio.open_memory_channel[EventsWanted](
            MAX_WANTS_IN_FLIGHT
        )
        self._received_in, self._received_out = trio.open_memory_channel[EventsReceived](1)
        # What to push: the journal feed from the moment the peer authenticated.
        self._subscription: Subscription | None = None
        self._authenticated = trio.Event()
        # The peer's latest statement of what it holds, to record in the journal.
        self._statement: IdSet | None = None
        self._stated = trio.Event()
        #: The peer's last statement covered everything this node holds.
        self._holds_all = False

    # --- the link ---------------------------------------------------------------

    def status(self, *, until: float | None = None, last_error: str = "") -> PeerStatus:
        assert self.peer is not None
        return PeerStatus(
            self.peer,
            self.dialled,
            self.since,
            self.conn.peer_held,
            self.conn.wanted.count,
            self.conn.stats,
            self.peer_has,
            until,
            last_error,
            self.conn.peer_offered,
        )

    @property
    def ending(self) -> LinkEnded | None:
        """How the link ended, once it did."""
        return self._ending

    @property
    def transfer(self) -> bool:
        """A one-shot pull or ship, at either end: not a standing link between nodes."""
        return self.replicator.one_way is not None or self.conn.peer_is_transfer

    @property
    def dialler(self) -> str | None:
        """The node that opened the connection."""
        return self.replicator.node if self.dialled else self.peer

    async def run(self) -> LinkEnded:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._send)
                nursery.start_soon(self._receive)
                nursery.start_soon(self._serve)
                nursery.start_soon(self._store)
                nursery.start_soon(self._push)
                nursery.start_soon(self._expect_authentication)
                nursery.start_soon(self._record_statements)
                nursery.start_soon(self._confirm)
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
            self._record("broken", f"the connection broke: {group.exceptions[0]}", by_peer=True)
        except* MoatLogError as group:  # a bug or a damaged journal here, not the peer's doing
            log.exception("sync link with %s failed", self.peer, exc_info=group.exceptions[0])
            self.end(
                GoodbyeReason.INTERNAL, f"{self.replicator.node} failed: {group.exceptions[0]}"
            )
        finally:
            if self._ending is None:  # cancelled from outside: the node is stopping
                self.end(GoodbyeReason.SHUTDOWN, f"{self.replicator.node} is stopping")
            with trio.move_on_after(GOODBYE_TIMEOUT) as scope:
                scope.shield = True
                with contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, OSError
                ):
                    await self._flush()  # the goodbye, if it is not out yet
        assert self._ending is not None
        return self._ending

    def wake(self) -> None:
        """Let the connection send what it has (or may now ask for)."""
        self._wake_sender.set()

    def end(self, reason: str, message: str) -> None:
        """End the link from this side with a goodbye."""
        self.conn.send_goodbye(reason, message)
        self._record(reason, message, by_peer=False)

    def _record(self, reason: str, message: str, *, by_peer: bool) -> None:
        if self._ending is None:  # logged once the link's tasks are done (`Replicator.run_link`)
            self._ending = LinkEnded(self.peer, str(reason), message, by_peer, self.conn.stats)
            self.ended = True
            self.unsent = self.conn.wanted.count if by_peer else 0
        self._wake_sender.set()

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    # --- the tasks --------------------------------------------------------------

    async def _send(self) -> None:
        while True:
            await self._flush()
            if self.ended:
                self._nursery.cancel_scope.cancel()
                return
            await self._wake_sender.wait()
            self._wake_sender = trio.Event()

    async def _receive(self) -> None:
        while not self.ended:
            data = await self.stream.receive_some(RECEIVE_SIZE)
            self.conn.receive_data(data)
            try:
                await self._dispatch()
            except RemoteProtocolError as exc:
                self._record(exc.error_type, str(exc), by_peer=False)
            self._wake_sender.set()

    async def _dispatch(self) -> None:
        while not self.ended:
            event = self.conn.next_event()
            if isinstance(event, EventsReceived):
                await self._received_in.send(event)  # waits while a batch is stored
            elif isinstance(event, EventsWanted):
                self._wants_in.send_nowait(event)  # the connection bounds open wants
            elif isinstance(event, Authenticated):
                self.peer = event.peer
                self._subscribe()
                self.replicator._admit(self)
            elif isinstance(event, PeerSummary):
                self._peer_stated(event.held)
                self.since = time.time()
                self.live_at = trio.current_time()
                self.replicator._log_up(self)
                self._wake_pusher.set()
                self.replicator._note_change()
            elif isinstance(event, PeerHas):
                self._peer_stated(event.held)
                self.peer_has = event.held
                self.replicator._note_change()
            elif isinstance(event, Goodbye):
                self._record(event.reason, event.message, by_peer=True)
            elif isinstance(event, ConnectionClosed):
                self._record("closed", "the peer closed the connection", by_peer=True)
            else:  # NEED_DATA
                return
            self._wake_sender.set()

    async def _serve(self) -> None:
        journal = self.replicator.journal
        async for wanted in self._wants_out:
            events, packed = await trio.to_thread.run_sync(
                read_packed_batch, wanted.seqs, journal.by_origin_packed
            )
            if not events:
                self.end(GoodbyeReason.INTERNAL, "this node cannot read events it offered")
                return
            self.conn.send_batch(wanted.request_id, events, packed)  # the stored bytes go out
            self._wake_sender.set()
            self.replicator._note_change()

    async def _store(self) -> None:
        async for received in self._received_out:
            refusal = self._too_far_ahead(received.events) or await self._insert(received.events)
            if refusal is not None:
                self.end(*refusal)
                return
            if received.request_id is not None:
                self.conn.batch_stored(received.request_id)
                self.replicator._note_change()
            self._wake_sender.set()

    def _too_far_ahead(self, events: Sequence[Event]) -> tuple[str, str] | None:
        """A ``clock`` goodbye's reason and message if *events* are refused for their time.

        An hlc is never less than any the node has seen, so one event from a
        clock years ahead would move every node's clock there for good: all
        later events would carry its time, and ``replay --until`` and
        ``log --since`` would mean nothing.  Such events stay out, and the
        link ends with ``clock`` until the clocks agree.
        """
        wall = self.replicator.journal.wall_clock()
        limit = wall + int(self.replicator.max_ahead * 1e9)
        for event in events:
            if event.hlc > limit:
                return GoodbyeReason.CLOCK, (
                    f"{event.id} is timed {describe_time(event.hlc)}, "
                    f"{(event.hlc - wall) / 1e9:,.0f} s after this node's clock "
                    f"({describe_time(wall)}); the limit is {self.replicator.max_ahead:g} s.  "
                    f"The clock of {event.origin} (or of this node) is wrong: check "
                    f"NTP on both.  Its events stay out until the clocks agree"
                )
        return None

    async def _insert(self, events: Sequence[Event]) -> tuple[str, str] | None:
        """Insert through the group-commit writer; a goodbye's reason and message if refused."""
        done = trio.Event()
        results: list[WriteResult] = []

        def collect(result: WriteResult) -> None:
            results.append(result)
            if len(results) == len(events):
                done.set()

        try:
            for event in events:
                self.replicator.writer.submit(event, collect)
        except JournalClosedError:
            return GoodbyeReason.SHUTDOWN, f"{self.replicator.node} is stopping"
        await done.wait()
        for result in results:
            if isinstance(result, IntegrityError):
                return GoodbyeReason.CONFLICT, str(result)
            if isinstance(result, InvalidEventError):
                return GoodbyeReason.PROTOCOL, f"the journal refused an event: {result}"
            if isinstance(result, JournalClosedError):
                return GoodbyeReason.SHUTDOWN, f"{self.replicator.node} is stopping"
            if isinstance(result, MoatLogError):
                return GoodbyeReason.INTERNAL, f"storing failed: {result}"
        return None

    async def _expect_authentication(self) -> None:
        """End the link if its peer has not authenticated in time: strangers do not stay."""
        timeout = self.replicator.handshake_timeout
        with trio.move_on_after(timeout):
            await self._authenticated.wait()
            return
        if not self.ended:
            self.end(GoodbyeReason.PROTOCOL, f"the peer did not authenticate within {timeout:g} s")

    # --- what each side holds, for compaction --------------------------------------

    def _peer_stated(self, held: IdSet) -> None:
        """The peer said it holds *held*: record it, on a standing link (not a transfer)."""
        if not self.transfer:
            self._statement = held
            self._stated.set()

    async def _record_statements(self) -> None:
        """Write the peer's latest statement to the journal's peer records (the frontier)."""
        journal = self.replicator.journal
        while True:
            await self._stated.wait()
            self._stated = trio.Event()
            held, self._statement = self._statement, None
            if held is not None and self.peer is not None:
                address = self.address if self.dialled else ""
                peer = self.peer
                lacks = await trio.to_thread.run_sync(_record_peer, journal, peer, held, address)
                if lacks == 0 and not self._holds_all:
                    # what compaction waits for; once per catching up, not per statement
                    log.info("peer %s holds every event this node holds", peer)
                self._holds_all = lacks == 0

    async def _confirm(self) -> None:
        """Every `Replicator.have_every` seconds, tell the peer what this node holds, if new."""
        await self._authenticated.wait()
        last: IdSet | None = None
        while not self.ended:
            await trio.sleep(self.replicator.have_every)
            held = self.replicator.holdings.summary()
            if held != last and self.conn.send_have():
                last = held
                self._wake_sender.set()

    # --- pushing ------------------------------------------------------------------

    def _subscribe(self) -> None:
        """Hear the feed from now on: the peer authenticated, and our summary names the rest.

        The connection took the summary from the holdings in this same step
        (no task switch in between), and the holdings hold exactly the
        positions up to `Replicator.held_through` (and perhaps a batch or
        two more, which `SyncConnection.push` skips): every event after it
        is pushed, none is missed.
        """
        self._subscription = self.replicator.feed.subscribe(
            after=self.replicator.held_through, limit=PUSH_BUFFER, on_overflow=Overflow.CATCH_UP
        )
        self._authenticated.set()
        self._wake_pusher.set()

    def close(self) -> None:
        """Stop hearing the feed."""
        if self._subscription is not None:
            self._subscription.close()

    async def _push(self) -> None:
        while not (self.conn.live and self._subscription is not None):
            if self.ended:
                return
            await self._wake_pusher.wait()
            self._wake_pusher = trio.Event()
        subscription = self._subscription
        while not self.ended:
            items = await subscription.receive_batch(PUSH_READ)
            self.conn.push([item.event for item in items], [item.packed for item in items])
            self._wake_sender.set()


def _record_peer(journal: Journal, peer: str, held: IdSet, address: str) -> int:
    """Record *peer*'s statement that it holds *held*; how many of ours it lacks."""
    journal.record_peer(peer, held, time.time_ns(), address)
    return (journal.summary() - held).count
