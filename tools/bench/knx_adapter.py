"""The KNX adapter against bare xknx, one knxd, the same run.

    python tools/bench/knx_adapter.py [--count N] [--latency M] [--json]

knxd (dummy bus) runs in a private network namespace: the script re-executes
itself under ``unshare -rn`` (as the KNX tests do, tests/adapters/knx/knxd.py).
A second KNX client (bare xknx on an asyncio loop of its own, the tests'
`BusDevice`) plays the bus's devices.

(1) bus -> events: the device sends N GroupValueWrites (DPT 12.001, each
    confirmed by knxd, as fast as knxd takes them); the rate at which they
    become events in the node's journal (written and durable), against the
    rate at which a bare xknx client on the same knxd receives the same
    flood (its telegram callback).  Target: >= 0.5 of the bare rate.
(2) set -> bus latency: a set of an owned path in the node until the device
    receives the GroupValueWrite, p50 / p99 over M sets, against bare xknx
    sending the same telegram (``cemi_handler.send_telegram``) until the
    device receives it.  Target: p50 <= 10 ms added.

knxd's dummy bus passes about 50 telegrams/s, which bounds both rates: the
ratio says whether the adapter keeps up with the bus, not how fast it could go.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path as FsPath
from typing import Any

import trio

ROOT = FsPath(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "adapters" / "knx"))  # knxd.py, knx_device.py

from knx_device import BusDevice, bus_device  # type: ignore[import-not-found]  # noqa: E402
from knxd import Knxd, in_private_netns, netns_command  # type: ignore[import-not-found]  # noqa: E402
from xknx.dpt.payload import DPTArray  # noqa: E402
from xknx.telegram import GroupAddress, Telegram  # noqa: E402
from xknx.telegram.apci import GroupValueWrite  # noqa: E402

from moat_log.journal.change import Change  # noqa: E402
from moat_log.node.server import serve_node  # noqa: E402
from moat_log.path import Path  # noqa: E402
from moat_log.testing import in_process_config  # noqa: E402

COUNTER = "1/5/1"  # in: the flood
SETPOINT = "1/6/1"  # out: the latency


def node_config(data_dir: FsPath) -> Any:
    text = f"""
node = "bench"
[adapters.knx]
type = "knx"
gateway = "127.0.0.1"
local_ip = "127.0.0.1"
rate_limit = 0

[[adapters.knx.map]]
address = "{COUNTER}"
path = "bench.counter"
dpt = "12.001"
changes_only = false
read_on_start = false

[[adapters.knx.map]]
address = "{SETPOINT}"
path = "bench.setpoint"
dpt = "12.001"
direction = "out"
"""
    return in_process_config(text, data_dir)


async def flood(sender: BusDevice, count: int, base: int) -> None:
    for n in range(count):
        await sender.write(COUNTER, (base + n).to_bytes(4, "big"))


async def bare_receive_rate(sender: BusDevice, receiver: BusDevice, count: int) -> float:
    first = len(receiver.telegrams)
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood, sender, count, 0)
        await receiver.until(lambda ts: len(ts) >= first + count)
    return count / (time.perf_counter() - start)


async def adapter_receive_rate(node: Any, sender: BusDevice, count: int) -> float:
    status = node.adapters["knx"]
    first = status.counts["written"]
    done = trio.Event()

    def note() -> None:
        if status.counts["written"] >= first + count:
            done.set()

    status.on_change.append(note)
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood, sender, count, 1_000_000)
        with trio.fail_after(600):
            await done.wait()
    status.on_change.remove(note)
    return count / (time.perf_counter() - start)


async def bare_latency(sender: BusDevice, receiver: BusDevice, rounds: int) -> list[float]:
    times = []
    for n in range(rounds):
        seen = len(receiver.telegrams)
        telegram = Telegram(
            destination_address=GroupAddress(SETPOINT),
            payload=GroupValueWrite(DPTArray(n.to_bytes(4, "big"))),
        )
        start = time.perf_counter()
        await sender.bridge.run(sender.xknx.cemi_handler.send_telegram, telegram)
        await receiver.until(lambda ts, seen=seen: len(ts) > seen)
        times.append(time.perf_counter() - start)
    return times


async def adapter_latency(node: Any, receiver: BusDevice, rounds: int) -> list[float]:
    times = []
    for n in range(rounds):
        seen = len(receiver.telegrams)
        start = time.perf_counter()
        await node.write(Change(Path.parse("bench.setpoint"), n + 10_000))
        await receiver.until(lambda ts, seen=seen: len(ts) > seen)
        times.append(time.perf_counter() - start)
    return times


def quantiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


async def measure(count: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ml-knx-") as folder:
        daemon = Knxd(FsPath(folder))
        daemon.start()
        try:
            return await _measure(FsPath(folder), count, rounds)
        finally:
            daemon.kill()


async def _measure(folder: FsPath, count: int, rounds: int) -> dict[str, Any]:
    result: dict[str, Any] = {"count": count, "latency_rounds": rounds}
    async with bus_device() as sender, bus_device() as receiver:
        result["bare_events_per_s"] = await bare_receive_rate(sender, receiver, count)
        bare_times = await bare_latency(sender, receiver, rounds)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            config = node_config(folder / "node")
            node = await nursery.start(partial(serve_node, config, shutdown_trigger=stop.wait))
            status = node.adapters["knx"]
            connected = trio.Event()
            status.on_change.append(lambda: status.state == "connected" and connected.set())
            if status.state != "connected":
                await connected.wait()
            result["adapter_events_per_s"] = await adapter_receive_rate(node, sender, count)
            adapter_times = await adapter_latency(node, receiver, rounds)
            result["adapter_lost"] = status.details.get("lost", 0)
            stop.set()
    result["rate_ratio"] = result["adapter_events_per_s"] / result["bare_events_per_s"]
    result["bare_latency"] = quantiles(bare_times)
    result["adapter_latency"] = quantiles(adapter_times)
    result["added_p50_ms"] = result["adapter_latency"]["p50_ms"] - result["bare_latency"]["p50_ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="telegrams in the flood")
    parser.add_argument("--latency", type=int, default=100, help="sets timed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not in_private_netns():
        argv = netns_command([sys.executable, *sys.argv])
        os.execvp(argv[0], argv)
    result = trio.run(measure, args.count, args.latency)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"bus -> events ({args.count} telegrams, knxd dummy bus):")
    print(f"  bare xknx receives   {result['bare_events_per_s']:8.1f} telegrams/s")
    print(f"  adapter stores       {result['adapter_events_per_s']:8.1f} events/s")
    print(f"  ratio                {result['rate_ratio']:8.2f}   (target >= 0.5)")
    print(f"  lost                 {result['adapter_lost']:8d}")
    print(f"set -> bus latency ({args.latency} sets):")
    bare, ours = result["bare_latency"], result["adapter_latency"]
    print(f"  bare xknx send       p50 {bare['p50_ms']:6.2f} ms   p99 {bare['p99_ms']:6.2f} ms")
    print(f"  adapter (node set)   p50 {ours['p50_ms']:6.2f} ms   p99 {ours['p99_ms']:6.2f} ms")
    print(f"  added p50            {result['added_p50_ms']:6.2f} ms   (target <= 10 ms)")


if __name__ == "__main__":
    main()
