"""A real ``moat-log serve`` keeps running whatever arrives on its sync port.

Garbage, a truncated frame, a peer with another cluster secret, a peer that
offers events and leaves without sending them, a peer that pushes an event
whose id the node holds with other content: each is refused with a log line
naming the problem, the connection ends, the node still answers ``status``
and ``set``, and afterwards its journal holds exactly the events written
legitimately and ``moat-log verify`` passes.  And a node killed (``kill -9``)
in the middle of a 50,000-event catch-up finishes it after a restart.

An attacker that ends the link itself half-closes its side; every attacker
then reads until the node closes the connection.  The node logs why a link
ended before it closes it, so the log line is there when the attacker sees
the end: nothing here sleeps.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path as FsPath

import pytest
import trio
from process_support import SECRET, NodeProcess
from sync_support import OTHER_SECRET

from moat_log import open_client
from moat_log.errors import StreamOverflowError
from moat_log.event import Event, Op
from moat_log.idset import IdSet
from moat_log.protocol.errors import RemoteProtocolError
from moat_log.protocol.framing import NEED_DATA, FrameDecoder
from moat_log.sync import ConnectionClosed, EventsWanted, Holdings, PeerSummary, SyncConnection
from moat_log.sync.handshake import Handshake
from moat_log.sync.messages import Goodbye, Push, encode, parse_message

GUARD = 60  # seconds: only against a hang, never reached by a passing test
CATCH_UP_EVENTS = 50_000

#: What an attacker does when its connection reports an event: True half-closes.
OnEvent = Callable[[object, trio.SocketStream], Awaitable[bool]]


@pytest.fixture
def node(base: FsPath) -> Iterator[NodeProcess]:
    running = NodeProcess("na", base)
    running.start()
    try:
        yield running
    finally:
        running.stop()


async def open_sync_stream(node: NodeProcess) -> trio.SocketStream:
    host, port = node.sync_address.rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def read_to_end(stream: trio.SocketStream) -> bytes:
    data = bytearray()
    with contextlib.suppress(trio.BrokenResourceError):  # a reset is an end too
        while chunk := await stream.receive_some():
            data += chunk
    return bytes(data)


async def send_raw(node: NodeProcess, data: bytes) -> bytes:
    """Send *data*, half-close, and return all the node sent until it closed."""
    async with await open_sync_stream(node) as stream:
        await stream.send_all(data)
        await stream.send_eof()
        return await read_to_end(stream)


async def run_peer(node: NodeProcess, conn: SyncConnection, on_event: OnEvent) -> list[object]:
    """Drive *conn* against the node's sync port until the node closes; its events."""
    seen: list[object] = []
    closing = False
    async with await open_sync_stream(node) as stream:
        await stream.send_all(conn.data_to_send())
        while True:
            try:
                data = await stream.receive_some()
            except trio.BrokenResourceError:
                data = b""
            conn.receive_data(data)
            with contextlib.suppress(RemoteProtocolError):  # ours refusing the node: fine
                while (event := conn.next_event()) is not NEED_DATA:
                    seen.append(event)
                    if isinstance(event, ConnectionClosed):
                        break
                    if closing:
                        continue
                    await send_queued(conn, stream)  # e.g. our summary, before we act
                    if await on_event(event, stream):
                        closing = True
                        await stream.send_eof()
            if not data:
                return seen
            if not closing:
                await send_queued(conn, stream)


async def send_queued(conn: SyncConnection, stream: trio.SocketStream) -> None:
    if out := conn.data_to_send():
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(out)


async def never(_: object, __: trio.SocketStream) -> bool:
    return False


# --- the attacks: each returns the log text it expects and the events it wrote legitimately ---

Attack = Callable[[NodeProcess], Awaitable[tuple[str, list[Event]]]]


async def garbage(node: NodeProcess) -> tuple[str, list[Event]]:
    answer = await send_raw(node, b"GET / HTTP/1.1\r\nHost: moat\r\n\r\n")
    assert answer, "the node says hello (and goodbye) before it closes"
    return "an unauthenticated peer (127.0.0.1:", []


