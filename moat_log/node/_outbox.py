"""The frames waiting to be sent on one client connection, in order.

The connection's writer task is the only one that writes to the socket; it
`take`s everything queued at once (up to `COALESCE_BYTES`) and sends it as
one piece.  Producers queue frames in two ways:

* `send` (request tasks streaming items) waits while `limit` frames are
  queued, so a client that stops reading stops the producers instead of
  making the node buffer for it;
* `put` (replies produced in callbacks, e.g. when a write commits) never
  waits.  The reader calls `wait_for_room` before it reads more requests,
  so a client that sends requests without reading the replies is held off
  by TCP flow control, and what `put` adds stays bounded.

After `close` nothing more is accepted; the writer sends what is queued
and `take` returns None.  `broken` (the writer is gone) makes `send` and
`wait_for_room` raise `trio.ClosedResourceError` instead of waiting forever.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import trio

from moat_log.streams import COALESCE_BYTES

__all__ = ["Outbox"]


class Outbox:
    """Frames for one connection's writer task."""

    def __init__(self, limit: int) -> None:
        self.limit: Final = limit
        self._frames: deque[bytes] = deque()
        self._ready = trio.Event()  # set when a frame was queued (or closed)
        self._room = trio.Event()  # set when the writer took frames (or broke)
        self._closed = False
        self._broken = False

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: bytes) -> bool:
        """Queue *frame* without waiting; False if the outbox is closed (dropped)."""
        if self._closed:
            return False
        if frame:
            self._frames.append(frame)
            self._ready.set()
        return True

    async def send(self, frame: bytes) -> None:
        """Queue *frame* once fewer than `limit` frames wait."""
        await self.wait_for_room()
        if not self.put(frame):
            raise trio.ClosedResourceError("the connection is closing")

    async def wait_for_room(self) -> None:
        """Wait while `limit` or more frames are queued."""
        while len(self._frames) >= self.limit:
            if self._broken:
                raise trio.ClosedResourceError("the connection's writer is gone")
            await self._room.wait()
        if self._broken:
            raise trio.ClosedResourceError("the connection's writer is gone")

    def close(self) -> None:
        """Accept nothing more; `take` returns None once the queue is empty."""
        self._closed = True
        self._ready.set()

    def broken(self) -> None:
        """The writer is gone: release everybody waiting, refuse everything."""
        self._closed = self._broken = True
        self._frames.clear()
        self._room.set()

    async def take(self) -> bytes | None:
        """For the writer: everything queued (up to `COALESCE_BYTES`); None at the end."""
        frames = self._frames
        while not frames:
            if self._closed:
                return None
            await self._ready.wait()
            self._ready = trio.Event()
        parts = [frames.popleft()]
        size = len(parts[0])
        while frames and size < COALESCE_BYTES:
            size += len(frames[0])
            parts.append(frames.popleft())
        room, self._room = self._room, trio.Event()
        room.set()
        return parts[0] if len(parts) == 1 else b"".join(parts)
