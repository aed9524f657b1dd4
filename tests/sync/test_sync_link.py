"""The trio shell: two real journals syncing over a socket pair.

Each node is what `moat_log.node` runs: a journal with its views, the
group-commit writer, the journal feed, and here a `Replicator`.  Tests wait
for what they expect through the feed (no sleeps); a generous `fail_after`
only keeps a broken test from hanging the suite.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path as FsPath

import pytest
import trio
import trio.testing
from sync_support import OTHER_SECRET, SECRET, events_of

from moat_log.event import Event, Op
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.journal.feed import JournalFeed
from moat_log.journal.group_commit import JournalWriter
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import kv_view, open_journal
from moat_log.protocol.framing import FrameDecoder
from moat_log.rangeset import RangeSet
from moat_log.sync import (
    ConnectionClosed,
    EventsWanted,
    Holdings,
    LinkState,
    PeerSummary,
    SyncConnection,
    SyncEvent,
)
from moat_log.sync.batches import BatchCodec
from moat_log.sync.link import LinkEnded, OneWay, Replicator, replicating
from moat_log.sync.messages import Goodbye, encode, parse_message

GUARD = 60  # seconds: only against a hang, never reached by a passing test


@dataclass
class RunningNode:
    journal: Journal
    writer: JournalWriter
    feed: JournalFeed
    replicator: Replicator

    async def write(self, count: int, prefix: str = "x") -> list[Event]:
        return [await self.writer.append(Change(Path((prefix, i % 40)), i)) for i in range(count)]

    async def write_many(self, count: int) -> None:
        """*count* writes at once (they share group commits)."""
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(self.writer.append, Change(Path(("bulk", i % 97)), i))

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until *condition* holds, checked each time the holdings or a link change."""
        await self.replicator.wait_until(lambda _: condition())

    def kv_state(self) -> list[bytes]:
        return [event.pack() for event in kv_view(self.journal).walk(deleted=True)]

    def events(self) -> set[bytes]:
        return {data for _, data in self.journal.scan_raw()}


@asynccontextmanager
async def running_node(
    directory: FsPath,
    name: str,
    *,
    secret: bytes = SECRET,
    want_size: int = 1024,
    wall_clock: Callable[[], int] = time.time_ns,
    one_way: OneWay | None = None,
) -> AsyncIterator[RunningNode]:
    journal = await trio.to_thread.run_sync(
        lambda: open_journal(directory / name, create_node=name, wall_clock=wall_clock)
    )
    try:
        async with replicating(journal, secret, want_size=want_size, one_way=one_way) as replicator:
            yield RunningNode(journal, replicator.writer, replicator.feed, replicator)
    finally:
        journal.close()


def socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    left, right = trio.socket.socketpair()
    return trio.SocketStream(left), trio.SocketStream(right)


@dataclass
class Link:
    """Both ends of a link as they end: by node name, and an event when both have."""

    ended: dict[str, LinkEnded] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)


async def link(a: RunningNode, b: RunningNode, nursery: trio.Nursery) -> Link:
    """Start a link between a (dialling) and b over a socket pair."""
    result = Link()
    left, right = socket_pair()

    async def run(node: RunningNode, stream: trio.SocketStream, dialled: bool) -> None:
        ended = await node.replicator.run_link(stream, dialled=dialled)
        result.ended[node.replicator.node] = ended
        if len(result.ended) == 2:
            result.done.set()

    nursery.start_soon(run, a, left, True)
    nursery.start_soon(run, b, right, False)
    return result


async def fake_peer(
    stream: trio.abc.Stream, conn: SyncConnection, answer: Callable[[SyncEvent], bytes]
) -> None:
    """Run *conn* by hand over *stream*; *answer* may send raw bytes for each event."""
    await stream.send_all(conn.data_to_send())
    while conn.state is not LinkState.CLOSED:
        conn.receive_data(await stream.receive_some())
        for event in events_of(conn):
            if raw := answer(event):
                await stream.send_all(raw)
        if data := conn.data_to_send():
            await stream.send_all(data)


