"""One node per data directory: an exclusive lock held for the node's lifetime.

The node takes an `flock` on ``DATA_DIR/node.lock`` before it opens the
journal and keeps it until it has closed the journal.  The kernel drops the
lock when the process ends however it ends (``kill -9``, power loss), so a
stale lock file never blocks a restart: only a live holder does.  The file
says who holds it (pid and node name) so that the refusal can name the
holder; its content is informative only, the lock is what counts.

Offline commands (``moat-log log``, ``export``, ``verify``, an offline
``set``) do not take this lock: LMDB lets them read and write beside a node,
and a node picks up what they wrote (docs/node.md).  The lock only keeps a
second *node* away, because two nodes on one journal would each believe
they own the group commit, the feed and the sync links.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path as FsPath
from typing import Final

from moat_log.errors import MoatLogError

__all__ = ["LOCK_NAME", "NodeRunningError", "holding_data_dir"]

#: The lock file in the data directory.
LOCK_NAME: Final = "node.lock"


class NodeRunningError(MoatLogError):
    """Another node already serves this data directory."""


@contextmanager
def holding_data_dir(data_dir: FsPath) -> Iterator[Callable[[str], None]]:
    """Hold the data directory's node lock (creating the directory) for the block.

    The block gets a function to record the node's name in the lock file
    once the journal is open.  Raises `NodeRunningError`, naming the holder,
    if another node holds the lock.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise MoatLogError(f"cannot open the node lock {path}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeRunningError(
                f"another node ({_holder(fd)}) is already serving {data_dir}; stop it first, "
                "or give this one its own data directory"
            ) from None

        def record(node: str) -> None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} node {node}\n".encode(), 0)

        record("?")
        try:
            yield record
        finally:
            os.ftruncate(fd, 0)  # unlocked below; the empty file says nobody holds it
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """What the lock file says of its holder, e.g. ``pi1, pid 1234``."""
    try:
        words = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        words = []
    if len(words) == 4 and words[0] == "pid" and words[2] == "node":
        return f"{words[3]}, pid {words[1]}"
    return "its pid unknown"
