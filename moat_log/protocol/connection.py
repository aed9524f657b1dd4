"""Sans-io state machines for both ends of a client connection.

Theory of operation
-------------------
As in h11, a connection object is fed bytes (``receive_data``; ``b""`` means
the peer closed its side), hands out events one at a time (``next_event``,
which returns `NEED_DATA` when it needs more bytes) and turns what the caller
wants to send into bytes (``send_*``).  It never touches a socket or a clock.

`ServerConnection` checks every request before the caller sees it: a request
the server must refuse (malformed, unknown op, duplicate in-flight id, too
many in flight, not authenticated, permission denied) is answered by the
connection itself and reported as a `Rejected` event, and ``auth`` requests
are handled entirely inside (the caller sees `Authenticated`).  The bytes of
those answers wait in ``data_to_send()``, which the caller sends after every
``next_event`` call — including one that raised, when it holds the goodbye::

    conn = ServerConnection(node, authenticator=..., permission=...)
    send(conn.greeting())
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError:
            send(conn.data_to_send())  # {"id": nil, "error": ...}
            close(); break
        send(conn.data_to_send())
        if event is NEED_DATA: conn.receive_data(recv())
        elif isinstance(event, ConnectionClosed): break
        elif isinstance(event, Request): start a task that ends with send_reply/send_error
        elif isinstance(event, Cancel): stop that task (it still sends a final reply)

`ClientConnection` is the mirror image: it allocates request ids, decodes
results according to the op it sent, drops stream items that arrive after it
cancelled the stream, and drives the client's half of authentication.

Both keep errors sticky: after a `ProtocolError` every call raises again.
Bad argument values raise `ValueError`/`TypeError` and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TypeAlias

from ..path import Path
from .auth import ScryptParams
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .framing import DEFAULT_MAX_FRAME_SIZE, NEED_DATA, FrameDecoder, NeedData
from .messages import Cancel, ErrorType, Request
from .replies import ErrorReply, Goodbye, Greeting, Item, Reply

__all__ = [
    "MAX_SERVER_FRAME_SIZE",
    "AuthChallenge",
    "Authenticated",
    "ClientEvent",
    "ConnectionClosed",
    "PermissionCheck",
    "Rejected",
    "ServerEvent",
]

#: The largest frame a server sends; clients must accept frames up to it.
MAX_SERVER_FRAME_SIZE: Final = DEFAULT_MAX_FRAME_SIZE

#: ``(user, op, path) -> allowed``; user is None on a connection without auth.
PermissionCheck: TypeAlias = Callable[[str | None, str, Path], bool]


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side of the connection (cleanly, between frames)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The server connection answered request *id* with an error by itself.

    For the server's log: *detail* says more than the wire *message* where
    the wire must not (an unknown user and a wrong password look the same).
    """

    id: int
    op: str | None
    type: str
    message: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Authentication with *method* succeeded; the connection acts as *user*."""

    id: int
    user: str
    method: str


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """``scram-scrypt`` step 1 is answered: now call `ClientConnection.send_auth_proof`.

    Its argument is ``salt_password(password, salt, params)``.
    """

    id: int
    salt: bytes
    params: ScryptParams


ServerEvent: TypeAlias = Request | Cancel | Rejected | Authenticated | ConnectionClosed | NeedData
ClientEvent: TypeAlias = (
    Greeting
    | Reply
    | Item
    | ErrorReply
    | AuthChallenge
    | Authenticated
    | Goodbye
    | ConnectionClosed
    | NeedData
)


class Connection:
    """What both ends share: the frame decoder, EOF and the sticky error."""

    def __init__(self, max_frame_size: int) -> None:
        self._decoder = FrameDecoder(max_frame_size)
        self._eof = False
        self._error: ProtocolError | None = None

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer; ``b""`` means the peer closed."""
        self._check_receive()
        if self._eof:
            if data:
                self._local_error("receive_data() called with data after the end of the stream")
            return
        if data:
            self._decoder.receive_data(data)
        else:
            self._eof = True

    def _check_receive(self) -> None:
        if self._error is not None:
            cls = type(self._error) if isinstance(self._error, RemoteProtocolError) else None
            raise (cls or LocalProtocolError)(
                f"the connection failed earlier and cannot be used: {self._error}"
            ) from self._error

    def _check_send(self) -> None:
        if self._error is not None:
            raise LocalProtocolError(
                f"the connection failed earlier and cannot be used: {self._error}"
            ) from self._error

    def _fail(self, error: ProtocolError) -> None:
        self._error = error

    def _local_error(self, message: str) -> NoReturn:
        error = LocalProtocolError(message, error_type=ErrorType.INTERNAL)
        self._fail(error)
        raise error

    def _next_frame(self) -> Any:
        """The next decoded frame, `NEED_DATA` or `ConnectionClosed`."""
        frame = self._decoder.next_frame()
        if frame is NEED_DATA and self._eof:
            if self._decoder.buffered:
                raise RemoteProtocolError(
                    f"the connection closed in the middle of a frame "
                    f"({self._decoder.buffered} bytes of it received)"
                )
            return CLOSED
        return frame


CLOSED: Final = ConnectionClosed()


@dataclass(slots=True)
class InFlight:
    """A request sent (client) or admitted (server) and not finally answered."""

    op: str
    stream: bool
    cancelled: bool = False
