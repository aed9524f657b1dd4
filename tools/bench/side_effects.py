"""Side-effect projection checkpoints: their cost, against baselines measured in the same run.

    python tools/bench/side_effects.py [--events N] [--json]

(a) one checkpoint (`Journal.save_checkpoint`, its own small durable
    transaction) vs. one durable single-event commit (`Journal.append`):
    time and bytes written to disk per operation (``/proc/self/io``);
(b) sequential acknowledged appends through the group-commit writer with a
    runner behind the journal whose projection does nothing: checkpoints
    batched (the default policy) and checkpoints after every batch, each
    relative to no runner at all (best of 3 interleaved rounds);
(c) the same for 100 tasks appending at once.

The machines are noisy: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path as FsPath
from typing import Any

import trio

from moat_log.journal.change import Change
from moat_log.journal.feed import FeedItem, JournalFeed
from moat_log.journal.group_commit import JournalWriter, open_journal
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections.runner import CheckpointPolicy, RunnerState, run_side_effect

PATH = Path(["bench", "value"])


def written_bytes() -> int:
    """Bytes this process has caused to be written to storage (Linux)."""
    with open("/proc/self/io") as file:
        for line in file:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def per_operation(count: int, operation: Callable[[int], object]) -> tuple[float, float]:
    """Seconds and bytes written per call of *operation*."""
    before_bytes, start = written_bytes(), time.perf_counter()
    for i in range(count):
        operation(i)
    return (time.perf_counter() - start) / count, (written_bytes() - before_bytes) / count


def bench_checkpoint(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory, Journal.create(directory, "bench") as journal:
        commit_s, commit_b = per_operation(count, lambda i: journal.append(Change(PATH, i)))
        save_s, save_b = per_operation(count, lambda i: journal.save_checkpoint("p", i + 1))
    return {
        "commit_ms": commit_s * 1e3,
        "checkpoint_ms": save_s * 1e3,
        "checkpoint_time_ratio": save_s / commit_s,
        "commit_bytes": commit_b,
        "checkpoint_bytes": save_b,
    }


class Nothing:
    name = "nothing"

    async def apply(self, items: Sequence[FeedItem]) -> None:
        pass


async def appends_per_second(
    events: int, tasks: int, policy: CheckpointPolicy | None
) -> tuple[float, int]:
    """Acknowledged appends/s (and the checkpoints saved) with a runner on *policy* (None: none)."""
    with tempfile.TemporaryDirectory() as directory:
        async with open_journal(FsPath(directory), node="bench") as writer:
            feed = JournalFeed(writer.journal, poll_interval=3600)
            writer.on_commit = feed.committed
            saves = 0
            save = writer.journal.save_checkpoint

            def counted(name: str, position: int) -> None:
                nonlocal saves
                saves += 1
                save(name, position)

            writer.journal.save_checkpoint = counted  # type: ignore[method-assign]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed.run)
                if policy is not None:
                    state = RunnerState("nothing", 0, policy=policy)
                    nursery.start_soon(run_side_effect, writer.journal, feed, Nothing(), state)
                elapsed = await _timed(lambda: _append(writer, events, tasks))
                nursery.cancel_scope.cancel()
    return events / elapsed, saves


async def _timed(work: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def _append(writer: JournalWriter, events: int, tasks: int) -> None:
    async def one_task(count: int) -> None:
        for i in range(count):
            await writer.append(Change(PATH, i))

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(one_task, events // tasks)


async def bench_writes(events: int, tasks: int, rounds: int = 3) -> dict[str, Any]:
    """Each configuration *rounds* times, interleaved (the disk's mood drifts); the best of each."""
    policies = {
        "no_runner": None,
        "batched": CheckpointPolicy(),
        "every_batch": CheckpointPolicy(every_items=1, every_seconds=1e-3),
    }
    best: dict[str, float] = dict.fromkeys(policies, 0.0)
    saves: dict[str, int] = dict.fromkeys(policies, 0)
    for _ in range(rounds):
        for name, policy in policies.items():
            rate, saved = await appends_per_second(events, tasks, policy)
            best[name] = max(best[name], rate)
            saves[name] = saved
    plain = best["no_runner"]
    return {
        "no_runner_per_s": plain,
        "batched_ratio": best["batched"] / plain,
        "batched_checkpoints": saves["batched"],
        "every_batch_ratio": best["every_batch"] / plain,
        "every_batch_checkpoints": saves["every_batch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {
        "checkpoint": bench_checkpoint(min(args.events, 300)),
        "sequential": trio.run(bench_writes, args.events, 1),
        "concurrent": trio.run(bench_writes, args.events * 10, 100),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    cp = results["checkpoint"]
    print(
        f"(a) checkpoint {cp['checkpoint_ms']:.2f} ms vs commit {cp['commit_ms']:.2f} ms "
        f"(ratio {cp['checkpoint_time_ratio']:.2f}); bytes written: checkpoint "
        f"{cp['checkpoint_bytes']:.0f}, commit {cp['commit_bytes']:.0f}"
    )
    for label, key in (("(b) sequential", "sequential"), ("(c) 100 tasks", "concurrent")):
        w = results[key]
        print(
            f"{label}: {w['no_runner_per_s']:.0f} appends/s without a runner; with one: "
            f"batched checkpoints {w['batched_ratio']:.2f} ({w['batched_checkpoints']} saved), "
            f"after every batch {w['every_batch_ratio']:.2f} ({w['every_batch_checkpoints']} saved)"
        )


if __name__ == "__main__":
    main()
