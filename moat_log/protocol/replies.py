"""What the server sends: the greeting, replies, stream items, errors, goodbye.

Theory of operation
-------------------
Every server message after the greeting is a map with an ``id`` and exactly
one of ``ok`` (the final reply), ``item`` (one element of a stream) or
``error`` (a final error reply); an ``error`` with a nil id is the goodbye
that ends the connection (docs/client-protocol.md, "Replies").

The shape of ``ok`` and ``item`` depends on the op of the request, so the
codecs here are keyed by op: the server encodes Python results (`Event`,
`Written`, ...) to packed msgpack, the client decodes and validates them
back.  Events are spliced in as their packed wire form (`Event.pack`), which
is exactly what msgpack would produce for the array, without repacking; a
`PackedEvent` (the bytes the journal stored) is spliced in as it is.
A client that finds a value of the wrong shape raises `RemoteProtocolError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import (
    AuthenticationError,
    BadRequestError,
    MoatLogError,
    NodeBusyError,
    NodeError,
    NodeStoppingError,
    NotFoundError,
    PermissionDeniedError,
    StreamOverflowError,
    TypeMismatchError,
)
from ..event import Event, normalize_value
from ..ids import MAX_U64, EventId, is_node_name
from ..path import Path, Segment
from .auth import (
    CHALLENGE_SIZE,
    KEY_SIZE,
    MAX_SALT_SIZE,
    MIN_SALT_SIZE,
    PROTOCOL_VERSION,
    ScryptParams,
)
from .errors import RemoteProtocolError, show
from .framing import pack_value
from .messages import ErrorType

__all__ = [
    "LIVE",
    "PROTOCOL_VERSION",
    "AuthOk",
    "AuthParams",
    "ErrorReply",
    "Goodbye",
    "Greeting",
    "Item",
    "LiveMarker",
    "PackedEvent",
    "Reply",
    "Written",
    "node_error",
]

#: The error class a script catches, by the wire error type (see `ErrorType`).
_NODE_ERRORS: Final[dict[str, type[NodeError]]] = {
    ErrorType.AUTH_REQUIRED: AuthenticationError,
    ErrorType.AUTH_FAILED: AuthenticationError,
    ErrorType.PERMISSION_DENIED: PermissionDeniedError,
    ErrorType.NOT_FOUND: NotFoundError,
    ErrorType.OVERFLOW: StreamOverflowError,
    ErrorType.SHUTDOWN: NodeStoppingError,
    ErrorType.BUSY: NodeBusyError,
    ErrorType.BAD_REQUEST: BadRequestError,
    ErrorType.UNKNOWN_OP: BadRequestError,
    ErrorType.DUPLICATE_ID: BadRequestError,
    ErrorType.INVALID_VALUE: BadRequestError,
    ErrorType.TOO_LARGE: BadRequestError,
    ErrorType.TYPE_MISMATCH: TypeMismatchError,
}


def node_error(error_type: str, message: str, *, request_id: int | None = None) -> NodeError:
    """The `NodeError` subclass for an error reply of *error_type* (`NodeError` if none fits)."""
    kind = _NODE_ERRORS.get(error_type, NodeError)
    return kind(error_type, message, request_id=request_id)


def _bad(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"the server sent {what}")


@dataclass(frozen=True, slots=True)
class Greeting:
    """The server's first message: protocol version, node, auth methods, challenge."""

    version: int
    node: str
    auth: tuple[str, ...]
    challenge: bytes
    max_frame: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "moat-log": self.version,
            "node": self.node,
            "auth": list(self.auth),
            "challenge": self.challenge,
            "max_frame": self.max_frame,
        }

    @classmethod
    def from_wire(cls, wire: object) -> Greeting:
        """Validate a decoded greeting.  Unknown keys are ignored."""
        if type(wire) is not dict or type(wire.get("moat-log")) is not int:
            raise _bad(f"no moat-log greeting but {show(wire)}")
        version = wire["moat-log"]
        if version != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                f"the server speaks protocol version {version}; this client speaks "
                f"version {PROTOCOL_VERSION}: upgrade moat-log on one side"
            )
        node, auth = wire.get("node"), wire.get("auth")
        challenge, max_frame = wire.get("challenge"), wire.get("max_frame")
        if not is_node_name(node):
            raise _bad(f"a greeting with an invalid node name {show(node)}")
        if type(auth) is not list or not all(type(method) is str for method in auth):
            raise _bad(f"a greeting whose 'auth' is not an array of str: {show(auth)}")
        if type(challenge) is not bytes or len(challenge) != CHALLENGE_SIZE:
            raise _bad(f"a greeting whose challenge is not {CHALLENGE_SIZE} bytes of bin")
        if type(max_frame) is not int or not 1 <= max_frame < 2**32:
            raise _bad(f"a greeting with an invalid max_frame {show(max_frame)}")
        assert type(node) is str
        return cls(version, node, tuple(auth), challenge, max_frame)


