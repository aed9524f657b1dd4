"""Replay benchmark: ``replay --until``, ``diff`` and restore against a raw scan.

    python tools/bench/replay.py [--quick] [--json]

Builds journals of realistic bus traffic (`journal.realistic_changes`: 400
devices) with 1,000,000 events (``--quick``: 200,000) and one fifth of that,
then measures, as events of the journal per second:

baseline  a raw LMDB cursor over every stored event plus ``msgpack.unpackb``
          of each: the cost of merely reading the events once
(a) replay as of now and as of the middle of the history, diff middle..now
    and the restore changes back to the middle (target: >= 300,000 events/s)
(b) the same journal size spread over many paths (four events per path),
    the worst case for replay's per-path seeks: it steps through every entry
(c) peak memory of replay (tracemalloc) for the two journal sizes: it must
    not grow with the number of events (target: ratio about 1)
(d) ``moat-log replay --until now --json`` as a whole process, start-up included

Replay costs O(paths), not O(events), when paths have long histories (see
docs/replay.md), so (a)'s rate grows with the journal.  Compare the ratios to
the baseline, not the absolute numbers: the machines are noisy.  The inputs
are built first and moved out of the garbage collector's way (`gc.freeze`,
see journal.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from journal import best_seconds, rate, realistic_changes, scratch_dir, verdict
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.projections.replay import diff, replay, restore_changes

BATCH = 10_000  # events per transaction while building, as `ingest` writes


def build(data_dir: FsPath, changes: list[Change]) -> None:
    """A journal of node "bench" holding *changes*, with the node's views."""
    with open_journal(data_dir, create_node="bench") as journal:
        for i in range(0, len(changes), BATCH):
            journal.write_batch(changes[i : i + BATCH])


def many_paths(changes: list[Change]) -> list[Change]:
    """The same values and sources, spread over len/4 paths."""
    paths = max(1, len(changes) // 4)
    return [
        Change(Path(("many", f"dev{i % paths}", "value")), c.value, source=c.source)
        for i, c in enumerate(changes)
    ]


def bench_baseline(journal: Journal) -> float:
    """Every stored event read by one raw LMDB cursor and unpacked."""
    env, events_db = journal._env, journal._dbs["events"]

    def scan() -> None:
        unpackb = msgpack.unpackb
        with env.begin() as txn:
            for _, data in txn.cursor(db=events_db):
                unpackb(data)

    return rate(journal.last_position, best_seconds(scan))


def bench_replay(journal: Journal) -> dict[str, float]:
    events = journal.last_position
    first, last = _first_and_last_hlc(journal)
    middle = (first + last) // 2
    runs: dict[str, Callable[[], object]] = {
        "replay_now": lambda: replay(journal),
        "replay_middle": lambda: replay(journal, middle),
        "diff": lambda: diff(journal, middle, None),
        "restore_changes": lambda: restore_changes(journal, middle, source="bench"),
    }
    return {name: rate(events, best_seconds(work)) for name, work in runs.items()}


def _first_and_last_hlc(journal: Journal) -> tuple[int, int]:
    first = next(journal.by_time())
    last = next(journal.by_time(reverse=True))
    return first.hlc, last.hlc


def peak_memory(journal: Journal) -> tuple[int, int]:
    """Peak bytes allocated during one replay as of now, and the paths replayed."""
    gc.collect()
    tracemalloc.start()
    try:
        state = replay(journal)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, len(state)


def bench_cli(data_dir: FsPath) -> float:
    exe = FsPath(sys.executable).with_name("moat-log")
    argv = [str(exe), "--data-dir", str(data_dir), "replay", "--until", "now", "--json"]

    def run() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    return best_seconds(run)


def measure(big: int) -> dict[str, Any]:
    sizes = [big // 5, big]
    inputs = {size: realistic_changes(size) for size in sizes}
    spread = many_paths(inputs[big])
    gc.collect()
    gc.freeze()
    out: dict[str, Any] = {"events": big, "sizes": sizes, "memory": {}}
    with scratch_dir() as d:
        for size in sizes:
            build(d / str(size), inputs[size])
        build(d / "many", spread)
        with Journal.open(d / str(big)) as journal:
            out["baseline_per_s"] = bench_baseline(journal)
            out["a"] = bench_replay(journal)
        with Journal.open(d / "many") as journal:
            out["b"] = {"paths": len(spread) // 4, **bench_replay(journal)}
        for size in sizes:
            with Journal.open(d / str(size)) as journal:
                peak, paths = peak_memory(journal)
            out["memory"][str(size)] = {"peak_bytes": peak, "paths": paths}
        with Journal.open(d / "many") as journal:
            peak, paths = peak_memory(journal)
        out["memory"]["many"] = {"peak_bytes": peak, "paths": paths}
        out["d_cli_seconds"] = bench_cli(d / str(big))
    return out


def report(out: dict[str, Any]) -> None:
    big, base = out["events"], out["baseline_per_s"]
    print(f"moat-log replay benchmark: {big:,} realistic events, {os.cpu_count()} cores")
    print(f"baseline               {base:>14,.0f} ev/s   raw LMDB cursor + msgpack.unpackb")
    for label, key in (("(a) 400 paths", "a"), (f"(b) {out['b']['paths']:,} paths", "b")):
        print(label)
        for name, per_s in out[key].items():
            if name == "paths":
                continue
            print(
                f"    {name:<18} {per_s:>14,.0f} ev/s   ratio {per_s / base:8.2f}"
                f"   (>= 300,000/s: {verdict(per_s >= 300_000)})"
            )
    memory = out["memory"]
    small, large = (memory[str(size)] for size in out["sizes"])
    growth = large["peak_bytes"] / small["peak_bytes"]
    print(
        f"(c) peak memory        {out['sizes'][0]:,} events: {small['peak_bytes'] / 1024:,.0f} KiB"
        f"   {out['sizes'][1]:,} events: {large['peak_bytes'] / 1024:,.0f} KiB"
        f"   ratio {growth:.2f} ({large['paths']} paths; "
        f"does not grow with events: {verdict(growth < 1.5)})"
    )
    many = memory["many"]
    print(
        f"    many paths         {many['paths']:,} paths: {many['peak_bytes'] / 1024:,.0f} KiB"
        f"   ({many['peak_bytes'] / many['paths']:,.0f} bytes per path)"
    )
    print(f"(d) CLI                replay --until now --json: {out['d_cli_seconds']:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200,000 events instead of 1,000,000")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    out = measure(200_000 if args.quick else 1_000_000)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
