"""The trio shell of the Modbus server adapter: accept clients, move their bytes.

Each accepted connection is checked against the ``allow`` list and the
connection limit (a refused one is closed at once), then served by
`serve_connection`: bytes from the socket go into a `ServerConnection`,
each request it yields is answered by the `ServerSession`, one at a time
and in order, and the answer goes back.  A client silent for
*idle_timeout* seconds is closed (a crashed PLC would otherwise hold a
connection slot for ever), and so is one that sends bytes that are not
Modbus TCP.  Whatever one connection does ends that connection only.

When the node stops while a client's write waits for the journal, the
client is told exception 06 (server device busy: try again), as far as a
short, shielded send still reaches it; the write may have been stored.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import trio

from moat_log.address import socket_address
from moat_log.errors import ModbusProtocolError

from ..status import BadDataLog
from .pdu import ExceptionCode, ExceptionResponse, Response, WriteRequest
from .server import Incoming, ServerConnection
from .server_session import ServerSession

__all__ = ["ClientLimits", "serve_clients", "serve_connection"]

log = logging.getLogger("moat_log.adapters")

#: Bytes read from a socket at once: a few of the largest frames (260 bytes).
RECEIVE_SIZE: Final = 4096
#: Seconds a last "busy" answer may take while the node stops.
_GOODBYE_SECONDS: Final = 0.5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """Who may connect, how many at once, and how long a connection may be silent."""

    unit_id: int = 1
    max_connections: int = 8
    idle_timeout: float = 60.0
    #: The client addresses allowed to connect (None: every address).
    allow: frozenset[IPAddress] | None = None

    def allows(self, host: str) -> bool:
        if self.allow is None:
            return True
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address in self.allow


async def serve_clients(
    listeners: Sequence[trio.SocketListener], session: ServerSession, limits: ClientLimits
) -> None:
    """Serve clients on *listeners* until cancelled."""
    connected = 0
    noisy = BadDataLog()

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal connected
        host, peer = _peer(stream)
        try:
            if not limits.allows(host):
                session.refused(peer, "not in the allow list")
                _log_rarely(noisy, host, f"{peer} refused: not in the allow list")
                return
            if connected >= limits.max_connections:
                reason = f"{connected} clients connected, the limit"
                session.refused(peer, reason)
                _log_rarely(noisy, host, f"{peer} refused: {reason}")
                return
            connected += 1
            session.opened()
            try:
                await serve_connection(stream, session, limits, (host, peer), noisy)
            finally:
                connected -= 1
                session.closed()
        finally:
            await trio.aclose_forcefully(stream)

    await trio.serve_listeners(handle, list(listeners))


async def serve_connection(
    stream: trio.abc.Stream,
    session: ServerSession,
    limits: ClientLimits,
    client: tuple[str, str],
    noisy: BadDataLog,
) -> None:
    """Answer a client's requests on *stream* until it leaves, goes silent or sends garbage.

    *client* is its host (what *noisy* logs rarely) and its ``HOST:PORT``.
    """
    host, peer = client
    connection = ServerConnection(limits.unit_id)
    try:
        while True:
            with trio.move_on_after(limits.idle_timeout) as idle:
                data = await stream.receive_some(RECEIVE_SIZE)
            if idle.cancelled_caught:
                session.dropped(peer, f"silent for {limits.idle_timeout:g} s")
                return
            if not data:
                connection.data_ended()
                return
            connection.receive_data(data)
            while (incoming := connection.next_request()) is not None:
                response = await _answer(stream, connection, session, incoming, peer)
                await stream.send_all(connection.respond(incoming, response))
    except ModbusProtocolError as exc:
        session.dropped(peer, str(exc))
        _log_rarely(noisy, host, f"{peer} closed: {exc}")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return  # the client reset the connection: nothing to answer
    except Exception:  # a bug: it ends this connection, never the listener or the node
        log.exception("modbus server: the connection of %s failed", peer)
        session.dropped(peer, "an internal error (logged)")


async def _answer(
    stream: trio.abc.Stream,
    connection: ServerConnection,
    session: ServerSession,
    incoming: Incoming,
    peer: str,
) -> Response:
    try:
        return await session.answer(incoming, peer)
    except trio.Cancelled:
        request = incoming.request
        if isinstance(request, WriteRequest):
            busy = ExceptionResponse(request.code, ExceptionCode.SERVER_DEVICE_BUSY)
            gone = (trio.BrokenResourceError, trio.ClosedResourceError)
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(_GOODBYE_SECONDS),
                contextlib.suppress(*gone),
            ):
                await stream.send_all(connection.respond(incoming, busy))
        raise


def _log_rarely(noisy: BadDataLog, host: str, message: str) -> None:
    """Log *message* about a client the first time for its *host*, then once a minute."""
    repeats = noisy.should_log(host, time.time())
    if repeats is not None:
        more = f" ({repeats} more from {host} since)" if repeats else ""
        log.warning("modbus server: %s%s", message, more)


def _peer(stream: trio.SocketStream) -> tuple[str, str]:
    """The client's host and its ``HOST:PORT``."""
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "", "a client that already left"
    return str(address[0]), socket_address(address)
