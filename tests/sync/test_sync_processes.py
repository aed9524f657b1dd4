"""Three real ``moat-log serve`` processes replicating over 127.0.0.1.

Writes on all three; one node killed (``kill -9``) while the others keep
writing, and written offline meanwhile; restarted: all three converge to the
same ``moat-log ls --recursive --json``, and no acknowledged write is lost.
Waiting is done by watching each node until it holds what is expected,
never by sleeping.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest
import trio
from process_support import NodeProcess

from moat_log import open_client
from moat_log.event import Event, Op


@pytest.fixture
def cluster(base: FsPath) -> Iterator[list[NodeProcess]]:
    nodes: list[NodeProcess] = []
    try:
        a = NodeProcess("na", base)
        a.start()
        b = NodeProcess("nb", base, [a.sync_address])
        b.start()
        c = NodeProcess("nc", base, [a.sync_address, b.sync_address])
        c.start()
        nodes = [a, b, c]
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def converged(node: NodeProcess, expected: dict[str, object]) -> None:
    """Watch *node* until its state under ``t`` is exactly *expected*."""
    state: dict[str, object] = {}
    async with open_client(data_dir=node.data_dir) as client, client.watch("t") as items:
        async for item in items:
            if isinstance(item, Event):
                if item.op is Op.SET:
                    state[str(item.path)] = item.value
                else:
                    state.pop(str(item.path), None)
            if item is not None and state == expected:
                return


async def write(node: NodeProcess, values: dict[str, object]) -> None:
    async with open_client(data_dir=node.data_dir) as client:
        for path, value in values.items():
            await client.set(path, value)


@pytest.mark.slow
async def test_three_nodes_converge_and_heal_after_one_was_killed(
    cluster: list[NodeProcess],
) -> None:
    a, b, c = cluster
    expected: dict[str, object] = {}
    for index, node in enumerate(cluster):
        values: dict[str, object] = {f"t.{node.name}.k{i}": index * 100 + i for i in range(20)}
        values["t.shared"] = node.name  # concurrent writes to one path
        await write(node, values)
        expected.update(values)
    with trio.fail_after(60):
        for node in cluster:
            winner = await _winner(node, "t.shared")
            expected["t.shared"] = winner
        for node in cluster:
            await converged(node, expected)
    listings = {
        node.name: json.loads(node.cli("ls", "t", "--recursive", "--json")) for node in cluster
    }
    assert listings["na"] == listings["nb"] == listings["nc"]

    # The cut: C dies; A and B keep writing; C is written offline meanwhile.
    c.kill()
    during: dict[str, object] = {f"t.during.k{i}": i for i in range(50)}
    await write(a, during)
    expected.update(during)
    c.cli("set", "t.offline.c", "written while cut off")  # no node: the journal directly
    expected["t.offline.c"] = "written while cut off"
    with trio.fail_after(60):
        await converged(b, {k: v for k, v in expected.items() if k != "t.offline.c"})
    c.start()  # the same peers: it dials A and B again
    with trio.fail_after(60):
        for node in cluster:
            await converged(node, expected)
    listings = {node.name: node.cli("ls", "t", "--recursive", "--json") for node in cluster}
    assert listings["na"] == listings["nb"] == listings["nc"]
    assert json.loads(listings["na"]) == expected
    async with open_client(data_dir=a.data_dir) as client:
        peers = (await client.status())["sync"]["peers"]
    assert sorted(peers) == ["nb", "nc"]  # nc dialled na again after its restart
    for peer in peers.values():
        assert peer["connected"] and peer["holds"] > 0
    for node in cluster:
        assert "Traceback" not in node.stderr()
    for node in cluster:
        assert node.stop() == 0
        node.cli("verify")


async def _winner(node: NodeProcess, path: str) -> object:
    """The value of *path* once *node* holds all three nodes' writes of it."""
    seen: list[Event] = []
    async with (
        open_client(data_dir=node.data_dir) as client,
        client.log(path=path, follow=True) as items,
    ):
        async for item in items:
            if isinstance(item, Event):
                seen.append(item)
            if len({event.origin for event in seen}) == 3:
                break
    return max(seen, key=lambda event: (event.hlc, event.origin)).value


@pytest.mark.slow
async def test_a_node_that_lost_its_data_gets_its_history_back_before_it_serves(
    base: FsPath,
) -> None:
    """``kill -9``, data directory gone, restarted with the same name and peers.

    Once the new node answers, it holds its old events again, and its next
    write is numbered after them: no forked history, no conflict.
    """
    a, c = NodeProcess("na", base), NodeProcess("nc", base)
    try:
        a.start()
        c.peers = [a.sync_address]
        c.start()
        old: dict[str, object] = {f"t.nc.k{i}": i for i in range(30)}
        await write(c, old)
        with trio.fail_after(60):
            await converged(a, old)
        c.kill()
        shutil.rmtree(c.data_dir)  # a new SD card
        c.start()  # "ready" only after it got its history back
        assert "got 30 events of its own back" in c.stderr()
        async with open_client(data_dir=c.data_dir) as client:
            await client.set("t.nc.after", "new")
            event = await client.get("t.nc.after")
        assert event is not None and (event.origin, event.seq) == ("nc", 31)
        with trio.fail_after(60):
            await converged(a, {**old, "t.nc.after": "new"})
        assert "conflict" not in a.stderr() + c.stderr()
    finally:
        for node in (a, c):
            node.stop()


def conflict_lines(node: NodeProcess) -> tuple[list[str], list[str]]:
    """The full conflict lines of *node*'s log, and its reminders of them."""
    log = node.stderr().splitlines()
    full = [line for line in log if ": conflict: nc:1 is two different events" in line]
    return full, [line for line in log if "again: conflict, " in line]


async def reminded(node: NodeProcess) -> None:
    """Until *node* logged a reminder of the conflict (its log is a file: read it again)."""
    while not conflict_lines(node)[1]:  # noqa: ASYNC110 - another process writes the file
        await trio.sleep(0.1)


@pytest.mark.slow
async def test_a_forked_pair_logs_the_conflict_once_and_both_statuses_say_why(
    base: FsPath,
) -> None:
    """nc lost its data and wrote again before it met na: on every retry, the fork.

    Each node logs the conflict once in full, then a one-line reminder every
    ``sync.remind_every`` seconds (2 here); ``status`` on both sides shows the
    other as down with the conflict as its last error.
    """
    quick = "remind_every = 2\n"
    a, c = NodeProcess("na", base, sync_settings=quick), NodeProcess("nc", base)
    try:
        a.start()
        c.peers, c.sync_settings = [a.sync_address], quick
        c.start()
        await write(c, {"t.old": 1})
        with trio.fail_after(60):
            await converged(a, {"t.old": 1})
        c.kill()
        shutil.rmtree(c.data_dir)
        c.peers = []  # it writes before it meets na again: nc:1 is another event now
        c.start()
        await write(c, {"t.new": 2})
        c.stop()
        c.peers = [a.sync_address]
        c.start()
        with trio.fail_after(60):
            await reminded(a)
            await reminded(c)
        for node, peer in ((a, "nc"), (c, "na")):
            full, reminders = conflict_lines(node)
            assert len(full) == 1, full
            assert all(len(line) < 160 for line in reminders)
            status = json.loads(node.cli("status", "--json"))["sync"]["peers"][peer]
            assert not status["connected"]
            assert status["last_error"].startswith("conflict: nc:1 is two different events")
    finally:
        for node in (a, c):
            node.stop()
