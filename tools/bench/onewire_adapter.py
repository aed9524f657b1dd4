"""The 1-Wire adapter against bare pyownet, same owserver, same run.

    python tools/bench/onewire_adapter.py [--devices N] [--seconds S] [--writes W] [--json]

One real owserver on 127.0.0.1 (a free port; ready when it tells
``$NOTIFY_SOCKET`` ``READY=1``; killed at the end) with ``--fake``
DS18B20s, whose temperature is random on every read, so every poll is a
change, and a ``--tester`` DS2408 for writes.  Figures:

(1) reads per second, one after the other, of ``/uncached/DEV/temperature``:
    bare pyownet (a persistent proxy, the fastest way to use it), the
    adapter's own client (moat_log.adapters.onewire.client, one connection),
    and pyownet called from trio through ``trio.to_thread.run_sync`` (the
    other design the adapter could have had);
(2) bus changes per second that become events: a node (in this process, its
    journal in a temporary folder) with the adapter polling N devices as
    fast as it may (interval 10 ms, the least allowed; every reading a change), counted from the
    adapter's ``written`` over S seconds; against (1)'s bare pyownet rate;
(3) set-to-bus latency (p50, p99): ``node.write`` of an owned ``PIO.0``
    until owserver acknowledged the write (the adapter's ``sent`` count),
    against one bare pyownet write of the same attribute; and the part of it
    after the write was durable in the journal (``commit_to_bus``: the side-
    effect projection, the adapter and the owserver round trip).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio
from pyownet import protocol as pyownet

from moat_log.adapters.onewire.client import open_owserver
from moat_log.journal.change import Change
from moat_log.node.server import serve_node
from moat_log.path import Path as MPath
from moat_log.testing import in_process_config


@contextmanager
def owserver(arguments: list[str]) -> Iterator[int]:
    """An owserver on a free port of 127.0.0.1, ready once it says READY=1; yields the port."""
    executable = shutil.which("owserver") or "/usr/bin/owserver"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    folder = Path(tempfile.mkdtemp(prefix="ml-owbench-"))
    address = str(folder / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        process = subprocess.Popen(
            [executable, *arguments, "-p", f"127.0.0.1:{port}", "--foreground"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "NOTIFY_SOCKET": address},
        )
        try:
            while True:
                readable, _, _ = select.select([notify.fileno()], [], [], 10)
                if not readable:
                    raise SystemExit("owserver did not say READY=1")
                if b"READY=1" in notify.recv(4096):
                    break
            yield port
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            shutil.rmtree(folder, ignore_errors=True)


def bare_read_rate(port: int, path: str, seconds: float) -> float:
    proxy = pyownet.proxy("127.0.0.1", port, persistent=True)
    count, end = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        proxy.read(path)
        count += 1
    return count / (time.perf_counter() - start)


def bare_write_latencies(port: int, relay: str, count: int) -> list[float]:
    proxy = pyownet.proxy("127.0.0.1", port, persistent=True)
    times = []
    for index in range(count):
        start = time.perf_counter()
        proxy.write(f"/{relay}/PIO.0", b"1" if index % 2 else b"0")
        times.append(time.perf_counter() - start)
    return times


async def client_read_rate(port: int, path: str, seconds: float) -> float:
    async with open_owserver("127.0.0.1", port, connections=1) as client:
        count, start = 0, time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            await client.read(path)
            count += 1
        return count / (time.perf_counter() - start)


async def threaded_read_rate(port: int, path: str, seconds: float) -> float:
    """pyownet the other way the adapter could use it: each read in a worker thread."""
    limiter = trio.CapacityLimiter(1)
    proxy = pyownet.proxy("127.0.0.1", port, persistent=True)  # one thread at a time: safe
    count, start = 0, time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        await trio.to_thread.run_sync(proxy.read, path, limiter=limiter)
        count += 1
    return count / (time.perf_counter() - start)


def node_config(data_dir: Path, fake_port: int, tester_port: int, relay: str) -> Any:
    text = f"""
