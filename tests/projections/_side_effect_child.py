"""A node with a side-effect projection whose target is a file; killed by test_runner_crash.py.

Usage: _side_effect_child.py DATA_DIR TARGET_DIR TOTAL

Runs a node on DATA_DIR with `FileTarget` registered and writes events
(from several tasks at once) until the journal holds TOTAL, waits until the
target has applied them all, prints ``done LAST`` and stops the node.

The target keeps two files in TARGET_DIR, each written with one ``write``
and an fsync per batch:

* ``delivered.log``: every position handed to ``apply``, as delivered, with a
  line ``start CHECKPOINT`` each time the process starts: the test reads
  redeliveries from it;
* ``target.log``: ``POSITION EVENT_ID`` per event, deduplicated by position
  (the idempotent target): the test checks it is exact.

It prints ``resumed after CHECKPOINT`` at start and ``applied POSITION``
after each batch, so the test waits on what the child did, not on time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path as FsPath

import trio

from moat_log.journal.feed import FeedItem
from moat_log.journal.store import Journal
from moat_log.node import open_node
from moat_log.path import Path

NAME = "file-target"
WRITERS = 16


def last_position_in(path: FsPath) -> int:
    """The last position the target file holds (0 if none)."""
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    return int(lines[-1].split()[0]) if lines else 0


def append_synced(path: FsPath, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class FileTarget:
    """Appends one line per event to a file, skipping positions it already holds."""

    name = NAME

    def __init__(self, directory: FsPath) -> None:
        self._delivered = directory / "delivered.log"
        self._target = directory / "target.log"
        self.last = last_position_in(self._target)
        self._changed = trio.Event()

    async def apply(self, items: Sequence[FeedItem]) -> None:
        append_synced(self._delivered, "".join(f"{item.position}\n" for item in items))
        new = [item for item in items if item.position > self.last]
        if new:
            append_synced(self._target, "".join(f"{i.position} {i.event.id}\n" for i in new))
            self.last = new[-1].position
        print(f"applied {items[-1].position}", flush=True)
        self._changed.set()
        self._changed = trio.Event()

    async def until_applied(self, position: int) -> None:
        while self.last < position:
            await self._changed.wait()


async def main(data_dir: FsPath, target_dir: FsPath, total: int) -> None:
    target = FileTarget(target_dir)
    checkpoint = 0
    if (data_dir / "journal" / "data.mdb").exists():
        with Journal.open(data_dir) as journal:
            checkpoint = journal.checkpoint(NAME) or 0
    append_synced(target_dir / "delivered.log", f"start {checkpoint}\n")
    print(f"resumed after {checkpoint}", flush=True)
    async with open_node(data_dir=data_dir, node="crashy", projections=[target]) as client:
        status = await client.status()
        remaining = total - status["journal"]["last_position"]

        async def writer(number: int) -> None:
            nonlocal remaining
            value = 0
            while remaining > 0:
                remaining -= 1
                value += 1
                await client.set(Path(["w", str(number)]), value)

        async with trio.open_nursery() as nursery:
            for number in range(WRITERS):
                nursery.start_soon(writer, number)
        last = (await client.status())["journal"]["last_position"]
        await target.until_applied(last)
        print(f"done {last}", flush=True)


if __name__ == "__main__":
    trio.run(main, FsPath(sys.argv[1]), FsPath(sys.argv[2]), int(sys.argv[3]))
