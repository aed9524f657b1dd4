"""Fault injection with three real nodes: partitions, one-way stalls, kill -9, SIGSTOP, a wipe.

``n1`` dials ``n2`` and ``n3``; ``n2`` dials ``n3``.  Every link runs
through a `LinkProxy` in this process.  ``n3`` starts with a history
ingested beside it by the command line, more than one want's worth.  One
writer per node writes through the client protocol all along, recording
every write the node acknowledged.  A seeded
schedule of faults runs meanwhile; each fault lasts while the writers make a
few more acknowledged writes (no clock in the schedule).  ``n1`` is wiped
once: stopped once its peers hold its events, data directory removed,
restarted, and its writer goes on at once.  Its name sorts first, so it
gets its own events back first and serves while it still lacks most of the
others' (the case of the bug report).  A killed node is written offline
meanwhile.

Afterwards every acknowledged write is on every node, the journals hold the
same events and the views the same bytes, no origin's deps decrease, and
``verify`` passes.  The seed is printed; ``FAULT_SEED=N`` replays one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import pytest
import trio
from cluster_support import WAIT, deps_decreases, journal_events, started, stopped, until_holds
from fault_proxy import DIRECTIONS, LinkProxy
from process_support import NodeProcess

from moat_log import open_client
from moat_log.client import Client, NodeConnectionError
from moat_log.idset import IdSet
from moat_log.projections import open_journal
from moat_log.rangeset import RangeSet

#: Acknowledged writes (of all writers together) that one fault lasts.
WRITES_PER_FAULT = 25
FAULTS = 8
#: Events ingested beside n3 at the start: several wants' worth.
HISTORY = 4000
#: The whole test, nodes included, must end within this (seconds).
BOUND = 100


@dataclass
class Writer:
    """Writes through one node's client port until stopped; pauses on request."""

    node: NodeProcess
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (path, value)
    up: trio.Event = field(default_factory=trio.Event)
    paused: bool = False
    idle: trio.Event = field(default_factory=trio.Event)
    resumed: trio.Event = field(default_factory=trio.Event)
    count: int = 0

    async def run(self, progress: Callable[[], None]) -> None:
        while True:
            await self.up.wait()
            try:
                async with open_client(data_dir=self.node.data_dir) as client:
                    await self._write_on(client, progress)
            except NodeConnectionError:
                pass  # killed: wait for the restart

    async def _write_on(self, client: Client, progress: Callable[[], None]) -> None:
        while True:
            while self.paused:
                self.idle.set()
                await self.resumed.wait()
            self.count += 1
            path = f"w.{self.node.name}.k{self.count % 20}"
            if self.count % 4 == 0:
                path = f"w.shared.k{self.count % 3}"  # concurrent writers, real conflicts
            written = await client.set(path, self.count)
            self.acked[str(written.id)] = (path, self.count)
            progress()

    async def pause(self) -> None:
        self.paused, self.idle, self.resumed = True, trio.Event(), trio.Event()
        await self.idle.wait()

    def resume(self) -> None:
        self.paused = False
        self.resumed.set()


@dataclass
class Cluster:
    nodes: dict[str, NodeProcess]
    proxies: dict[str, LinkProxy]  # "n1-n2": dialler n1, listener n2
    writers: dict[str, Writer]
    offline: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    writes: int = 0
    _progress: trio.Event = field(default_factory=trio.Event)

    def progressed(self) -> None:
        self.writes += 1
        self._progress.set()
        self._progress = trio.Event()

    async def more_writes(self, count: int = WRITES_PER_FAULT) -> None:
        """Wait until the writers made *count* more acknowledged writes."""
        goal = self.writes + count
        with trio.fail_after(WAIT):
            while self.writes < goal:
                await self._progress.wait()

    def proxies_to(self, name: str) -> list[LinkProxy]:
        return [proxy for key, proxy in self.proxies.items() if key.endswith(f"-{name}")]

    async def restart(self, name: str) -> None:
        node = self.nodes[name]
        await started(node)
        for proxy in self.proxies_to(name):
            proxy.aim(node.sync_address)
        self.writers[name].up.set()

    def going_down(self, name: str) -> None:
        self.writers[name].up = trio.Event()
        for proxy in self.proxies_to(name):
            proxy.aim(None)


# --- the faults ---------------------------------------------------------------------


async def partition(cluster: Cluster, rng: random.Random) -> str:
    proxy = cluster.proxies[rng.choice(sorted(cluster.proxies))]
    proxy.cut()
    await cluster.more_writes()
    proxy.heal()
    return f"partition {proxy.name}"


async def one_way_stall(cluster: Cluster, rng: random.Random) -> str:
    proxy = cluster.proxies[rng.choice(sorted(cluster.proxies))]
    direction = rng.choice(DIRECTIONS)
    proxy.stall(direction)
    await cluster.more_writes()
    proxy.unstall()
    return f"stall {proxy.name} {direction}"


