"""The event: one immutable state change, and its versioned wire form.

Wire form (see docs/event-format.md): a msgpack array

    [1, origin, seq, hlc, deps, path, op, value, source, cause]

where ``1`` is the format version, ``deps`` a map sorted by origin that omits
the event's own origin (an origin has always seen its own earlier events),
``path`` an array of str/int segments, ``op`` 0 (set) or 1 (delete), and
``cause`` nil or ``[origin, seq]``.  Unpacking validates every field, so a
peer's or a file's garbage becomes an `InvalidEventError`, never a crash.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgpack

from .errors import InvalidEventError, MoatLogError
from .ids import MAX_U64, EventId, is_node_name
from .path import Path
from .vclock import VectorClock

FORMAT_VERSION = 1

#: The largest packed event the journal accepts.  Bus values are small; a
#: limit keeps one bad script from filling a Pi's SD card with one write.
MAX_EVENT_BYTES = 1 << 20
MAX_SOURCE_CHARS = 256
MAX_VALUE_DEPTH = 32

#: Any msgpack-able value: None, bool, int, float, str, bytes, list, dict.
Value = Any


class Op(enum.IntEnum):
    """What an event does to its path."""

    SET = 0
    DELETE = 1  # a tombstone: the path has no value afterwards

    def __str__(self) -> str:
        return self.name.lower()


_SCALARS = (type(None), bool, float, str, bytes)


def normalize_value(value: Value, depth: int = 0) -> Value:
    """Check that *value* is msgpack-able and return its canonical form.

    Tuples become lists and bytearrays bytes, so that a value survives the
    round trip through the wire form unchanged.  Raises `InvalidEventError`.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is int:
        if not -(2**63) <= value <= MAX_U64:
            raise InvalidEventError(f"integer {value} does not fit in 64 bits")
        return value
    if depth >= MAX_VALUE_DEPTH:
        raise InvalidEventError(f"value nests deeper than {MAX_VALUE_DEPTH} levels")
    if kind is list or kind is tuple:
        items = [normalize_value(item, depth + 1) for item in value]
        return (
            value
            if kind is list and all(a is b for a, b in zip(items, value, strict=False))
            else items
        )
    if kind is dict:
        for key in value:
            if type(key) is not str and type(key) is not int:
                raise InvalidEventError(f"map key {key!r} must be a str or an int")
        return {key: normalize_value(item, depth + 1) for key, item in value.items()}
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    raise InvalidEventError(
        f"value of type {kind.__name__} cannot be stored: use None, bool, int, float, "
        "str, bytes, list or dict"
    )


class _EventFields(NamedTuple):
    origin: str
    seq: int
    hlc: int
    deps: VectorClock
    path: Path
    op: Op
    value: Value = None
    source: str = ""
    cause: EventId | None = None


