"""The energy schedule in a running node: a subscriber of the feed that writes plans.

Theory of operation
-------------------
`run_schedules` runs one `run_schedule` task per ``[ems.NAME]`` table.
Each is a projection on the node's one bus (docs/architecture.md): it
subscribes to the journal feed for its input paths, and writes what its
`EmsScheduler` asks through the node's group commit, like any writer:

1. read the input paths' winners and the position they are as of
   (`KVView.snapshot`), and subscribe to the feed after that position, so
   no change is missed and none seen twice;
2. wait until a plan is due (`EmsScheduler.next_wakeup`: an input changed
   and the debounce passed, or a slot boundary), or for an input change;
3. build the problem, solve it in a worker thread (one solve at a time in
   the whole node: a Pi has few cores, and the group commit needs a thread
   too), and hand the result or the failure to the scheduler;
4. write its outputs (the plan, the current slot's command, the status) with
   ``source = "ems:NAME"`` and the newest input event as ``cause``, but only
   when this node is the schedule's writer and only a value that differs
   from the path's current one.

**Who writes.** ``writers`` lists the nodes that may write the plan, in
order; the first of them that this node sees live (itself, or a peer with a
sync link up) writes, the others compute the same plan and keep it to
themselves (their status shows it).  Without ``writers``, every node that
has the table writes.  During a partition both sides may write; as the
same inputs give the same plan, byte for byte, and an unchanged value is
never written again, the two writes are equal and the later one wins
without changing anything.

A failure of the schedule's own code (a bug, the journal refusing a write)
is logged, shown in the status, and retried after a back-off; it never ends
the node or another schedule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgpack
import trio

from moat_log.adapters.backoff import Backoff
from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem
from moat_log.journal.subscription import Overflow

from .lp import Plan, ScheduleError, solve, solver_name
from .scheduler import EmsScheduler, Output
from .settings import EmsSettings

if TYPE_CHECKING:
    from moat_log.node._node import Node

__all__ = ["ScheduleRun", "run_schedule", "run_schedules"]

log = logging.getLogger("moat_log.ems")

#: The wall clock, seconds since the epoch (tests give a clock of their own).
WallClock = Callable[[], float]


class ScheduleRun:
    """One schedule in the node: its scheduler and what the node's status shows."""

    def __init__(self, node: Node, settings: EmsSettings, clock: WallClock) -> None:
        self.node = node
        self.settings = settings
        self.clock = clock
        self.scheduler = EmsScheduler(settings)
        self.writing = False
        self.crash: str = ""
        self.writes = 0
        #: Set whenever an input changes (the loop waits on it), then replaced.
        self.changed = trio.Event()
        #: The newest input event the last plan handled followed from.
        self.handled_cause: EventId | None = None
        #: Set (and replaced) whenever a plan was handled.
        self.plan_handled = trio.Event()

    def writer(self) -> str | None:
        """The node that writes this schedule's plan now (None: none of them is live)."""
        if not self.settings.writers:
            return self.node.name
        live = self.node.live_nodes()
        return next((name for name in self.settings.writers if name in live), None)

    def status(self) -> dict[str, Any]:
        status = self.scheduler.status()
        if self.crash:
            status["state"], status["error"] = "error", self.crash
        writer = self.writer()
        status["writer"] = writer or ""
        status["writing"] = writer == self.node.name
        status["writes"] = self.writes
        status["prefix"] = str(self.settings.prefix)
        return status

    def observe(self, event: Event) -> None:
        value = None if event.op is Op.DELETE else event.value
        if self.scheduler.observe(event.path, value, event.id, event.hlc, self.clock()):
            self.changed.set()
            self.changed = trio.Event()


