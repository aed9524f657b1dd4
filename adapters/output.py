"""The out direction of an adapter: owned paths' changes to its bus, behind the journal.

`AdapterOutput` is a side-effect projection (`moat_log.projections.side_effect`)
named ``adapter:NAME``, so the node's runner delivers every stored event to
it in journal order, from its checkpoint on, at least once.  It keeps the
changes that win a path the adapter owns and hands them to the adapter's
current `BusSession`:

* while the bus is away, `apply` waits for the next session (the runner
  shows the growing ``lag``; nothing is dropped and the journal's writers
  never wait for it);
* a session that fails while sending is dropped and the same changes go to
  the next one;
* changes at or before the session's `BusSession.start_position` are
  skipped: the session repaired its bus from a snapshot that included them.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from moat_log.errors import BusUnavailableError
from moat_log.journal.item import FeedItem

from .contract import Adapter, BusSession

__all__ = ["AdapterOutput", "output_name"]


def output_name(adapter_name: str) -> str:
    """The checkpoint name of an adapter's output projection."""
    return f"adapter:{adapter_name}"


class AdapterOutput:
    """Feeds an adapter's sessions with the changes of the paths it owns."""

    #: A new adapter starts after the journal's last event: the history of its paths
    #: is no command for its bus (a bus that holds state gets it by a repair).
    start_at_end = True

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self._session: BusSession | None = None
        self._attached = trio.Event()

    @property
    def name(self) -> str:
        return output_name(self.adapter.name)

    def attach(self, session: BusSession) -> None:
        """*session* is connected: send to it from now on."""
        self._session = session
        self._attached.set()

    def detach(self, session: BusSession | None = None) -> None:
        """The session (any, if None) is gone: wait for the next one."""
        if session is None or session is self._session:
            self._session = None
            if self._attached.is_set():
                self._attached = trio.Event()

    async def apply(self, items: Sequence[FeedItem]) -> None:
        owns = self.adapter.owns
        owned = [item for item in items if item.winner and owns(item.event.path)]
        while owned:
            session = self._session
            if session is None:
                await self._attached.wait()
                continue
            start = session.start_position
            pending = [item for item in owned if item.position > start]
            if not pending:
                return
            try:
                await session.send(pending)
            except BusUnavailableError:
                self.detach(session)
            else:
                return
