"""The node's sync listener serves at most ``sync.max_connections`` connections.

In-process, over 127.0.0.1: an authenticated peer and a silent stranger
fill the two places; one more connection is told goodbye ``busy`` at once,
and the authenticated peer still gets what the node writes.  (The real
process: tests/sync/test_sync_port_robustness.py.)
"""

from __future__ import annotations

from pathlib import Path as FsPath

import trio
from node_support import config, running_node

from moat_log.journal.change import Change
from moat_log.node.sync_config import SyncConfig
from moat_log.path import Path
from moat_log.protocol.framing import NEED_DATA, FrameDecoder
from moat_log.sync import EventsReceived, Holdings, PeerSummary, SyncConnection, SyncEvent
from moat_log.sync.messages import Goodbye, parse_message

SECRET = b"the cluster secret of this test"
GUARD = 30  # seconds: only against a hang, never reached by a passing test


async def open_sync(address: str) -> trio.SocketStream:
    host, _, port = address.rpartition(":")
    return await trio.open_tcp_stream(host, int(port))


async def run_peer(
    stream: trio.SocketStream, conn: SyncConnection, events: trio.MemorySendChannel[SyncEvent]
) -> None:
    """Drive *conn* over *stream*, handing every event it reports to *events*."""
    while True:
        if data := conn.data_to_send():
            await stream.send_all(data)
        conn.receive_data(await stream.receive_some())
        while (event := conn.next_event()) is not NEED_DATA:
            await events.send(event)


async def read_frames_to_end(stream: trio.SocketStream) -> list[object]:
    decoder = FrameDecoder()
    while data := await stream.receive_some():
        decoder.receive_data(data)
    frames: list[object] = []
    while (frame := decoder.next_frame()) is not NEED_DATA:
        frames.append(parse_message(frame))
    return frames


async def test_connections_beyond_the_limit_are_refused_while_a_peer_replicates(
    data_dir: FsPath,
) -> None:
    sync = SyncConfig(SECRET, ("127.0.0.1", 0), max_connections=2, handshake_timeout=3600)
    with trio.fail_after(GUARD):
        async with running_node(config(data_dir, sync=sync)) as node, trio.open_nursery() as bg:
            [address] = node.sync.listen
            sent, received = trio.open_memory_channel[SyncEvent](100)
            peer = await open_sync(address)
            bg.start_soon(run_peer, peer, SyncConnection("pi2", SECRET, Holdings()), sent)
            while not isinstance(await received.receive(), PeerSummary):
                pass  # the link is live
            silent = await open_sync(address)  # takes the second place
            refused = await open_sync(address)
            busy = "the node serves 2 sync connections, its limit; try again later"
            assert await read_frames_to_end(refused) == [Goodbye("busy", busy)]
            written = await node.write(Change(Path(("after",)), 1))
            while not isinstance(event := await received.receive(), EventsReceived):
                pass
            assert [e.id for e in event.events] == [written.id]
            await silent.aclose()
            bg.cancel_scope.cancel()
