"""The fast decoder of packed events from outside: C-speed typing, the same verdicts.

`Event.unpack` is the reference: it unpacks with msgpack and validates every
field in Python, about 5 µs an event, which held imports to a third of their
target (docs/decisions.md, "One typed, strict reader for config and wire
records").  `decode_event` lets msgspec check the shape and the types of the
wire form in C (array of ten, format version, int ranges of seq and hlc, op,
str and map types) and does in Python only what msgspec cannot express:
node names, the deps clock, the path (its checks cached per path, since bus
traffic repeats a few hundred paths), the value, the cause.

Anything the fast path does not accept goes to `Event.unpack` unchanged, so
a bad record gets exactly the error it got before, and the fast path never
accepts what the reference refuses (tests/core/test_event_decoder.py checks
both on random wire forms, valid and not).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from .errors import MoatLogError
from .event import MAX_EVENT_BYTES, MAX_SOURCE_CHARS, Event, Op, normalize_value
from .ids import EventId, is_node_name
from .path import Path
from .vclock import VectorClock

__all__ = ["decode_event", "event_from_wire"]

#: A canonical event starts with a msgpack fixarray of ten; any other layout
#: (array16, more fields) is left to the reference, which knows the messages.
#: (msgspec would also accept an array longer than the struct.)
_FIXARRAY_10: Final = 0x9A
#: Paths whose checks are remembered; past this the cache starts afresh, so a
#: file of unique paths costs memory for this many only.
_PATH_CACHE_SIZE: Final = 4096
_OPS: Final = (Op.SET, Op.DELETE)
_PLAIN_VALUES: Final = (type(None), bool, int, float, str, bytes)


class _WireEvent(msgspec.Struct, array_like=True, gc=False):
    """The version-1 wire form, typed: ``[1, origin, seq, hlc, deps, path, op, ...]``."""

    version: Literal[1]
    origin: str
    # No upper bound: msgpack has no int above 2**64-1 (and msgspec takes
    # bounds of int64 only).
    seq: Annotated[int, Meta(ge=1)]
    hlc: Annotated[int, Meta(ge=0)]
    deps: dict[str, int]
    path: tuple[str | int, ...]  # the key of the path cache as it is
    op: Literal[0, 1]
    value: Any
    source: str
    cause: tuple[str, int] | None


_decode_wire = msgspec.msgpack.Decoder(_WireEvent).decode
_convert = msgspec.convert
_EMPTY_CLOCK: Final = VectorClock()
_paths: dict[tuple[str | int, ...], Path] = {}


def decode_event(data: bytes | memoryview) -> Event:
    """Decode and validate a packed event, like `Event.unpack`; raises `InvalidEventError`."""
    if data and data[0] == _FIXARRAY_10 and len(data) <= MAX_EVENT_BYTES:
        try:
            wire = _decode_wire(data)
        except msgspec.MsgspecError:
            pass
        else:
            event = _checked_event(wire)
            if event is not None:
                return event
    return Event.unpack(bytes(data))


def event_from_wire(fields: object) -> Event:
    """Build an event from its unpacked wire form, like `Event.from_msgpack`.

    For wire forms that arrive already unpacked inside a larger message (a
    sync push): msgspec types the fields in C from the Python objects.
    """
    # msgspec would take a tuple for the path's array; the reference does not.
    if type(fields) is list and len(fields) == 10 and type(fields[5]) is list:
        try:
            wire = _convert(fields, _WireEvent, strict=True)
        except msgspec.MsgspecError:
            pass
        else:
            event = _checked_event(wire)
            if event is not None:
                return event
    return Event.from_msgpack(fields)


def _checked_event(wire: _WireEvent) -> Event | None:
    """The event of a well-typed wire form, or None if a field is invalid."""
    origin, deps, value, source, cause = wire.origin, wire.deps, wire.value, wire.source, wire.cause
    if not is_node_name(origin) or len(source) > MAX_SOURCE_CHARS:
        return None
    op = _OPS[wire.op]
    if op is Op.DELETE and value is not None:
        return None
    try:
        clock = VectorClock(deps) if deps else _EMPTY_CLOCK
        path = _path(wire.path)
        if type(value) not in _PLAIN_VALUES:
            value = normalize_value(value)
        cause_id = None if cause is None else EventId.checked(*cause)
    except (MoatLogError, TypeError):
        return None
    if origin in clock:
        return None
    return Event.trusted(origin, wire.seq, wire.hlc, clock, path, op, value, source, cause_id)


def _path(segments: tuple[str | int, ...]) -> Path:
    path = _paths.get(segments)
    if path is None:
        path = Path(segments)  # raises PathSyntaxError
        if len(_paths) >= _PATH_CACHE_SIZE:
            _paths.clear()
        _paths[segments] = path
    return path
