"""The side-effect projection runner: batched checkpoints, resume, retry, falling behind.

Every test runs in virtual time (``autojump_clock``): back-offs and
checkpoint intervals of seconds take no time.  A real process killed with
SIGKILL is in test_runner_crash.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import pytest
import trio
import trio.testing

from moat_log.errors import JournalError
from moat_log.journal.change import Change
from moat_log.journal.feed import FeedItem, JournalFeed
from moat_log.journal.group_commit import JournalWriter, open_journal
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections.runner import (
    CheckpointPolicy,
    RetryPolicy,
    RunnerState,
    run_side_effect,
    run_side_effects,
)
from moat_log.projections.side_effect import check_side_effects

#: A checkpoint interval that never comes (a finite one would: the autojump clock jumps
#: to the nearest deadline while a worker thread runs).
NEVER = math.inf


@dataclass
class Recorder:
    """A side-effect projection that records each batch it was given (and when)."""

    name: str = "recorder"
    batches: list[list[int]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    fail_first: int = 0  # attempts that raise before one succeeds
    gate: trio.Event | None = None  # apply waits for it
    _changed: trio.Event = field(default_factory=trio.Event)

    @property
    def positions(self) -> list[int]:
        return [p for batch in self.batches for p in batch]

    async def apply(self, items: Sequence[FeedItem]) -> None:
        self.times.append(trio.current_time())
        self.batches.append([item.position for item in items])
        self._changed.set()
        self._changed = trio.Event()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_first:
            self.fail_first -= 1
            raise OSError("the target is down")

    async def until_attempts(self, count: int) -> None:
        while len(self.batches) < count:
            await self._changed.wait()

    async def until_seen(self, position: int) -> None:
        while not self.batches or self.batches[-1][-1] < position:
            await self._changed.wait()


@dataclass
class Harness:
    writer: JournalWriter
    feed: JournalFeed
    nursery: trio.Nursery
    saves: list[int] = field(default_factory=list)
    saved_checkpoints: dict[str, int] = field(default_factory=dict)
    _saved: trio.Event = field(default_factory=trio.Event)

    def saved(self, name: str, position: int) -> None:
        self.saves.append(position)
        self.saved_checkpoints[name] = position
        self._saved.set()
        self._saved = trio.Event()

    async def until_saved(self, count: int) -> None:
        while len(self.saves) < count:
            await self._saved.wait()

    async def until_checkpoint(self, name: str, position: int) -> None:
        while self.saved_checkpoints.get(name) != position:
            await self._saved.wait()

    @property
    def journal(self) -> Journal:
        return self.writer.journal

    async def write(self, count: int) -> None:
        for i in range(count):
            await self.writer.append(Change(Path(["k", str(i % 7)]), i))

    async def start(self, projection: Recorder, **policies: object) -> RunnerState:
        checkpoint = await trio.to_thread.run_sync(self.journal.checkpoint, projection.name)
        state = RunnerState(projection.name, checkpoint or 0, **policies)  # type: ignore[arg-type]
        self.nursery.start_soon(run_side_effect, self.journal, self.feed, projection, state)
        return state


@asynccontextmanager
async def harness(directory: FsPath) -> AsyncIterator[Harness]:
    async with open_journal(directory, node="a") as writer:
        feed = JournalFeed(writer.journal, poll_interval=3600)  # one writer: no gaps to poll
        writer.on_commit = feed.committed
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed.run)
            running = Harness(writer, feed, nursery)
            save = writer.journal.save_checkpoint

            def counted_save(name: str, position: int) -> None:
                save(name, position)
                trio.from_thread.run_sync(running.saved, name, position)  # a worker thread

            writer.journal.save_checkpoint = counted_save  # type: ignore[method-assign]
            yield running
            nursery.cancel_scope.cancel()


# --- the bookkeeping, without trio -------------------------------------------------


def test_a_checkpoint_is_due_after_enough_items_or_after_the_interval() -> None:
    state = RunnerState("p", 0, policy=CheckpointPolicy(every_items=10, every_seconds=2))
    assert not state.checkpoint_due(100.0)
    state.batch_applied(4, now=100.0)
    assert not state.checkpoint_due(101.9)
    assert state.checkpoint_due(102.0)  # the time bound, counted from the first unsaved batch
    state.batch_applied(10, now=101.0)
    assert state.checkpoint_due(101.0)  # the count bound
    state.checkpoint_saved(10)
    assert not state.checkpoint_due(1000.0)
    assert state.checkpoint_deadline() == float("inf")


def test_back_off_doubles_up_to_its_limit() -> None:
    retry = RetryPolicy(first_delay=0.5, max_delay=4)
    assert [retry.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]
    assert retry.delay(10_000) == 4
    with pytest.raises(ValueError, match="retry delays"):
        RetryPolicy(first_delay=0)


def test_registration_refuses_what_is_no_projection_and_duplicate_names() -> None:
    with pytest.raises(TypeError, match="not a side-effect projection"):
        check_side_effects([object()])
    with pytest.raises(ValueError, match="two side-effect projections are named 'x'"):
        check_side_effects([Recorder("x"), Recorder("x")])
    with pytest.raises(ValueError, match="printable characters without spaces"):
        check_side_effects([Recorder("has space")])


def test_a_checkpoint_never_passes_the_journal_end(tmp_path: FsPath) -> None:
    with Journal.create(tmp_path, "a") as journal:
        journal.append(Change(Path(["k"]), 1))
        journal.save_checkpoint("p", 1)
        assert journal.checkpoint("p") == 1
        assert journal.checkpoints() == {"p": 1}
        with pytest.raises(JournalError, match="beyond the journal's last position 1"):
            journal.save_checkpoint("p", 2)
        assert journal.delete_checkpoint("p")
        assert journal.checkpoint("p") is None


# --- the runner, in virtual time -------------------------------------------------


async def test_checkpoints_are_batched_and_saved_on_stopping(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    projection = Recorder()
    async with harness(tmp_path) as run:
        await run.start(projection, policy=CheckpointPolicy(every_items=10, every_seconds=NEVER))
        await run.write(25)
        await projection.until_seen(25)
    assert projection.positions == list(range(1, 26))
    assert run.saves[-1] == 25, run.saves  # the clean stop saved the rest
    # before it, one save per 10 positions applied at most, not one per event
    assert len(run.saves) <= 3, run.saves
    assert all(b - a >= 10 for a, b in zip([0, *run.saves[:-2]], run.saves[:-1], strict=True))
    with Journal.open(tmp_path) as journal:
        assert journal.checkpoint("recorder") == 25


async def test_an_idle_projection_saves_its_checkpoint_after_the_interval(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    projection = Recorder()
    async with harness(tmp_path) as run:
        await run.write(3)
        await run.start(projection, policy=CheckpointPolicy(every_items=1000, every_seconds=2))
        await projection.until_seen(3)
        applied_at = trio.current_time()
        await trio.sleep(1.5)
        assert run.saves == []
        await run.until_saved(1)  # 2 s after the first unsaved batch, with no new event
        assert run.saves == [3]
        assert trio.current_time() >= applied_at + 2


async def test_a_restarted_runner_resumes_after_its_checkpoint(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    first, second = Recorder(), Recorder()
    async with harness(tmp_path) as run:
        await run.start(first)
        await run.write(5)
        await first.until_seen(5)
    async with harness(tmp_path) as run:
        await run.write(4)  # written while no runner ran
        state = await run.start(second)
        assert state.applied == 5
        await second.until_seen(9)
        await run.write(2)
        await second.until_seen(11)
    assert first.positions == [1, 2, 3, 4, 5]
    assert second.positions == list(range(6, 12))


async def test_a_failing_apply_is_retried_with_the_same_batch_after_a_back_off(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    projection = Recorder(fail_first=3)
    async with harness(tmp_path) as run:
        state = await run.start(projection, retry=RetryPolicy(first_delay=1, max_delay=60))
        await run.write(1)
        await projection.until_attempts(3)
        assert state.state == "retrying"
        assert state.last_error == "OSError: the target is down"
        assert state.status(1)["lag"] == 1  # nothing skipped: the batch is still behind
        await projection.until_attempts(4)
        assert state.state == "running" and state.failures == 0 and state.applied == 1
    assert projection.batches == [[1]] * 4  # the same batch each time, never skipped
    gaps = [later - earlier for earlier, later in itertools.pairwise(projection.times)]
    assert gaps == pytest.approx([1, 2, 4])


async def test_a_failing_projection_does_not_stop_the_others(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    broken, healthy = Recorder("broken", fail_first=10**9), Recorder("healthy")
    async with harness(tmp_path) as run:
        states = await run.nursery.start(run_side_effects, run.journal, run.feed, [broken, healthy])
        await run.write(20)
        await healthy.until_seen(20)
        await run.until_checkpoint("healthy", 20)
        await broken.until_attempts(6)
        assert states["broken"].status(20)["state"] == "retrying"
        assert states["broken"].status(20)["lag"] == 20
        healthy_status = states["healthy"].status(20)
        del healthy_status["checkpoint"]  # saved (above), the task may not know yet
        assert healthy_status == {
            "state": "running",
            "applied": 20,
            "lag": 0,
            "failures": 0,
            "last_error": None,
        }
    assert healthy.positions == list(range(1, 21))
    assert "broken" not in run.saved_checkpoints  # never a checkpoint past a failing batch
    assert {tuple(batch) for batch in broken.batches} == {tuple(broken.batches[0])}


async def test_a_slow_projection_falls_behind_without_slowing_writes_then_catches_up(
    tmp_path: FsPath, autojump_clock: trio.testing.MockClock
) -> None:
    gate = trio.Event()
    projection = Recorder(gate=gate)
    async with harness(tmp_path) as run:
        checkpoint = await trio.to_thread.run_sync(run.journal.checkpoint, projection.name)
        state = RunnerState(projection.name, checkpoint or 0)
        run.nursery.start_soon(
            lambda: run_side_effect(
                run.journal, run.feed, projection, state, batch_items=8, buffer_items=16
            )
        )
        await run.write(1)
        await projection.until_seen(1)  # stuck in apply from here on
        await run.write(200)  # far more than its buffer holds: they never wait for it
        assert not gate.is_set()
        assert state.status(run.feed.position)["lag"] == 201
        gate.set()
        await projection.until_seen(201)
    assert projection.positions == list(range(1, 202))  # caught up from the journal, in order