@dataclass(frozen=True, slots=True)
class PackedEvent:
    """An event in its packed wire form (`Event.pack`), sent where an `Event` may be.

    The journal feed hands out the bytes the journal stored
    (`moat_log.journal.item.FeedItem`): a watch or a followed log sends them
    as they are, so an event is packed once however many receive it.
    """

    packed: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """The final, successful reply to request *id*."""

    id: int
    result: Any


@dataclass(frozen=True, slots=True)
class Item:
    """One element of the stream that answers request *id*."""

    id: int
    value: Any


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """The final reply to request *id*: it failed."""

    id: int
    type: str
    message: str

    def exception(self) -> NodeError:
        """The error to raise for this reply in the caller's code (see `node_error`)."""
        return node_error(self.type, self.message, request_id=self.id)


@dataclass(frozen=True, slots=True)
class Goodbye:
    """The server ends the connection (``{"id": nil, "error": ...}``)."""

    type: str
    message: str


@dataclass(frozen=True, slots=True)
class Written:
    """The result of ``set`` and ``delete``: the new event's id and hlc."""

    id: EventId
    hlc: int

    def to_wire(self) -> list[object]:
        return [self.id.origin, self.id.seq, self.hlc]


class LiveMarker(enum.Enum):
    """The type of `LIVE`."""

    LIVE = "live"

    def __repr__(self) -> str:
        return "LIVE"


#: The stream item ``{"state": "live"}``: the initial state is complete,
#: changes follow (``watch``, ``log`` with follow).
LIVE: Final = LiveMarker.LIVE


@dataclass(frozen=True, slots=True)
class AuthParams:
    """``scram-scrypt`` step 1 result: the user's salt and scrypt parameters."""

    salt: bytes
    params: ScryptParams

    def to_wire(self) -> dict[str, object]:
        return {"salt": self.salt, "n": self.params.n, "r": self.params.r, "p": self.params.p}


@dataclass(frozen=True, slots=True)
class AuthOk:
    """Successful authentication: the user and the server's signature."""

    user: str
    signature: bytes

    def to_wire(self) -> dict[str, object]:
        return {"user": self.user, "signature": self.signature}


# --- encoding (server) ----------------------------------------------------

_NIL = b"\xc0"
_LIVE_PACKED = pack_value({"state": "live"})


def _pack_event(value: object) -> bytes:
    if type(value) is PackedEvent:
        return value.packed
    if type(value) is not Event:
        raise TypeError(f"expected an Event, not {type(value).__name__}")
    return value.pack()


def _pack_event_or_nil(value: object) -> bytes:
    return _NIL if value is None else _pack_event(value)


def _pack_event_or_live(value: object) -> bytes:
    return _LIVE_PACKED if value is LIVE else _pack_event(value)


def _pack_nil(value: object) -> bytes:
    if value is not None:
        raise TypeError(f"a stream's final reply is nil, not {type(value).__name__}")
    return _NIL


