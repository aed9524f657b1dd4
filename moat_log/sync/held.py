"""What a node holds: per origin, the set of seqs, and the little algebra sync needs.

`Held` is a plain ``dict[str, RangeSet]``, the shape of `Journal.summary`.
Empty range sets are never kept, so two equal holdings are equal dicts.  The
wire form is a msgpack map from origin to the packed range set
(``RangeSet.to_msgpack``: ``[s1, e1, s2, e2, ...]``), keys sorted.

The *request order* of a holding - origins in byte order, each origin's seqs
ascending - is the order in which a batch carries the events of a want
(docs/sync-protocol.md, "Batches").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeAlias, TypeVar

from ..errors import InvalidInputError
from ..event import Event
from ..ids import EventId, is_node_name
from ..protocol.errors import RemoteProtocolError, show
from ..rangeset import RangeSet

_V = TypeVar("_V")

__all__ = [
    "Held",
    "add_events",
    "by_origin_from_wire",
    "copy_held",
    "count",
    "held_from_wire",
    "held_to_wire",
    "holds",
    "ids_in_order",
    "merge",
    "subtract",
    "take",
]

#: Per origin, the seqs held (never an empty range set).
Held: TypeAlias = dict[str, RangeSet]


def copy_held(held: Mapping[str, RangeSet]) -> Held:
    """An independent copy, without empty entries."""
    return {origin: seqs.copy() for origin, seqs in sorted(held.items()) if seqs}


def holds(held: Mapping[str, RangeSet], origin: str, seq: int) -> bool:
    seqs = held.get(origin)
    return seqs is not None and seq in seqs


def count(held: Mapping[str, RangeSet]) -> int:
    """How many events *held* names."""
    return sum(seqs.count for seqs in held.values())


def subtract(held: Mapping[str, RangeSet], other: Mapping[str, RangeSet]) -> Held:
    """What *held* has and *other* has not."""
    result: Held = {}
    for origin, seqs in sorted(held.items()):
        theirs = other.get(origin)
        rest = seqs if theirs is None else seqs - theirs
        if rest:
            result[origin] = rest.copy() if rest is seqs else rest
    return result


def merge(target: Held, other: Mapping[str, RangeSet]) -> None:
    """Add everything of *other* to *target*."""
    for origin, seqs in other.items():
        if not seqs:
            continue
        mine = target.get(origin)
        target[origin] = seqs.copy() if mine is None else mine | seqs


def add_events(target: Held, events: Iterable[Event]) -> None:
    """Add the ids of *events* to *target*.

    Events come mostly as runs of one origin's consecutive seqs (a batch, a
    commit): each run is added as one range, not seq by seq.
    """
    origin: str | None = None
    first = last = 0
    for event in events:
        if event.origin == origin and event.seq == last + 1:
            last += 1
            continue
        if origin is not None:
            _add_run(target, origin, first, last)
        origin, first, last = event.origin, event.seq, event.seq
    if origin is not None:
        _add_run(target, origin, first, last)


def _add_run(target: Held, origin: str, first: int, last: int) -> None:
    seqs = target.get(origin)
    if seqs is None:
        seqs = target[origin] = RangeSet()
    if first == last:
        seqs.add(first)
    else:
        seqs.add_range(first, last)


def ids_in_order(held: Mapping[str, RangeSet]) -> Iterator[EventId]:
    """Every id of *held* in request order: origins in byte order, seqs ascending."""
    for origin in sorted(held):
        for seq in held[origin]:
            yield EventId(origin, seq)


def take(held: Mapping[str, RangeSet], limit: int) -> Held:
    """The first *limit* ids of *held* in request order (all of them if fewer)."""
    result: Held = {}
    left = limit
    for origin in sorted(held):
        for start, end in held[origin].ranges():
            if left <= 0:
                return result
            last = min(end, start + left - 1)
            result.setdefault(origin, RangeSet()).add_range(start, last)
            left -= last - start + 1
    return result


def held_to_wire(held: Mapping[str, RangeSet]) -> dict[str, list[int]]:
    """The wire form: ``{origin: [s1, e1, ...]}``, origins sorted, no empty entries."""
    return {origin: held[origin].to_msgpack() for origin in sorted(held) if held[origin]}


def held_from_wire(wire: object, what: str) -> Held:
    """Validate a received holding; *what* names it in the error."""

    def ranges(origin: str, packed: object) -> RangeSet:
        try:
            seqs = RangeSet.from_msgpack(packed)
        except InvalidInputError as exc:
            raise RemoteProtocolError(f"{what}: the ranges of {origin!r}: {exc}") from None
        if not seqs:
            raise RemoteProtocolError(f"{what} lists {origin!r} with no seqs")
        return seqs

    return by_origin_from_wire(wire, what, ranges)


def by_origin_from_wire(
    wire: object, what: str, value: Callable[[str, object], _V]
) -> dict[str, _V]:
    """A received map from origin to something *value* validates; *what* names it."""
    if type(wire) is not dict:
        raise RemoteProtocolError(f"{what} must be a map by origin, not {show(wire)}")
    result: dict[str, _V] = {}
    for origin, item in wire.items():
        if not is_node_name(origin):
            raise RemoteProtocolError(f"{what} names an invalid origin {show(origin)}")
        result[origin] = value(origin, item)
    return result
