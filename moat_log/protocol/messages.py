"""Requests: one frozen dataclass per operation, validated on construction.

Theory of operation
-------------------
A request on the wire is a map ``{"id": uint, "op": str, ...arguments}``
(docs/client-protocol.md, "Requests").  Each operation is a dataclass whose
fields (after ``id``) are exactly its wire arguments, with the same names;
a field with a default is optional.  Validation lives in ``__post_init__``
only, so a request built in Python and one decoded from the wire pass the
same checks.  `parse_request` maps a decoded map onto the class and turns
every problem into a `RequestError` that carries the id, so the server can
answer it with an error reply and keep the connection.  Problems that leave
no id to answer (not a map, no valid id) are `RemoteProtocolError`.

``to_wire`` leaves out optional arguments that have their default value, so
the packed form of a request is canonical.  ``auth`` is one wire op with
three shapes, told apart by its ``method`` and ``step`` arguments.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeAlias

from ..durability import Durability
from ..errors import MoatLogError
from ..event import MAX_SOURCE_CHARS, Value, normalize_value
from ..ids import MAX_U64, EventId, check_node_name
from ..path import Path
from ..timespec import TimeSpec
from .auth import NONCE_SIZE, SCRAM_METHOD, TOKEN_METHOD, check_user_name
from .errors import RemoteProtocolError, RequestError, show

__all__ = [
    "AUTH_TYPES",
    "OPS",
    "REQUEST_TYPES",
    "Access",
    "AuthProofRequest",
    "AuthStartRequest",
    "Cancel",
    "DeleteRequest",
    "ErrorType",
    "GetRequest",
    "HistoryRequest",
    "ListRequest",
    "LogRequest",
    "ReplayRequest",
    "Request",
    "SetRequest",
    "StatusRequest",
    "SubtreeRequest",
    "TokenAuthRequest",
    "WatchRequest",
    "parse_client_message",
    "parse_request",
]

MAX_ID: Final = MAX_U64


class ErrorType(enum.StrEnum):
    """The ``type`` of an error reply or a goodbye (docs: "Error types")."""

    BAD_REQUEST = "bad-request"
    UNKNOWN_OP = "unknown-op"
    DUPLICATE_ID = "duplicate-id"
    BUSY = "busy"
    AUTH_REQUIRED = "auth-required"
    AUTH_FAILED = "auth-failed"
    PERMISSION_DENIED = "permission-denied"
    NOT_FOUND = "not-found"
    INVALID_VALUE = "invalid-value"
    TYPE_MISMATCH = "type-mismatch"
    TOO_LARGE = "too-large"
    CANCELLED = "cancelled"
    OVERFLOW = "overflow"
    SHUTDOWN = "shutdown"
    INTERNAL = "internal"
    PROTOCOL = "protocol"


#: What a request does to the paths it names, for permission checks.
Access: TypeAlias = Literal["read", "write"]


def _fail(name: str, why: str) -> ValueError:
    return ValueError(f"argument '{name}' {why}")


def _uint(name: str, value: object, low: int = 0) -> int:
    if type(value) is not int or not low <= value <= MAX_U64:
        raise _fail(name, f"must be an integer {low} .. 2**64-1, not {show(value)}")
    return value


def _bool(name: str, value: object) -> bool:
    if type(value) is not bool:
        raise _fail(name, f"must be true or false, not {show(value)}")
    return value


def _bytes(name: str, value: object, size: int) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise _fail(name, f"must be bin of {size} bytes")
    return value


def _path(name: str, value: object) -> Path:
    if type(value) is Path:
        return value
    if not isinstance(value, (list, tuple)):
        raise _fail(name, f"must be an array of str/int segments, not {show(value)}")
    try:
        return Path(value)
    except (MoatLogError, TypeError) as exc:
        raise _fail(name, f"is not a valid path: {exc}") from None


def _time(name: str, value: object) -> TimeSpec:
    if type(value) is int:
        return _uint(name, value)
    if type(value) is EventId:
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return EventId.checked(value[0], value[1])
        except MoatLogError as exc:
            raise _fail(name, f"is not an event id: {exc}") from None
    raise _fail(name, f"must be ns since the epoch or an event id [origin, seq], not {show(value)}")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass's field


@dataclass(frozen=True, slots=True)
class Request:
    """Base of all requests.  ``id`` is chosen by the client (uint64)."""

    id: int

    #: The wire op.
    OP: ClassVar[str] = ""
    #: True if the reply is a stream of items before the final reply.
    STREAM: ClassVar[bool] = False
    #: The access a permission check asks for, None if the op names no path.
    ACCESS: ClassVar[Access | None] = None
    #: Constant wire arguments (``auth``'s method and step).
    CONSTANTS: ClassVar[dict[str, object]] = {}

    def __post_init__(self) -> None:
        _uint("id", self.id)

    @property
    def permission_path(self) -> Path | None:
        """The path (or prefix) the permission check is asked about, None if none."""
        path = getattr(self, "path", None)
        if path is None and self.ACCESS is not None:
            return Path()  # e.g. a log over all paths: needs access to the root
        return path

    def to_wire(self) -> dict[str, Any]:
        """The wire map: id, op, constants, then arguments not at their default."""
        wire: dict[str, Any] = {"id": self.id, "op": self.OP, **self.CONSTANTS}
        for field in _arguments(type(self)):
            value = getattr(self, field.name)
            if value is field.default:  # defaults are None or False
                continue
            wire[field.name] = _to_wire_value(value)
        return wire


def _to_wire_value(value: object) -> object:
    if type(value) is Path:
        return list(value)
    if isinstance(value, EventId):
        return [value.origin, value.seq]
    if isinstance(value, Durability):
        return value.value
    return value


def _arguments(cls: type[Request]) -> tuple[dataclasses.Field[Any], ...]:
    return _ARGUMENTS[cls]


@dataclass(frozen=True, slots=True)
class PathRequest(Request):
    """A request whose only argument is a path."""

    path: Path

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        _set(self, "path", _path("path", self.path))


@dataclass(frozen=True, slots=True)
class GetRequest(PathRequest):
    """The current value of *path* with its event; the result is the event or nil."""

    OP = "get"
    ACCESS = "read"


@dataclass(frozen=True, slots=True)
class SetRequest(Request):
    """Set *path* to *value*; the result is ``Written`` (the new event's id and time)."""

    path: Path
    value: Value
    source: str | None = None
    cause: EventId | None = None
    #: "sync" or "batched" (`moat_log.durability`); None: the node's default.
    durability: Durability | None = None

    OP = "set"
    ACCESS = "write"

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        _set(self, "path", _path("path", self.path))
        try:
            _set(self, "value", normalize_value(self.value))
        except MoatLogError as exc:
            raise _fail("value", f"cannot be stored: {exc}") from None
        _check_source_and_cause(self)


def _check_source_and_cause(request: SetRequest | DeleteRequest) -> None:
    if request.durability is not None:
        try:
            _set(request, "durability", Durability.parse(request.durability))
        except ValueError as exc:
            raise _fail("durability", str(exc)) from None
    source = request.source
    if source is not None and (type(source) is not str or len(source) > MAX_SOURCE_CHARS):
        raise _fail("source", f"must be a str of at most {MAX_SOURCE_CHARS} characters")
    cause = request.cause
    if cause is not None and type(cause) is not EventId:
        if not isinstance(cause, (list, tuple)) or len(cause) != 2:
            raise _fail("cause", f"must be nil or an event id [origin, seq], not {show(cause)}")
        try:
            _set(request, "cause", EventId.checked(cause[0], cause[1]))
        except MoatLogError as exc:
            raise _fail("cause", f"is not an event id: {exc}") from None


@dataclass(frozen=True, slots=True)
class DeleteRequest(Request):
    """Delete *path* (append a tombstone); the result is ``Written``."""

    path: Path
    source: str | None = None
    cause: EventId | None = None
    #: As for `SetRequest`.
    durability: Durability | None = None

    OP = "delete"
    ACCESS = "write"

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        _set(self, "path", _path("path", self.path))
        _check_source_and_cause(self)


@dataclass(frozen=True, slots=True)
class ListRequest(PathRequest):
    """The children of *path*: an array of segments in key order."""

    OP = "list"
    ACCESS = "read"


@dataclass(frozen=True, slots=True)
class SubtreeRequest(PathRequest):
    """Stream the current event of *path* and of every path below it, in key order."""

    OP = "subtree"
    STREAM = True
    ACCESS = "read"


@dataclass(frozen=True, slots=True)
class WatchRequest(PathRequest):
    """Stream the subtree, then a ``live`` marker, then every change below *path*."""

    OP = "watch"
    STREAM = True
    ACCESS = "read"


@dataclass(frozen=True, slots=True)
class HistoryRequest(Request):
    """Stream the events of *path* (and below it if *recursive*), oldest first."""

    path: Path
    recursive: bool = False
    limit: int | None = None

    OP = "history"
    STREAM = True
    ACCESS = "read"

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        _set(self, "path", _path("path", self.path))
        _bool("recursive", self.recursive)
        if self.limit is not None:
            _uint("limit", self.limit, 1)


@dataclass(frozen=True, slots=True)
class LogRequest(Request):
    """Stream events in time order, filtered; with *follow*, then live ones."""

    since: TimeSpec | None = None
    until: TimeSpec | None = None
    origin: str | None = None
    path: Path | None = None
    limit: int | None = None
    follow: bool = False

    OP = "log"
    STREAM = True
    ACCESS = "read"

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        for name in ("since", "until"):
            if getattr(self, name) is not None:
                _set(self, name, _time(name, getattr(self, name)))
        if self.origin is not None:
            try:
                check_node_name(self.origin)
            except MoatLogError as exc:
                raise _fail("origin", str(exc)) from None
        if self.path is not None:
            _set(self, "path", _path("path", self.path))
        if self.limit is not None:
            _uint("limit", self.limit, 1)
        if _bool("follow", self.follow) and self.until is not None:
            raise _fail("follow", "cannot be combined with 'until'")


@dataclass(frozen=True, slots=True)
class ReplayRequest(Request):
    """Stream the state as of *until* under *path*, computed from the journal."""

    until: TimeSpec
    path: Path | None = None

    OP = "replay"
    STREAM = True
    ACCESS = "read"

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        _set(self, "until", _time("until", self.until))
        if self.path is not None:
            _set(self, "path", _path("path", self.path))


@dataclass(frozen=True, slots=True)
class StatusRequest(Request):
    """The node's status: a map (node, protocol, software, user, clock, ...)."""

    OP = "status"


@dataclass(frozen=True, slots=True)
class AuthStartRequest(Request):
    """``scram-scrypt`` step 1: who logs in, and the client's nonce."""

    user: str
    nonce: bytes

    OP = "auth"
    CONSTANTS: ClassVar[dict[str, object]] = {"method": SCRAM_METHOD, "step": 1}

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        _user(self.user)
        _bytes("nonce", self.nonce, NONCE_SIZE)


@dataclass(frozen=True, slots=True)
class AuthProofRequest(Request):
    """``scram-scrypt`` step 2: the ClientProof."""

    proof: bytes

    OP = "auth"
    CONSTANTS: ClassVar[dict[str, object]] = {"method": SCRAM_METHOD, "step": 2}

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        _bytes("proof", self.proof, 32)


@dataclass(frozen=True, slots=True)
class TokenAuthRequest(Request):
    """``token``: one step with the user, the client's nonce and the proof."""

    user: str
    nonce: bytes
    proof: bytes

    OP = "auth"
    CONSTANTS: ClassVar[dict[str, object]] = {"method": TOKEN_METHOD}

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        _user(self.user)
        _bytes("nonce", self.nonce, NONCE_SIZE)
        _bytes("proof", self.proof, 32)


def _user(user: object) -> None:
    try:
        check_user_name(user)
    except ValueError as exc:
        raise _fail("user", str(exc)) from None


#: The request class of each (non-auth) op.
REQUEST_TYPES: Final[dict[str, type[Request]]] = {
    cls.OP: cls
    for cls in (
        GetRequest,
        SetRequest,
        DeleteRequest,
        ListRequest,
        SubtreeRequest,
        WatchRequest,
        HistoryRequest,
        LogRequest,
        ReplayRequest,
        StatusRequest,
    )
}
AUTH_TYPES: Final[dict[tuple[object, object], type[Request]]] = {
    (SCRAM_METHOD, 1): AuthStartRequest,
    (SCRAM_METHOD, 2): AuthProofRequest,
    (TOKEN_METHOD, None): TokenAuthRequest,
}
_ARGUMENTS: Final[dict[type[Request], tuple[dataclasses.Field[Any], ...]]] = {
    cls: dataclasses.fields(cls)[1:] for cls in (*REQUEST_TYPES.values(), *AUTH_TYPES.values())
}
#: Every op of protocol version 1.
OPS: Final = (*REQUEST_TYPES, "auth")


@dataclass(frozen=True, slots=True)
class Cancel:
    """``{"id": ID, "cancel": true}``: the client asks to stop request ID."""

    id: int

    def __post_init__(self) -> None:
        _uint("id", self.id)

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "cancel": True}