async def kill_9(cluster: Cluster, rng: random.Random) -> str:
    name = rng.choice(sorted(cluster.nodes))
    node = cluster.nodes[name]
    cluster.going_down(name)
    await trio.to_thread.run_sync(node.kill)
    offline = cluster.offline.setdefault(name, {})
    value = rng.randrange(10**6)
    event = _written(node.cli("set", f"w.offline.{name}", str(value)))
    offline[event] = (f"w.offline.{name}", value)
    await cluster.more_writes(WRITES_PER_FAULT // 2)
    await cluster.restart(name)
    return f"kill -9 {name}"


async def sigstop(cluster: Cluster, rng: random.Random) -> str:
    name = rng.choice(sorted(cluster.nodes))
    process = cluster.nodes[name].process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        await cluster.more_writes()
    finally:
        process.send_signal(signal.SIGCONT)
    return f"SIGSTOP {name}"


async def wipe_n1(cluster: Cluster, rng: random.Random) -> str:
    """n1 loses its data once its peers hold all its events, and writes as soon as it serves."""
    n1, writer = cluster.nodes["n1"], cluster.writers["n1"]
    await writer.pause()
    own = _own_seqs(writer.acked) | _own_seqs(cluster.offline.get("n1", {}))
    with trio.fail_after(WAIT):
        for peer in ("n2", "n3"):
            await until_holds(cluster.nodes[peer], IdSet({"n1": own}))
    cluster.going_down("n1")
    assert await stopped(n1) == 0
    shutil.rmtree(n1.data_dir)
    await cluster.restart("n1")
    writer.resume()
    await cluster.more_writes()
    return "wipe n1"


FAULT_KINDS = [partition, one_way_stall, kill_9, sigstop]


def _written(cli_output: str) -> str:
    """The event id from ``moat-log set``'s line ``n1:7  2026-...  path = value``."""
    return cli_output.split(maxsplit=1)[0]


def _own_seqs(acked: dict[str, tuple[str, int]]) -> RangeSet:
    seqs = RangeSet()
    for event_id in acked:
        seqs.add(int(event_id.rsplit(":", 1)[1]))
    return RangeSet([(1, seqs.max)]) if seqs else RangeSet()


# --- the cluster ---------------------------------------------------------------------


@asynccontextmanager
async def running_cluster(base: FsPath) -> AsyncIterator[Cluster]:
    nodes = {name: NodeProcess(name, base) for name in ("n1", "n2", "n3")}
    proxies = {key: LinkProxy(key) for key in ("n1-n2", "n1-n3", "n2-n3")}
    writers = {name: Writer(node) for name, node in nodes.items()}
    cluster = Cluster(nodes, proxies, writers)
    try:
        async with trio.open_nursery() as nursery:
            for proxy in proxies.values():
                await nursery.start(proxy.serve)
            nodes["n1"].peers = [proxies["n1-n2"].address, proxies["n1-n3"].address]
            nodes["n2"].peers = [proxies["n2-n3"].address]
            for name in ("n3", "n2", "n1"):
                await cluster.restart(name)
            history = base / "history.jsonl"
            lines = (json.dumps({"path": f"h.t{i % 40}", "value": i}) for i in range(HISTORY))
            history.write_text("\n".join(lines) + "\n")
            nodes["n3"].cli("ingest", str(history))  # beside the running node
            for writer in writers.values():
                nursery.start_soon(writer.run, cluster.progressed)
            yield cluster
            nursery.cancel_scope.cancel()
        for node in nodes.values():
            assert await stopped(node) == 0, f"{node.name} did not stop cleanly"
    finally:
        for node in nodes.values():
            if node.process is not None:
                node.process.send_signal(signal.SIGCONT)
                node.stop()


async def newest_own_seq(node: NodeProcess) -> int:
    async with (
        open_client(data_dir=node.data_dir) as client,
        client.log(origin=node.name, limit=1) as items,
    ):
        newest = [item async for item in items]
    return newest[0].seq if newest else 0


def view_bytes(data_dir: FsPath) -> list[tuple[bytes, bytes]]:
    with open_journal(data_dir) as journal:
        (handle,) = journal._view_dbs["kv"].values()
        with journal._read() as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor(db=handle)]


@pytest.mark.slow
async def test_faults_lose_nothing_and_deps_never_decrease(base: FsPath) -> None:
    seed = int(os.environ.get("FAULT_SEED", random.randrange(10**6)))
    print(f"fault schedule seed: {seed} (replay with FAULT_SEED={seed})")
    rng = random.Random(seed)
    schedule = [rng.choice(FAULT_KINDS) for _ in range(FAULTS - 1)]
    schedule.insert(rng.randrange(1, FAULTS), wipe_n1)
    with trio.fail_after(BOUND):
        async with running_cluster(base) as cluster:
            await cluster.more_writes()
            for fault in schedule:
                print(await fault(cluster, rng))
            for writer in cluster.writers.values():
                await writer.pause()
            everything = IdSet(
                {
                    name: RangeSet([(1, seq)])
                    for name, node in cluster.nodes.items()
                    if (seq := await newest_own_seq(node))
                }
            )
            for node in cluster.nodes.values():
                await until_holds(node, everything)
            print(f"{cluster.writes} acknowledged writes")
    check_after_the_faults(cluster)


def check_after_the_faults(cluster: Cluster) -> None:
    nodes = list(cluster.nodes.values())
    journals = {node.name: journal_events(node.data_dir) for node in nodes}
    acked = {name: writer.acked for name, writer in cluster.writers.items()}
    for name, offline in cluster.offline.items():
        acked[name] = {**acked[name], **offline}
    for node in nodes:
        held = journals[node.name]
        for origin_acked in acked.values():
            missing = sorted(set(origin_acked) - set(held))
            assert not missing, f"{node.name} lacks acknowledged writes {missing[:5]}"
    assert journals["n1"] == journals["n2"] == journals["n3"]
    assert view_bytes(nodes[0].data_dir) == view_bytes(nodes[1].data_dir)
    assert view_bytes(nodes[0].data_dir) == view_bytes(nodes[2].data_dir)
    for node in nodes:
        assert deps_decreases(node.data_dir) == []
        report = node.cli("verify")  # exits 0: no problems
        assert "deps decrease" not in report
        assert "Traceback" not in node.stderr()