async def run_schedules(
    node: Node,
    schedules: Sequence[EmsSettings],
    *,
    clock: WallClock = time.time,
    task_status: trio.TaskStatus[dict[str, ScheduleRun]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every enabled schedule until cancelled; reports each one's `ScheduleRun`."""
    runs = {s.name: ScheduleRun(node, s, clock) for s in schedules}
    solves = trio.CapacityLimiter(1)
    async with trio.open_nursery() as nursery:
        for run in runs.values():
            if run.settings.enabled:
                nursery.start_soon(_supervise, run, solves)
        task_status.started(runs)


async def _supervise(run: ScheduleRun, solves: trio.CapacityLimiter) -> None:
    backoff = Backoff(first=1.0, maximum=300.0)
    while True:
        started = trio.current_time()
        try:
            await run_schedule(run, solves)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if message != run.crash:
                log.exception("ems %s failed; retrying", run.settings.name)
            run.crash = message
            await trio.sleep(backoff.failed(trio.current_time() - started))


async def run_schedule(run: ScheduleRun, solves: trio.CapacityLimiter) -> None:
    """One run of a schedule: snapshot, subscribe, plan whenever due, until cancelled."""
    node, settings = run.node, run.settings
    inputs = list(settings.inputs.by_name().values())
    position, winners = await node.read(lambda: node.kv.snapshot(inputs, deleted=True))
    for event in winners:
        run.observe(event)
    with node.feed.subscribe(after=position, on_overflow=Overflow.CATCH_UP) as subscription:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_follow, run, subscription)
            await _plan_forever(run, solves)
            nursery.cancel_scope.cancel()


async def _follow(run: ScheduleRun, subscription: Any) -> None:
    inputs = set(run.settings.inputs.by_name().values())
    while True:
        items: list[FeedItem] = await subscription.receive_batch()
        for item in items:
            if item.winner and item.event.path in inputs:
                run.observe(item.event)


async def _plan_forever(run: ScheduleRun, solves: trio.CapacityLimiter) -> None:
    scheduler = run.scheduler
    while True:
        changed = run.changed
        wakeup = scheduler.next_wakeup()
        if wakeup is None or run.clock() < wakeup:
            timeout = float("inf") if wakeup is None else max(wakeup - run.clock(), 0.0)
            with trio.move_on_after(timeout):
                await changed.wait()
            continue
        cause = scheduler.cause()
        outputs = await _plan_once(run, solves)
        run.crash = ""
        await _write(run, outputs)
        run.handled_cause = cause
        run.plan_handled.set()
        run.plan_handled = trio.Event()


async def _plan_once(run: ScheduleRun, solves: trio.CapacityLimiter) -> list[Output]:
    scheduler = run.scheduler
    try:
        problem = scheduler.problem(run.clock())
        plan: Plan = await trio.to_thread.run_sync(solve, problem, limiter=solves)
    except ScheduleError as exc:
        if str(exc) != scheduler.last_error:
            log.warning("ems %s: no new plan: %s", run.settings.name, exc)
        return scheduler.failed(str(exc))
    return scheduler.planned(plan.to_value())


async def _write(run: ScheduleRun, outputs: list[Output]) -> None:
    node = run.node
    if run.writer() != node.name or not outputs:
        return
    paths = [output.path for output in outputs]
    current = await node.read(lambda: [node.kv.get(path) for path in paths])
    for output, event in zip(outputs, current, strict=True):
        if event is not None and event.op is Op.SET and _same(event.value, output.value):
            continue
        change = Change(
            output.path, output.value, source=f"ems:{run.settings.name}", cause=output.cause
        )
        written = await node.write(change)
        run.writes += 1
        if output.path == run.settings.plan_path:
            log.info(
                "ems %s: plan of %d slots from %s, cost %+.4f, written as %s (cause %s)",
                run.settings.name,
                len(output.value["battery_kw"]),
                output.value["start"],
                output.value["cost"],
                written.id,
                output.cause,
            )


def _same(stored: Any, value: Any) -> bool:
    """Equal as moat-log values: the same msgpack bytes (1 and 1.0 differ)."""
    return bool(msgpack.packb(stored) == msgpack.packb(value))


def describe(settings: EmsSettings) -> dict[str, Any]:
    """What a schedule reads and writes (``moat-log ems ls``)."""
    return {
        "inputs": {name: str(path) for name, path in settings.inputs.by_name().items()},
        "plan": str(settings.plan_path),
        "command": str(settings.command_path),
        "status": str(settings.status_path),
        "writers": list(settings.writers),
        "slot": settings.slot,
        "horizon": settings.horizon,
        "solver": _solver(),
    }


def _solver() -> str:
    try:
        return solver_name()
    except ScheduleError as exc:
        return str(exc)
