"""The journal feed: every event a journal stores, in position order, whoever stored it.

Theory of operation
-------------------
Watchers and followed logs must hear of every event the journal stores:
the node's own writes, foreign events arriving by sync, and writes of
*other processes* on the same data directory (an offline ``moat-log set``,
an import).  Positions are gapless and LMDB commits are atomic, so "every
event, in order" is simply "every position, in order".

The feed keeps `position`, the last position handed to its listeners.

* The writer of this process reports each commit (`committed`) right after
  it is durable and before its callers are answered.  When the commit
  starts where the feed stands, its events go to the listeners at once: no
  read, no task switch, no latency.
* When a commit starts *after* the feed's position, somebody else wrote in
  between (a gap).  The commit waits in `_pending`; the `run` task reads the
  gap from the journal (in a worker thread, in chunks), hands it out, then
  the pending commits follow in order.
* Commits by other processes at the end of the journal show no gap until
  the next local commit, so `run` also polls the journal's last position
  every *poll_interval* seconds.

`caught_up(position)` waits until everything up to *position* was handed
out; a watch needs that between reading its dump and going live
(`moat_log.node._watch`).

A listener is a plain function called on the trio thread with a list of
consecutive events.  It must not block and must not raise; one that raises
is logged and the others still hear of the events.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

import trio

from moat_log.errors import JournalCorruptError, MoatLogError
from moat_log.event import Event

from .store import Journal

__all__ = ["JournalFeed", "Listener"]

log = logging.getLogger("moat_log.journal")

Listener = Callable[[Sequence[Event]], None]

#: Events read from the journal per worker-thread call while filling a gap.
GAP_CHUNK: Final = 1024
#: How often the feed looks for commits of other processes at the journal's end.
POLL_INTERVAL: Final = 0.25


class JournalFeed:
    """Hands every event stored in *journal* after *position* to the listeners."""

    def __init__(
        self, journal: Journal, *, position: int | None = None, poll_interval: float = POLL_INTERVAL
    ) -> None:
        self.journal: Final = journal
        #: The last position handed to the listeners.
        self.position = journal.last_position if position is None else position
        self._poll_interval = poll_interval
        self._listeners: list[Listener] = []
        self._pending: deque[tuple[int, Sequence[Event]]] = deque()
        self._waiters: list[tuple[int, trio.Event]] = []
        self._wakeup = trio.Event()
        self._failure = ""  # the last error reported by `run`

    @property
    def poll_interval(self) -> float:
        """Seconds between looks for other processes' commits."""
        return self._poll_interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        """Change the interval; it applies at once, not after the wait under way."""
        self._poll_interval = seconds
        self._wakeup.set()

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # --- input --------------------------------------------------------------

    def committed(self, after: int, events: Sequence[Event]) -> None:
        """This process committed *events* at positions ``after + 1`` ... (in commit order)."""
        if events:
            self._pending.append((after, events))
            self._drain()

    async def caught_up(self, position: int) -> None:
        """Wait until every event up to *position* was handed to the listeners."""
        if position <= self.position:
            return
        done = trio.Event()
        self._waiters.append((position, done))
        self._wakeup.set()  # it may be another process's write: look now
        await done.wait()

    # --- the task -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fill gaps and pick up other processes' commits, until cancelled."""
        task_status.started()
        while True:
            with trio.move_on_after(self._poll_interval):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            try:
                await self._fill_gaps()
            except MoatLogError as exc:  # a damaged journal: say so (once), keep trying
                if str(exc) != self._failure:
                    self._failure = str(exc)
                    log.error(  # noqa: TRY400 - the message says it all; no traceback per poll
                        "the journal feed cannot read past position %d: %s", self.position, exc
                    )
            else:
                self._failure = ""

    async def _fill_gaps(self) -> None:
        while True:
            if self._pending:
                target = self._pending[0][0]
            else:
                target = await trio.to_thread.run_sync(lambda: self.journal.last_position)
            start = self.position + 1
            if target < start:
                return
            end = min(target, start + GAP_CHUNK - 1)
            events = await trio.to_thread.run_sync(self._read, start, end)
            if len(events) != end - start + 1:
                raise JournalCorruptError(
                    f"positions {start}..{end} should all hold events, "
                    f"{len(events)} do; run 'moat-log verify'"
                )
            # While we read, the writer may have reported a commit that the
            # read also found (committed before the read began, reported
            # after it): the position moved past part of what we read.
            handed_out = self.position - (start - 1)
            self._hand_out(events[handed_out:], self.position)
            self._drain()

    def _read(self, start: int, end: int) -> list[Event]:
        return [event for _, event in self.journal.scan(start, end)]

    # --- output ---------------------------------------------------------------

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            after, events = pending[0]
            if after + len(events) <= self.position:
                pending.popleft()  # the gap reader got these already
                continue
            if after > self.position:
                self._wakeup.set()  # somebody else wrote in between: read it
                break
            assert after == self.position, "commits overlap"
            pending.popleft()
            self._hand_out(events, after)

    def _hand_out(self, events: Sequence[Event], after: int) -> None:
        if not events:
            return
        for listener in list(self._listeners):
            try:
                listener(events)
            except Exception:
                log.exception("a journal feed listener failed; it missed %d events", len(events))
        self.position = after + len(events)
        if self._waiters:
            waiting = []
            for position, done in self._waiters:
                if position <= self.position:
                    done.set()
                else:
                    waiting.append((position, done))
            self._waiters = waiting
