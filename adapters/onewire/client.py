"""An owserver client on trio sockets: the thin shell around `protocol`.

`OwserverClient` keeps up to *connections* TCP connections to one
owserver and sends each request on an idle one (or a new one), so at most
that many requests are at the server at once: a slow bus holds those
connections, never the node.  Connections are persistent when the server
grants it (`Flag.PERSISTENCE` in its reply); an idle connection the server
has closed meanwhile is noticed on its next use and that request is sent
once more on a fresh connection.

Errors: the server unreachable, a broken connection, a reply later than
*timeout* or a reply no owserver sends raise `BusUnavailableError` (the
adapter's session ends; the supervisor reconnects).  A reply with an error
code (no such device, a read the bus could not do) raises `OwserverError`:
the server is fine, the one request failed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import trio

from moat_log.errors import AdapterError, BusUnavailableError

from .protocol import (
    MAX_PAYLOAD,
    Flag,
    MessageType,
    Reply,
    ReplyReader,
    Request,
    encode_request,
    parse_directory,
)

__all__ = ["OwserverClient", "OwserverError", "open_owserver"]

#: The flags of every request: owserver's own client flag and persistence.
FLAGS: Final = Flag.OWNET | Flag.PERSISTENCE
_RECEIVE: Final = 65536


class OwserverError(AdapterError):
    """owserver answered a request with an error code (e.g. no such device)."""

    def __init__(self, path: str, code: int) -> None:
        self.path = path
        self.errno = code
        name = errno.errorcode.get(code, "")
        text = os.strerror(code) if name else "unknown error"
        super().__init__(f"owserver: {path}: {text} (errno {code}{', ' + name if name else ''})")


class _Connection:
    def __init__(self, stream: trio.SocketStream, address: str) -> None:
        self.stream = stream
        self.address = address
        self.reader = ReplyReader()

    async def exchange(self, request: bytes) -> Reply:
        await self.stream.send_all(request)
        while True:
            reply = self.reader.next_reply()
            if reply is not None:
                return reply
            data = await self.stream.receive_some(_RECEIVE)
            if not data:
                raise BusUnavailableError(f"owserver at {self.address} closed the connection")
            self.reader.receive_data(data)


class OwserverClient:
    """Requests to one owserver (use `open_owserver`)."""

    def __init__(self, host: str, port: int, *, connections: int = 2, timeout: float = 5.0) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.host = host
        self.port = port
        self.timeout = timeout
        self._limiter = trio.CapacityLimiter(connections)
        self._idle: list[_Connection] = []
        self.requests = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def read(self, path: str) -> bytes:
        """The bytes at *path* (``/28.4AEC29CDBAAB/temperature``)."""
        reply = await self._request(Request(MessageType.READ, path, size=MAX_PAYLOAD))
        return reply.data

    async def write(self, path: str, data: bytes) -> None:
        """Write *data* to *path* (``/29.000029D60200/PIO.0``, ``b"1"``)."""
        await self._request(Request(MessageType.WRITE, path, data))

    async def dir(self, path: str = "/") -> list[str]:
        """The entries under *path*, each ending in ``/`` for a directory."""
        reply = await self._request(Request(MessageType.DIRALLSLASH, path))
        return parse_directory(reply.data)

    async def ping(self) -> None:
        """A request that touches no bus: the server answers."""
        await self._request(Request(MessageType.PRESENCE, "/"))

    async def _request(self, request: Request) -> Reply:
        message = encode_request(
            Request(request.type, request.path, request.data, FLAGS, request.size, request.offset)
        )
        async with self._limiter:
            try:
                with trio.fail_after(self.timeout):
                    reply = await self._exchange(message)
            except trio.TooSlowError:
                raise BusUnavailableError(
                    f"owserver {self.address} did not answer within {self.timeout:g} s"
                ) from None
        self.requests += 1
        if reply.ret < 0:
            raise OwserverError(request.path, -reply.ret)
        return reply

    async def _exchange(self, message: bytes) -> Reply:
        while self._idle:  # a reused connection may have been closed by the server
            connection = self._idle.pop()
            try:
                reply = await connection.exchange(message)
            except (BusUnavailableError, OSError, trio.BrokenResourceError):
                await connection.stream.aclose()
                continue
            self._keep(connection, reply)
            return reply
        try:
            stream = await trio.open_tcp_stream(self.host, self.port)
        except OSError as exc:
            raise BusUnavailableError(f"owserver {self.address}: {exc.strerror or exc}") from None
        connection = _Connection(stream, self.address)
        try:
            reply = await connection.exchange(message)
        except (OSError, trio.BrokenResourceError) as exc:
            await stream.aclose()
            raise BusUnavailableError(f"owserver {self.address}: connection lost ({exc})") from None
        except BaseException:
            await stream.aclose()
            raise
        self._keep(connection, reply)
        return reply

    def _keep(self, connection: _Connection, reply: Reply) -> None:
        if reply.persistent:
            self._idle.append(connection)
        else:
            connection.stream.socket.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.stream.aclose()


@asynccontextmanager
async def open_owserver(
    host: str,
    port: int,
    *,
    connections: int = 2,
    timeout: float = 5.0,  # noqa: ASYNC109 - each request's, not the call's
) -> AsyncIterator[OwserverClient]:
    """A client of the owserver at *host*:*port* that answered a first request."""
    client = OwserverClient(host, port, connections=connections, timeout=timeout)
    try:
        await client.ping()
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()
