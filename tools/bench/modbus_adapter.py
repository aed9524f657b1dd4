"""The Modbus adapter against pymodbus's sync client driven bare, same server, same run.

    python tools/bench/modbus_adapter.py [--seconds S] [--writes N] [--durability D] [--json]

One pymodbus server process on 127.0.0.1 (tests/adapters/modbus/modbus_server.py
with ``--tick --quiet``: every read of holding register 0 adds 1 to it, so
every poll sees a change), and:

(1) changes per second that become events: a node whose Modbus adapter polls
    holding register 0 as fast as it can (interval 0.1 ms) for S seconds,
    counting the events it stored; against the bare client reading the same
    register in a loop (each read is a new value) and decoding it, once
    directly and once through ``trio.to_thread`` (how the adapter used
    pymodbus before it had a transport of its own); and the adapter's
    transport (``tcp_client``) in the same loop without a node; and the
    CPU time of this process per read (bare) and per event (the node, all
    its threads), which a loaded machine changes less than the rates;
(2) set-to-bus latency: N sets of an owned holding register (``node.write``
    until the adapter's write came back from the device), against the bare
    client's ``write_register`` (p50, p99); and the part of it after the
    journal's commit (the commit's fsync is the disk's, not the adapter's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio
from pymodbus.client import ModbusTcpClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "adapters" / "modbus"))

from modbus_process import ModbusServerProcess  # type: ignore[import-not-found]  # noqa: E402

from moat_log.adapters.modbus.client import Endpoint  # noqa: E402
from moat_log.adapters.modbus.plan import Read  # noqa: E402
from moat_log.adapters.modbus.registers import DATA_TYPES, RegisterCodec  # noqa: E402
from moat_log.adapters.modbus.tcp_client import open_tcp_device  # noqa: E402
from moat_log.journal.change import Change  # noqa: E402
from moat_log.node.server import serve_node  # noqa: E402
from moat_log.path import Path as MoatPath  # noqa: E402
from moat_log.testing import in_process_config  # noqa: E402

CODEC = RegisterCodec(DATA_TYPES["uint16"])


def bare_reads(port: int, seconds: float) -> tuple[float, float]:
    """Reads per second, and the CPU time of this process per read (µs)."""
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    client.connect()  # type: ignore[no-untyped-call]
    n, end, cpu = 0, time.perf_counter() + seconds, time.process_time()
    while time.perf_counter() < end:
        CODEC.decode(client.read_holding_registers(0, count=1).registers)
        n += 1
    cpu = time.process_time() - cpu
    client.close()  # type: ignore[no-untyped-call]
    return n / seconds, cpu / n * 1e6


async def bare_thread_reads(port: int, seconds: float) -> float:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    client.connect()  # type: ignore[no-untyped-call]
    limiter = trio.CapacityLimiter(1)
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        response = await trio.to_thread.run_sync(
            partial(client.read_holding_registers, 0, count=1), limiter=limiter
        )
        CODEC.decode(response.registers)
        n += 1
    client.close()  # type: ignore[no-untyped-call]
    return n / seconds


async def transport_reads(port: int, seconds: float) -> float:
    endpoint = Endpoint("127.0.0.1", port)
    read = Read("holding", 0, 1, (0,))
    async with open_tcp_device(endpoint, 1, request_timeout=2, retries=0) as device:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            CODEC.decode(await device.read(read))
            n += 1
    return n / seconds


def bare_writes(port: int, count: int) -> list[float]:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    client.connect()  # type: ignore[no-untyped-call]
    times = []
    for i in range(count):
        start = time.perf_counter()
        client.write_register(20, i & 0xFFFF)
        times.append(time.perf_counter() - start)
    client.close()  # type: ignore[no-untyped-call]
    return times


def node_config(data_dir: Path, port: int, durability: str, *, poll: bool) -> Any:
    entry = (
        '[[adapters.dev.map]]\npath = "bench.counter"\nfunction = "holding"\naddress = 0\n'
        if poll
        else ""
    )
    text = f"""
