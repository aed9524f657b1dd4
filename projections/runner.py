"""The side-effect projection runner: each projection behind the journal, with its checkpoint.

Theory of operation
-------------------
One task per projection (`run_side_effect`) subscribes to the journal feed
after the projection's checkpoint, takes batches of consecutive items and
hands each to `SideEffectProjection.apply` (`moat_log.projections.side_effect`).
When `apply` returns, the batch is *applied*; the checkpoint, stored in the
journal's meta (`Journal.save_checkpoint`), follows now and then:

* once `CheckpointPolicy.every_items` positions were applied since the last
  save, or `CheckpointPolicy.every_seconds` after the first unsaved batch
  (whichever comes first), even when no more events come;
* before waiting out a retry, and when the runner stops (cancelled).

A checkpoint is one small write transaction of its own, run in a worker
thread, never the group-commit writer's (docs/decisions.md, "Side-effect
checkpoints"), and it is only ever the position of a batch whose `apply`
returned.  After a crash the runner resumes after the saved checkpoint:
at most the batches applied since are delivered again, nothing is skipped.

An `apply` that raises is logged, shown in the status (``retrying`` with the
error), and retried with the same batch after an exponential back-off
(`RetryPolicy`); other projections and the node go on.  So does a failure of
the runner itself (a damaged journal record, a checkpoint that cannot be
written): it resubscribes after a back-off from the last applied position.

A slow projection never slows the journal's writers: its subscription
buffers a bounded number of items and then, with `Overflow.CATCH_UP`, reads
on from the journal, so the projection falls behind (its ``lag``) and
catches up when it can.

`RunnerState` is the bookkeeping, without trio and without the journal.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import trio

from moat_log.journal.feed import JournalFeed
from moat_log.journal.item import FeedItem
from moat_log.journal.store import Journal
from moat_log.journal.subscription import Overflow

from .side_effect import SideEffectProjection, check_side_effects

__all__ = [
    "CheckpointPolicy",
    "RetryPolicy",
    "RunnerState",
    "run_side_effect",
    "run_side_effects",
    "side_effect_status",
]

log = logging.getLogger("moat_log.projections")

#: Items handed to one `apply` at most.
BATCH_ITEMS: Final = 512
#: Items a projection's subscription buffers before it reads from the journal instead.
BUFFER_ITEMS: Final = 4096


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """How often the checkpoint is saved: bounds what a crash delivers again."""

    every_items: int = 1000
    every_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.every_items < 1 or not self.every_seconds > 0:
            raise ValueError(
                "a checkpoint policy saves after at least 1 item and more than 0 seconds, "
                f"not {self.every_items} items, {self.every_seconds} s"
            )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The back-off between attempts: *first_delay*, doubling up to *max_delay* seconds."""

    first_delay: float = 0.5
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay:
            raise ValueError(
                f"retry delays need 0 < first ({self.first_delay}) <= max ({self.max_delay})"
            )

    def delay(self, failures: int) -> float:
        """Seconds to wait after the *failures*-th failure in a row (1, 2, ...)."""
        doubled: float = self.first_delay * 2.0 ** min(failures - 1, 62)
        return min(doubled, self.max_delay)