class Event(_EventFields):
    """One immutable state change.  Validated on construction.

    An immutable named tuple rather than a frozen dataclass: the journal builds
    one for every append, insert and read, and a tuple is built three times
    faster (docs/decisions.md).  Events compare equal only to events.
    """

    __slots__ = ()

    def __new__(  # noqa: PLR0917 - the wire form's field order
        cls,
        origin: str,
        seq: int,
        hlc: int,
        deps: VectorClock | dict[str, int],
        path: Path | Sequence[str | int],
        op: Op | int,
        value: Value = None,
        source: str = "",
        cause: EventId | Sequence[object] | None = None,
    ) -> Event:
        if not is_node_name(origin):
            raise InvalidEventError(f"invalid origin {origin!r}")
        if type(seq) is not int or not 1 <= seq <= MAX_U64:
            raise InvalidEventError(f"invalid seq {seq!r}: must be 1 .. 2**64-1")
        if type(hlc) is not int or not 0 <= hlc <= MAX_U64:
            raise InvalidEventError(f"invalid hlc {hlc!r}: must be 0 .. 2**64-1")
        clock = deps if type(deps) is VectorClock else _vector_clock(deps)
        if origin in clock:
            raise InvalidEventError("deps must not contain the event's own origin")
        operation = op if type(op) is Op else _op(op)
        if operation is Op.DELETE and value is not None:
            raise InvalidEventError("a delete event carries no value")
        if type(source) is not str or len(source) > MAX_SOURCE_CHARS:
            raise InvalidEventError(
                f"invalid source {source!r}: must be a str of at most {MAX_SOURCE_CHARS} characters"
            )
        return tuple.__new__(
            cls,
            (
                origin,
                seq,
                hlc,
                clock,
                path if type(path) is Path else _path(path),
                operation,
                normalize_value(value),
                source,
                cause if cause is None or type(cause) is EventId else _event_id(cause),
            ),
        )

    @classmethod
    def trusted(  # noqa: PLR0917 - the wire form's field order, on the append hot path
        cls,
        origin: str,
        seq: int,
        hlc: int,
        deps: VectorClock,
        path: Path,
        op: Op,
        value: Value,
        source: str,
        cause: EventId | None,
    ) -> Event:
        """Build an event from fields that are already validated, skipping the checks.

        Only for the journal's own appends, whose payload was validated as a
        `Change` and whose origin, seq, hlc and deps the journal computed.
        """
        return _new_tuple(cls, (origin, seq, hlc, deps, path, op, value, source, cause))

    def __eq__(self, other: object) -> bool:
        return type(other) is Event and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        # By identity fields only: equal events share them, and the value may
        # be a list or a map, which a tuple hash would refuse.
        return hash((self.origin, self.seq, self.hlc))

    def _replace(self, **changes: Any) -> Event:
        """A copy with some fields changed, validated like a new event."""
        return Event(**{**self._asdict(), **changes})

    @property
    def id(self) -> EventId:
        """The event's global id ``(origin, seq)``."""
        return EventId(self.origin, self.seq)

    def happened_before(self, other: Event) -> bool:
        """True if *other* was created by a node that had seen this event."""
        if self.origin == other.origin:
            return self.seq < other.seq
        return other.deps.get(self.origin) >= self.seq

    def concurrent_with(self, other: Event) -> bool:
        """True if neither event had seen the other."""
        return not (self.happened_before(other) or other.happened_before(self))

    def to_msgpack(self) -> list[Any]:
        """The wire form as a msgpack-able list."""
        return [
            FORMAT_VERSION,
            self.origin,
            self.seq,
            self.hlc,
            self.deps.to_msgpack(),
            list(self.path),
            int(self.op),
            self.value,
            self.source,
            None if self.cause is None else [self.cause.origin, self.cause.seq],
        ]

    def pack(self) -> bytes:
        """The packed wire form.  Raises `InvalidEventError` if it is too large."""
        origin, seq, hlc, deps, path, op, value, source, cause = self
        try:
            # Path, EventId (tuples) and Op (an int) pack as their wire forms.
            wire = (FORMAT_VERSION, origin, seq, hlc, deps.to_msgpack(), path, op, value)
            data: bytes = _packb((*wire, source, cause))
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. surrogates in a str
            raise InvalidEventError(f"event cannot be packed: {exc}") from exc
        if len(data) > MAX_EVENT_BYTES:
            raise InvalidEventError(
                f"event is {len(data)} bytes packed, more than the limit of {MAX_EVENT_BYTES}"
            )
        return data

    @classmethod
    def unpack(cls, data: bytes) -> Event:
        """Decode and validate a packed event.  Raises `InvalidEventError`."""
        if len(data) > MAX_EVENT_BYTES:
            raise InvalidEventError(f"packed event of {len(data)} bytes exceeds the limit")
        try:
            fields = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
        except Exception as exc:  # msgpack raises many unrelated types on garbage
            raise InvalidEventError(f"not a packed event: {exc}") from exc
        return cls.from_msgpack(fields)

    @classmethod
    def unpack_trusted(cls, data: bytes) -> Event:
        """Decode a packed event that was validated when it was stored, skipping the checks.

        Only for what the journal reads back from its own LMDB: it stores
        nothing but the canonical `pack` of validated events.  Anything from
        outside (a file, a peer, the command line) goes through `unpack`, and
        so does ``moat-log verify``, which is the check for corrupted records.
        Data that is not a version-1 event at all still raises
        `InvalidEventError`; a well-formed event with invalid fields does not.
        """
        try:
            fields = _unpackb(data, raw=False, strict_map_key=False)
            version, origin, seq, hlc, deps, path, op, value, source, cause = fields
            clock = VectorClock.trusted(deps) if deps else _EMPTY_CLOCK
            segments = _new_tuple(Path, path)  # Path._trusted, without the call
            operation = _OPS[op]
            cause_id = None if cause is None else EventId(*cause)
        except Exception as exc:  # msgpack raises many unrelated types on garbage
            raise InvalidEventError(f"not a packed event: {exc}") from exc
        if version != FORMAT_VERSION:
            raise InvalidEventError(f"unsupported event format version {version!r}")
        return _new_tuple(
            cls,
            (origin, seq, hlc, clock, segments, operation, value, source, cause_id),
        )

    @classmethod
    def from_msgpack(cls, fields: object) -> Event:
        """Build an event from its unpacked wire form.  Raises `InvalidEventError`."""
        if type(fields) is not list or not fields:
            raise InvalidEventError("a packed event must be a non-empty msgpack array")
        if fields[0] != FORMAT_VERSION or type(fields[0]) is not int:
            raise InvalidEventError(
                f"unsupported event format version {fields[0]!r} "
                f"(this moat-log reads version {FORMAT_VERSION})"
            )
        if len(fields) != 10:
            raise InvalidEventError(f"a version-1 event has 10 fields, not {len(fields)}")
        _, origin, seq, hlc, deps, path, op, value, source, cause = fields
        if type(path) is not list:
            raise InvalidEventError("an event's path must be an array")
        return cls(origin, seq, hlc, deps, path, op, value, source, cause)


_EMPTY_CLOCK = VectorClock()
_OPS = {0: Op.SET, 1: Op.DELETE}  # the wire form's op
_new_tuple = tuple.__new__
_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_unpackb = msgpack.unpackb


def _vector_clock(deps: object) -> VectorClock:
    if type(deps) is dict and not deps:
        return _EMPTY_CLOCK
    if not isinstance(deps, dict):
        raise InvalidEventError(f"deps must be a map of origin to seq, not {deps!r}")
    try:
        return VectorClock(deps)
    except (MoatLogError, TypeError) as exc:
        raise InvalidEventError(f"invalid deps: {exc}") from exc


def _path(path: object) -> Path:
    if not isinstance(path, (list, tuple)):
        raise InvalidEventError(f"path must be a sequence of segments, not {path!r}")
    try:
        return Path(path)
    except (MoatLogError, TypeError) as exc:
        raise InvalidEventError(f"invalid path: {exc}") from exc


def _op(op: object) -> Op:
    if type(op) is int and op in (0, 1):
        return Op(op)
    raise InvalidEventError(f"invalid op {op!r}: 0 (set) or 1 (delete)")


def _event_id(cause: object) -> EventId:
    if not isinstance(cause, (list, tuple)) or len(cause) != 2:
        raise InvalidEventError(f"cause must be nil or [origin, seq], not {cause!r}")
    try:
        return EventId.checked(cause[0], cause[1])
    except MoatLogError as exc:
        raise InvalidEventError(f"invalid cause: {exc}") from exc
