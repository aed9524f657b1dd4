"""`run_one_link`: one pull or ship against a node's replicator over TCP, in process.

Progress is reported from 0 to the total, the transfer ends once stored (pull)
or confirmed by the node's ``have`` (ship), and a second run moves nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FsPath

import pytest
import trio
from sync_support import OTHER_SECRET, SECRET
from test_sync_link import GUARD, RunningNode, running_node

from moat_log.errors import SyncLinkError
from moat_log.idset import IdSet
from moat_log.projections import open_journal
from moat_log.sync.oneshot import run_one_link


@asynccontextmanager
async def sync_port(node: RunningNode) -> AsyncIterator[tuple[str, int]]:
    """*node* accepting sync links on 127.0.0.1; its address."""
    async with trio.open_nursery() as nursery:
        [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")

        async def handle(stream: trio.SocketStream) -> None:
            await node.replicator.run_link(stream, dialled=False)

        nursery.start_soon(trio.serve_listeners, handle, [listener])
        yield listener.socket.getsockname()[:2]
        nursery.cancel_scope.cancel()


async def test_a_pull_fetches_everything_with_progress_and_then_nothing(tmp_path: FsPath) -> None:
    steps: list[tuple[int, int]] = []
    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as node, sync_port(node) as address:
            await node.write_many(3000)
            with open_journal(tmp_path / "backup", create_node="backup") as journal:
                first = await run_one_link(
                    journal, address, SECRET, "pull", progress=lambda *step: steps.append(step)
                )
                again = await run_one_link(journal, address, SECRET, "pull")
                assert journal.summary() == node.journal.summary()
    assert (first.peer, first.events, again.events) == ("pi1", 3000, 0)
    assert steps[0] == (0, 3000) and steps[-1] == (3000, 3000)
    assert [done for done, _ in steps] == sorted(done for done, _ in steps)


async def test_a_ship_ends_when_the_node_stored_everything(tmp_path: FsPath) -> None:
    async with running_node(tmp_path, "box") as box:  # a journal written without the node
        await box.write(500)
    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as node, sync_port(node) as address:
            await node.write(7)
            with open_journal(tmp_path / "box") as journal:
                first = await run_one_link(journal, address, SECRET, "ship")
                # Stored when ship returns: the node's journal has them already.
                assert node.journal.summary().seqs("box") == journal.summary().seqs("box")
                assert "pi1" not in journal.summary().origins, "ship fetches nothing"
                again = await run_one_link(journal, address, SECRET, "ship")
    assert (first.events, again.events) == (500, 0)


async def test_a_wrong_secret_is_a_sync_link_error(tmp_path: FsPath) -> None:
    with trio.fail_after(GUARD):
        async with running_node(tmp_path, "pi1") as node, sync_port(node) as address:
            with open_journal(tmp_path / "backup", create_node="backup") as journal:
                with pytest.raises(SyncLinkError, match="auth-failed"):
                    await run_one_link(journal, address, OTHER_SECRET, "pull")
                assert journal.summary() == IdSet()
