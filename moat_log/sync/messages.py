"""The sync protocol's messages: one frozen dataclass per message type.

Theory of operation
-------------------
Every message is a msgpack map with a ``type`` and exactly the keys of its
type (docs/sync-protocol.md, "Messages"); only the hello, which must stay
readable by every future version, ignores keys it does not know.  Each class
validates its fields in ``__post_init__``, so a message built in Python and
one decoded from the wire pass the same checks; `parse_message` turns every
problem into a `RemoteProtocolError`.

Batches stay compressed here: decompressing and checking their events is
`moat_log.sync.batches`' job, against the want they answer.  Pushed events
are decoded and validated (`Event.from_msgpack`) while parsing, and encoded
by splicing their packed form into the frame.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

import msgpack

from ..errors import InvalidEventError
from ..event import Event
from ..event_decoder import event_from_wire
from ..ids import MAX_U64, check_node_name
from ..idset import IdSet
from ..protocol.errors import RemoteProtocolError, show
from ..protocol.framing import encode_frame, frame_bytes
from .auth import NONCE_SIZE, PROTOCOL_VERSION
from .held import by_origin_from_wire, held_from_wire
from .holdings import Tips

__all__ = [
    "MAX_BATCH_CONTENT",
    "MAX_MESSAGE_CHARS",
    "MAX_WANT_EVENTS",
    "PROTOCOL_VERSION",
    "Batch",
    "Goodbye",
    "GoodbyeReason",
    "Have",
    "Hello",
    "Message",
    "Proof",
    "Push",
    "Summary",
    "Want",
    "encode",
    "parse_message",
    "push_frame",
]

#: The most events one want may ask for.
MAX_WANT_EVENTS: Final = 4096
#: The largest decompressed content of a batch, and the most packed event
#: bytes in one push.  Twice the largest event, so one always fits.
MAX_BATCH_CONTENT: Final = 2 * 1024 * 1024
#: Goodbye messages are cut to this many characters.
MAX_MESSAGE_CHARS: Final = 4096


class GoodbyeReason(enum.StrEnum):
    """Why a node ends a link (docs: "Goodbye")."""

    PROTOCOL = "protocol"  # the peer broke the protocol
    AUTH_FAILED = "auth-failed"  # the peers do not share the cluster secret
    VERSION = "version"  # the peer speaks another protocol version
    CONFLICT = "conflict"  # the peer sent an event that conflicts with a stored one
    CLOCK = "clock"  # the peer sent an event timed too far after this node's clock
    DUPLICATE_LINK = "duplicate-link"  # the two nodes have another link already
    SHUTDOWN = "shutdown"  # the node is stopping
    BUSY = "busy"  # the node serves as many connections as it may
    INTERNAL = "internal"  # a bug or a storage failure on this node


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _uint(name: str, value: object, low: int = 0, high: int = MAX_U64) -> None:
    _check(
        type(value) is int and low <= value <= high,
        f"'{name}' must be an integer {low} .. {high}, not {show(value)}",
    )


def _bin(name: str, value: object, size: int | None = None) -> None:
    _check(type(value) is bytes, f"'{name}' must be bin, not {show(value)}")
    if size is not None:
        _check(len(value) == size, f"'{name}' must be {size} bytes, not {len(value)}")  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message of each side: protocol version, node name, fresh nonce."""

    TYPE: ClassVar[str] = "hello"

    version: int
    node: str
    nonce: bytes
    #: The sender asks for a ``have`` once the peer holds all it offered
    #: (``moat-log ship``).  Optional on the wire: absent means False.
    have: bool = False
    #: The sender is a one-shot transfer (``moat-log pull`` or ``ship``), not
    #: a node's standing link.  Optional on the wire: absent means False.
    transfer: bool = False
    #: The sender's journal may be compacted: it understands a summary's
    #: ``gone`` and a standing link's repeated ``have``s, and sends them to a
    #: peer that says the same.  Optional on the wire: absent means False.
    compaction: bool = False

    def __post_init__(self) -> None:
        _uint("version", self.version)
        check_node_name(self.node)
        _bin("nonce", self.nonce, NONCE_SIZE)
        _check(type(self.have) is bool, f"'have' must be a bool, not {show(self.have)}")
        _check(type(self.transfer) is bool, f"'transfer' must be a bool, not {show(self.transfer)}")
        _check(
            type(self.compaction) is bool,
            f"'compaction' must be a bool, not {show(self.compaction)}",
        )

    def to_wire(self) -> dict[str, Any]:
        wire = {"type": self.TYPE, "version": self.version, "node": self.node, "nonce": self.nonce}
        if self.have:
            wire["have"] = True
        if self.transfer:
            wire["transfer"] = True
        if self.compaction:
            wire["compaction"] = True
        return wire


