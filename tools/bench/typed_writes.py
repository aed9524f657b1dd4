"""The cost of typed paths per write, against untyped writes in the same run.

    python tools/bench/typed_writes.py [--writes N] [--rounds R] [--types T] [--json]

Two measurements, each interleaved round by round (the order alternating)
so that load on the machine spreads over both sides alike:

* **the check alone** (`WriteCheck.check`, what every local write calls):
  ns per call for a path without a type, a path typed ``number`` with
  bounds, and a path typed as a map of three keys, with *T* types known;
* **writes through a node** (an embedded node, an in-process client, 64
  tasks writing at once so the group commit batches them, as a busy bus
  does): writes per second to untyped paths and to typed ``number``
  paths, and their ratio.

docs/types.md ("What a check costs") quotes a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

import trio

from moat_log import open_node
from moat_log.event import Event, Op
from moat_log.path import Path
from moat_log.path_types import TypeRegistry
from moat_log.reserved import TYPES
from moat_log.vclock import VectorClock
from moat_log.write_check import WriteCheck

TEMP = {"schema": {"type": "number", "min": -30, "max": 60}, "good": [21.5], "bad": [99]}
SCENE = {
    "schema": {
        "type": "map",
        "keys": {"on": "bool", "dim": {"type": "int", "min": 0, "max": 100}, "name": "string"},
        "optional": ["name"],
    },
    "good": [{"on": True, "dim": 40}],
    "bad": [{"on": 1}],
}


def type_events(count: int) -> list[Event]:
    """*count* types: room temperatures and scenes, plus filler patterns elsewhere."""
    events = []
    patterns: list[tuple[str, dict[str, Any]]] = [("home.+.temp", TEMP), ("home.+.scene", SCENE)]
    patterns += [(f"plant.line{n}.+.level", TEMP) for n in range(max(count - 2, 0))]
    for seq, (pattern, value) in enumerate(patterns, 1):
        path = TYPES + Path.parse(pattern)
        events.append(Event.trusted("b", seq, seq, VectorClock(), path, Op.SET, value, "b", None))
    return events


def time_checks(checks: WriteCheck, path: Path, value: Any, calls: int) -> float:
    """ns per `WriteCheck.check` of *value* at *path*."""
    check, set_op = checks.check, Op.SET
    start = time.perf_counter_ns()
    for _ in range(calls):
        check(path, set_op, value)
    return (time.perf_counter_ns() - start) / calls


def bench_checks(types: int, calls: int, rounds: int) -> dict[str, float]:
    checks = WriteCheck(TypeRegistry(type_events(types)))
    cases = {
        "untyped": (Path.parse("garden.pump.speed"), 21.5),
        "number": (Path.parse("home.kitchen.temp"), 21.5),
        "map": (Path.parse("home.kitchen.scene"), {"on": True, "dim": 40}),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (path, value) in cases.items():
            samples[name].append(time_checks(checks, path, value, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


async def write_many(client: Any, paths: list[str], writes: int) -> float:
    """Writes per second: 64 tasks, each writing its share of *writes* round the *paths*."""
    tasks = 64
    share = writes // tasks

    async def writer(offset: int) -> None:
        for n in range(share):
            await client.set(paths[(offset + n) % len(paths)], 20.0 + (n % 10))

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for offset in range(tasks):
            nursery.start_soon(writer, offset)
    return share * tasks / (time.perf_counter() - start)


async def bench_node(types: int, writes: int, rounds: int) -> dict[str, float]:
    untyped = [f"garden.bed{n}.moisture" for n in range(32)]
    typed = [f"home.room{n}.temp" for n in range(32)]
    rates: dict[str, list[float]] = {"untyped": [], "typed": []}
    with tempfile.TemporaryDirectory() as data_dir:
        async with open_node(data_dir=data_dir, node="bench") as client:
            for event in type_events(types):
                await client.set(event.path, event.value)
            await write_many(client, untyped + typed, writes // 4)  # warm up
            for round_ in range(rounds):
                # alternate which side goes first: a round's second half may find
                # the journal warmer (or the machine busier) than its first
                sides = [("untyped", untyped), ("typed", typed)]
                for name, paths in sides if round_ % 2 == 0 else reversed(sides):
                    rates[name].append(await write_many(client, paths, writes))
    result = {name: statistics.median(values) for name, values in rates.items()}
    result["ratio"] = result["typed"] / result["untyped"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=20_000, help="writes per side and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--types", type=int, default=100, help="types the node knows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    checks = bench_checks(args.types, 200_000, args.rounds * 2)
    node = trio.run(bench_node, args.types, args.writes, args.rounds)
    if args.json:
        print(json.dumps({"check_ns": checks, "node_writes_per_s": node}))
        return
    print(f"the check alone, {args.types} types known (ns per write, median of rounds):")
    for name, ns in checks.items():
        print(f"  {name:<8} {ns:8.0f} ns")
    print(f"writes through an embedded node, 64 tasks, {args.writes} per side and round:")
    print(f"  untyped  {node['untyped']:8.0f} writes/s")
    print(f"  typed    {node['typed']:8.0f} writes/s")
    print(f"  ratio    {node['ratio']:8.3f} (typed / untyped)")


if __name__ == "__main__":
    main()
