"""The floor under one acknowledged write: what a lone request costs, and why.

    python tools/bench/round_trip.py [--count N] [--json]

A script that awaits each write before the next pays, per write, one
durable commit and one round trip between two processes.  This measures
both floors and the node against them, in the same run:

(1) one-record durable LMDB commits (what a write must wait for)
(2) one ``fdatasync`` of a preallocated file (the floor of any WAL)
(3) an empty request/reply between two trio processes over a Unix socket
(4) ``get`` and ``set`` through a real ``moat-log serve`` (Unix socket),
    with the node's and the client's CPU per request

(1) + (3) is the fastest a durable acknowledged write can be with a trio
client and a trio node and no other work: the ceiling for sequential sets.
Scratch files go to $BENCH_TMP (default /tmp; /dev/shm shows the cost
without the disk).  See docs/decisions.md, "Sequential durable writes".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path as FsPath
from typing import Any

import lmdb
import trio

from moat_log import open_client
from moat_log.testing import moat_log_script, read_until_ready


def scratch() -> str:
    return tempfile.mkdtemp(prefix="ml-rt-", dir=os.environ.get("BENCH_TMP", "/tmp"))


def lmdb_commits(count: int) -> float:
    """Seconds per one-record durable LMDB commit."""
    env = lmdb.open(scratch(), map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.put(b"warm", b"x")
    start = time.perf_counter()
    for i in range(count):
        with env.begin(write=True) as txn:
            txn.put(b"%08d" % i, b"x" * 100)
    seconds = (time.perf_counter() - start) / count
    env.close()
    return seconds


def fdatasyncs(count: int) -> float:
    """Seconds per overwrite-and-fdatasync of a preallocated file."""
    fd = os.open(FsPath(scratch()) / "wal", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, count * 512)
        os.fsync(fd)
        start = time.perf_counter()
        for i in range(count):
            os.pwrite(fd, b"x" * 100, i * 512)
            os.fdatasync(fd)
        return (time.perf_counter() - start) / count
    finally:
        os.close(fd)


def trio_ping_pong(count: int) -> float:
    """Seconds per empty request/reply between two trio processes."""
    mine, theirs = socket.socketpair()
    echo = subprocess.Popen(
        [sys.executable, __file__, "--echo", str(theirs.fileno())], pass_fds=[theirs.fileno()]
    )
    theirs.close()

    async def main() -> float:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(mine))
        for _ in range(200):
            await stream.send_all(b"x" * 40)
            await stream.receive_some(100)
        start = time.perf_counter()
        for _ in range(count):
            await stream.send_all(b"x" * 40)
            await stream.receive_some(100)
        seconds = (time.perf_counter() - start) / count
        await stream.aclose()
        return seconds

    try:
        return trio.run(main)
    finally:
        echo.wait(timeout=30)


def echo_forever(fd: int) -> None:
    async def main() -> None:
        stream = trio.SocketStream(trio.socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM))
        while data := await stream.receive_some(100):
            await stream.send_all(data)

    trio.run(main)


def cpu_seconds(pid: int) -> float:
    fields = FsPath(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def node_requests(count: int) -> dict[str, dict[str, float]]:
    """Per op, seconds of wall time and of node and client CPU per request."""
    data_dir = scratch()
    config = FsPath(data_dir) / "node.toml"  # the Unix socket only: the port may be taken
    config.write_text(f'data_dir = "{data_dir}"\n[client]\nlisten = ["unix"]\n')
    node = subprocess.Popen(
        [moat_log_script(), "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    read_until_ready(node)

    async def main() -> dict[str, dict[str, float]]:
        result = {}
        async with open_client(data_dir=data_dir) as client:
            await client.set("bench.value", 0)
            for name in ("get", "set"):
                for i in range(200):
                    await (client.get("bench.value") if name == "get" else client.set("b.v", i))
                node_cpu, client_cpu = cpu_seconds(node.pid), own_cpu_seconds()
                start = time.perf_counter()
                for i in range(count):
                    await (client.get("bench.value") if name == "get" else client.set("b.v", i))
                result[name] = {
                    "wall": (time.perf_counter() - start) / count,
                    "node_cpu": (cpu_seconds(node.pid) - node_cpu) / count,
                    "client_cpu": (own_cpu_seconds() - client_cpu) / count,
                }
        return result

    try:
        return trio.run(main)
    finally:
        node.terminate()
        node.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="operations per figure")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo is not None:
        echo_forever(args.echo)
        return
    commit, sync, ping = (
        lmdb_commits(args.count),
        fdatasyncs(args.count),
        trio_ping_pong(args.count),
    )
    node = node_requests(args.count)
    floor = commit + ping
    figures: dict[str, Any] = {
        "lmdb_commit_us": commit * 1e6,
        "fdatasync_us": sync * 1e6,
        "trio_round_trip_us": ping * 1e6,
        "sequential_ceiling_per_s": 1 / floor,
        "node": {op: {k: v * 1e6 for k, v in f.items()} for op, f in node.items()},
        "set_vs_ceiling": floor / node["set"]["wall"],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"(1) durable LMDB commit:           {commit * 1e6:6.0f} µs = {1 / commit:8,.0f}/s")
    print(f"(2) fdatasync, preallocated file:  {sync * 1e6:6.0f} µs = {1 / sync:8,.0f}/s")
    print(f"(3) empty trio round trip:         {ping * 1e6:6.0f} µs = {1 / ping:8,.0f}/s")
    print(f"    (1) + (3), the ceiling for sequential durable writes: {1 / floor:,.0f}/s")
    for op, f in node.items():
        print(
            f"(4) {op} through the node:        {f['wall'] * 1e6:6.0f} µs = {1 / f['wall']:8,.0f}/s"
            f"  (node CPU {f['node_cpu'] * 1e6:.0f} µs, client CPU {f['client_cpu'] * 1e6:.0f} µs)"
        )
    print(f"    sequential sets reach {figures['set_vs_ceiling']:.2f} of the ceiling")


if __name__ == "__main__":
    main()
