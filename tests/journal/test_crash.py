"""Nothing acknowledged is lost: kill -9 a writing process, reopen, check everything.

A child process (`_crash_child.py`) appends to a journal and prints every
acknowledged event id with its value.  The parent reads acknowledgements, kills
the child with SIGKILL at a random point, reopens the journal and checks that
every acknowledged event is there with its value, that the node's seqs are
gapless, and that events and indexes agree.  Each run appends more to the
same journal.  The seed is printed (shown by pytest on failure); set
``MOAT_LOG_CRASH_SEED`` to replay it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path as FsPath

import pytest

from moat_log.ids import EventId
from moat_log.journal.store import Journal
from moat_log.journal.verify import verify_journal
from moat_log.path import Path

CHILD = FsPath(__file__).with_name("_crash_child.py")
NODE = "crash"
#: A child that has not been killed after this long is stuck: kill it so the
#: test fails with its stderr instead of hanging.
STUCK_AFTER = 60.0


def seeded_random() -> random.Random:
    seed = int(os.environ.get("MOAT_LOG_CRASH_SEED", random.randrange(2**32)))
    print(f"crash test seed: {seed} (replay with MOAT_LOG_CRASH_SEED={seed})")
    return random.Random(seed)


def parse(line: bytes, acked: dict[EventId, str]) -> None:
    if line.endswith(b"\n"):  # a line cut short by the kill acknowledges nothing
        event_id, value = line.decode().rstrip("\n").split(" ", 1)
        acked[EventId.parse(event_id)] = value


def run_and_kill(mode: str, data_dir: FsPath, run: int, kill_after: int) -> dict[EventId, str]:
    """Run the child until it acknowledged *kill_after* events, SIGKILL it, return its acks."""
    acked: dict[EventId, str] = {}
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), mode, str(data_dir), str(run)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert child.stdout is not None
        watchdog = threading.Timer(STUCK_AFTER, child.kill)
        watchdog.start()
        try:
            for line in child.stdout:
                parse(line, acked)
                if len(acked) >= kill_after:
                    break
        finally:
            watchdog.cancel()
            child.send_signal(signal.SIGKILL)
            child.wait()
        for line in child.stdout:  # acknowledged just before the kill
            parse(line, acked)
        child.stdout.close()
        if len(acked) < kill_after:
            stderr.seek(0)
            output = stderr.read().decode(errors="replace")
            pytest.fail(
                f"run {run}: the child ended (returncode {child.returncode}) after "
                f"{len(acked)} of {kill_after} acknowledgements:\n{output}"
            )
    assert child.returncode == -signal.SIGKILL
    return acked


def check_journal(
    data_dir: FsPath, acked: dict[EventId, str], run: int, *, cross_check: bool
) -> None:
    with Journal.open(data_dir) as journal:
        own = journal.summary().seqs(NODE)
        assert list(own.ranges()) == [(1, own.max)], f"run {run}: holes in {own}"
        for event_id, value in acked.items():
            event = journal.get(event_id)
            assert event is not None, f"run {run}: acknowledged {event_id} is lost"
            assert event.value == value, f"run {run}: {event_id} holds another value"

        report = verify_journal(journal)
        assert report.ok, f"run {run}: {report.problems}"
        if not cross_check:
            return
        # Independently of verify_journal: every index leads to the same set
        # of events as the event table.
        ids = [e.id for _, e in journal.scan()]
        assert len(ids) == len(set(ids)) == own.max
        assert sorted(e.id for e in journal.by_origin(NODE)) == sorted(ids)
        assert sorted(e.id for e in journal.by_time()) == sorted(ids)
        assert sorted(e.id for e in journal.history(Path(), subtree=True)) == sorted(ids)


def crash_repeatedly(mode: str, data_dir: FsPath, runs: int, max_acks: int) -> None:
    rng = seeded_random()
    acked: dict[EventId, str] = {}
    for run in range(runs):
        new = run_and_kill(mode, data_dir, run, rng.randint(1, max_acks))
        assert not new.keys() & acked.keys(), f"run {run}: a seq was handed out twice"
        acked |= new
        check_journal(data_dir, acked, run, cross_check=run == runs - 1)


def test_group_commit_survives_kill_9(tmp_path: FsPath) -> None:
    crash_repeatedly("group", tmp_path, runs=25, max_acks=400)


def test_large_batches_from_threads_survive_kill_9(tmp_path: FsPath) -> None:
    crash_repeatedly("batch", tmp_path, runs=10, max_acks=3000)
