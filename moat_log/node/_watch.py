"""Watching subtrees: the publish hub and the catch-up between dump and live stream.

Theory of operation
-------------------
A watch sends the current subtree, then the live marker, then every change
(docs/client-protocol.md, "watch"), with no change lost and none sent twice.
The node achieves that in three steps:

1. **Subscribe first.**  From then on every event the node commits under the
   prefix, and that is the path's winner when it is published, is offered to
   the watch's `Subscription` (a bounded buffer).
2. **Dump** the KV view's winners chunk by chunk.  The dump and the live
   events overlap: an event committed while the dump runs may or may not be
   in the chunk that holds its path.  `CatchUp` decides.  Winners of a path
   only grow (by ``(hlc, origin)``), so a buffered event is already reflected
   in the dump exactly when the winner the dump read for its path is at
   least as great.  The caller makes sure every event committed before a
   chunk was read has been published (and so buffered) before it hands the
   chunk to `CatchUp.dumped`; events published later were committed after
   the read and are newer than anything in the chunk.
3. **Live.**  Send the marker, then the buffered events that survived, then
   whatever the subscription receives.

A watcher that falls behind by more than its buffer is not allowed to hold
memory: its subscription overflows and the watch ends with ``overflow``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import trio

from moat_log.event import Event
from moat_log.path import Path

__all__ = ["CatchUp", "Subscription", "WatchHub"]


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


class WatchHub:
    """Hands committed events to the subscriptions whose prefix covers their path."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, prefix: Path, size: int) -> Subscription:
        """A new subscription; `unsubscribe` it when the watch ends."""
        subscription = Subscription(prefix, size)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def interested(self, path: Path) -> bool:
        """True if some subscription covers *path* (so publishing is worth a look)."""
        return any(sub.prefix.is_prefix_of(path) for sub in self._subscriptions)

    def publish(self, event: Event) -> None:
        """Offer *event* to every subscription under whose prefix it falls."""
        for subscription in self._subscriptions:
            if subscription.prefix.is_prefix_of(event.path):
                subscription.offer(event)


def _sort_key(event: Event) -> tuple[int, str]:
    return event.hlc, event.origin


class CatchUp:
    """Live events buffered during a watch's dump, minus those the dump already holds.

    Pure bookkeeping, see the module docstring: `buffer` the events published
    since the subscription, tell it each winner the dump read (`dumped`,
    deleted paths included), and send `remaining` after the live marker.
    """

    def __init__(self) -> None:
        self._events: list[Event | None] = []  # None: dropped
        self._by_path: dict[Path, list[int]] = {}
        self._kept = 0

    def __len__(self) -> int:
        """The number of buffered events still to be sent."""
        return self._kept

    def buffer(self, event: Event) -> None:
        self._by_path.setdefault(event.path, []).append(len(self._events))
        self._events.append(event)
        self._kept += 1

    def dumped(self, winner: Event) -> None:
        """The dump read *winner* for its path: drop the buffered events it reflects."""
        indices = self._by_path.pop(winner.path, None)
        if indices is None:
            return
        read = _sort_key(winner)
        later = []
        for index in indices:
            event = self._events[index]
            assert event is not None
            if _sort_key(event) <= read:
                self._events[index] = None
                self._kept -= 1
            else:
                later.append(index)
        if later:
            self._by_path[winner.path] = later

    def remaining(self) -> Iterator[Event]:
        """The events to send after the live marker, in the order they were published."""
        return (event for event in self._events if event is not None)
