"""One sync link to a running node, run to its end: ``moat-log pull`` and ``ship``.

Theory of operation
-------------------
The journal is opened here (no node runs on it) with the group-commit
writer and the feed, as a node would, and one `Replicator` link is dialled
to the remote node's sync port.  The link is one-way (see
`moat_log.sync.link.OneWay`):

* **pull** offers nothing (an empty summary: the remote asks for nothing)
  and fetches what the remote's summary offers and the journal lacks.  It
  is done when the journal holds all of that (``missing_here`` is 0).
* **ship** offers the journal's summary, fetches nothing, and asks in its
  hello for a ``have`` (docs/sync-protocol.md): the remote sends it once it
  stored everything it lacked, and that is the end.

Both are resumable for free: the summaries name what each side holds, so a
second run transfers only what is still missing (often nothing).  At the
end the link is cancelled, which sends the goodbye ``shutdown``.  A link
that ends before (wrong secret, a conflict, the remote stopping) is a
`SyncLinkError` with the remote's reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio

from ..address import join_host_port
from ..errors import SyncLinkError
from ..idset import IdSet
from ..journal.store import Journal
from .link import LinkEnded, OneWay, PeerStatus, Replicator, replicating

__all__ = ["Progress", "Transfer", "run_one_link"]

#: Called with (events done, events in all) as the transfer goes on.
Progress = Callable[[int, int], None]

_NO_PROGRESS: Final[Progress] = lambda done, total: None  # noqa: E731


@dataclass(frozen=True, slots=True)
class Transfer:
    """What one ``pull`` or ``ship`` moved."""

    peer: str
    events: int  # fetched (pull) or sent (ship)
    bytes_in: int
    bytes_out: int
    seconds: float


async def run_one_link(
    journal: Journal,
    address: tuple[str, int],
    secret: bytes,
    direction: OneWay,
    *,
    progress: Progress | None = None,
) -> Transfer:
    """Pull from or ship to the node at *address* (its sync port) until done."""
    host, port = address
    where = join_host_port(host, port)
    started = time.monotonic()
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        cause = exc.__cause__
        if isinstance(cause, BaseExceptionGroup):  # trio's: one per address tried
            cause = cause.exceptions[-1]
        if not isinstance(cause, OSError):
            cause = exc
        raise SyncLinkError(
            f"cannot connect to the sync port {where}: {cause.strerror or cause} "
            "(is the node running, with [sync] listen on that address?)"
        ) from None
    async with replicating(journal, secret, one_way=direction) as replicator:
        offered = journal.summary() if direction == "ship" else IdSet()
        done = _Done(direction, offered, progress or _NO_PROGRESS)
        ended = await _run_until(replicator, stream, done)
    if done.status is None:
        assert ended is not None
        raise SyncLinkError(
            f"the link with {ended.peer or where} ended before the {direction} was done: "
            f"{ended.reason}: {ended.message}"
        )
    stats = done.status.stats
    moved = stats.events_in if direction == "pull" else stats.events_out
    done.progress(moved, max(moved, done.total))
    return Transfer(
        done.status.peer, moved, stats.bytes_in, stats.bytes_out, time.monotonic() - started
    )


async def _run_until(
    replicator: Replicator, stream: trio.SocketStream, done: _Done
) -> LinkEnded | None:
    """Run the link until *done* holds (None) or the link ends (how it ended)."""
    ended: LinkEnded | None = None
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            await replicator.wait_until(done)
            nursery.cancel_scope.cancel()  # the link says goodbye (shutdown)

        nursery.start_soon(watch)
        ended = await replicator.run_link(stream, dialled=True)
        nursery.cancel_scope.cancel()
    return None if done.status is not None else ended


class _Done:
    """The end condition of a one-way link, reporting progress as it is checked."""

    def __init__(self, direction: OneWay, offered: IdSet, progress: Progress) -> None:
        self.direction = direction
        self.offered = offered
        self.progress = progress
        self.total = -1  # known once the link is live
        self.status: PeerStatus | None = None

    def __call__(self, replicator: Replicator) -> bool:
        peers = list(replicator.peers().values())
        if not peers:
            return False
        [status] = peers
        if self.direction == "pull":
            if self.total < 0:
                self.total = status.missing_here
            self.progress(self.total - status.missing_here, self.total)
            finished = status.missing_here == 0
        else:
            if self.total < 0:
                self.total = (self.offered - status.held).count
            self.progress(min(status.stats.events_out, self.total), self.total)
            finished = status.has is not None
        if finished:
            self.status = status
        return finished
