"""Sync over TCP loopback with the trio shell: catch-up time and live latency.

    python tools/bench/sync_loopback.py [--events N] [--live N] [--json]

Two nodes with real journals (views included), group-commit writers, feeds
and `Replicator`s.  For the catch-up, node pi1 runs in a child process and
pi2 in this one; the live latency is measured with both in this process
(one trio run: a pessimistic stand-in for two).  Targets (issue 4):

(a) a node that missed N = 100,000 events catches up in <= 3 s;
(b) live replication, append on A -> stored on B, p50 <= 5 ms.

Bytes are those the connections sent, both directions.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path as FsPath

import trio

from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.sync.link import Replicator, replicating

SECRET = b"benchmark cluster secret, 32 b!!"


@asynccontextmanager
async def node(directory: FsPath, name: str) -> AsyncIterator[Replicator]:
    journal = open_journal(directory / name, create_node=name)
    try:
        async with replicating(journal, SECRET) as replicator:
            yield replicator
    finally:
        journal.close()


def fill(directory: FsPath, count: int) -> None:
    """Node pi1's journal with *count* bus-like events, written in big batches."""
    rng = random.Random(4)
    journal = open_journal(directory / "pi1", create_node="pi1")
    for start in range(0, count, 10_000):
        journal.write_batch(
            [
                Change(Path(("home", f"room{rng.randrange(8)}", "temp")), rng.randrange(300))
                for _ in range(min(10_000, count - start))
            ]
        )
    journal.close()


async def until_held(replicator: Replicator, origin: str, seq: int) -> None:
    await replicator.wait_until(lambda r: r.holdings.holds(origin, seq))


async def serve(directory: FsPath) -> None:
    """The child process: node pi1 on a loopback port (printed), until stdin closes."""
    async with node(directory, "pi1") as a, trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, _accept(a), 0, host="127.0.0.1"))
        print(listeners[0].socket.getsockname()[1], flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)
        nursery.cancel_scope.cancel()


async def catch_up(directory: FsPath, events: int) -> tuple[float, int]:
    """pi1 in a child process; pi2 here connects and catches up: seconds and bytes."""
    command = [sys.executable, __file__, "--serve", str(directory)]
    child = await trio.lowlevel.open_process(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    try:
        port = int((await child.stdout.receive_some(64)).decode())
        async with node(directory, "pi2") as b, trio.open_nursery() as nursery:
            started = time.perf_counter()
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            nursery.start_soon(partial(b.run_link, stream, dialled=True))
            await until_held(b, "pi1", events)
            elapsed = time.perf_counter() - started
            stats = b.peers()["pi1"].stats
            nursery.cancel_scope.cancel()
    finally:
        await child.stdin.aclose()  # the child stops when its stdin closes
        await child.wait()
    return elapsed, stats.bytes_in + stats.bytes_out


async def live_latency(directory: FsPath, count: int) -> list[float]:
    """Both nodes here, linked over loopback: append on pi1 -> stored on pi2, one at a time."""
    async with (
        node(directory, "pi1") as a,
        node(directory, "pi2") as b,
        trio.open_nursery() as nursery,
    ):
        listeners = await nursery.start(partial(trio.serve_tcp, _accept(a), 0, host="127.0.0.1"))
        stream = await trio.open_tcp_stream("127.0.0.1", listeners[0].socket.getsockname()[1])
        nursery.start_soon(partial(b.run_link, stream, dialled=True))
        await b.wait_until(lambda replicator: "pi1" in replicator.peers())
        latencies = []
        for i in range(count):
            sent = time.perf_counter()
            event = await a.writer.append(Change(Path(("live", i % 10)), i))
            await until_held(b, "pi1", event.seq)
            latencies.append(time.perf_counter() - sent)
        nursery.cancel_scope.cancel()
    return latencies


async def bench(directory: FsPath, events: int, live: int) -> dict[str, float]:
    await trio.to_thread.run_sync(fill, directory, events)
    elapsed, wire = await catch_up(directory, events)
    latencies = sorted(await live_latency(directory, live))
    return {
        "events": events,
        "catch_up_seconds": round(elapsed, 2),
        "catch_up_bytes": wire,
        "live_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "live_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def _accept(replicator: Replicator) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def handler(stream: trio.SocketStream) -> None:
        await replicator.run_link(stream, dialled=False)

    return handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--live", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=FsPath, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve is not None:
        trio.run(serve, args.serve)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        figures = trio.run(bench, FsPath(tmp), args.events, args.live)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"catch-up of {args.events:,} events over TCP loopback, two processes")
        print(f"  time       {figures['catch_up_seconds']:>8} s   (target <= 3 s)")
        print(f"  bytes      {figures['catch_up_bytes']:>8,}")
        print(f"live replication, {args.live} appends one at a time, one process")
        print(f"  p50        {figures['live_p50_ms']:>8} ms  (target <= 5 ms)")
        print(f"  p99        {figures['live_p99_ms']:>8} ms")
    return 0 if figures["catch_up_seconds"] <= 3 and figures["live_p50_ms"] <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
