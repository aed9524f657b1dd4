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
  journal, `_journal_changes` reads the events stored after the dump's
  position every `FOLLOW_INTERVAL` seconds and keeps those that `NewWinners`
  finds newer than the path's winner so far.

A node started later picks up what was written on the journal meanwhile:
every writer (a node's group commit, or this process) takes the next seq and
the clock from the journal inside its own write transaction, so none is
reused.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import trio

from moat_log.client import Client, NodeConnectionError, NodeNotRunningError, open_client
from moat_log.errors import InvalidInputError
from moat_log.event import Event, Op
from moat_log.path import Path, Segment
from moat_log.protocol import LIVE, LiveMarker, Written

from ._main import FOLLOW_INTERVAL, PASSWORD_ENV, TOKEN_ENV, Settings

if TYPE_CHECKING:  # the journal (LMDB, the views) is imported only without a node
    from moat_log.journal.change import Change
    from moat_log.journal.store import Journal

__all__ = ["Access", "JournalAccess", "NewWinners", "NodeAccess", "open_access"]

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
        async with aclosing(_journal_changes(self._journal, prefix)) as changes:
            yield changes

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


class NewWinners:
    """Which stored events become the winner of their path under *prefix* (sans-io).

    Tell it the dump's winners (`dumped`), then ask `is_news` for every event
    stored after the dump's position, in position order.  An event is news
    when its ``(hlc, origin)`` is greater than that of its path's winner so
    far (docs/kv-view.md); the dump may already hold events stored after its
    position, which are then not news again.
    """

    def __init__(self, prefix: Path) -> None:
        self.prefix: Final = prefix
        self._winners: dict[Path, tuple[int, str]] = {}

    def dumped(self, event: Event) -> None:
        self._winners[event.path] = (event.hlc, event.origin)

    def is_news(self, event: Event) -> bool:
        if not self.prefix.is_prefix_of(event.path):
            return False
        rank = (event.hlc, event.origin)
        winner = self._winners.get(event.path)
        if winner is not None and rank <= winner:
            return False
        self._winners[event.path] = rank
        return True


async def _journal_changes(journal: Journal, prefix: Path) -> AsyncGenerator[WatchItem]:
    """The subtree, `LIVE`, then new winners as the journal is polled; never ends."""
    # Read the position first: every event stored up to it is in the dump, and
    # every later one is either in the dump too (then not news) or scanned.
    from moat_log.projections import kv_view

    position = journal.last_position
    winners = NewWinners(prefix)
    for event in kv_view(journal).walk(prefix, deleted=True):
        winners.dumped(event)
        if event.op is Op.SET:
            yield event
    yield LIVE
    while True:
        await trio.sleep(FOLLOW_INTERVAL)
        last = journal.last_position
        for _, event in journal.scan(position + 1, last):
            if winners.is_news(event):
                yield event
        position = last


@asynccontextmanager
async def open_access(settings: Settings) -> AsyncIterator[Access]:
    """The node serving *settings*' data directory (or ``--connect``), else the journal."""
    async with AsyncExitStack() as stack:
        client = await _connect(stack, settings)
        if client is not None:
            yield NodeAccess(client)
        else:
            yield JournalAccess(stack.enter_context(settings.journal()))


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