class RunnerState:
    """What the runner of one projection knows: applied, saved, failing (sans-io).

    *checkpoint* is the position saved in the journal when it starts (0: none).
    Times are the caller's clock (`trio.current_time`), in seconds.
    """

    def __init__(
        self,
        name: str,
        checkpoint: int,
        *,
        policy: CheckpointPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name: Final = name
        self.policy: Final = policy or CheckpointPolicy()
        self.retry: Final = retry or RetryPolicy()
        #: Every position up to here was applied (`apply` returned).
        self.applied = checkpoint
        #: The position saved in the journal.
        self.checkpoint = checkpoint
        #: ``running``, ``retrying`` (after a failure) or ``stopped``.
        self.state = "running"
        #: Failures in a row; 0 once an attempt succeeds.
        self.failures = 0
        #: The last failure's message (kept after recovery, for the operator).
        self.last_error: str | None = None
        self._unsaved_since: float | None = None

    @property
    def unsaved(self) -> int:
        """Positions applied but not yet covered by the saved checkpoint."""
        return self.applied - self.checkpoint

    def batch_applied(self, position: int, now: float) -> None:
        """`apply` returned for the batch ending at *position*."""
        assert position > self.applied, "batches move forward"
        self.applied = position
        self.state = "running"
        self.failures = 0
        if self._unsaved_since is None:
            self._unsaved_since = now

    def checkpoint_deadline(self) -> float:
        """When the time bound wants a save (``math.inf``: nothing unsaved)."""
        if self._unsaved_since is None:
            return math.inf
        return self._unsaved_since + self.policy.every_seconds

    def checkpoint_due(self, now: float) -> bool:
        """Whether to save the checkpoint now."""
        if not self.unsaved:
            return False
        return self.unsaved >= self.policy.every_items or now >= self.checkpoint_deadline()

    def checkpoint_saved(self, position: int) -> None:
        """The checkpoint *position* is durable."""
        self.checkpoint = position
        if position >= self.applied:
            self._unsaved_since = None

    def failed(self, error: str) -> float:
        """An attempt failed with *error*; returns the seconds to wait before the next."""
        self.failures += 1
        self.state = "retrying"
        self.last_error = error
        return self.retry.delay(self.failures)

    def status(self, last_position: int) -> dict[str, Any]:
        """The projection's entry in the node's status map (docs/client-protocol.md)."""
        return {
            "state": self.state,
            "applied": self.applied,
            "checkpoint": self.checkpoint,
            "lag": max(last_position - self.applied, 0),
            "failures": self.failures,
            "last_error": self.last_error,
        }


def side_effect_status(
    states: dict[str, RunnerState], checkpoints: dict[str, int], last_position: int
) -> dict[str, dict[str, Any]]:
    """The status entry of every side-effect projection, by name.

    *states* are the runners of this process; *checkpoints* what the journal
    holds (`Journal.checkpoints`), whose projections without a runner here
    are ``not running``.
    """
    entries = {name: state.status(last_position) for name, state in states.items()}
    for name, checkpoint in checkpoints.items():
        if name not in entries:
            entries[name] = RunnerState(name, checkpoint).status(last_position)
            entries[name]["state"] = "not running"
    return dict(sorted(entries.items()))


def _checkpoint_at_end(journal: Journal, name: str) -> int:
    end = journal.last_position
    journal.save_checkpoint(name, end)
    return end


def starts_at_end(projection: SideEffectProjection) -> bool:
    """Whether a new *projection* (no checkpoint yet) starts after the journal's last event."""
    return bool(getattr(projection, "start_at_end", False))


async def run_side_effects(
    journal: Journal,
    feed: JournalFeed,
    projections: Sequence[SideEffectProjection],
    *,
    policy: CheckpointPolicy | None = None,
    retry: RetryPolicy | None = None,
    task_status: trio.TaskStatus[dict[str, RunnerState]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every projection behind *feed* until cancelled; reports their states when started."""
    projections = check_side_effects(projections)
    saved = await trio.to_thread.run_sync(journal.checkpoints)
    for projection in projections:
        if projection.name not in saved and starts_at_end(projection):
            # saved at once: a projection that applies nothing before the node stops
            # (its bus was away) must not start at the end again next time
            saved[projection.name] = await trio.to_thread.run_sync(
                _checkpoint_at_end, journal, projection.name
            )
    states = {
        p.name: RunnerState(p.name, saved.get(p.name, 0), policy=policy, retry=retry)
        for p in projections
    }
    async with trio.open_nursery() as nursery:
        for projection in projections:
            nursery.start_soon(run_side_effect, journal, feed, projection, states[projection.name])
        task_status.started(states)


async def run_side_effect(
    journal: Journal,
    feed: JournalFeed,
    projection: SideEffectProjection,
    state: RunnerState,
    *,
    batch_items: int = BATCH_ITEMS,
    buffer_items: int = BUFFER_ITEMS,
) -> None:
    """Run *projection* from ``state.applied`` on until cancelled; then save its checkpoint.

    It hands `apply` at most *batch_items* items at once; its subscription
    buffers at most *buffer_items* before it reads from the journal instead.
    """
    runner = _Runner(journal, feed, projection, state)
    try:
        while True:
            try:
                await runner.follow(batch_items, buffer_items)
            except Exception as exc:  # the runner's own failure: never the node's
                delay = state.failed(f"{type(exc).__name__}: {exc}")
                log.exception(
                    "side-effect projection %s: the runner failed at position %d; "
                    "retrying in %.1f s",
                    state.name,
                    state.applied,
                    delay,
                )
                await trio.sleep(delay)
    finally:
        state.state = "stopped"
        with trio.CancelScope(shield=True):
            await runner.save_quietly()


@dataclass(frozen=True, slots=True)
class _Runner:
    journal: Journal
    feed: JournalFeed
    projection: SideEffectProjection
    state: RunnerState

    async def follow(self, batch_items: int, buffer_items: int) -> None:
        """Subscribe after the applied position; apply and checkpoint until cancelled."""
        state = self.state
        with self.feed.subscribe(
            after=state.applied, limit=buffer_items, on_overflow=Overflow.CATCH_UP
        ) as subscription:
            while True:
                items: list[FeedItem] = []
                # Waiting for items is safe to cancel (nothing is taken); apply is not.
                with trio.move_on_at(state.checkpoint_deadline()):
                    items = await subscription.receive_batch(batch_items)
                if items:
                    await self.apply(items)
                if state.checkpoint_due(trio.current_time()):
                    await self.save()

    async def apply(self, items: list[FeedItem]) -> None:
        """Apply *items* until `apply` returns, backing off between failed attempts."""
        state = self.state
        while True:
            try:
                await self.projection.apply(items)
            except Exception as exc:
                delay = state.failed(f"{type(exc).__name__}: {exc}")
                log.warning(
                    "side-effect projection %s failed on positions %d..%d (attempt %d): %s; "
                    "retrying in %.1f s",
                    state.name,
                    items[0].position,
                    items[-1].position,
                    state.failures,
                    state.last_error,
                    delay,
                    exc_info=exc,
                )
                if state.unsaved:
                    await self.save()  # what did work survives a crash while we wait
                await trio.sleep(delay)
            else:
                state.batch_applied(items[-1].position, trio.current_time())
                return

    async def save(self) -> None:
        position = self.state.applied
        await trio.to_thread.run_sync(self.journal.save_checkpoint, self.state.name, position)
        self.state.checkpoint_saved(position)

    async def save_quietly(self) -> None:
        """Save what is unsaved on the way out; a failure only costs redelivery."""
        state = self.state
        if not state.unsaved:
            return
        try:
            await self.save()
        except Exception:
            log.exception(
                "side-effect projection %s: cannot save its checkpoint %d on stopping; "
                "the events since %d will be applied again",
                state.name,
                state.applied,
                state.checkpoint,
            )
