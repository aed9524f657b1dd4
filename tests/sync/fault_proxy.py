"""A TCP proxy between two nodes that the test cuts, stalls one way, and re-aims.

One `LinkProxy` stands for one sync link: the dialling node has the proxy's
address as its peer, and the proxy forwards to the listening node's current
address (`aim`; None while that node is down).  Faults:

* `cut`: every connection through it ends at once (bytes in flight are lost,
  as in a partition); new connections are held, unanswered, until `heal`,
  so the dialler finds the link again as soon as the partition ends;
* `stall(direction)`: bytes one way are held back (the other way flows)
  until `unstall`; ``"to_listener"`` or ``"to_dialler"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import trio

DIRECTIONS: Final = ("to_listener", "to_dialler")


@dataclass
class LinkProxy:
    name: str
    target: tuple[str, int] | None = None
    is_cut: bool = False
    stalled: set[str] = field(default_factory=set)
    port: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)
    _connections: set[trio.CancelScope] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _drop_all(self) -> None:
        for scope in self._connections:
            scope.cancel()

    def aim(self, address: str | None) -> None:
        """Forward to *address* (``HOST:PORT``) from now on; None: that node is down."""
        self._drop_all()
        if address is None:
            self.target = None
        else:
            host, _, port = address.rpartition(":")
            self.target = (host, int(port))
        self._notify()

    def cut(self) -> None:
        self.is_cut = True
        self._drop_all()
        self._notify()

    def heal(self) -> None:
        self.is_cut = False
        self._notify()

    def stall(self, direction: str) -> None:
        assert direction in DIRECTIONS
        self.stalled.add(direction)
        self._notify()

    def unstall(self) -> None:
        self.stalled.clear()
        self._notify()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listener.socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, [listener])

    async def _handle(self, dialler: trio.SocketStream) -> None:
        async with dialler:
            listener = await self._connect()
            with trio.CancelScope() as scope:
                self._connections.add(scope)
                try:
                    async with listener, trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, dialler, listener, "to_listener", scope)
                        nursery.start_soon(self._pump, listener, dialler, "to_dialler", scope)
                finally:
                    self._connections.discard(scope)

    async def _connect(self) -> trio.SocketStream:
        """The listening node, once the link is not cut and the node is up."""
        while True:
            while self.is_cut or self.target is None:
                await self._changed.wait()
            host, port = self.target
            try:
                return await trio.open_tcp_stream(host, port)
            except OSError:
                await self._changed.wait()  # the node is going down: wait to be re-aimed

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, way: str, both: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                while way in self.stalled:
                    await self._changed.wait()
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        both.cancel()  # one side ended: end the connection both ways, as a node would see it