node = "bench"
[adapters.ow]
type = "onewire"
server = "127.0.0.1:{fake_port}"
scan_interval = 3600
[[adapters.ow.map]]
family = "28"
attribute = "temperature"
path = "onewire.+family.+code.temperature"
interval = 0.01
[adapters.relay]
type = "onewire"
server = "127.0.0.1:{tester_port}"
scan_interval = 3600
presence = ""
[[adapters.relay.map]]
device = "{relay}"
attribute = "PIO.0"
path = "relay"
codec = "bool"
direction = "out"
"""
    return in_process_config(text, data_dir)


async def adapter_figures(
    fake_port: int, tester_port: int, relay_device: str, seconds: float, writes: int
) -> tuple[float, list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="ml-owbench-node-") as folder:
        config = node_config(Path(folder), fake_port, tester_port, relay_device)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            node = await nursery.start(partial(serve_node, config, shutdown_trigger=stop.wait))
            status, relay = node.adapters["ow"], node.adapters["relay"]
            changed = trio.Event()

            def note() -> None:
                nonlocal changed
                changed.set()
                changed = trio.Event()

            status.on_change.append(note)
            relay.on_change.append(note)
            while status.counts["written"] < 10 or relay.state != "connected":
                await changed.wait()
            first, start = status.counts["written"], time.perf_counter()
            await trio.sleep(seconds)  # the measuring period itself, not a wait for readiness
            rate = (status.counts["written"] - first) / (time.perf_counter() - start)
            latencies, after_commit = [], []
            for index in range(writes):
                sent = relay.counts["sent"]
                begin = time.perf_counter()
                await node.write(Change(MPath(["relay"]), bool(index % 2)))
                committed = time.perf_counter()
                while relay.counts["sent"] == sent:
                    await changed.wait()
                latencies.append(time.perf_counter() - begin)
                after_commit.append(time.perf_counter() - committed)
            stop.set()
    return rate, latencies, after_commit


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    fake = [f"--fake={','.join(['28'] * options.devices)}"]
    with owserver(fake) as fake_port, owserver(["--tester=29"]) as tester_port:
        probe = pyownet.proxy("127.0.0.1", fake_port)
        device = next(d.strip("/") for d in probe.dir() if d.startswith("/28."))
        path = f"/uncached/{device}/temperature"
        bare_rate = bare_read_rate(fake_port, path, options.seconds)
        client_rate = trio.run(client_read_rate, fake_port, path, options.seconds)
        threaded_rate = trio.run(threaded_read_rate, fake_port, path, options.seconds)
        relay = pyownet.proxy("127.0.0.1", tester_port).dir()[0].strip("/")
        bare_writes = bare_write_latencies(tester_port, relay, options.writes)
        event_rate, set_latencies, after_commit = trio.run(
            adapter_figures, fake_port, tester_port, relay, options.seconds, options.writes
        )
    figures = {
        "devices": options.devices,
        "bare_pyownet_reads_per_s": round(bare_rate),
        "client_reads_per_s": round(client_rate),
        "client_vs_bare": round(client_rate / bare_rate, 2),
        "pyownet_in_threads_reads_per_s": round(threaded_rate),
        "threads_vs_bare": round(threaded_rate / bare_rate, 2),
        "adapter_events_per_s": round(event_rate),
        "adapter_events_vs_bare_reads": round(event_rate / bare_rate, 2),
        "bare_write_p50_ms": round(statistics.median(bare_writes) * 1000, 3),
        "bare_write_p99_ms": round(percentile(bare_writes, 0.99) * 1000, 3),
        "set_to_bus_p50_ms": round(statistics.median(set_latencies) * 1000, 3),
        "set_to_bus_p99_ms": round(percentile(set_latencies, 0.99) * 1000, 3),
        "commit_to_bus_p50_ms": round(statistics.median(after_commit) * 1000, 3),
        "commit_to_bus_p99_ms": round(percentile(after_commit, 0.99) * 1000, 3),
    }
    figures["added_p50_ms"] = round(figures["set_to_bus_p50_ms"] - figures["bare_write_p50_ms"], 3)
    if options.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
