"""Node or journal: where ``set``, ``delete``, ``get``, ``ls``, ``watch`` and ``status`` work.

Theory of operation
-------------------
`open_access` connects to the node that serves the data directory (its Unix
socket ``DATA_DIR/moat-log.sock``), or to the node named by ``--connect``.
When nothing listens on the data directory's socket it opens the journal
instead; with ``--connect`` there is no fallback, and a node that does not
answer is an error.

`NodeAccess` and `JournalAccess` answer the same questions with the same
values, so that a command prints the same output either way:

* `Access.current` is a path's winning event, a tombstone included.  The
  node's ``get`` answers None for a deleted path too; the tombstone is then
  the newest event of the path's ``history`` (one more request): the path
  index is in ``(hlc, origin)`` order, the order that picks the winner.
* `Access.write` returns the new event's id and hlc (`Written`): all that
  the node's reply holds.
* `Access.watch` yields the subtree's current events, `LIVE`, then each
  event that becomes the winner of its path.  The node pushes them; on the
  journal, this process runs the node's own watch code
  (`moat_log.projections.watch`) on a journal feed of its own, which looks
  for what other processes store every `FOLLOW_INTERVAL` seconds.  It is
  no node (it takes no lock): a node may start on the data directory
  meanwhile.

A node started later picks up what was written on the journal meanwhile:
every writer (a node's group commit, or this process) takes the next seq and
the clock from the journal inside its own write transaction, so none is
reused.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import asyncclick as click
import trio

from moat_log.client import Client, NodeConnectionError, NodeNotRunningError, open_client
from moat_log.errors import InvalidInputError
from moat_log.event import Event, Op
from moat_log.path import Path, Segment
from moat_log.protocol import LIVE, LiveMarker, Written
from moat_log.streams import single_errors_unwrapped

from ._main import FOLLOW_INTERVAL, PASSWORD_ENV, TOKEN_ENV, Settings

if TYPE_CHECKING:  # the journal (LMDB, the views) is imported only without a node
    from moat_log.journal.change import Change
    from moat_log.journal.store import Journal
    from moat_log.projections.watch import SubtreeWatch

__all__ = ["Access", "JournalAccess", "NodeAccess", "open_access"]

WatchItem = Event | LiveMarker


class Access(Protocol):
    """What the commands that may go through a node need, from the node or the journal."""

    @property
    def via(self) -> Literal["node", "journal"]:
        """``"node"`` or ``"journal"``: where the answers come from."""

    async def write(self, change: Change, durability: str | None = None) -> Written:
        """Append *change*; the new event's id and hlc once it is on disk.

        *durability* (``"sync"``, ``"batched"``) is for a node; the journal
        commits every write on its own anyway.
        """

    async def current(self, path: Path) -> Event | None:
        """The winning event of *path* (a tombstone if deleted), None if never set."""

    async def children(self, prefix: Path) -> list[Segment]:
        """The segments below *prefix* that lead to a value, in key order."""

    async def subtree(self, prefix: Path) -> list[Event]:
        """The current events of *prefix* and every path below it with a value."""

    def watch(self, prefix: Path) -> AbstractAsyncContextManager[AsyncIterator[WatchItem]]:
        """The subtree's current events, then `LIVE`, then each new winner."""

    async def status(self) -> dict[str, Any]:
        """The status map of the protocol plus ``running``."""


class NodeAccess:
    """The answers of a running node."""

    via: Final = "node"

    def __init__(self, client: Client) -> None:
        self._client = client

    async def write(self, change: Change, durability: str | None = None) -> Written:
        client, path, source, cause = self._client, change.path, change.source, change.cause
        if change.op is Op.DELETE:
            return await client.delete(path, source=source, cause=cause, durability=durability)
        return await client.set(
            path, change.value, source=source, cause=cause, durability=durability
        )

    async def current(self, path: Path) -> Event | None:
        event = await self._client.get(path)
        if event is not None:
            return event
        async with self._client.history(path, limit=1) as newest:
            events = [event async for event in newest]
        return events[-1] if events else None

    async def children(self, prefix: Path) -> list[Segment]:
        return await self._client.list(prefix)

    async def subtree(self, prefix: Path) -> list[Event]:
        async with self._client.subtree(prefix) as events:
            return [event async for event in events]

    def watch(self, prefix: Path) -> AbstractAsyncContextManager[AsyncIterator[WatchItem]]:
        return self._client.watch(prefix)

    async def status(self) -> dict[str, Any]:
        result = await self._client.status()
        result["running"] = True
        return result