def message_id(message: object) -> int:
    """The id of a decoded client message; `RemoteProtocolError` if it has none."""
    if type(message) is not dict:
        raise RemoteProtocolError(f"a message must be a msgpack map, not {type(message).__name__}")
    request_id = message.get("id")
    if type(request_id) is not int or not 0 <= request_id <= MAX_ID:
        raise RemoteProtocolError(
            f"a message needs an 'id' that is an integer 0 .. 2**64-1, not {show(request_id)}"
        )
    return request_id


def parse_client_message(message: object) -> Request | Cancel:
    """A decoded client message as a request or a cancel.

    Raises `RemoteProtocolError` if no reply can be addressed (no map, no
    valid id, a malformed cancel) and `RequestError` for a bad request.
    """
    request_id = message_id(message)
    assert type(message) is dict
    if "cancel" in message:
        if message.get("cancel") is not True or len(message) != 2:
            raise RemoteProtocolError('a cancel message is exactly {"id": ID, "cancel": true}')
        return Cancel(request_id)
    return parse_request(message, request_id)


def parse_request(message: dict[Any, Any], request_id: int | None = None) -> Request:
    """Build the request a decoded map describes, or raise `RequestError`."""
    if request_id is None:
        request_id = message_id(message)
    op = message.get("op")
    if type(op) is not str:
        raise RequestError(
            ErrorType.BAD_REQUEST,
            f"a request needs an 'op' that is a str, not {show(op)}",
            request_id=request_id,
        )
    if op == "set" and len(message) == 4 and "path" in message and "value" in message:
        try:  # the hot shape {id, op, path, value}: no argument juggling
            return SetRequest(request_id, message["path"], message["value"])
        except (ValueError, TypeError) as exc:
            raise RequestError(
                ErrorType.BAD_REQUEST, f"op 'set': {exc}", request_id=request_id
            ) from None
    args = dict(message)
    del args["id"], args["op"]
    if op == "auth":
        cls = _auth_type(args, request_id)
    else:
        found = REQUEST_TYPES.get(op)
        if found is None:
            raise RequestError(
                ErrorType.UNKNOWN_OP,
                f"unknown op {show(op)}; protocol version 1 has {', '.join(OPS)}",
                request_id=request_id,
            )
        cls = found
    return _build(cls, request_id, args)