async def truncated_frame(node: NodeProcess) -> tuple[str, list[Event]]:
    hello = encode(Handshake("evil", SECRET.encode(), bytes(32)).hello())
    await send_raw(node, hello[: len(hello) // 2])
    return "the connection closed in the middle of a frame", []


async def wrong_secret(node: NodeProcess) -> tuple[str, list[Event]]:
    seen = await run_peer(node, SyncConnection("evil", OTHER_SECRET, Holdings()), never)
    assert not any(isinstance(event, PeerSummary) for event in seen), "no summary without auth"
    return "ended here: auth-failed: authentication failed", []


async def offers_and_leaves(node: NodeProcess) -> tuple[str, list[Event]]:
    """Authenticates, offers 100 events, and disconnects when asked for them."""

    async def leave_when_asked(event: object, _: trio.SocketStream) -> bool:
        return isinstance(event, EventsWanted)

    claims = Holdings(IdSet.parse("evil:1-100"))
    seen = await run_peer(node, SyncConnection("evil", SECRET.encode(), claims), leave_when_asked)
    assert any(isinstance(event, EventsWanted) for event in seen)
    return ") ended by the peer: closed: the peer closed the connection; 100 events", []


async def pushes_a_conflict(node: NodeProcess) -> tuple[str, list[Event]]:
    """Once live, the node stores a new event; the peer pushes that id with other content."""
    written: list[Event] = []

    async def push_conflict(event: object, stream: trio.SocketStream) -> bool:
        if isinstance(event, PeerSummary):
            written.append(await set_value(node, "t.during", "the real one"))
            await stream.send_all(encode(Push((forged(written[0]),))))
        return False  # the node ends the link

    await run_peer(node, SyncConnection("evil", SECRET.encode(), Holdings()), push_conflict)
    return "ended here: conflict:", written


async def pushes_a_held_event(node: NodeProcess) -> tuple[str, list[Event]]:
    """The peer pushes another version of an event the node's summary named."""
    held = await set_value(node, "t.held", "the real one")

    async def push_held(event: object, stream: trio.SocketStream) -> bool:
        if isinstance(event, PeerSummary):
            await stream.send_all(encode(Push((forged(held),))))
        return False

    await run_peer(node, SyncConnection("evil", SECRET.encode(), Holdings()), push_held)
    return "which a summary already named", [held]


def forged(event: Event) -> Event:
    return event._replace(value="a forged version")


async def set_value(node: NodeProcess, path: str, value: str) -> Event:
    async with open_client(data_dir=node.data_dir) as client:
        written = await client.set(path, value)
        got = await client.get(path)
    assert got is not None and got.id == written.id
    return got


@pytest.mark.slow
@pytest.mark.parametrize(
    "attack",
    [
        garbage,
        truncated_frame,
        wrong_secret,
        offers_and_leaves,
        pushes_a_conflict,
        pushes_a_held_event,
    ],
)
async def test_the_node_refuses_a_bad_peer_logs_why_and_keeps_its_journal(
    node: NodeProcess, attack: Attack
) -> None:
    legit = [await set_value(node, "t.before", "written before")]
    log_start = len(node.stderr())
    with trio.fail_after(GUARD):
        expected_log, written = await attack(node)
    legit += written
    logged = node.stderr()[log_start:]
    assert expected_log in logged, logged
    async with open_client(data_dir=node.data_dir) as client:
        status = await client.status()
        assert status["node"] == "na"
    legit.append(await set_value(node, "t.after", "written after"))
    assert "Traceback" not in node.stderr()
    assert node.stop() == 0
    node.cli("verify")
    lines = node.cli("--json", "log").splitlines()
    stored = {(entry["id"], entry["value"]) for entry in map(json.loads, lines)}
    assert stored == {(str(event.id), event.value) for event in legit}


@pytest.mark.slow
async def test_a_node_killed_during_a_catch_up_finishes_it_after_a_restart(
    base: FsPath,
) -> None:
    a = NodeProcess("na", base)
    a.cli("init", "--node", "na")
    lines = (
        json.dumps({"path": f"big.k{i % 500}.v{i}", "value": "x" * 100})
        for i in range(CATCH_UP_EVENTS)
    )
    (base / "big.jsonl").write_text("\n".join(lines) + "\n")
    a.cli("ingest", str(base / "big.jsonl"))
    b = NodeProcess("nb", base)
    try:
        a.start()
        b.peers.append(a.sync_address)
        b.start()
        with trio.fail_after(GUARD):
            await received(b, 1)
        b.kill()
        arrived = json.loads(b.cli("--json", "status"))["journal"]["events"]
        assert 0 < arrived < CATCH_UP_EVENTS, "killed in the middle of the catch-up"
        b.start()
        with trio.fail_after(GUARD):
            await received(b, CATCH_UP_EVENTS)
        assert "Traceback" not in b.stderr()
    finally:
        assert b.stop() == 0
        assert a.stop() == 0
    b.cli("verify")
    listing = ("ls", "big", "--recursive", "--json")
    assert b.cli(*listing) == a.cli(*listing)


async def received(node: NodeProcess, events: int) -> None:
    """Watch *node* until it holds at least *events* values under ``big``.

    A catch-up outruns a watch: when the node drops it (overflow), it is
    started again, and its first answer counts what is there by then.
    """
    while True:
        paths: set[str] = set()
        try:
            async with open_client(data_dir=node.data_dir) as client, client.watch("big") as items:
                async for item in items:
                    if isinstance(item, Event) and item.op is Op.SET:
                        paths.add(str(item.path))
                    if len(paths) >= events:
                        return
        except StreamOverflowError:
            pass


# --- strangers that say nothing, and too many connections ---


def frames_of(data: bytes) -> list[object]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    frames: list[object] = []
    while (frame := decoder.next_frame()) is not NEED_DATA:
        frames.append(parse_message(frame))
    return frames


@pytest.mark.slow
async def test_a_silent_connection_is_dropped_after_the_handshake_timeout(base: FsPath) -> None:
    node = NodeProcess("na", base, sync_settings="handshake_timeout = 0.5\n")
    node.start()
    try:
        with trio.fail_after(GUARD):
            async with await open_sync_stream(node) as stream:
                said = frames_of(await read_to_end(stream))
        assert [message.TYPE for message in said] == ["hello", "goodbye"]  # type: ignore[attr-defined]
        assert said[1] == Goodbye("protocol", "the peer did not authenticate within 0.5 s")
        assert "did not authenticate within 0.5 s" in node.stderr()
        await set_value(node, "t.after", "the node carries on")
    finally:
        assert node.stop() == 0


@pytest.mark.slow
async def test_connections_beyond_the_limit_are_refused_while_a_peer_replicates(
    base: FsPath,
) -> None:
    a = NodeProcess("na", base, sync_settings="max_connections = 2\nhandshake_timeout = 600\n")
    b = NodeProcess("nb", base)
    try:
        a.start()
        b.peers.append(a.sync_address)
        b.start()
        with trio.fail_after(GUARD):
            await arrives(b, await set_value(a, "t.first", "linked"))  # nb's link: one place
            async with await open_sync_stream(a) as silent:  # the other place
                async with await open_sync_stream(a) as refused:
                    said = frames_of(await read_to_end(refused))
                busy = "the node serves 2 sync connections, its limit; try again later"
                assert said == [Goodbye("busy", busy)]
                await arrives(b, await set_value(a, "t.second", "still replicated"))
                await silent.aclose()
        assert "sync connection from 127.0.0.1:" in a.stderr()
    finally:
        assert b.stop() == 0
        assert a.stop() == 0


async def arrives(node: NodeProcess, event: Event) -> None:
    """Watch *node* until it holds *event*."""
    async with open_client(data_dir=node.data_dir) as client, client.watch(event.path) as items:
        async for item in items:
            if isinstance(item, Event) and item.id == event.id:
                return