@dataclass(frozen=True, slots=True)
class Proof:
    """A node's proof that it knows the cluster secret (see `moat_log.sync.auth`)."""

    TYPE: ClassVar[str] = "auth"

    proof: bytes

    def __post_init__(self) -> None:
        _bin("proof", self.proof)  # a wrong length is a wrong proof, refused like any other

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "proof": self.proof}


@dataclass(frozen=True, slots=True)
class Summary:
    """What the sender holds: per origin, its seqs, and its last event's hlc (tips)."""

    TYPE: ClassVar[str] = "summary"

    held: IdSet
    #: Per origin the sender's journal holds, its last seq and that event's
    #: hlc - also for what *held* does not offer (a one-way link offers
    #: nothing); an origin may be left out (its tip is then not checked).
    tips: Tips = dataclasses.field(default_factory=dict)
    #: The ids of *held* whose events compaction removed: held in the sense
    #: that they are never asked for or pushed again, but not served.  None:
    #: the key is absent (a peer whose hello did not say ``compaction``).
    gone: IdSet | None = None

    def __post_init__(self) -> None:
        if self.gone is not None:
            _check(
                self.gone <= self.held,
                f"a summary's 'gone' names ids its 'held' does not: {self.gone - self.held}",
            )

    def to_wire(self) -> dict[str, Any]:
        wire = {
            "type": self.TYPE,
            "held": self.held.to_wire(),
            "tips": {origin: list(self.tips[origin]) for origin in sorted(self.tips)},
        }
        if self.gone is not None:
            wire["gone"] = self.gone.to_wire()
        return wire


@dataclass(frozen=True, slots=True)
class Have:
    """The sender holds *held*, all the peer offered: sent once, if the peer's hello asked."""

    TYPE: ClassVar[str] = "have"

    held: IdSet

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "held": self.held.to_wire()}


@dataclass(frozen=True, slots=True)
class Want:
    """Ask the peer for the events *seqs*; answered by one batch with the same id."""

    TYPE: ClassVar[str] = "want"

    id: int
    seqs: IdSet

    def __post_init__(self) -> None:
        _uint("id", self.id)
        total = self.seqs.count
        _check(total >= 1, "a want asks for at least one event")
        _check(
            total <= MAX_WANT_EVENTS,
            f"a want asks for at most {MAX_WANT_EVENTS} events, not {total}",
        )

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "seqs": self.seqs.to_wire()}


@dataclass(frozen=True, slots=True)
class Batch:
    """Events answering want *id*: a zstd frame of *count* packed events, *size* bytes."""

    TYPE: ClassVar[str] = "batch"

    id: int
    count: int
    size: int
    zstd: bytes

    def __post_init__(self) -> None:
        _uint("id", self.id)
        _uint("count", self.count, 1, MAX_WANT_EVENTS)
        _uint("size", self.size, 1, MAX_BATCH_CONTENT)
        _bin("zstd", self.zstd)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "count": self.count,
            "size": self.size,
            "zstd": self.zstd,
        }


@dataclass(frozen=True, slots=True)
class Push:
    """Events the sender stored and the peer is not known to hold."""

    TYPE: ClassVar[str] = "push"

    events: tuple[Event, ...]

    def __post_init__(self) -> None:
        _check(len(self.events) >= 1, "a push carries at least one event")

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "events": [event.to_msgpack() for event in self.events]}


@dataclass(frozen=True, slots=True)
class Goodbye:
    """The last message of a link: why it ends."""

    TYPE: ClassVar[str] = "goodbye"

    reason: str
    message: str

    def __post_init__(self) -> None:
        _check(type(self.reason) is str, f"'reason' must be a str, not {show(self.reason)}")
        _check(type(self.message) is str, f"'message' must be a str, not {show(self.message)}")

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "reason": self.reason, "message": self.message}


