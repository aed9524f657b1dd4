"""Sync benchmark: the bytes a catch-up costs, against the zstd size of what was missing.

    python tools/bench/sync_bytes.py [--events N] [--origins K] [--json]

Node A's journal holds N bus-like events (K origins); node B's is empty.
The two run the sans-io `SyncConnection`s against real journals (reads with
`Journal.by_origin`, inserts with `Journal.write_batch`), and every byte the
connections produce is counted, both directions.  Targets (issue 4):

(a) bytes for the catch-up <= 1.5 x the zstd-compressed size (level 3, one
    frame) of the missing events' packed bytes;
(b) an in-sync reconnect transfers no events, only hellos, proofs and
    summaries.

The time printed is for the sans-io pair in one thread, journals included;
it is not the loopback figure of the issue (that needs the trio shell).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path as FsPath
from typing import Any

import zstandard

from moat_log.event import Event
from moat_log.journal.store import Journal
from moat_log.projections import open_journal
from moat_log.protocol.framing import NEED_DATA
from moat_log.sync import (
    EventsReceived,
    EventsWanted,
    Holdings,
    SyncConnection,
    read_batch,
)
from moat_log.sync.batches import ZSTD_LEVEL
from moat_log.testing import bus_traffic

SECRET = b"benchmark cluster secret, 32 b!!"


def fill(directory: FsPath, target: Journal, events: int, origins: int) -> None:
    """Write *events* bus events from *origins* origins into *target*."""
    rng = random.Random(4)
    per_origin = events // origins
    for index in range(origins):
        origin = (
            target
            if index == 0
            else open_journal(directory / f"o{index}", create_node=f"pi{index + 1}")
        )
        count = per_origin + (events % origins if index == 0 else 0)
        for start in range(0, count, 10_000):
            origin.write_batch(bus_traffic(rng, min(10_000, count - start)))
        if origin is not target:
            for chunk in _chunks((event for _, event in origin.scan()), 10_000):
                target.write_batch(chunk)
            origin.close()


def _chunks(events: Any, size: int) -> Any:
    chunk: list[Event] = []
    for event in events:
        chunk.append(event)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_link(a: Journal, b: Journal) -> dict[str, int]:
    """Two connections over the journals until nothing moves; what crossed."""
    ends = []
    for journal in (a, b):
        holdings = Holdings(journal.summary())
        ends.append((journal, holdings, SyncConnection(journal.node, SECRET, holdings)))
    wire = 0
    moved = True
    while moved:
        moved = False
        for (journal, holdings, conn), (_, _, peer) in zip(ends, reversed(ends), strict=True):
            data = conn.data_to_send()
            if data:
                wire += len(data)
                peer.receive_data(data)
                moved = True
            while (event := conn.next_event()) is not NEED_DATA:
                moved = True
                if isinstance(event, EventsWanted):
                    conn.send_batch(event.request_id, read_batch(event.seqs, journal.by_origin))
                elif isinstance(event, EventsReceived):
                    journal.write_batch(list(event.events))
                    holdings.stored(event.events)
                    if event.request_id is not None:
                        conn.batch_stored(event.request_id)
    stats = [conn.stats for _, _, conn in ends]
    return {
        "bytes": wire,
        "events": sum(s.events_in for s in stats),
        "wants": sum(s.wants_out for s in stats),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--origins", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = FsPath(tmp)
        a = open_journal(directory / "a", create_node="pi1")
        b = open_journal(directory / "b", create_node="pi9")
        fill(directory, a, args.events, args.origins)
        raw = b"".join(data for _, data in a.scan_raw())
        compressed = len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw))
        started = time.perf_counter()
        catch_up = run_link(a, b)
        elapsed = time.perf_counter() - started
        assert b.summary() == a.summary(), "B did not catch up"
        reconnect = run_link(a, b)
        a.close()
        b.close()
    figures = {
        "events": args.events,
        "origins": args.origins,
        "raw_bytes": len(raw),
        "zstd_bytes": compressed,
        "catch_up_bytes": catch_up["bytes"],
        "catch_up_events": catch_up["events"],
        "catch_up_wants": catch_up["wants"],
        "ratio": round(catch_up["bytes"] / compressed, 3),
        "catch_up_seconds": round(elapsed, 2),
        "reconnect_bytes": reconnect["bytes"],
        "reconnect_events": reconnect["events"],
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"catch-up of {args.events:,} events from {args.origins} origins")
        print(f"  packed events          {len(raw):>12,} bytes")
        print(f"  zstd -{ZSTD_LEVEL}, one frame      {compressed:>12,} bytes")
        print(
            f"  on the wire            {catch_up['bytes']:>12,} bytes ({catch_up['wants']} wants)"
        )
        print(f"  ratio                  {figures['ratio']:>12}   (target <= 1.5)")
        print(f"  time, sans-io pair     {elapsed:>12.2f} s  (journals included)")
        print(f"in-sync reconnect: {reconnect['bytes']} bytes, {reconnect['events']} events")
    ok = figures["ratio"] <= 1.5 and reconnect["events"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