def _pack_written(value: object) -> bytes:
    if type(value) is not Written:
        raise TypeError(f"expected Written, not {type(value).__name__}")
    return pack_value(value.to_wire())


def _pack_segments(value: object) -> bytes:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise TypeError(f"expected a sequence of path segments, not {type(value).__name__}")
    for segment in value:
        if type(segment) is not str and type(segment) is not int:
            raise TypeError(f"a path segment is a str or an int, not {show(segment)}")
    return pack_value(list(value))


def _pack_status(value: object) -> bytes:
    if not isinstance(value, Mapping) or not all(type(key) is str for key in value):
        raise TypeError("the status is a map with str keys")
    return pack_value(dict(value))


def _pack_auth(value: object) -> bytes:
    if type(value) is not AuthParams and type(value) is not AuthOk:
        raise TypeError(f"an auth result is AuthParams or AuthOk, not {type(value).__name__}")
    return pack_value(value.to_wire())


# --- decoding (client) ----------------------------------------------------


def _event(wire: object) -> Event:
    try:
        return Event.from_msgpack(wire)
    except MoatLogError as exc:
        raise _bad(f"an invalid event: {exc}") from None


def _event_or_nil(wire: object) -> Event | None:
    return None if wire is None else _event(wire)


def _event_or_live(wire: object) -> Event | LiveMarker:
    if type(wire) is dict:
        if wire != {"state": "live"}:
            raise _bad(f"an unknown stream marker {show(wire)}")
        return LIVE
    return _event(wire)


def _nil(wire: object) -> None:
    if wire is not None:
        raise _bad(f"a final stream reply that is not nil: {show(wire)}")


def _written(wire: object) -> Written:
    if type(wire) is list and len(wire) == 3:
        origin, seq, hlc = wire
        if type(hlc) is int and 0 <= hlc <= MAX_U64:
            try:
                return Written(EventId.checked(origin, seq), hlc)
            except MoatLogError:
                pass
    raise _bad(f"an invalid [origin, seq, hlc]: {show(wire)}")


def _segments(wire: object) -> tuple[Segment, ...]:
    if type(wire) is not list:
        raise _bad(f"a list result that is not an array: {show(wire)}")
    try:
        return tuple(Path((segment,))[0] for segment in wire)
    except (MoatLogError, TypeError) as exc:
        raise _bad(f"an invalid child segment: {exc}") from None


def _status(wire: object) -> dict[str, Any]:
    if type(wire) is not dict or not all(type(key) is str for key in wire):
        raise _bad(f"a status that is not a map with str keys: {show(wire)}")
    try:
        status: dict[str, Any] = normalize_value(wire)
    except MoatLogError as exc:
        raise _bad(f"a status with an invalid value: {exc}") from None
    return status


def _auth(wire: object) -> AuthParams | AuthOk:
    if type(wire) is dict and set(wire) >= {"salt", "n", "r", "p"}:
        salt = wire["salt"]
        if type(salt) is not bytes or not MIN_SALT_SIZE <= len(salt) <= MAX_SALT_SIZE:
            raise _bad(f"a salt that is not {MIN_SALT_SIZE} .. {MAX_SALT_SIZE} bytes of bin")
        try:
            return AuthParams(salt, ScryptParams(wire["n"], wire["r"], wire["p"]))
        except ValueError as exc:
            raise _bad(f"unacceptable scrypt parameters: {exc}") from None
    if type(wire) is dict and set(wire) >= {"user", "signature"}:
        user, signature = wire["user"], wire["signature"]
        if type(user) is str and type(signature) is bytes and len(signature) == KEY_SIZE:
            return AuthOk(user, signature)
    raise _bad(f"an invalid auth result: {show(wire)}")


@dataclass(frozen=True, slots=True)
class _Codec:
    pack: Callable[[object], bytes]
    unpack: Callable[[object], Any]