async def test_two_journals_catch_up_and_then_replicate_live(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi1", want_size=300) as a,
            running_node(tmp_path, "pi2") as b,
            trio.open_nursery() as nursery,
        ):
            await a.write(3000)
            await b.write(500, prefix="y")
            want = a.journal.summary() | b.journal.summary()
            await link(a, b, nursery)
            await b.until(lambda: b.replicator.holdings.summary() == want)
            await a.until(lambda: a.replicator.holdings.summary() == want)
            assert a.events() == b.events()
            assert a.kv_state() == b.kv_state()
            assert b.replicator.peers()["pi1"].missing_here == 0

            (event,) = await a.write(1, prefix="live")  # pushed as it is committed
            await b.until(lambda: b.replicator.holdings.holds("pi1", event.seq))
            assert b.journal.get(event.id) == event
            await a.write_many(6000)  # a burst: pushed from memory, then from the journal
            want = a.journal.summary()
            await b.until(lambda: b.replicator.holdings.summary() == want)
            assert a.kv_state() == b.kv_state()
            status = a.replicator.peers()["pi2"]
            assert status.dialled and status.held == b.journal.summary()
            assert status.stats.events_out == 3000 + 1 + 6000
            assert status.stats.events_in == 500
            nursery.cancel_scope.cancel()


async def test_reconnecting_nodes_in_sync_exchange_no_events(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as a, running_node(tmp_path, "pi2") as b:
            await a.write(100)
            want = a.journal.summary()
            for _ in range(2):
                async with trio.open_nursery() as nursery:
                    await link(a, b, nursery)
                    await b.until(lambda: b.replicator.holdings.summary() == want)
                    await a.replicator.wait_until(lambda r: "pi2" in r.peers())
                    stats = a.replicator.peers()["pi2"].stats
                    nursery.cancel_scope.cancel()
            assert (stats.events_out, stats.wants_in) == (0, 0)


async def test_a_peer_with_another_secret_is_refused_and_learns_nothing(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi1") as a,
            running_node(tmp_path, "pi2", secret=OTHER_SECRET) as b,
        ):
            await a.write(10)
            async with trio.open_nursery() as nursery:
                result = await link(a, b, nursery)
            assert {e.reason for e in result.ended.values()} == {"auth-failed"}
            assert {e.peer for e in result.ended.values()} == {None}
            assert b.journal.summary() == IdSet()
            assert a.replicator.holdings.requested == IdSet()


async def test_a_peer_sending_garbage_ends_its_link_and_nothing_else(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as a:
            await a.write(5)
            before = a.events()
            ours, theirs = trio.testing.memory_stream_pair()
            await theirs.send_all(b"\x00\x00\x00\x04junk")
            ended = await a.replicator.run_link(ours, dialled=False)
            assert (ended.reason, ended.by_peer) == ("protocol", False)
            assert "not one valid msgpack value" in ended.message
            sent = FrameDecoder()
            sent.receive_data(await theirs.receive_some())
            assert parse_message(sent.next_frame()).TYPE == "hello"
            goodbye = parse_message(sent.next_frame())
            assert isinstance(goodbye, Goodbye) and goodbye.reason == "protocol"
            assert a.events() == before
            (event,) = await a.write(1)  # the node carries on
            assert a.journal.get(event.id) == event


async def test_a_peer_that_claims_events_it_does_not_send_is_refused(tmp_path: FsPath) -> None:
    """Its batch holds other events than asked for: the link ends, nothing is stored."""
    forged = Event("pi2", 9, 5, {}, Path(("x",)), Op.SET, 1)

    def lie(event: SyncEvent) -> bytes:
        if isinstance(event, EventsWanted):
            return encode(BatchCodec().pack(event.request_id, [forged]))
        return b""

    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as a:
            ours, theirs = trio.testing.memory_stream_pair()
            liar = SyncConnection("pi2", SECRET, Holdings(IdSet.parse("pi2:1-3")))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fake_peer, theirs, liar, lie)
                ended = await a.replicator.run_link(ours, dialled=True)
            assert ended.reason == "protocol"
            assert "not asked for" in ended.message
            assert a.journal.summary() == IdSet()
            assert a.replicator.holdings.requested == IdSet()


async def test_conflicting_events_end_the_link_and_each_node_keeps_its_own(
    tmp_path: FsPath,
) -> None:
    mine = Event("pi3", 1, 1_700_000_000_000_000_000, {}, Path(("c",)), Op.SET, "one version")
    theirs = mine._replace(value="another version")
    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as a, running_node(tmp_path, "pi2") as b:
            async with trio.open_nursery() as nursery:
                result = await link(a, b, nursery)
                await a.replicator.wait_until(lambda r: "pi2" in r.peers())
                await b.replicator.wait_until(lambda r: "pi1" in r.peers())
                await a.writer.insert(mine)  # the same id, from elsewhere, on each side
                await b.writer.insert(theirs)
            assert {e.reason for e in result.ended.values()} == {"conflict"}
            assert a.journal.get(mine.id) == mine
            assert b.journal.get(mine.id) == theirs


def clock_ahead(seconds: float) -> Callable[[], int]:
    return lambda: time.time_ns() + int(seconds * 1e9)


@pytest.mark.parametrize("written", ["before the link (batches)", "on the link (pushes)"])
async def test_events_from_a_clock_an_hour_ahead_are_refused(
    tmp_path: FsPath, written: str
) -> None:
    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi1", wall_clock=clock_ahead(3600)) as a,
            running_node(tmp_path, "pi2") as b,
            trio.open_nursery() as nursery,
        ):
            if written.startswith("before"):
                await a.write(3)
            result = await link(a, b, nursery)
            if not written.startswith("before"):
                await a.replicator.wait_until(lambda r: "pi2" in r.peers())
                await a.write(3)
            await result.done.wait()
            assert b.journal.summary() == IdSet()  # nothing of pi1's stored
    refused, told = result.ended["pi2"], result.ended["pi1"]
    assert (refused.reason, refused.by_peer) == ("clock", False)
    assert (told.reason, told.by_peer) == ("clock", True)
    assert "pi1:1 is timed" in refused.message
    assert "s after this node's clock" in refused.message and "check NTP" in refused.message


