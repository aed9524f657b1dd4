"""Node benchmark: a real ``moat-log serve`` process, the Python client, loopback TCP.

    python tools/bench/node.py [--quick] [--json]

(a) acknowledged sequential sets/s, one at a time (target: >= 3,000/s),
    against the baseline of sequential durable LMDB commits of one record
(b) acknowledged sets/s with 1,000 requests in flight on one connection
    (target: >= 30,000/s), against in-process group-commit appends from
    1,000 trio tasks
(c) set -> watch notification latency, p50 / p99 (target: p50 <= 2 ms)
(d) node start (process spawn) to first answered request, with a journal of
    1,000,000 events (target: <= 1 s), against an empty journal

Every figure is measured in this run, baselines included: the machines are
noisy, so compare the ratios.  The node and this client share the machine's
cores, as they would on a Pi running a script next to its node.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path as FsPath
from typing import Any

import lmdb
import msgpack
import trio

from moat_log.client import Client, open_client
from moat_log.journal.change import Change
from moat_log.journal.group_commit import open_journal
from moat_log.path import Path
from moat_log.projections import open_journal as open_journal_with_views

TARGETS = {"sequential": 3_000, "concurrent": 30_000, "watch_p50_ms": 2.0, "start_s": 1.0}


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


@contextmanager
def scratch_dir() -> Iterator[FsPath]:
    with tempfile.TemporaryDirectory(
        prefix="ml-bench-", dir=os.environ.get("BENCH_TMP", "/tmp")
    ) as name:
        yield FsPath(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def node_process(data_dir: FsPath, port: int) -> Iterator[subprocess.Popen[str]]:
    """``moat-log serve`` on *data_dir*, TCP on 127.0.0.1:PORT; returns once it is ready."""
    config = data_dir.parent / f"{data_dir.name}.toml"
    config.write_text(
        f'node = "bench"\ndata_dir = "{data_dir}"\n[client]\nlisten = ["127.0.0.1:{port}"]\n'
    )
    exe = FsPath(sys.executable).with_name("moat-log")
    process = subprocess.Popen(
        [str(exe), "serve", "--config", str(config), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == "ready":
                break
        else:
            raise SystemExit("the node exited before it was ready")
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- baselines ------------------------------------------------------------------


def bench_raw_sequential(count: int) -> float:
    """One msgpack record per durable LMDB transaction, one after the other."""
    with scratch_dir() as directory:
        env = lmdb.open(str(directory), map_size=1 << 30, sync=True, metasync=True)
        records = [msgpack.packb(["bench", n, "home.x", n]) for n in range(count)]
        started = time.perf_counter()
        for n, record in enumerate(records):
            with env.begin(write=True) as txn:
                txn.put(n.to_bytes(8, "big"), record)
        seconds = time.perf_counter() - started
        env.close()
    return rate(count, seconds)


async def bench_in_process_concurrent(count: int, tasks: int) -> float:
    """Group-commit appends from *tasks* trio tasks, no network (the journal's own limit)."""
    with scratch_dir() as directory:
        async with open_journal(directory, node="bench") as writer:
            per_task = count // tasks

            async def appender(task: int) -> None:
                for n in range(per_task):
                    await writer.append(Change(Path(("bench", task % 500)), n))

            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for task in range(tasks):
                    nursery.start_soon(appender, task)
            seconds = time.perf_counter() - started
    return rate(per_task * tasks, seconds)


# --- the node -------------------------------------------------------------------


async def bench_sequential(client: Client, count: int) -> float:
    started = time.perf_counter()
    for n in range(count):
        await client.set(("seq", n % 500), n)
    return rate(count, time.perf_counter() - started)


async def bench_concurrent(client: Client, count: int, in_flight: int) -> float:
    per_task = count // in_flight

    async def setter(task: int) -> None:
        for n in range(per_task):
            await client.set(("conc", task % 500), n)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for task in range(in_flight):
            nursery.start_soon(setter, task)
    return rate(per_task * in_flight, time.perf_counter() - started)


async def bench_watch_latency(writer: Client, watcher: Client, count: int) -> list[float]:
    latencies = []
    async with watcher.watch("lat") as items:
        async for item in items:  # the dump, then the live marker
            if not hasattr(item, "path"):
                break
        for n in range(count):
            started = time.perf_counter()
            await writer.set("lat.x", n)
            async for item in items:
                if getattr(item, "value", None) == n:
                    break
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def build_journal(directory: FsPath, events: int) -> None:
    batch = 10_000
    with open_journal_with_views(directory, create_node="bench") as journal:
        for first in range(0, events, batch):
            journal.write_batch(
                [
                    Change(Path(("home", f"dev{n % 2000}", "value")), n)
                    for n in range(first, min(first + batch, events))
                ]
            )


async def time_to_first_answer(data_dir: FsPath) -> float:
    """Seconds from spawning ``moat-log serve`` to the first answered ``status``."""
    port = free_port()
    config = data_dir.parent / f"{data_dir.name}.toml"
    config.write_text(
        f'node = "bench"\ndata_dir = "{data_dir}"\n[client]\nlisten = ["127.0.0.1:{port}"]\n'
    )
    exe = FsPath(sys.executable).with_name("moat-log")
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: ASYNC220 - timing the spawn itself
        [str(exe), "serve", "--config", str(config), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                async with open_client(connect=f"127.0.0.1:{port}") as client:
                    await client.status()
                return time.perf_counter() - started
            except Exception:  # not listening yet: try again at once
                if process.poll() is not None:
                    raise SystemExit("the node exited during start-up") from None
                await trio.sleep(0.002)
    finally:
        process.terminate()
        process.wait(timeout=30)


async def bench_node(quick: bool) -> dict[str, Any]:
    sequential = 1_000 if quick else 5_000
    concurrent = 20_000 if quick else 100_000
    results: dict[str, Any] = {}
    with scratch_dir() as base:
        port = free_port()
        with node_process(base / "node", port):
            async with open_client(connect=f"127.0.0.1:{port}") as client:
                await bench_sequential(client, 200)  # warm up
                results["sequential"] = await bench_sequential(client, sequential)
                results["concurrent"] = await bench_concurrent(client, concurrent, 1000)
                async with open_client(connect=f"127.0.0.1:{port}") as watcher:
                    latencies = await bench_watch_latency(client, watcher, 300 if quick else 2000)
        results["watch_p50_ms"] = statistics.median(latencies)
        results["watch_p99_ms"] = statistics.quantiles(latencies, n=100)[98]
    return results


async def bench_start(quick: bool) -> dict[str, float]:
    events = 100_000 if quick else 1_000_000
    with scratch_dir() as base:
        (base / "empty").mkdir()
        build_journal(base / "empty", 0)
        build_journal(base / "big", events)
        empty = await time_to_first_answer(base / "empty")
        big = await time_to_first_answer(base / "big")
    return {"start_empty_s": empty, "start_s": big, "start_events": events}


def verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW TARGET"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    gc.freeze()

    raw = bench_raw_sequential(500 if args.quick else 2000)
    in_process = trio.run(bench_in_process_concurrent, 20_000 if args.quick else 100_000, 1000)
    node = trio.run(bench_node, args.quick)
    start = trio.run(bench_start, args.quick)
    figures = {"raw_sequential": raw, "in_process_concurrent": in_process, **node, **start}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0

    print(f"(a) sequential sets: {node['sequential']:,.0f}/s = {node['sequential'] / raw:.2f} "
          f"of raw durable LMDB commits ({raw:,.0f}/s); target >= {TARGETS['sequential']:,}/s: "
          f"{verdict(node['sequential'] >= TARGETS['sequential'])}")  # fmt: skip
    print(f"(b) concurrent sets: {node['concurrent']:,.0f}/s = "
          f"{node['concurrent'] / in_process:.2f} of in-process group commit "
          f"({in_process:,.0f}/s); target >= {TARGETS['concurrent']:,}/s: "
          f"{verdict(node['concurrent'] >= TARGETS['concurrent'])}")  # fmt: skip
    print(f"(c) set -> watch: p50 {node['watch_p50_ms']:.2f} ms, p99 {node['watch_p99_ms']:.2f} "
          f"ms; target p50 <= {TARGETS['watch_p50_ms']} ms: "
          f"{verdict(node['watch_p50_ms'] <= TARGETS['watch_p50_ms'])}")  # fmt: skip
    ratio = start["start_s"] / start["start_empty_s"]
    print(f"(d) start to first answer: {start['start_s']:.2f} s with {start['start_events']:,} "
          f"events = {ratio:.2f} of an empty journal's {start['start_empty_s']:.2f} s; "
          f"target <= {TARGETS['start_s']} s: "
          f"{verdict(start['start_s'] <= TARGETS['start_s'])}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
