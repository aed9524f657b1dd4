"""Strangers on a sync link, in-process (tests/node/test_node_sync_listener.py: the listener).

A connection that never proves it knows the cluster secret is ended after
the handshake timeout (in virtual time), and
nothing of the journal feed is kept for it meanwhile.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path as FsPath

import trio
import trio.testing
from test_sync_link import GUARD, running_node

from moat_log.protocol.framing import FrameDecoder
from moat_log.sync.messages import Goodbye, parse_message


async def test_a_peer_that_never_says_hello_is_dropped_after_the_handshake_timeout(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_node(tmp_path, "pi1") as a:  # no guard: a thread lets virtual time run
        ours, theirs = trio.testing.memory_stream_pair()
        started = trio.current_time()
        with trio.fail_after(GUARD):
            ended = await a.replicator.run_link(ours, dialled=False)
        waited = trio.current_time() - started
    assert (ended.reason, ended.by_peer, ended.peer) == ("protocol", False, None)
    assert ended.message == "the peer did not authenticate within 10 s"
    assert 10 <= waited < 11
    sent = FrameDecoder()
    sent.receive_data(await theirs.receive_some())
    assert parse_message(sent.next_frame()).TYPE == "hello"
    assert parse_message(sent.next_frame()) == Goodbye("protocol", ended.message)


async def test_nothing_of_the_feed_is_kept_for_an_unauthenticated_link(tmp_path: FsPath) -> None:
    """In real time: the writes take milliseconds, the handshake timeout is 10 s."""
    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as a, trio.open_nursery() as nursery:
            subscriptions = a.feed.subscriptions
            ours, _theirs = trio.testing.memory_stream_pair()
            nursery.start_soon(partial(a.replicator.run_link, ours, dialled=False))
            await trio.testing.wait_all_tasks_blocked()
            await a.write(50)
            assert a.feed.subscriptions == subscriptions, "the stranger hears the feed"
            nursery.cancel_scope.cancel()
