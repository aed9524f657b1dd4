"""What sync links log: each change of state once, a failure that repeats as rare reminders.

In-process: two journals, each with its `Replicator`, linked over memory
streams again and again under trio's `autojump_clock` (the retries of a
node, minutes of them, in no real time); and the node's dial loop against
a port nobody listens on.  The log is read with ``caplog``.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path as FsPath

import pytest
import trio
import trio.testing
from test_sync_link import RunningNode, running_node

from moat_log.event import Event, Op
from moat_log.node._sync import SyncState, _Dial, _dial_forever
from moat_log.node.sync_config import PeerAddress
from moat_log.path import Path
from moat_log.sync.link import LinkEnded

A_ADDRESS, B_ADDRESS = "192.0.2.1:27600", "192.0.2.2:41000"
RETRY = 30  # seconds between two links, as the longest back-off


def lines(caplog: pytest.LogCaptureFixture, *parts: str) -> list[logging.LogRecord]:
    """The records of ``moat_log.sync`` whose message holds every one of *parts*."""
    return [
        record
        for record in caplog.records
        if record.name == "moat_log.sync" and all(part in record.getMessage() for part in parts)
    ]


async def link_once(a: RunningNode, b: RunningNode) -> dict[str, LinkEnded]:
    """One link, dialled by *a*, run to its end on both sides."""
    ours, theirs = trio.testing.memory_stream_pair()
    ended: dict[str, LinkEnded] = {}

    async def run(node: RunningNode, stream: trio.abc.Stream, dialled: bool, at: str) -> None:
        ended[node.replicator.node] = await node.replicator.run_link(
            stream, dialled=dialled, address=at
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, a, ours, True, B_ADDRESS)
        nursery.start_soon(run, b, theirs, False, A_ADDRESS)
    return ended


async def forked(a: RunningNode, b: RunningNode) -> None:
    """pi3's event 1 is one event on *a* and another on *b*: a forked history."""
    mine = Event("pi3", 1, 1_700_000_000_000_000_000, {}, Path(("c",)), Op.SET, "one version")
    await a.writer.insert(mine)
    await b.writer.insert(mine._replace(hlc=mine.hlc + 1, value="another version"))


async def test_a_link_that_comes_up_is_logged_once_with_what_each_side_lacks(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="moat_log.sync")
    async with running_node(tmp_path, "pi1") as a, running_node(tmp_path, "pi2") as b:
        await a.write(5)
        await b.write(3, prefix="y")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link_once, a, b)
            await a.until(lambda: "pi2" in a.replicator.peers())
            await b.until(lambda: "pi1" in b.replicator.peers())
            nursery.cancel_scope.cancel()
    up = [record for record in lines(caplog, "is up") if record.levelno == logging.INFO]
    assert sorted(record.getMessage() for record in up) == [
        f"sync link with pi1 ({A_ADDRESS}, accepted) is up: pi2 lacks 5 events, pi1 lacks 3",
        f"sync link with pi2 ({B_ADDRESS}, dialled) is up: pi1 lacks 3 events, pi2 lacks 5",
    ]


async def test_a_link_that_ends_is_logged_once_with_its_reason(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="moat_log.sync")
    async with running_node(tmp_path, "pi1") as a, running_node(tmp_path, "pi2") as b:
        await forked(a, b)
        ended = await link_once(a, b)
    assert {end.reason for end in ended.values()} == {"conflict"}
    for peer, address in (("pi2", B_ADDRESS), ("pi1", A_ADDRESS)):
        (end,) = lines(caplog, f"sync link with {peer} ({address}) ended")
        assert end.levelno == logging.ERROR
        assert ": conflict: pi3:1 is two different events" in end.getMessage()


async def test_a_fork_is_logged_once_then_reminded_of_with_the_count(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A node retries a forked peer for ever: 24 links in 11.5 minutes, 2 lines a side.

    The fork is seen in the summaries: the links never go live.
    """
    caplog.set_level(logging.DEBUG, logger="moat_log.sync")
    async with running_node(tmp_path, "pi1") as a, running_node(tmp_path, "pi2") as b:
        await forked(a, b)
        for _ in range(24):
            await link_once(a, b)
            await trio.sleep(RETRY)
        status = SyncState(b.replicator).status()["peers"]["pi1"]
        departed = a.replicator.departed()["pi2"]
    for peer in ("pi1", "pi2"):
        logged = [r for r in lines(caplog, f"sync link with {peer} (") if r.levelno > logging.INFO]
        assert [r.levelno for r in logged] == [logging.ERROR] * 2
        first, reminder = (r.getMessage() for r in logged)
        assert "pi3:1 is two different events" in first
        assert reminder.endswith("again: conflict, 20 times in 10 min")
        assert len(reminder) < 100  # a reminder, not the whole story again
    # the accepting side's status tells why the peer is down
    assert not status["connected"]
    assert status["last_error"].startswith("conflict: pi3:1 is two different events")
    assert departed.last_error.startswith("conflict: pi3:1 is two different events")


def closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_peer_that_refuses_is_logged_once_then_reminded_of(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="moat_log.sync")
    dial = _Dial(PeerAddress("127.0.0.1", closed_port()))
    async with running_node(tmp_path, "pi1") as a, trio.open_nursery() as nursery:
        nursery.start_soon(_dial_forever, a.replicator, dial)
        await trio.sleep(1300)
        nursery.cancel_scope.cancel()
    logged = [r.getMessage() for r in lines(caplog, str(dial.address)) if r.levelno > logging.INFO]
    error = dial.last_error
    assert error.startswith("cannot connect: ")
    assert logged[0] == f"sync: {dial.address}: {error}; trying again with back-off"
    assert len(logged) == 3
    for reminder in logged[1:]:
        assert reminder.startswith(f"sync: {dial.address}: {error} again, ")
        # the first failure after the 10 min: a dial's back-off may carry it into the 11th
        assert reminder.endswith((" times in 10 min", " times in 11 min")), reminder
    assert dial.attempts > 40
