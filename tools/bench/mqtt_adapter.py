"""The MQTT adapter in a node against bare paho-mqtt, same mosquitto, same run.

    python tools/bench/mqtt_adapter.py [--count N] [--latency M] [--rounds R] [--quick] [--json]

A node runs in this process (`serve_node`, its journal in $BENCH_TMP, default
/tmp) with an MQTT adapter mapping ``out.+n`` to ``out/{n}`` (qos 1,
retained, JSON) and ``in/{n}`` to ``in.+n``; one mosquitto on a free port of
127.0.0.1 (``max_queued_messages 0``: a slow subscriber loses nothing).
Per figure the best of *rounds* interleaved rounds, each on fresh topics:

(1) journal -> broker: N changes to distinct mapped paths handed to the
    node's writer at once (``writer.submit``: the journal batches them), until
    a subscriber in another process (paho, its own thread, qos 1) has all N.
    Baseline: bare paho publishes N qos 1 retained messages to distinct
    topics, until the same kind of subscriber has all N.
(2) broker -> journal: a paho process publishes N qos 1 messages on mapped
    ``in/`` topics; until the node has written all N events (its adapter's
    ``written`` count).  Baseline: the same publisher, until a paho
    subscriber has all N.
(3) latency: M sequential ``node.write`` sets of ``lat.R.i`` (``lat/R/i``,
    fresh topics per round), each until a subscriber in
    this process (`open_mqtt`) receives the message; p50 and p99.
    Baseline: that client publishing qos 1 retained to distinct topics and
    receiving its own message, in the same process.

Ratios are adapter / baseline for rates and baseline / adapter for times:
above 1 the adapter is faster.  Targets: (1), (2) >= 0.5, (3) p50 <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path as FsPath
from typing import Any

import paho.mqtt.client as paho
import trio

from moat_log.adapters.mqtt.client import MqttClient, MqttOptions, open_mqtt
from moat_log.adapters.status import AdapterStatus
from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.node.server import serve_node
from moat_log.path import Path
from moat_log.testing import in_process_config

HERE = FsPath(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent / "tests" / "adapters" / "mqtt")]

# The tests' helper, by path: mypy checks tools/ without the tests' search path.
from mosquitto_broker import Mosquitto  # type: ignore[import-not-found]  # noqa: E402
from mqtt_client import bare_client  # noqa: E402

MAPPING = """
[[adapters.mqtt.map]]
path = "out.+n"
topic = "out/{n}"
direction = "out"

[[adapters.mqtt.map]]
path = "lat.+round.+n"
topic = "lat/{round}/{n}"
direction = "out"

