"""A small owserver of the tests' own, in the test's trio run: devices to add, remove and set.

owserver's ``--fake`` and ``--tester`` buses never reflect a write, and
their devices cannot come and go while it runs; this one does both:

    async with serve_fake_owserver() as server:
        server.add("29.000000000001", {"PIO.0": b"0", "type": b"DS2408"})
        ... server.port ...
        server.devices["29.000000000001"]["PIO.0"]   # what was written
        server.remove("29.000000000001")

It speaks the protocol of moat_log.adapters.onewire.protocol (server side):
READ, WRITE, DIRALLSLASH/DIRALL, PRESENCE and NOP, persistent connections,
``/uncached/`` paths, errno 2 (ENOENT) for a path it does not have.
`hold` makes requests wait (a hung server); `writes` lists the writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from moat_log.adapters.onewire.protocol import (
    Flag,
    MessageType,
    OwProtocolError,
    Reply,
    Request,
    RequestReader,
    encode_reply,
)

ENOENT = 2


class FakeOwserver:
    def __init__(self) -> None:
        self.devices: dict[str, dict[str, bytes]] = {}
        self.writes: list[tuple[str, bytes, float]] = []  # (path, data, trio time)
        self.requests = 0
        self.port = 0
        #: While set to an unset event, requests wait for it (a server that stopped answering).
        self.hold: trio.Event | None = None
        self._changed = trio.Event()

    def add(self, device: str, attributes: dict[str, bytes]) -> None:
        self.devices[device] = dict(attributes)

    def remove(self, device: str) -> None:
        del self.devices[device]

    def set(self, device: str, attribute: str, value: bytes) -> None:
        self.devices[device][attribute] = value

    async def until(self, predicate: object) -> None:
        with trio.fail_after(20):
            while not predicate():  # type: ignore[operator]
                await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def answer(self, request: Request) -> Reply:
        self.requests += 1
        keep = request.flags & Flag.PERSISTENCE
        reply = self._answer(request)
        self._note()
        return Reply(reply.ret, reply.data, Flag.PERSISTENCE if keep else 0)

    def _answer(self, request: Request) -> Reply:  # noqa: PLR0911 - one answer per case
        path = request.path.removeprefix("/uncached")
        parts = [p for p in path.split("/") if p]
        if request.type == MessageType.NOP:
            return Reply(0)
        if request.type in (MessageType.DIRALLSLASH, MessageType.DIRALL):
            if parts:
                attributes = self.devices.get(parts[0])
                if attributes is None:
                    return Reply(-ENOENT)
                return Reply(0, ",".join(f"/{parts[0]}/{a}" for a in attributes).encode())
            return Reply(0, ",".join(f"/{d}/" for d in sorted(self.devices)).encode())
        if request.type == MessageType.PRESENCE:
            return Reply(0) if not parts or parts[0] in self.devices else Reply(-ENOENT)
        if len(parts) != 2 or parts[0] not in self.devices:
            return Reply(-ENOENT)
        attributes = self.devices[parts[0]]
        if request.type == MessageType.READ:
            if parts[1] not in attributes:
                return Reply(-ENOENT)
            return Reply(0, attributes[parts[1]].rjust(12))
        if request.type == MessageType.WRITE:
            attributes[parts[1]] = request.data
            self.writes.append((request.path, request.data, trio.current_time()))
            return Reply(0)
        return Reply(-22)  # EINVAL

    async def handle(self, stream: trio.SocketStream) -> None:
        reader = RequestReader()
        async with stream:
            try:
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    reader.receive_data(data)
                    while (request := reader.next_request()) is not None:
                        if self.hold is not None:
                            await self.hold.wait()
                        reply = self.answer(request)
                        await stream.send_all(encode_reply(reply))
                        if not reply.persistent:
                            return
            except (OwProtocolError, trio.BrokenResourceError):
                return


@asynccontextmanager
async def serve_fake_owserver() -> AsyncIterator[FakeOwserver]:
    server = FakeOwserver()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()