class JournalAccess:
    """The answers of the journal itself, read and written by this process."""

    via: Final = "journal"

    def __init__(self, journal: Journal) -> None:
        from moat_log.projections import kv_view

        self._journal = journal
        self._kv = kv_view(journal)

    async def write(self, change: Change, durability: str | None = None) -> Written:
        event = self._journal.append(change)
        return Written(event.id, event.hlc)

    async def current(self, path: Path) -> Event | None:
        return self._kv.get(path)

    async def children(self, prefix: Path) -> list[Segment]:
        return self._kv.children(prefix)

    async def subtree(self, prefix: Path) -> list[Event]:
        return list(self._kv.walk(prefix))

    @asynccontextmanager
    async def watch(self, prefix: Path) -> AsyncIterator[AsyncIterator[WatchItem]]:
        from moat_log.journal.feed import JournalFeed, Overflow
        from moat_log.journal.subscription import DEFAULT_LIMIT
        from moat_log.projections.watch import SubtreeWatch

        feed = JournalFeed(self._journal, poll_interval=FOLLOW_INTERVAL)
        with single_errors_unwrapped():
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run)
                # A reader of the journal's end holds no one's memory: on overflow
                # it reads on from the journal instead of ending.
                with SubtreeWatch(
                    feed, self._kv, prefix, limit=DEFAULT_LIMIT, on_overflow=Overflow.CATCH_UP
                ) as watch:
                    async with aclosing(_watch_items(watch)) as items:
                        yield items
                nursery.cancel_scope.cancel()

    async def status(self) -> dict[str, Any]:
        journal = self._journal
        stats, views = journal.stats(), journal.views()
        return {
            "running": False,
            "node": stats.node,
            "clock": stats.clock,
            "journal": {
                "path": str(journal.path),
                "events": stats.events,
                "last_position": stats.last_position,
                "file_bytes": stats.file_bytes,
            },
            "views": {
                name: {"version": version, "checkpoint": checkpoint}
                for name, (version, checkpoint) in sorted(views.items())
            },
        }


async def _watch_items(watch: SubtreeWatch) -> AsyncGenerator[WatchItem]:
    """The subtree, `LIVE`, then each new winner; ends only when closed."""
    async for event in watch.dump():
        yield event
    yield LIVE
    async for item in watch.changes():
        yield item.event


@asynccontextmanager
async def open_access(settings: Settings) -> AsyncIterator[Access]:
    """The node serving *settings*' data directory (or ``--connect``), else the journal."""
    async with AsyncExitStack() as stack:
        client = await _connect(stack, settings)
        if client is not None:
            yield NodeAccess(client)
        else:
            yield JournalAccess(stack.enter_context(settings.journal()))


async def running_node_status(settings: Settings, option: str) -> dict[str, Any]:
    """The running node's status; an error naming *option* (a config file) when none runs."""
    async with open_access(settings) as access:
        status = await access.status()
    if not status.get("running"):
        raise click.ClickException(
            f"no node is running on this data directory; give {option} FILE to read a "
            "config instead"
        )
    return status


async def _connect(stack: AsyncExitStack, settings: Settings) -> Client | None:
    """A client of the node; None when no node serves the data directory."""
    if settings.connect is None:
        try:
            return await stack.enter_async_context(open_client(data_dir=settings.data_dir))
        except NodeNotRunningError:
            return None
    if settings.password is not None and settings.token is not None:
        raise InvalidInputError(
            f"both a password and ${TOKEN_ENV} are set: a login uses one of them, "
            "so unset the one you do not mean"
        )
    try:
        return await stack.enter_async_context(
            open_client(
                connect=settings.connect,
                user=settings.user,
                password=settings.password,
                token=settings.token,
            )
        )
    except NodeNotRunningError:
        raise
    except NodeConnectionError as exc:
        if settings.user is not None and (settings.password or settings.token):
            raise
        raise NodeConnectionError(
            f"{exc} (on the command line: --user NAME with ${PASSWORD_ENV}, "
            f"--password-file FILE or ${TOKEN_ENV})"
        ) from exc
