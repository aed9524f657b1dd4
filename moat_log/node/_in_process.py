"""Connections from the node's own process: a listener fed by socket pairs.

A script that embeds a node talks to it with the same `Client` as any other
script, over the same protocol: `InProcessListener.connect` makes a
``socket.socketpair()``, hands one end to the node's accept loop as if a
client had connected, and returns the other.  The node serves it like a
connection on its Unix socket (local: no login), except that it never times
out waiting for the first request (a script may idle before it asks
anything).  No bytes leave the process.
"""

from __future__ import annotations

import math
import socket

import trio

from moat_log.client import NodeConnectionError

__all__ = ["InProcessListener"]


def _stream(sock: socket.socket) -> trio.SocketStream:
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


class InProcessListener(trio.abc.Listener[trio.SocketStream]):
    """Accepts the connections that `connect` makes in this process."""

    #: The peer name the node's log gives these connections.
    PEER = "in-process"
    #: Seconds an in-process connection may wait before its first request.
    HANDSHAKE_TIMEOUT = math.inf

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.SocketStream](math.inf)

    def connect(self) -> trio.SocketStream:
        """A new connection to the node: the client's end of a socket pair."""
        ours, theirs = socket.socketpair()
        try:
            self._send.send_nowait(_stream(theirs))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            ours.close()
            theirs.close()
            raise NodeConnectionError("the node has stopped; it takes no connections") from None
        return _stream(ours)

    async def accept(self) -> trio.SocketStream:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("the in-process listener is closed") from None

    async def aclose(self) -> None:
        """Take no more connections; close those made but not accepted yet."""
        self._send.close()
        while True:
            try:
                pending = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            await trio.aclose_forcefully(pending)
        self._receive.close()
        await trio.lowlevel.checkpoint()