node = "bench"
[adapters.dev]
type = "modbus"
host = "127.0.0.1:{port}"
interval = 0.0001
durability = "{durability}"
{entry}
[[adapters.dev.map]]
path = "bench.setpoint"
function = "holding"
address = 20
direction = "out"
"""
    return in_process_config(text, data_dir)


async def adapter_run(
    port: int, seconds: float, writes: int, durability: str
) -> tuple[float, float, list[float], list[float]]:
    rate = cpu_per_event = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        config = node_config(Path(tmp) / "a", port, durability, poll=True)
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            node = await nursery.start(partial(serve_node, config, shutdown_trigger=stop.wait))
            status = node.adapters["dev"]
            await until(status, lambda: status.counts["written"] >= 1)
            first, start = status.counts["written"], time.perf_counter()
            cpu = time.process_time()
            await trio.sleep(seconds)
            cpu = time.process_time() - cpu
            events = status.counts["written"] - first
            rate = events / (time.perf_counter() - start)
            cpu_per_event = cpu / max(events, 1) * 1e6
            stop.set()
        # the latency on a node that does not poll, so a set waits for nothing else
        config = node_config(Path(tmp) / "b", port, durability, poll=False)
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            node = await nursery.start(partial(serve_node, config, shutdown_trigger=stop.wait))
            status = node.adapters["dev"]
            await until(status, lambda: status.state == "connected")
            times, after_commit = [], []
            for i in range(writes):
                sent = status.counts["sent"]
                done = trio.Event()

                def note(done: trio.Event = done, sent: int = sent) -> None:
                    if status.counts["sent"] > sent:
                        done.set()

                status.on_change.append(note)
                begin = time.perf_counter()
                await node.write(Change(MoatPath.parse("bench.setpoint"), (i + 1) & 0xFFFF))
                committed = time.perf_counter()
                await done.wait()
                times.append(time.perf_counter() - begin)
                after_commit.append(time.perf_counter() - committed)
                status.on_change.remove(note)
            stop.set()
    return rate, cpu_per_event, times, after_commit


async def until(status: Any, predicate: Any) -> None:
    changed = trio.Event()
    status.on_change.append(changed.set)
    try:
        while not predicate():
            await changed.wait()
            status.on_change.remove(changed.set)
            changed = trio.Event()
            status.on_change.append(changed.set)
    finally:
        status.on_change.remove(changed.set)


def percentile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--durability", choices=["sync", "batched"], default="sync")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ModbusServerProcess(Path(tmp) / "server.log", quiet=True, tick=True)
        server.start()
        try:
            bare, bare_cpu = bare_reads(server.port, options.seconds)
            threaded = trio.run(bare_thread_reads, server.port, options.seconds)
            transport = trio.run(transport_reads, server.port, options.seconds)
            bare_w = bare_writes(server.port, options.writes)
            rate, adapter_cpu, adapter_w, after_commit = trio.run(
                adapter_run, server.port, options.seconds, options.writes, options.durability
            )
        finally:
            server.kill()
    result = {
        "bare_reads_per_s": round(bare),
        "bare_thread_reads_per_s": round(threaded),
        "transport_reads_per_s": round(transport),
        "transport_ratio": round(transport / bare, 2),
        "adapter_events_per_s": round(rate),
        "ratio_to_bare": round(rate / bare, 2),
        "bare_cpu_us_per_read": round(bare_cpu),
        "adapter_cpu_us_per_event": round(adapter_cpu),
        "bare_write_p50_ms": round(percentile(bare_w, 0.5), 3),
        "bare_write_p99_ms": round(percentile(bare_w, 0.99), 3),
        "adapter_set_p50_ms": round(percentile(adapter_w, 0.5), 3),
        "adapter_set_p99_ms": round(percentile(adapter_w, 0.99), 3),
        "added_p50_ms": round(percentile(adapter_w, 0.5) - percentile(bare_w, 0.5), 3),
        "after_commit_p50_ms": round(percentile(after_commit, 0.5), 3),
        "durability": options.durability,
    }
    if options.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:26} {value}")
    if statistics.mean(adapter_w) <= 0:  # pragma: no cover
        raise SystemExit("no writes measured")


if __name__ == "__main__":
    main()
