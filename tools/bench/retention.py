"""Retention benchmark: compaction against a full export, and a year of one sensor on disk.

    python tools/bench/retention.py [--events N] [--days D] [--json]

(a) A journal of N events (default 1,000,000): 100 sensors with readings
    every 10 s, all older than the raw window.  Baseline: ``export`` of the
    whole journal to a file, in the same run.  Then one compaction (1-hour
    roll-ups, everything confirmed) removes all but the sensors' latest
    readings.  Target: compaction's rate (events of the journal per second)
    >= 0.5 of the export's.
(b) One sensor every 10 s for D days (default 365) with a 30-day raw
    window and hourly roll-ups: the journal's size on disk (a compacting
    copy, LMDB's pages in use) before and after compaction.

Compare ratios, not absolute numbers: the machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from journal import rate, scratch_dir, verdict
from moat_log.journal.change import Change
from moat_log.journal.compaction import PathPattern, RetentionRule
from moat_log.journal.export import export_journal
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import kv_view, open_journal
from moat_log.projections.compactor import compact_journal

BATCH = 10_000
SECOND = 10**9
DAY = 86400 * SECOND
HOUR = 3600 * SECOND


def readings(start: int, count: int, sensors: int, every: int) -> Iterator[list[Change]]:
    """*count* readings round-robin over *sensors*, one per *every* ns per sensor, in batches."""
    batch: list[Change] = []
    for i in range(count):
        sensor, step = i % sensors, i // sensors
        at = start + step * every + sensor + 1
        value = 20.0 + (step % 100) / 10
        batch.append(
            Change(Path(("home", f"room{sensor}", "temp")), value, source="knx:1/2/3", at=at)
        )
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def build(data_dir: FsPath, start: int, count: int, sensors: int) -> Journal:
    journal = open_journal(data_dir, create_node="bench")
    for batch in readings(start, count, sensors, 10 * SECOND):
        journal.write_batch(batch)
    return journal


def disk_bytes(journal: Journal, where: FsPath) -> int:
    """The size of a compacting copy: the pages the journal uses, not its file's high mark."""
    where.mkdir()
    journal.copy_to(where)
    return os.stat(where / "data.mdb").st_size


def bench_compaction(count: int) -> dict[str, Any]:
    sensors = 100
    with scratch_dir() as d:
        start = time.time_ns() - 400 * DAY
        journal = build(d / "journal", start, count, sensors)
        with journal:
            began = time.perf_counter()
            export_journal(journal, d / "all.moatlog")
            export_s = time.perf_counter() - began
            rule = RetentionRule("temps", (PathPattern.parse("home.+.temp"),), DAY, HOUR)
            began = time.perf_counter()
            report = compact_journal(journal, kv_view(journal), [rule], now=time.time_ns())
            compact_s = time.perf_counter() - began
    export_rate, compact_rate = rate(count, export_s), rate(count, compact_s)
    return {
        "events": count,
        "export_per_s": round(export_rate),
        "compact_per_s": round(compact_rate),
        "ratio": round(compact_rate / export_rate, 2),
        "removed": report.removed,
        "rollups": report.rollups,
    }


def bench_year(days: int) -> dict[str, Any]:
    count = days * 86400 // 10
    with scratch_dir() as d:
        now = time.time_ns()
        journal = build(d / "journal", now - days * DAY, count, 1)
        with journal:
            raw = disk_bytes(journal, d / "raw-copy")
            rule = RetentionRule("temps", (PathPattern.parse("home.+.temp"),), 30 * DAY, HOUR)
            report = compact_journal(journal, kv_view(journal), [rule], now=now)
            kept = disk_bytes(journal, d / "compacted-copy")
            stats = journal.stats()
    return {
        "days": days,
        "readings": count,
        "raw_bytes": raw,
        "compacted_bytes": kept,
        "ratio": round(kept / raw, 4),
        "events_left": stats.events,
        "rollups": report.rollups,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events for (a)")
    parser.add_argument("--days", type=int, default=365, help="days of one sensor for (b)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    a = bench_compaction(args.events)
    b = bench_year(args.days)
    if args.json:
        print(json.dumps({"compaction": a, "year": b}))
        return 0
    print(
        f"(a) {a['events']:,} events: export {a['export_per_s']:,}/s, "
        f"compaction {a['compact_per_s']:,}/s ({a['removed']:,} removed, "
        f"{a['rollups']:,} roll-ups): ratio {a['ratio']} (target >= 0.5) "
        f"{verdict(a['ratio'] >= 0.5)}"
    )
    print(
        f"(b) {b['days']} days of one sensor every 10 s ({b['readings']:,} readings): "
        f"raw {b['raw_bytes']:,} bytes, after compaction (30-day raw window, hourly "
        f"roll-ups) {b['compacted_bytes']:,} bytes: ratio {b['ratio']} "
        f"({b['events_left']:,} events left, {b['rollups']:,} roll-ups)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