Message: TypeAlias = Hello | Proof | Summary | Want | Batch | Push | Have | Goodbye

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)
_PUSH_HEAD: Final = b"".join(
    (_packer.pack_map_header(2), _packer.pack("type"), _packer.pack("push"), _packer.pack("events"))
)


def encode(message: Message) -> bytes:
    """The frame of *message*."""
    if type(message) is Push:
        return push_frame([event.pack() for event in message.events])
    return encode_frame(message.to_wire())


def push_frame(packed_events: Sequence[bytes]) -> bytes:
    """The frame of a push of these packed events, spliced in without repacking."""
    return frame_bytes(
        b"".join((_PUSH_HEAD, _packer.pack_array_header(len(packed_events)), *packed_events))
    )


# --- parsing -------------------------------------------------------------------


_TYPES: Final[dict[str, type[Proof | Summary | Want | Batch | Push | Have | Goodbye]]] = {
    cls.TYPE: cls for cls in (Proof, Summary, Want, Batch, Push, Have, Goodbye)
}


def parse_message(frame: object) -> Message:
    """The message a decoded frame holds.  Raises `RemoteProtocolError`."""
    if type(frame) is not dict:
        raise RemoteProtocolError(f"a message must be a map, not {show(frame)}")
    kind = frame.get("type")
    if kind == Hello.TYPE:
        optional = {
            "have": frame.get("have", False),
            "transfer": frame.get("transfer", False),
            "compaction": frame.get("compaction", False),
        }
        return _parse(Hello, {**frame, **optional})
    cls = _TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        if "moat-log" in frame:
            raise RemoteProtocolError(
                "the peer is a moat-log client port, not a sync port: check the peer's address"
            )
        raise RemoteProtocolError(f"unknown message type {show(kind)}")
    keys = {"type", *(field.name for field in dataclasses.fields(cls))}
    if cls is Summary and "gone" not in frame:
        keys.discard("gone")  # present only towards a peer whose hello said 'compaction'
    if frame.keys() != keys:
        extra = sorted(map(str, frame.keys() - keys))
        missing = sorted(keys - frame.keys())
        raise RemoteProtocolError(
            f"a {cls.TYPE} message has the keys {sorted(keys)}; "
            f"this one lacks {missing} and has extra {extra}"
        )
    if cls is Push:
        return Push(_events(frame["events"]))
    if cls is Summary:
        held = held_from_wire(frame["held"], "the summary")
        gone = None if "gone" not in frame else held_from_wire(frame["gone"], "the summary's gone")
        return _parse(Summary, {"held": held, "tips": _tips(frame["tips"]), "gone": gone})
    if cls is Have:
        return Have(held_from_wire(frame["held"], "the have"))
    if cls is Want:
        return _parse(Want, {**frame, "seqs": held_from_wire(frame["seqs"], "the want")})
    return _parse(cls, frame)


_M = TypeVar("_M", bound=Message)


def _parse(cls: type[_M], frame: dict[Any, Any]) -> _M:
    """Build *cls* from the frame's values of its fields (missing ones are None)."""
    values: list[Any] = [frame.get(field.name) for field in dataclasses.fields(cls)]
    try:
        return cls(*values)
    except ValueError as exc:
        raise RemoteProtocolError(f"invalid {cls.TYPE} message: {exc}") from None


def _tips(wire: object) -> Tips:
    def tip(origin: str, item: object) -> tuple[int, int]:
        if not (
            type(item) is list
            and len(item) == 2
            and all(type(number) is int for number in item)
            and 1 <= item[0] <= MAX_U64
            and 0 <= item[1] <= MAX_U64
        ):
            raise RemoteProtocolError(
                f"the tip of {origin!r} must be [seq, hlc] (integers), not {show(item)}"
            )
        return (item[0], item[1])

    return by_origin_from_wire(wire, "a summary's 'tips'", tip)


def _events(wire: object) -> tuple[Event, ...]:
    if type(wire) is not list or not wire:
        raise RemoteProtocolError(f"a push's 'events' must be a non-empty array, not {show(wire)}")
    try:
        return tuple(event_from_wire(fields) for fields in wire)
    except InvalidEventError as exc:
        raise RemoteProtocolError(f"a pushed event is invalid: {exc}") from None
