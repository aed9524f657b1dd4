"""Where a script runs: 'any' picks one live node, the same on every node; it moves when one goes.

Two nodes in this trio run replicate over a real sync link on loopback.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from node_support import config, running_node
from test_node_scripts import until_status

from moat_log.client import open_client_on
from moat_log.errors import TypeMismatchError
from moat_log.node import Node
from moat_log.node.sync_config import PeerAddress, SyncConfig
from moat_log.scripts import script_value
from moat_log.scripts.entry import Where
from moat_log.scripts.placement import chosen_node, runs_here

SECRET = b"a cluster secret of at least thirty-two bytes!"
IDLE = """
import trio

async def main(script):
    await trio.sleep_forever()
"""


def test_any_picks_the_same_node_whatever_the_order_and_every_and_named_nodes_say_so() -> None:
    live = ["pi1", "pi2", "pi3"]
    picked = {chosen_node(f"script{n}", live) for n in range(30)}
    assert picked == set(live)  # scripts spread over the nodes
    for n in range(30):
        assert chosen_node(f"script{n}", live) == chosen_node(f"script{n}", reversed(live))
    assert runs_here("x", Where("every"), "pi1", live)
    assert runs_here("x", Where("node", "pi2"), "pi2", live)
    assert not runs_here("x", Where("node", "pi2"), "pi1", live)
    assert runs_here("x", Where("any"), "pi1", [])  # alone, a node runs every 'any' script


def sync_config(data_dir: FsPath, name: str, peers: tuple[PeerAddress, ...] = ()) -> Any:
    sync = SyncConfig(SECRET, ("127.0.0.1", 0), peers=peers, wait_for_peers=0)
    return config(data_dir, node=name, listen=(), sync=sync)


@asynccontextmanager
async def two_nodes(base: FsPath) -> AsyncIterator[tuple[Node, Node, trio.CancelScope]]:
    """pi1, and pi2 dialling it; the scope stops pi2 alone."""
    async with running_node(sync_config(base / "a", "pi1")) as first:
        port = int(first.sync.listen[0].rsplit(":", 1)[1])
        second_scope = trio.CancelScope()
        async with trio.open_nursery() as nursery:

            async def second_node(task_status: trio.TaskStatus[Node]) -> None:
                with second_scope:
                    peers = (PeerAddress("127.0.0.1", port),)
                    async with running_node(sync_config(base / "b", "pi2", peers)) as node:
                        task_status.started(node)
                        await trio.sleep_forever()

            second = await nursery.start(second_node)
            yield first, second, second_scope
            second_scope.cancel()


async def test_a_script_for_any_node_runs_on_exactly_one_and_moves_when_it_goes(
    tmp_path: FsPath,
) -> None:
    async with two_nodes(tmp_path) as (first, second, stop_second):
        # a script that pi2 runs once the nodes see each other (alone, pi1 runs it)
        name = next(f"s{i}" for i in range(50) if chosen_node(f"s{i}", ["pi1", "pi2"]) == "pi2")
        async with open_client_on(first.connect_in_process()) as client:
            await client.set(f":.moat.script.{name}", script_value(IDLE, on_start=True))
        await until_status(second, name, lambda s: s["state"] == "running")
        await until_status(first, name, lambda s: s["state"] == "elsewhere")
        stop_second.cancel()  # pi2 goes away: pi1 takes the script over
        await until_status(first, name, lambda s: s["state"] == "running")


async def test_a_type_stored_on_one_node_is_enforced_on_the_other(tmp_path: FsPath) -> None:
    light = {"schema": "bool", "good": [True], "bad": ["on"]}
    async with two_nodes(tmp_path) as (first, second, _):
        learned = trio.Event()
        second.checks.types.on_change.append(learned.set)
        async with open_client_on(first.connect_in_process()) as client:
            await client.set(":.moat.type.home.+.light", light)
        with trio.fail_after(20):
            await learned.wait()  # it came over the sync link
        async with open_client_on(second.connect_in_process()) as client:
            with pytest.raises(TypeMismatchError, match=re.escape("type home.+.light: bool")):
                await client.set("home.hall.light", "on")
