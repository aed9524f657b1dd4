"""The bounded buffer of a followed log."""

from __future__ import annotations

from typing import Final

import trio

from moat_log.event import Event
from moat_log.path import Path

__all__ = ["Subscription"]


class Subscription:
    """The buffer of one watch: events published under *prefix*, at most *size*."""

    def __init__(self, prefix: Path, size: int) -> None:
        self.prefix: Final = prefix
        self.size: Final = size
        self.overflowed = False
        self._send, self._receive = trio.open_memory_channel[Event](size)

    def offer(self, event: Event) -> bool:
        """Buffer *event*; False (and overflowed from now on) if the buffer is full."""
        if self.overflowed:
            return False
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.overflowed = True
            self._send.close()  # wakes a receiver waiting for more
            return False
        return True

    def drain(self) -> list[Event]:
        """Every buffered event, without waiting."""
        events = []
        while True:
            try:
                events.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return events

    async def receive(self) -> Event | None:
        """The next event; None once the subscription overflowed (or closed)."""
        if self.overflowed:
            return None
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return None

    def close(self) -> None:
        self._send.close()
        self._receive.close()
