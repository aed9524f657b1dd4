"""Errors of the client protocol, in the project's one hierarchy.

As in h11 there are two kinds of protocol error, and both are sticky: once a
connection object raised one, every later call raises again.

* `LocalProtocolError`: this side misused the connection object (replied to
  a request that is not in flight, sent before the greeting, ...).  A bug in
  the code driving the object.
* `RemoteProtocolError`: the peer sent something that breaks the framing or
  cannot be addressed to a request (a bad length, undecodable msgpack, a
  message without a valid id, ...).  The connection is over; a server sends a
  final ``{"id": nil, "error": ...}`` message first.

A malformed *request* that carries a valid id is not a connection error: it
becomes a `RequestError`, which the server answers with an error reply for
that id while the connection stays usable.  Bad argument values passed by the
caller raise `ValueError`/`TypeError` subclasses and change nothing.
"""

from __future__ import annotations

import reprlib

from ..errors import InvalidInputError, MoatLogError, NodeError

__all__ = [
    "FrameTooLargeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestError",
    "show",
]

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = 6
_SHORT.maxlevel = 3


def show(value: object) -> str:
    """A short repr of a value a peer sent, for error messages (never megabytes)."""
    return _SHORT.repr(value)


class ProtocolError(MoatLogError):
    """The client protocol was violated; the connection cannot go on.

    *error_type* is the wire error type of the goodbye a server sends for it.
    """

    def __init__(self, message: str, *, error_type: str = "protocol") -> None:
        super().__init__(message)
        self.error_type = error_type


class LocalProtocolError(ProtocolError):
    """This side used the connection object in a way the protocol forbids."""


class RemoteProtocolError(ProtocolError, InvalidInputError):
    """The peer sent bytes or a message that the protocol forbids."""


class FrameTooLargeError(MoatLogError, ValueError):
    """A message to send does not fit in one frame.  Nothing was sent."""


class RequestError(NodeError, InvalidInputError):
    """A request the server cannot carry out; carries the wire error type and the request id.

    The server side's error: raised by `parse_request` for a request that is
    malformed but has a valid id, and by the node's handlers; the server
    answers it with an error reply.  A client raises the `NodeError` of the
    reply instead (`ErrorReply.exception`), which is no `ValueError` unless
    the request itself was bad.
    """