async def test_events_from_a_clock_a_little_ahead_are_taken(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi1", wall_clock=clock_ahead(100)) as a,
            running_node(tmp_path, "pi2") as b,
            trio.open_nursery() as nursery,
        ):
            await a.write(3)
            await link(a, b, nursery)
            await b.until(lambda: b.journal.summary().seqs("pi1") == RangeSet([(1, 3)]))
            nursery.cancel_scope.cancel()


async def test_two_links_between_two_nodes_become_one(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi1") as a,
            running_node(tmp_path, "pi2") as b,
            trio.open_nursery() as nursery,
        ):
            first = await link(a, b, nursery)  # dialled by pi1, whose name sorts first: kept
            second = await link(b, a, nursery)  # dialled by pi2
            await second.done.wait()
            assert {e.reason for e in second.ended.values()} == {"duplicate-link"}
            await a.replicator.wait_until(lambda r: "pi2" in r.peers())
            await b.replicator.wait_until(lambda r: "pi1" in r.peers())
            assert not first.ended
            assert a.replicator.peers()["pi2"].dialled
            assert not b.replicator.peers()["pi1"].dialled
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("one_way", ["pull", "ship"])
async def test_a_transfer_under_a_nodes_name_leaves_its_standing_link_alone(
    tmp_path: FsPath, one_way: OneWay
) -> None:
    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi1") as a,
            running_node(tmp_path, "pi2") as b,
            running_node(tmp_path / "box", "pi1", one_way=one_way) as box,
            trio.open_nursery() as nursery,
        ):
            await b.write(5)
            standing = await link(a, b, nursery)
            await a.until(lambda: a.journal.summary() == b.journal.summary())
            transfer = await link(box, b, nursery)  # the box dials pi2 as "pi1"
            if one_way == "pull":
                await box.until(lambda: box.journal.summary() == b.journal.summary())
            else:
                await b.replicator.wait_until(lambda r: sum(x.conn.live for x in r._links) == 2)
            await a.write(1)  # the standing link still carries pi1's writes
            await b.until(lambda: "pi1" in b.journal.summary().origins)
            assert not standing.ended and not transfer.ended
            nursery.cancel_scope.cancel()


