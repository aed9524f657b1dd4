"""`open_node`: a node inside the script's own trio run, with a client of it."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path as FsPath

import pytest
import trio
from node_support import environment

import moat_log
from moat_log.client import NodeConnectionError
from moat_log.errors import ConfigError
from moat_log.event import Event
from moat_log.journal.verify import verify_journal
from moat_log.node import NodeConfig, NodeRunningError, serve_node
from moat_log.path import Path
from moat_log.projections import kv_view, open_journal
from moat_log.protocol import LIVE, RequestError


async def test_open_node_serves_a_client_in_this_process_and_listens_nowhere(
    data_dir: FsPath,
) -> None:
    async with moat_log.open_node(data_dir=data_dir, node="pi7") as client:
        assert client.node == "pi7"
        written = await client.set("home.light", True)
        assert await client.value("home.light") is True
        status = await client.status()
        assert (status["listen"], status["connections"], status["user"]) == ([], 1, None)
        assert not (data_dir / "moat-log.sock").exists()
    with open_journal(data_dir) as journal:  # stopped, and the write is on disk
        assert verify_journal(journal).ok
        stored = kv_view(journal).get(Path.parse("home.light"))
        assert stored is not None and stored.id == written.id


_OTHER_PROCESS = """
import sys, trio, moat_log
async def main():
    async with moat_log.open_client(data_dir=sys.argv[1]) as client:
        await client.set("home.from_another_process", "hello")
trio.run(main)
"""


async def test_other_processes_reach_an_embedded_node_on_its_socket_when_asked(
    data_dir: FsPath,
) -> None:
    async with (
        moat_log.open_node(data_dir=data_dir, listen=["unix"]) as client,
        client.watch("home") as watch,
    ):
        assert await watch.__anext__() is LIVE
        command = [sys.executable, "-c", _OTHER_PROCESS, str(data_dir)]
        await trio.run_process(command, env=environment())
        with trio.fail_after(10):
            event = await watch.__anext__()
        assert isinstance(event, Event)
        assert (str(event.path), event.value, event.source) == (
            "home.from_another_process",
            "hello",
            "client",
        )
    assert not (data_dir / "moat-log.sock").exists()  # removed when the node stopped


async def test_an_error_in_the_block_stops_the_node_in_order_then_propagates(
    data_dir: FsPath,
) -> None:
    ended: list[str] = []

    async def watch_until_the_end(*, task_status: trio.TaskStatus[None]) -> None:
        async with moat_log.open_client(data_dir=data_dir) as other, other.watch(":") as watch:
            task_status.started()
            with pytest.raises(RequestError) as caught:
                async for _ in watch:
                    pass
            ended.append(caught.value.error_type)
            with pytest.raises(NodeConnectionError, match="shutdown"):
                await other.status()

    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="a bug in the script"):
            async with moat_log.open_node(data_dir=data_dir, listen=["unix"]) as client:
                await nursery.start(watch_until_the_end)
                await client.set("a", 1)
                raise ValueError("a bug in the script")
    assert ended == ["shutdown"]  # a goodbye, not a cut connection
    with open_journal(data_dir) as journal:
        assert kv_view(journal).get(Path.parse("a")) is not None


async def test_an_in_process_client_may_idle_before_its_first_request(
    data_dir: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    config = NodeConfig(data_dir=data_dir, node="pi1", listen=(), handshake_timeout=1)
    async with moat_log.open_node(config=config) as client:
        await trio.sleep(3600)  # virtual time: the script waits for something first
        assert await client.set("late", 1)


async def test_open_node_checks_its_arguments(data_dir: FsPath) -> None:
    with pytest.raises(TypeError, match="either config= or data_dir="):
        async with moat_log.open_node(config=NodeConfig(data_dir=data_dir), listen=["unix"]):
            pass
    with pytest.raises(TypeError, match=r"a list of addresses, e\.g\. \['unix'\]"):
        async with moat_log.open_node(data_dir=data_dir, listen="unix"):
            pass
    with pytest.raises(ValueError, match="listen address 'x:y'"):
        async with moat_log.open_node(data_dir=data_dir, listen=["x:y"]):
            pass
    with pytest.raises(
        ConfigError, match=r"refusing to listen on 0\.0\.0\.0:1 without credentials"
    ):
        async with moat_log.open_node(data_dir=data_dir, listen=["0.0.0.0:1"]):
            pass
    assert not (data_dir / "journal").exists()  # nothing was started


async def test_a_second_node_on_a_served_socket_is_refused(data_dir: FsPath) -> None:
    async with moat_log.open_node(data_dir=data_dir, listen=["unix"]) as client:
        with pytest.raises(NodeRunningError, match=r"another node \(.*\) is already serving"):
            async with moat_log.open_node(data_dir=data_dir, listen=["unix"]):
                pass
        assert await client.set("still", "serving")


async def test_in_process_connections_are_refused_once_the_node_stopped(
    data_dir: FsPath,
) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(
            partial(
                serve_node, NodeConfig(data_dir=data_dir, listen=()), shutdown_trigger=stop.wait
            )
        )
        stop.set()
    with pytest.raises(NodeConnectionError, match="the node has stopped"):
        node.connect_in_process()
