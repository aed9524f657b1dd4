"""Sync against batched writes: events/s and bytes written to disk per 1,000 events.

    python tools/bench/durability.py [--seconds S] [--flush-interval S] [--json]

A real ``moat-log serve`` (Unix socket) takes acknowledged sets from this
process, every set asking for one durability, in two workloads:

* sensors:  50 sensors, each sending a reading of its own path 20 times a
            second (1,000 events/s offered) without waiting for the previous
            one's acknowledgement, the way an adapter forwards a bus;
* flat out: 200 tasks, each awaiting its set and sending the next at once
            (a batched set then waits up to the flush interval each time).

For each workload and durability it prints events/s and the bytes the node
process wrote to disk per 1,000 events (``write_bytes`` of
``/proc/PID/io``: what reached the block layer, page-cache writes included,
which is what wears an SD card), and the ratio of batched to sync.  The
scratch directory must be on a disk ($BENCH_TMP, default /tmp): on tmpfs
nothing is written.  See docs/decisions.md, "Durability per write".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path as FsPath
from typing import Any

import trio

from moat_log import open_client
from moat_log.client import Client
from moat_log.defaults import environment_without_settings
from moat_log.testing import moat_log_script, read_until_ready

CONNECTIONS = 10
WORKLOADS = {"sensors": (50, 20.0), "flat out": (200, None)}  # tasks, sets/s per task


def written_bytes(pid: int) -> int:
    for line in FsPath(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


async def load(
    clients: list[Client], tasks: int, rate: float | None, seconds: float, mode: str
) -> int:
    """Run *tasks* writers for *seconds*; the number of acknowledged sets.

    With a *rate*, each writer sends that many sets per second without
    awaiting them; without, each awaits its set before the next.
    """
    done = 0
    deadline = trio.current_time() + seconds

    async def set_one(client: Client, path: str) -> None:
        nonlocal done
        await client.set(path, done, durability=mode)
        done += 1

    async def writer(number: int, nursery: trio.Nursery) -> None:
        client = clients[number % len(clients)]
        path, due = f"bench.{mode}.s{number}", trio.current_time()
        while trio.current_time() < deadline:
            if rate is None:
                await set_one(client, path)
                continue
            nursery.start_soon(set_one, client, path)
            due += 1 / rate
            await trio.sleep_until(due)

    async with trio.open_nursery() as nursery:
        for number in range(tasks):
            nursery.start_soon(writer, number, nursery)
    return done


def run_node(data_dir: FsPath, flush_interval: float) -> subprocess.Popen[bytes]:
    config = data_dir.with_suffix(".toml")
    config.write_text(
        f'node = "bench"\ndata_dir = "{data_dir}"\n[client]\nlisten = ["unix"]\n'
        f"[journal]\nflush_interval = {flush_interval}\n"
    )
    node = subprocess.Popen(
        [moat_log_script(), "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment_without_settings(),
    )
    read_until_ready(node)
    return node


async def measure(directory: FsPath, seconds: float, flush_interval: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for workload, (tasks, rate) in WORKLOADS.items():
        for mode in ("sync", "batched"):
            data_dir = directory / f"{workload.replace(' ', '-')}-{mode}"
            node = run_node(data_dir, flush_interval)
            try:
                async with AsyncExitStack() as stack:
                    # Several connections: a batched second of sensors is more
                    # requests in flight than one connection may have.
                    clients = [
                        await stack.enter_async_context(open_client(data_dir=data_dir))
                        for _ in range(CONNECTIONS)
                    ]
                    await load(clients, tasks, rate, 0.5, mode)  # warm up: map, pages
                    await trio.to_thread.run_sync(os.sync)
                    before, start = written_bytes(node.pid), time.perf_counter()
                    count = await load(clients, tasks, rate, seconds, mode)
                    elapsed = time.perf_counter() - start
                    await trio.to_thread.run_sync(os.sync)  # what is still dirty counts too
                    written = written_bytes(node.pid) - before
            finally:
                node.terminate()
                node.wait(timeout=30)
            figures[f"{workload}/{mode}"] = {
                "events_per_s": count / elapsed,
                "bytes_per_1000_events": written * 1000 / count,
            }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per workload and mode")
    parser.add_argument("--flush-interval", type=float, default=0.1, help="the node's, seconds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    load_average = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(
        prefix="ml-dur-", dir=os.environ.get("BENCH_TMP", "/tmp")
    ) as name:
        figures = trio.run(measure, FsPath(name), args.seconds, args.flush_interval)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"load average {load_average:.2f} at the start; flush interval {args.flush_interval} s; "
        f"{args.seconds} s per figure"
    )
    print(f"{'workload':<10}{'durability':>11}{'events/s':>11}{'bytes/1000 events':>19}")
    for key, figure in figures.items():
        workload, mode = key.split("/")
        print(
            f"{workload:<10}{mode:>11}{figure['events_per_s']:>11,.0f}"
            f"{figure['bytes_per_1000_events']:>19,.0f}"
        )
    for workload in WORKLOADS:
        sync, batched = figures[f"{workload}/sync"], figures[f"{workload}/batched"]
        rate = batched["events_per_s"] / sync["events_per_s"]
        size = batched["bytes_per_1000_events"] / max(sync["bytes_per_1000_events"], 1)
        print(f"{workload}: batched/sync events/s {rate:.2f}, bytes per event {size:.3f}")


if __name__ == "__main__":
    main()