_EVENT_OR_NIL = _Codec(_pack_event_or_nil, _event_or_nil)
_EVENT = _Codec(_pack_event, _event)
_EVENT_OR_LIVE = _Codec(_pack_event_or_live, _event_or_live)
_NIL_CODEC = _Codec(_pack_nil, _nil)
_WRITTEN = _Codec(_pack_written, _written)

#: How the ``ok`` of each op is encoded and decoded.
RESULTS: Final[dict[str, _Codec]] = {
    "auth": _Codec(_pack_auth, _auth),
    "get": _EVENT_OR_NIL,
    "set": _WRITTEN,
    "delete": _WRITTEN,
    "list": _Codec(_pack_segments, _segments),
    "subtree": _NIL_CODEC,
    "watch": _NIL_CODEC,
    "history": _NIL_CODEC,
    "log": _NIL_CODEC,
    "replay": _NIL_CODEC,
    "status": _Codec(_pack_status, _status),
}
#: How the ``item`` of each streaming op is encoded and decoded.
ITEMS: Final[dict[str, _Codec]] = {
    "subtree": _EVENT,
    "watch": _EVENT_OR_LIVE,
    "history": _EVENT,
    "log": _EVENT_OR_LIVE,
    "replay": _EVENT,
}

_ID_KEY = b"\xa2id"
_OK_KEY = b"\xa2ok"
_ITEM_KEY = b"\xa4item"


def reply_body(request_id: int, packed_result: bytes) -> bytes:
    """The packed map ``{"id": ID, "ok": RESULT}`` around an already packed result."""
    return b"\x82" + _ID_KEY + pack_value(request_id) + _OK_KEY + packed_result


def item_body(request_id: int, packed_item: bytes) -> bytes:
    """The packed map ``{"id": ID, "item": VALUE}`` around an already packed value."""
    return b"\x82" + _ID_KEY + pack_value(request_id) + _ITEM_KEY + packed_item


def error_wire(request_id: int | None, error_type: str, message: str) -> dict[str, object]:
    """The map of an error reply (or, with id None, of a goodbye)."""
    return {"id": request_id, "error": {"type": error_type, "message": message}}


def parse_server_message(wire: object) -> Reply | Item | ErrorReply | Goodbye:
    """Classify a decoded server message; results are still in wire form.

    Raises `RemoteProtocolError` unless it is a map with an id (uint or nil)
    and exactly one of ``ok``, ``item``, ``error``.
    """
    if type(wire) is dict and len(wire) == 2 and "ok" in wire:  # the common shape, first
        request_id = wire.get("id")
        if type(request_id) is int and 0 <= request_id <= MAX_U64:
            return Reply(request_id, wire["ok"])
    if type(wire) is not dict or "id" not in wire:
        raise _bad(f"a message that is not a map with an 'id': {show(wire)}")
    request_id = wire["id"]
    kinds = [key for key in ("ok", "item", "error") if key in wire]
    if len(kinds) != 1:
        raise _bad(f"a message with {' and '.join(kinds) or 'none'} of ok/item/error")
    kind = kinds[0]
    if request_id is None:
        if kind != "error":
            raise _bad("an ok or item without an id")
        return Goodbye(*_error_fields(wire["error"]))
    if type(request_id) is not int or not 0 <= request_id <= MAX_U64:
        raise _bad(f"a message with an invalid id {show(request_id)}")
    if kind == "ok":
        return Reply(request_id, wire["ok"])
    if kind == "item":
        return Item(request_id, wire["item"])
    return ErrorReply(request_id, *_error_fields(wire["error"]))


def _error_fields(error: object) -> tuple[str, str]:
    if type(error) is dict:
        error_type, message = error.get("type"), error.get("message")
        if type(error_type) is str and type(message) is str:
            return error_type, message
    raise _bad(f"an error that is not {{'type': str, 'message': str}}: {show(error)}")
