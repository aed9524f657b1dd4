"""The MQTT client (`moat_log.adapters.mqtt.client`) against bare paho-mqtt, same broker, same run.

    python tools/bench/mqtt_client.py [--count N] [--rounds R] [--json]

One mosquitto on 127.0.0.1 (a free port, stopped at the end), MQTT 5 for both
clients, and per figure the best of *rounds* interleaved rounds:

(1) round trips: publish qos 0 to a topic the client itself subscribes to,
    await that message, repeat (median of one round trip);
(2) publish throughput: N qos 0 messages of 16 bytes, then one qos 1 message
    whose PUBACK says the broker has read them all;
(3) receive throughput: another process floods N qos 0 messages; from the
    first to the last one received.

The baseline is paho driven by its own thread (``loop_start()``), the way
paho is meant to be used outside an event loop.  `bare_latency` and
`bare_publish_rate` are that baseline for other benchmarks (the MQTT
adapter's): import them from here.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from moat_log.adapters.mqtt.client import MqttOptions, open_mqtt

PAYLOAD = b"0123456789abcdef"
WARM_UP = 200


@contextmanager
def mosquitto() -> Iterator[int]:
    """A mosquitto on a free port of 127.0.0.1 (ready once it logs "running"); yields the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    folder = Path(tempfile.mkdtemp(prefix="ml-mqtt-"))
    config = folder / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    # A slow receiver must not lose the flood to the broker's queue limit.
    lines += ["log_dest stderr", "max_queued_messages 0"]
    config.write_text("\n".join(lines) + "\n")
    broker = subprocess.Popen(
        ["/usr/sbin/mosquitto", "-c", str(config)], stderr=subprocess.PIPE, text=True
    )
    try:
        assert broker.stderr is not None
        for line in broker.stderr:
            if " running" in line:
                break
        else:
            raise SystemExit("mosquitto did not start")
        # Keep its stderr drained: a full pipe would stall the broker.
        threading.Thread(target=broker.stderr.read, daemon=True).start()
        yield port
    finally:
        broker.kill()
        broker.wait()


# --- bare paho, driven by its own thread -------------------------------------


@contextmanager
def bare_client(host: str, port: int, client_id: str) -> Iterator[paho.Client]:
    """A connected paho client (MQTT 5, clean start) with its network thread running."""
    connected = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_connect = lambda *_: connected.set()
    client.connect(host, port, clean_start=True)
    client.loop_start()
    try:
        assert connected.wait(10), "paho did not connect"
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def _subscribe(client: paho.Client, topic: str) -> None:
    acked = threading.Event()
    client.on_subscribe = lambda *_: acked.set()
    client.subscribe(topic, qos=0)
    assert acked.wait(10), "no SUBACK"


def bare_latency(host: str, port: int, count: int) -> float:
    """Median seconds of one qos 0 publish → receive round trip through bare paho."""
    got = threading.Event()
    with bare_client(host, port, "bare-rt") as client:
        client.on_message = lambda *_: got.set()
        _subscribe(client, "bench/rt")
        times = []
        for i in range(WARM_UP + count):
            got.clear()
            start = time.perf_counter()
            client.publish("bench/rt", PAYLOAD)
            assert got.wait(10), "a round trip got lost"
            if i >= WARM_UP:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_publish_rate(host: str, port: int, count: int) -> float:
    """qos 0 messages per second bare paho hands to the broker (until its PUBACK of a marker)."""
    with bare_client(host, port, "bare-pub") as client:
        client.publish("bench/pub", PAYLOAD, qos=1).wait_for_publish(10)
        start = time.perf_counter()
        for _ in range(count):
            client.publish("bench/pub", PAYLOAD)
        client.publish("bench/pub", b"end", qos=1).wait_for_publish(60)
        return count / (time.perf_counter() - start)


def bare_receive_rate(host: str, port: int, count: int) -> float:
    """qos 0 messages per second bare paho receives from a flooding process."""
    done = threading.Event()
    seen = [0, 0.0]

    def on_message(*_: Any) -> None:
        if seen[0] == 0:
            seen[1] = time.perf_counter()
        seen[0] += 1
        if seen[0] == count:
            done.set()

    with bare_client(host, port, "bare-sub") as client:
        client.on_message = on_message
        _subscribe(client, "bench/flood")
        with flood(host, port, count):
            assert done.wait(120), f"received {seen[0]} of {count}"
        return (count - 1) / (time.perf_counter() - seen[1])


# --- this client ---------------------------------------------------------------


def _options(port: int, client_id: str) -> MqttOptions:
    return MqttOptions("127.0.0.1", port=port, client_id=client_id)


