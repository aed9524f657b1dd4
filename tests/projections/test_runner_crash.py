"""Kill -9 a node mid-stream: its side-effect projection skips nothing and repeats only the unsaved.

A child process (`_side_effect_child.py`) runs a node whose side-effect
projection appends each event to a file, while the child writes events.  The
test kills it with SIGKILL once the projection has applied well past its
first checkpoint, restarts it, lets it finish, and checks the target: every
event once, in position order, and redelivered only what came after the
checkpoint saved before the kill.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path as FsPath

import pytest

from moat_log.journal.store import Journal
from moat_log.projections.runner import BATCH_ITEMS, CheckpointPolicy

CHILD = FsPath(__file__).with_name("_side_effect_child.py")
TOTAL = 3000
#: Killed once this much is applied: past the first checkpoint (after 1000 items) for
#: certain.  The batch that crosses 1000 ends by 1000 + 511; the runner saves before it
#: takes the next batch, so "applied 1600" is printed after that save is durable.
KILL_AFTER = 1600
#: A child still running after this long is stuck: kill it so the test fails with its stderr.
STUCK_AFTER = 120.0


def run_child(data_dir: FsPath, target_dir: FsPath, *, kill_after: int | None) -> list[str]:
    """Run the child until it applied *kill_after* (then SIGKILL it) or until it is done."""
    lines: list[str] = []
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), str(target_dir), str(TOTAL)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert child.stdout is not None
        watchdog = threading.Timer(STUCK_AFTER, child.kill)
        watchdog.start()
        try:
            for line in child.stdout:
                lines.append(line.strip())
                applied = int(line.split()[1]) if line.startswith("applied ") else 0
                if kill_after is not None and applied >= kill_after:
                    child.send_signal(signal.SIGKILL)
                    break
        finally:
            watchdog.cancel()
            child.wait()
            child.stdout.close()
        expected = -signal.SIGKILL if kill_after is not None else 0
        if child.returncode != expected:
            stderr.seek(0)
            pytest.fail(
                f"the child ended with {child.returncode}, not {expected}; its output ended "
                f"{lines[-3:]}; its stderr:\n{stderr.read().decode(errors='replace')}"
            )
    return lines


def runs_of(delivered: FsPath) -> list[tuple[int, list[int]]]:
    """The delivered log as ``(checkpoint at start, positions delivered)`` per run."""
    runs: list[tuple[int, list[int]]] = []
    for line in delivered.read_text().splitlines():
        if line.startswith("start "):
            runs.append((int(line.split()[1]), []))
        else:
            runs[-1][1].append(int(line))
    return runs


@pytest.mark.slow
def test_a_killed_node_resumes_its_side_effects_skipping_nothing(tmp_path: FsPath) -> None:
    assert CheckpointPolicy().every_items + BATCH_ITEMS - 1 < KILL_AFTER
    data_dir, target_dir = tmp_path / "data", tmp_path / "target"
    target_dir.mkdir()
    first = run_child(data_dir, target_dir, kill_after=KILL_AFTER)
    assert first[0] == "resumed after 0"
    second = run_child(data_dir, target_dir, kill_after=None)
    last = int(second[-1].removeprefix("done "))
    assert last >= TOTAL

    with Journal.open(data_dir) as journal:
        stored = [f"{position} {event.id}" for position, event in journal.scan()]
        checkpoint = journal.checkpoint("file-target")
    # every event in the target, once, in position order: none skipped, none twice
    assert (target_dir / "target.log").read_text().splitlines() == stored
    assert checkpoint == last  # the clean stop saved the end

    (start_1, delivered_1), (start_2, delivered_2) = runs_of(target_dir / "delivered.log")
    assert start_1 == 0 and delivered_1 == list(range(1, len(delivered_1) + 1))
    killed_at = delivered_1[-1]
    assert second[0] == f"resumed after {start_2}"
    # the second run resumed after a checkpoint saved before the kill (by count, or by
    # time when the machine is slow: the 2 s bound may come first) ...
    assert 0 < start_2 <= killed_at
    # ... and delivered everything after it, in order: again only what was unsaved
    assert delivered_2 == list(range(start_2 + 1, last + 1))
    assert killed_at - start_2 < CheckpointPolicy().every_items + BATCH_ITEMS