async def test_a_peer_that_is_gone_is_remembered_with_what_it_held(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi1") as a,
            running_node(tmp_path, "pi2") as b,
            trio.open_nursery() as nursery,
        ):
            await a.write(4)
            first = await link(a, b, nursery)
            await b.until(lambda: "pi1" in b.journal.summary().origins)
            assert a.replicator.departed() == {}
            await b.replicator.wait_until(lambda r: r.peers()["pi1"].held == a.journal.summary())
            for task in list(b.replicator._links):
                task.end("shutdown", "pi2 goes away")
            await first.done.wait()
            gone = a.replicator.departed()["pi2"]
            assert gone.until is not None and gone.until >= gone.since > 0
            assert gone.held == IdSet.parse("pi1:1-4")
            assert "pi2" not in a.replicator.peers()
            await link(b, a, nursery)  # back: live again, no longer departed
            await a.replicator.wait_until(lambda r: "pi2" in r.peers())
            assert a.replicator.departed() == {}
            nursery.cancel_scope.cancel()


async def test_a_stopping_node_says_goodbye(tmp_path: FsPath) -> None:
    seen: list[SyncEvent] = []
    live = trio.Event()

    def watch(event: SyncEvent) -> bytes:
        seen.append(event)
        if isinstance(event, PeerSummary):
            live.set()
        return b""

    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as a:
            ours, theirs = trio.testing.memory_stream_pair()
            stopping = trio.CancelScope()

            async def run_a() -> None:
                with stopping:
                    await a.replicator.run_link(ours, dialled=False)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_a)
                nursery.start_soon(
                    fake_peer, theirs, SyncConnection("pi2", SECRET, Holdings()), watch
                )
                await live.wait()
                stopping.cancel()
            assert seen[-2:] == [Goodbye("shutdown", "pi1 is stopping"), ConnectionClosed()]


async def test_what_a_broken_link_had_asked_for_is_fetched_over_another(
    tmp_path: FsPath,
) -> None:
    """pi2 is asked for everything and never answers; when it goes, pi3 serves it all."""
    events = [
        Event("pi9", seq, 1_700_000_000_000_000_000 + seq, {}, Path(("x", seq)), Op.SET, seq)
        for seq in range(1, 51)
    ]
    asked = trio.Event()

    def stall(event: SyncEvent) -> bytes:
        if isinstance(event, EventsWanted):
            asked.set()  # and never answer
        return b""

    with trio.fail_after(GUARD):
        async with (
            running_node(tmp_path, "pi1") as a,
            running_node(tmp_path, "pi3") as c,
            trio.open_nursery() as nursery,
        ):
            for event in events:
                await c.writer.insert(event)
            ours, theirs = trio.testing.memory_stream_pair()
            staller = SyncConnection("pi2", SECRET, Holdings(IdSet.parse("pi9:1-50")))
            stalling = trio.CancelScope()

            async def run_staller() -> None:
                with stalling:
                    await fake_peer(theirs, staller, stall)
                await theirs.aclose()  # pi2 goes away

            nursery.start_soon(partial(a.replicator.run_link, ours, dialled=True))
            nursery.start_soon(run_staller)
            await asked.wait()
            assert a.replicator.holdings.requested == IdSet.parse("pi9:1-50")
            await link(a, c, nursery)
            await a.replicator.wait_until(lambda r: "pi3" in r.peers())
            assert a.journal.summary() == IdSet()  # pi3 is not asked: pi2 was
            stalling.cancel()
            await a.until(lambda: a.replicator.holdings.summary() == IdSet.parse("pi9:1-50"))
            assert a.replicator.peers()["pi3"].stats.events_in == 50
            nursery.cancel_scope.cancel()
