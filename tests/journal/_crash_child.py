"""Child process of test_crash: appends to a journal until it is killed.

    python _crash_child.py MODE DATA_DIR RUN

MODE ``group``: many trio tasks append one change at a time through
`open_journal` (group commit).  MODE ``batch``: two threads call
`Journal.write_batch` directly with large batches.

After every acknowledgement (the append or batch returned) the child writes
one line ``ORIGIN:SEQ VALUE`` per event to stdout and flushes it, so every
line the parent reads names an event the journal promised to keep.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import traceback

import trio

from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.journal.group_commit import open_journal
from moat_log.journal.store import Journal
from moat_log.path import Path

NODE = "crash"
TASKS = 64
THREADS = 2


def acknowledge(lines: list[str]) -> None:
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


async def group_commit(data_dir: str, run: int) -> None:
    async with open_journal(data_dir, node=NODE) as writer:

        async def appender(task: int) -> None:
            for i in itertools.count():
                value = f"{run}/{task}/{i}/" + "g" * ((task * 31 + i * 7) % 400)
                event = await writer.append(Change(Path(("crash", task % 7)), value))
                acknowledge([f"{event.id} {value}\n"])

        async with trio.open_nursery() as nursery:
            for task in range(TASKS):
                nursery.start_soon(appender, task)


def large_batches(data_dir: str, run: int) -> None:
    journal = Journal.create(data_dir, NODE)
    lock = threading.Lock()

    def writer(thread: int) -> None:
        try:
            write_forever(thread)
        except BaseException:
            traceback.print_exc()
            os._exit(1)  # a refused item is a failure: let the parent see it at once

    def write_forever(thread: int) -> None:
        for number in itertools.count():
            size = 100 + (number * 337 + thread * 101 + run * 53) % 900
            changes = [
                Change(
                    Path(("bulk", thread, i % 13)),
                    f"{run}/{thread}/{number}/{i}/" + "b" * ((i * 13) % 300),
                )
                for i in range(size)
            ]
            results = journal.write_batch(changes)
            events = [e for e in results if isinstance(e, Event)]
            if len(events) != len(changes):
                raise RuntimeError(f"refused items in a batch: {results}")
            with lock:
                acknowledge([f"{e.id} {c.value}\n" for e, c in zip(events, changes, strict=True)])

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    mode, data_dir, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "group":
        trio.run(group_commit, data_dir, run)
    elif mode == "batch":
        large_batches(data_dir, run)
    else:
        raise SystemExit(f"unknown mode {mode!r}: use 'group' or 'batch'")


if __name__ == "__main__":
    main()