def _auth_type(args: dict[Any, Any], request_id: int) -> type[Request]:
    method, step = args.pop("method", None), args.pop("step", None)
    cls = AUTH_TYPES.get((method, step))
    if cls is None:
        raise RequestError(
            ErrorType.BAD_REQUEST,
            f"auth method {show(method)} with step {show(step)} does not exist: use "
            f"method '{SCRAM_METHOD}' with step 1 or 2, or method '{TOKEN_METHOD}' without a step",
            request_id=request_id,
        )
    return cls


@dataclass(frozen=True, slots=True)
class _Signature:
    """The wire arguments of a request class, precomputed for parsing."""

    names: frozenset[str]
    required: tuple[str, ...]
    nil_is_absent: tuple[str, ...]  # optional arguments whose default is None

    @classmethod
    def of(cls, request_type: type[Request]) -> _Signature:
        fields = _ARGUMENTS[request_type]
        return cls(
            frozenset(field.name for field in fields),
            tuple(field.name for field in fields if field.default is dataclasses.MISSING),
            tuple(field.name for field in fields if field.default is None),
        )


_SIGNATURES: Final = {cls: _Signature.of(cls) for cls in _ARGUMENTS}


def _build(cls: type[Request], request_id: int, args: dict[Any, Any]) -> Request:
    signature = _SIGNATURES[cls]
    if not signature.names.issuperset(args):
        unknown = next(key for key in args if key not in signature.names)
        raise RequestError(
            ErrorType.BAD_REQUEST,
            f"op '{cls.OP}' has no argument {show(unknown)}; "
            f"its arguments are: {', '.join(sorted(signature.names)) or 'none'}",
            request_id=request_id,
        )
    for name in signature.required:
        if name not in args:
            raise RequestError(
                ErrorType.BAD_REQUEST,
                f"op '{cls.OP}' needs the argument '{name}'",
                request_id=request_id,
            )
    for name in signature.nil_is_absent:
        if name in args and args[name] is None:
            del args[name]  # nil for an optional argument means "absent"
    try:
        return cls(request_id, **args)
    except (ValueError, TypeError) as exc:
        raise RequestError(
            ErrorType.BAD_REQUEST, f"op '{cls.OP}': {exc}", request_id=request_id
        ) from None