def client_latency(port: int, count: int) -> float:
    """Median seconds of one qos 0 publish → receive round trip through `open_mqtt`."""

    async def main() -> float:
        async with open_mqtt(_options(port, "moat-rt")) as client:
            await client.subscribe([("bench/rt", 0)], no_local=False)
            times = []
            for i in range(WARM_UP + count):
                start = time.perf_counter()
                await client.publish("bench/rt", PAYLOAD)
                await client.receive()
                if i >= WARM_UP:
                    times.append(time.perf_counter() - start)
            return statistics.median(times)

    return trio.run(main)


def client_publish_rate(port: int, count: int) -> float:
    """qos 0 messages per second `MqttClient.publish` hands to the broker."""

    async def main() -> float:
        async with open_mqtt(_options(port, "moat-pub")) as client:
            await client.publish("bench/pub", PAYLOAD, qos=1)
            start = time.perf_counter()
            for _ in range(count):
                await client.publish("bench/pub", PAYLOAD)
            await client.publish("bench/pub", b"end", qos=1)
            return count / (time.perf_counter() - start)

    return trio.run(main)


def client_receive_rate(port: int, count: int) -> float:
    """qos 0 messages per second `MqttClient.receive` delivers from a flooding process."""

    async def main() -> float:
        async with open_mqtt(_options(port, "moat-sub")) as client:
            await client.subscribe([("bench/flood", 0)])
            with flood("127.0.0.1", port, count):
                await client.receive()
                start = time.perf_counter()
                for _ in range(count - 1):
                    await client.receive()
                return (count - 1) / (time.perf_counter() - start)

    return trio.run(main)


@contextmanager
def flood(host: str, port: int, count: int) -> Iterator[None]:
    """Another process publishing *count* qos 0 messages to bench/flood as fast as paho can."""
    child = subprocess.Popen([sys.executable, __file__, "--flood", host, str(port), str(count)])
    try:
        yield
    finally:
        child.wait(timeout=120)


def flood_forever(host: str, port: int, count: int) -> None:
    with bare_client(host, port, f"flood-{os.getpid()}") as client:
        for _ in range(count):
            client.publish("bench/flood", PAYLOAD)
        client.publish("bench/flood-end", b"", qos=1).wait_for_publish(120)


# --- the run -------------------------------------------------------------------


def best(rounds: int, ours: Callable[[], float], bare: Callable[[], float], *, low: bool) -> Any:
    """Interleaved rounds; the best of each (lowest for times, highest for rates)."""
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(ours())
        theirs.append(bare())
    pick = min if low else max
    return pick(mine), pick(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages per throughput figure")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--flood", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        flood_forever(args.flood[0], int(args.flood[1]), int(args.flood[2]))
        return
    n, rounds, host = args.count, args.rounds, "127.0.0.1"
    with mosquitto() as port:
        rt = best(
            rounds,
            lambda: client_latency(port, n // 4),
            lambda: bare_latency(host, port, n // 4),
            low=True,
        )
        pub = best(
            rounds,
            lambda: client_publish_rate(port, n),
            lambda: bare_publish_rate(host, port, n),
            low=False,
        )
        sub = best(
            rounds,
            lambda: client_receive_rate(port, n),
            lambda: bare_receive_rate(host, port, n),
            low=False,
        )
    figures = {
        "round_trip_us": {"client": rt[0] * 1e6, "bare_paho": rt[1] * 1e6},
        "round_trips_per_s": {"client": 1 / rt[0], "bare_paho": 1 / rt[1]},
        "publish_per_s": {"client": pub[0], "bare_paho": pub[1]},
        "receive_per_s": {"client": sub[0], "bare_paho": sub[1]},
        "ratios": {
            "round_trips": rt[1] / rt[0],
            "publish": pub[0] / pub[1],
            "receive": sub[0] / sub[1],
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    ratios = figures["ratios"]
    print(f"mosquitto on 127.0.0.1, MQTT 5, best of {rounds} interleaved rounds")
    print(
        f"(1) round trip, qos 0:  client {rt[0] * 1e6:5.0f} µs = {1 / rt[0]:7,.0f}/s   "
        f"bare paho {rt[1] * 1e6:5.0f} µs = {1 / rt[1]:7,.0f}/s   ratio {ratios['round_trips']:.2f}"
    )
    print(
        f"(2) publish, qos 0:     client {pub[0]:9,.0f}/s   bare paho {pub[1]:9,.0f}/s   "
        f"ratio {ratios['publish']:.2f}"
    )
    print(
        f"(3) receive, qos 0:     client {sub[0]:9,.0f}/s   bare paho {sub[1]:9,.0f}/s   "
        f"ratio {ratios['receive']:.2f}"
    )
    print("    ratio > 1: the client is faster than bare paho with its own thread")


if __name__ == "__main__":
    main()
