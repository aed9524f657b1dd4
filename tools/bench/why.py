"""``why`` benchmark: a chain of 20 causes in a 1,000,000-event journal.

    python tools/bench/why.py [--events N] [--json]

Builds a journal of realistic bus traffic (`journal.realistic_changes`: a
few hundred devices) with N events (default 1,000,000) through the bulk
path (`Journal.write_batch`, 10,000 a transaction, as ``ingest``), and
threads a chain through it: a bus frame, then 20 writes each caused by the
one before, spread evenly over the journal and written to busy device paths
(so that each step's "what did it overwrite" seek lands in a long history).
Then measures, best of 20:

baseline  20 bare `Journal.get` by id of the chain's events: the least any
          walk of 20 causes costs
why       `explain`: the winner of the path, the 21 steps with each step's
          overwritten event (`replay.winner_before`), the end
          (target: <= 50 ms; the ratio to the baseline is what to compare,
          the machines are noisy)
process   ``moat-log --json why PATH`` as a whole process, start-up included
          (for information)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path as FsPath
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from journal import best_seconds, realistic_changes, scratch_dir, verdict
from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.projections.journal_chain import explain

BATCH = 10_000
CAUSES = 20
REPEAT = 20
TARGET_MS = 50.0
TARGET = Path.parse("bench.why.target")


def build(journal: Journal, count: int) -> list[Event]:
    """*count* events of traffic with a chain of `CAUSES` causes threaded through it.

    Returns the chain, newest first (the target's event, then its causes).
    """
    changes = realistic_changes(count - CAUSES - 1)
    gc.collect()
    gc.freeze()
    segment = max(1, len(changes) // (CAUSES + 1))
    chain: list[Event] = []
    for step in range(CAUSES + 1):
        part = changes[step * segment : (step + 1) * segment if step < CAUSES else None]
        for i in range(0, len(part), BATCH):
            journal.write_batch(part[i : i + BATCH])
        if step == CAUSES:
            path, source = TARGET, "script:bench"
        else:
            path, source = part[-1].path if part else TARGET, "script:bench"
        if step == 0:
            change = Change(path, step, source="knx:1/2/3")
        else:
            change = Change(path, step, source=source, cause=chain[-1].id)
        chain.append(journal.append(change))
    return list(reversed(chain))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="journal size (1,000,000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    count = max(args.events, 2 * (CAUSES + 1))

    with scratch_dir() as directory:
        data_dir = FsPath(directory)
        with open_journal(data_dir, create_node="bench") as journal:
            started = time.perf_counter()
            chain = build(journal, count)
            built = time.perf_counter() - started
            held = journal.stats().events
            ids = [event.id for event in chain[1:]]
            baseline = best_seconds(lambda: [journal.get(i) for i in ids], REPEAT)
            result = explain(journal, TARGET)
            assert result is not None and len(result.steps) == CAUSES + 1, result
            assert result.end.kind.value == "origin", result.end
            walk = best_seconds(lambda: explain(journal, TARGET), REPEAT)
        script = FsPath(sys.executable).with_name("moat-log")
        command = [str(script), "--data-dir", str(data_dir), "--json"]
        started = time.perf_counter()
        done = subprocess.run([*command, "why", str(TARGET)], capture_output=True, check=True)
        process = time.perf_counter() - started
        assert len(json.loads(done.stdout)["steps"]) == CAUSES + 1

    out: dict[str, Any] = {
        "events": held,
        "causes": CAUSES,
        "build_s": built,
        "baseline_ms": baseline * 1000,
        "why_ms": walk * 1000,
        "ratio": walk / baseline,
        "process_ms": process * 1000,
        "target_ms": TARGET_MS,
        "ok": walk * 1000 <= TARGET_MS,
    }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    cores = os.cpu_count()
    print(f"moat-log why benchmark: {held:,} events, a chain of {CAUSES} causes, {cores} cores")
    print(f"    built in {built:.1f} s")
    print(f"baseline  {out['baseline_ms']:8.3f} ms   {CAUSES} bare Journal.get by id")
    print(
        f"why       {out['why_ms']:8.3f} ms   ratio {out['ratio']:.1f}   "
        f"(<= {TARGET_MS:.0f} ms: {verdict(out['ok'])})"
    )
    print(f"process   {out['process_ms']:8.1f} ms   moat-log --json why, start-up included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