[[adapters.mqtt.map]]
path = "in.+n"
topic = "in/{n}"
direction = "in"
"""
TIMEOUT = 120.0
#: The latency figures: the adapter's, the bare client's, and the set's own commit in (3).
LATENCY_KEYS = {"adapter": "node", "bare_client": "bare", "commit_only": "commit"}


# --- helper processes (paho with its own thread) -------------------------------------


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _expect(child: subprocess.Popen[str], word: str) -> str:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith(word), f"helper said {line!r}, not {word!r}"
    return line


def watch_forever(port: int, prefix: str, count: int) -> None:
    """Subscribe to PREFIX's level, say "subscribed"; once COUNT topics PREFIX-* came, "done"."""
    done = threading.Event()
    seen = [0]
    level = prefix.rsplit("/", 1)[0]

    def on_message(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        if not message.topic.startswith(prefix):
            return  # a retained message of an earlier round
        seen[0] += 1
        if seen[0] == count:
            done.set()

    with bare_client("127.0.0.1", port, f"watch-{os.getpid()}") as client:
        acked = threading.Event()
        client.on_subscribe = lambda *_: acked.set()
        client.on_message = on_message
        client.subscribe(f"{level}/+", qos=1)
        assert acked.wait(10), "no SUBACK"
        print("subscribed", flush=True)
        assert done.wait(TIMEOUT), f"received {seen[0]} of {count}"
        print("done", flush=True)


def publish_forever(port: int, prefix: str, count: int, retain: bool) -> None:
    """Connect, say "connected", wait for a line, publish COUNT qos 1 messages, say "done"."""
    with bare_client("127.0.0.1", port, f"pub-{os.getpid()}") as client:
        print("connected", flush=True)
        sys.stdin.readline()
        infos = [
            client.publish(f"{prefix}-{i}", b"%d" % i, qos=1, retain=retain) for i in range(count)
        ]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
        print("done", flush=True)


def _go(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


async def _until_done(child: subprocess.Popen[str]) -> None:
    await trio.to_thread.run_sync(_expect, child, "done")
    child.wait(timeout=TIMEOUT)


# --- the node ------------------------------------------------------------------------


def node_config(data_dir: FsPath, port: int) -> Any:
    text = f"""
node = "bench"
[adapters.mqtt]
type = "mqtt"
broker = "127.0.0.1:{port}"
discovery = false
lease = 3
buffer = 10000
{MAPPING}
"""
    return in_process_config(text, data_dir)


@asynccontextmanager
async def running_node(port: int) -> AsyncIterator[Node]:
    data_dir = FsPath(tempfile.mkdtemp(prefix="ml-mqttb-", dir=os.environ.get("BENCH_TMP")))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(
            partial(serve_node, node_config(data_dir, port), shutdown_trigger=stop.wait)
        )
        await until_status(
            node.adapters["mqtt"],
            lambda s: s.state == "connected" and s.details.get("active") == node.name,
        )
        try:
            yield node
        finally:
            stop.set()


async def until_status(status: AdapterStatus, predicate: Callable[[AdapterStatus], bool]) -> None:
    changed = trio.Event()

    def note() -> None:
        changed.set()

    status.on_change.append(note)
    try:
        with trio.fail_after(TIMEOUT):
            while not predicate(status):
                await changed.wait()
                changed = trio.Event()
    finally:
        status.on_change.remove(note)


# --- (1) journal -> broker -----------------------------------------------------------


async def node_out_rate(node: Node, port: int, tag: str, count: int) -> float:
    watcher = _child("--watch", str(port), f"out/{tag}-", str(count))
    await trio.to_thread.run_sync(_expect, watcher, "subscribed")
    start = time.perf_counter()
    submit = node.writer.submit
    for i in range(count):
        submit(Change(Path(("out", f"{tag}-{i}")), i), _ignore)
    await _until_done(watcher)
    return count / (time.perf_counter() - start)


def _ignore(_result: object) -> None:
    pass


def bare_out_rate(port: int, tag: str, count: int) -> float:
    """Topics outside the mapping: the node does not hear them."""
    watcher = _child("--watch", str(port), f"bare/out-{tag}-", str(count))
    _expect(watcher, "subscribed")
    publisher = _child("--publish", str(port), f"bare/out-{tag}", str(count), "retain")
    _expect(publisher, "connected")
    start = time.perf_counter()
    _go(publisher)
    _expect(watcher, "done")
    seconds = time.perf_counter() - start
    watcher.wait(timeout=TIMEOUT)
    publisher.wait(timeout=TIMEOUT)
    return count / seconds


# --- (2) broker -> journal -----------------------------------------------------------


async def node_in_rate(node: Node, port: int, tag: str, count: int) -> float:
    status = node.adapters["mqtt"]
    first = status.counts["written"]
    publisher = _child("--publish", str(port), f"in/{tag}", str(count), "")
    await trio.to_thread.run_sync(_expect, publisher, "connected")
    start = time.perf_counter()
    _go(publisher)
    await until_status(status, lambda s: s.counts["written"] >= first + count)
    seconds = time.perf_counter() - start
    last = node.kv.value(Path(("in", f"{tag}-{count - 1}")))
    assert last == count - 1, last
    await _until_done(publisher)
    return count / seconds


def bare_in_rate(port: int, tag: str, count: int) -> float:
    watcher = _child("--watch", str(port), f"bare/in-{tag}-", str(count))
    _expect(watcher, "subscribed")
    publisher = _child("--publish", str(port), f"bare/in-{tag}", str(count), "")
    _expect(publisher, "connected")
    start = time.perf_counter()
    _go(publisher)
    _expect(watcher, "done")
    seconds = time.perf_counter() - start
    watcher.wait(timeout=TIMEOUT)
    publisher.wait(timeout=TIMEOUT)
    return count / seconds


# --- (3) latency ---------------------------------------------------------------------


@asynccontextmanager
async def subscriber(port: int, topic_filter: str) -> AsyncIterator[MqttClient]:
    options = MqttOptions("127.0.0.1", port=port, client_id=f"lat-{topic_filter}")
    async with open_mqtt(options) as client:
        await client.subscribe([(topic_filter, 1)], no_local=False)
        yield client


async def node_latency(
    node: Node, port: int, tag: str, count: int
) -> tuple[list[float], list[float]]:
    """Seconds from each set to its message at the subscriber, and to its durable commit."""
    times, commits = [], []
    async with subscriber(port, f"lat/{tag}/+") as client:  # fresh: nothing retained
        for i in range(count):
            start = time.perf_counter()
            await node.write(Change(Path(("lat", tag, f"{i}")), i))
            commits.append(time.perf_counter() - start)
            message = await client.receive()
            times.append(time.perf_counter() - start)
            assert message.topic == f"lat/{tag}/{i}", message.topic
    return times, commits


async def bare_latency(port: int, tag: str, count: int) -> list[float]:
    times = []
    async with subscriber(port, f"bare/{tag}/+") as client:
        for i in range(count):
            start = time.perf_counter()
            await client.publish(f"bare/{tag}/{i}", b"%d" % i, qos=1, retain=True)
            message = await client.receive()
            times.append(time.perf_counter() - start)
            assert message.topic == f"bare/{tag}/{i}", message.topic
    return times


def percentile(times: list[float], fraction: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the run -------------------------------------------------------------------------


async def measure(port: int, count: int, latency: int, rounds: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {"node": [], "bare": []}
    into: dict[str, list[float]] = {"node": [], "bare": []}
    lat: dict[str, list[float]] = {"node": [], "bare": [], "commit": []}
    async with running_node(port) as node:
        await node_latency(node, port, "warm", 50)  # first connection, first batches
        for r in range(rounds):
            out["node"].append(await node_out_rate(node, port, f"n{r}", count))
            out["bare"].append(await trio.to_thread.run_sync(bare_out_rate, port, f"b{r}", count))
            into["node"].append(await node_in_rate(node, port, f"n{r}", count))
            into["bare"].append(await trio.to_thread.run_sync(bare_in_rate, port, f"b{r}", count))
            node_times, commits = await node_latency(node, port, f"ln{r}", latency)
            bare_times = await bare_latency(port, f"lb{r}", latency)
            if not lat["node"] or statistics.median(node_times) < statistics.median(lat["node"]):
                lat["node"], lat["commit"] = node_times, commits
            if not lat["bare"] or statistics.median(bare_times) < statistics.median(lat["bare"]):
                lat["bare"] = bare_times
    p50 = {k: percentile(v, 0.5) for k, v in lat.items()}
    p99 = {k: percentile(v, 0.99) for k, v in lat.items()}
    best_out = {k: max(v) for k, v in out.items()}
    best_in = {k: max(v) for k, v in into.items()}
    return {
        "count": count,
        "latency_count": latency,
        "rounds": rounds,
        "journal_to_broker_per_s": {"adapter": best_out["node"], "bare_paho": best_out["bare"]},
        "broker_to_journal_per_s": {"adapter": best_in["node"], "bare_paho": best_in["bare"]},
        "latency_p50_ms": {k: p50[v] * 1e3 for k, v in LATENCY_KEYS.items()},
        "latency_p99_ms": {k: p99[v] * 1e3 for k, v in LATENCY_KEYS.items()},
        "ratios": {
            "journal_to_broker": best_out["node"] / best_out["bare"],
            "broker_to_journal": best_in["node"] / best_in["bare"],
            "latency_p50": p50["bare"] / p50["node"],
            "latency_p99": p99["bare"] / p99["node"],
        },
    }


def report(figures: dict[str, Any]) -> None:
    out, into = figures["journal_to_broker_per_s"], figures["broker_to_journal_per_s"]
    p50, p99, ratios = figures["latency_p50_ms"], figures["latency_p99_ms"], figures["ratios"]
    print(
        f"mosquitto on 127.0.0.1, MQTT 5, N = {figures['count']:,}, "
        f"best of {figures['rounds']} interleaved rounds"
    )
    print(
        f"(1) journal -> broker:  adapter {out['adapter']:9,.0f}/s   "
        f"bare paho {out['bare_paho']:9,.0f}/s   ratio {ratios['journal_to_broker']:.2f}"
        "  (target >= 0.5)"
    )
    print(
        f"(2) broker -> journal:  adapter {into['adapter']:9,.0f}/s   "
        f"bare paho {into['bare_paho']:9,.0f}/s   ratio {ratios['broker_to_journal']:.2f}"
        "  (target >= 0.5)"
    )
    print(
        f"(3) set -> subscriber, {figures['latency_count']} sequential: "
        f"adapter p50 {p50['adapter']:.2f} ms p99 {p99['adapter']:.2f} ms   "
        f"bare client p50 {p50['bare_client']:.2f} ms p99 {p99['bare_client']:.2f} ms   "
        f"ratio p50 {ratios['latency_p50']:.2f} p99 {ratios['latency_p99']:.2f}"
        "  (target p50 <= 5 ms)"
    )
    print(
        f"    of which node.write (the durable commit): "
        f"p50 {p50['commit_only']:.2f} ms p99 {p99['commit_only']:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages per rate figure")
    parser.add_argument("--latency", type=int, default=500, help="sequential sets for (3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure")
    parser.add_argument("--quick", action="store_true", help="1,000 messages, 100 sets, 1 round")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--watch", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--publish", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watch:
        watch_forever(int(args.watch[0]), args.watch[1], int(args.watch[2]))
        return
    if args.publish:
        port, prefix, count, retain = args.publish
        publish_forever(int(port), prefix, int(count), retain == "retain")
        return
    if args.quick:
        args.count, args.latency, args.rounds = 1000, 100, 1
    with tempfile.TemporaryDirectory(prefix="ml-mqttb-broker-") as folder:
        broker = Mosquitto(FsPath(folder), extra=("max_queued_messages 0",))
        broker.start()
        try:
            figures = trio.run(measure, broker.port, args.count, args.latency, args.rounds)
        finally:
            broker.kill()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)


if __name__ == "__main__":
    main()
