"""Sets of event ids, kept per origin as range sets: what a node holds.

Every node holds, per origin (the node that wrote an event), a set of
sequence numbers: normally ``1..n``, with a few gaps after a partial sync.
`IdSet` is that set of ids ``(origin, seq)``: a sorted map from origin to a
non-empty `RangeSet`.  The sync protocol exchanges them (a summary, a want,
a have), the journal records one, status and the CLI show them, and the
question partition healing asks - "what does the peer hold that I lack?" -
is one difference, ``theirs - mine``.

Theory of operation: `IdSet` is immutable.  It owns its range sets (copied
in, copied out), keeps its origins sorted in byte order (the protocol's
*request order*: origins in byte order, each origin's seqs ascending) and
never keeps an empty range set, so equality is dict equality and the wire
form is unique.  Code that grows a set event by event (the journal's write
transaction, a link's tally of what crossed it) uses an `IdSetBuilder`, the
mutable counterpart, and takes an `IdSet` from it with `build`.

Serial forms: the wire form ``{origin: [s1, e1, s2, e2, ...]}``
(docs/sync-protocol.md, "Held ranges"; `to_wire` / `from_wire`) and the text
form ``"pi1:1-500 pi2:1-20,22-40"`` (`str` / `parse`).
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from .errors import InvalidInputError
from .ids import EventId, is_node_name
from .rangeset import RangeSet

if TYPE_CHECKING:
    from .event import Event

__all__ = ["IdSet", "IdSetBuilder"]

# Received data is named in messages briefly: never megabytes.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = 6
_SHORT.maxlevel = 3


def _check_origin(origin: object) -> str:
    if not is_node_name(origin):
        raise InvalidInputError(
            f"invalid origin {origin!r}: a node name has 1-64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    return origin  # type: ignore[return-value]


def _id_pair(item: object) -> tuple[object, object]:
    if isinstance(item, tuple) and len(item) == 2:  # an EventId is a tuple too
        return item[0], item[1]
    raise TypeError(
        f"an IdSet holds event ids (origin, seq), not {type(item).__name__}; "
        "for an origin, look at .origins"
    )


class IdSet:
    """An immutable set of event ids ``(origin, seq)``, kept per origin as `RangeSet`.

    Operators as for sets: ``|`` union, ``-`` difference (what this side holds
    and the other lacks), ``&`` intersection, ``<=`` / ``>=`` subset / covers,
    ``in`` for an id (an `EventId` or an ``(origin, seq)`` pair), `len` (or
    `count`) the number of ids, iteration over the ids in request order.
    `items` gives each origin with its seqs.  Equal sets are equal and hash
    alike.
    """

    __slots__ = ("_seqs",)
    _seqs: dict[str, RangeSet]  # sorted by origin, never an empty set, never mutated

    def __init__(self, seqs: Mapping[str, RangeSet] | IdSet | None = None) -> None:
        """The ids of *seqs*, per origin its sequence numbers (copied), or of an `IdSet`.

        Empty range sets are dropped.  Raises `InvalidInputError` for an
        origin that is not a node name, `TypeError` for a value that is not
        a `RangeSet`.
        """
        if isinstance(seqs, IdSet):
            object.__setattr__(self, "_seqs", seqs._seqs)  # immutable: shared
            return
        result: dict[str, RangeSet] = {}
        for origin, ranges in sorted((seqs or {}).items()):
            if not isinstance(ranges, RangeSet):
                raise TypeError(f"the seqs of {origin!r} must be a RangeSet, not {ranges!r}")
            if ranges:
                result[_check_origin(origin)] = ranges.copy()
        object.__setattr__(self, "_seqs", result)

    @staticmethod
    def _owning(seqs: dict[str, RangeSet]) -> IdSet:
        """Wrap *seqs*, sorted, without empty sets and owned by nobody else: no copy."""
        # The slot's own setter: a set is made on every step of a link, and
        # neither __init__ nor object.__setattr__ is needed for one.
        result = _new_object(IdSet)
        _set_seqs(result, seqs)
        return result

    @classmethod
    def of_range(cls, origin: str, first: int, last: int) -> IdSet:
        """The ids ``origin:first`` .. ``origin:last``."""
        return IdSet._owning({_check_origin(origin): RangeSet([(first, last)])})

    @classmethod
    def of_events(cls, events: Iterable[Event]) -> IdSet:
        """The ids of *events*."""
        builder = IdSetBuilder()
        builder.add_events(events)
        return builder.build()

    # --- queries ---------------------------------------------------------------

    def __contains__(self, item: object) -> bool:
        origin, seq = _id_pair(item)
        seqs = self._seqs.get(origin)  # type: ignore[call-overload]
        return seqs is not None and seq in seqs

    def holds(self, origin: str, seq: int) -> bool:
        """Whether the id ``origin:seq`` is in the set (``in`` without a tuple)."""
        seqs = self._seqs.get(origin)
        return seqs is not None and seq in seqs

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins with at least one id, in byte order."""
        return tuple(self._seqs)

    def seqs(self, origin: str) -> RangeSet:
        """A copy of the seqs of *origin* (empty if it has none)."""
        seqs = self._seqs.get(origin)
        return RangeSet() if seqs is None else seqs.copy()

    def items(self) -> Iterator[tuple[str, RangeSet]]:
        """Each origin with (a copy of) its seqs, origins in byte order."""
        for origin, seqs in self._seqs.items():
            yield origin, seqs.copy()

    def ranges(self) -> Iterator[tuple[str, int, int]]:
        """Each inclusive range of ids as ``(origin, first, last)``, in request order."""
        for origin, seqs in self._seqs.items():
            for first, last in seqs.ranges():
                yield origin, first, last

    def max(self, origin: str) -> int:
        """The greatest seq of *origin*; 0 if it has none."""
        seqs = self._seqs.get(origin)
        return 0 if seqs is None else seqs.max

    def contiguous_end(self, origin: str) -> int:
        """The highest *n* with all of ``origin:1 .. origin:n`` held; 0 if not 1."""
        seqs = self._seqs.get(origin)
        return 0 if seqs is None else seqs.contiguous_end()

    @property
    def count(self) -> int:
        """The number of ids, as an unbounded int (`len` overflows past sys.maxsize)."""
        return sum(seqs.count for seqs in self._seqs.values())

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return bool(self._seqs)

    def __iter__(self) -> Iterator[EventId]:
        """Every id, in request order: origins in byte order, seqs ascending."""
        for origin, seqs in self._seqs.items():
            for seq in seqs:
                yield EventId(origin, seq)

    def take(self, limit: int) -> IdSet:
        """The first *limit* ids in request order (all of them if fewer)."""
        if not self._seqs:
            return self
        result: dict[str, RangeSet] = {}
        left = limit
        for origin, start, end in self.ranges():
            if left <= 0:
                break
            last = min(end, start + left - 1)
            result.setdefault(origin, RangeSet()).add_range(start, last)
            left -= last - start + 1
        return IdSet._owning(result)

    # --- set algebra -----------------------------------------------------------

    def union(self, other: IdSet) -> IdSet:
        """The ids held by either set."""
        if not other._seqs:
            return self
        if not self._seqs:
            return other
        result = dict(self._seqs)  # the unchanged range sets are shared: never mutated
        for origin, seqs in other._seqs.items():
            mine = result.get(origin)
            result[origin] = seqs if mine is None else mine | seqs
        return IdSet._owning(dict(sorted(result.items())))

    def difference(self, other: IdSet | IdSetBuilder) -> IdSet:
        """The ids held here and not by *other*: what *other* lacks of this set.

        *other* may be an `IdSetBuilder`: what of this set it lacks, without
        building it first.
        """
        if not self._seqs or not other._seqs:
            return self
        result: dict[str, RangeSet] = {}
        for origin, seqs in self._seqs.items():
            theirs = other._seqs.get(origin)
            if theirs is None:
                result[origin] = seqs
            elif rest := seqs - theirs:
                result[origin] = rest
        return IdSet._owning(result)

    def intersection(self, other: IdSet | IdSetBuilder) -> IdSet:
        """The ids held by both sets (*other* may be an `IdSetBuilder`)."""
        if not self._seqs:
            return self
        result: dict[str, RangeSet] = {}
        for origin, seqs in self._seqs.items():
            theirs = other._seqs.get(origin)
            if theirs is not None and (both := seqs & theirs):
                result[origin] = both
        return IdSet._owning(result)

    def issubset(self, other: IdSet) -> bool:
        """Whether *other* holds every id of this set."""
        for origin, seqs in self._seqs.items():
            theirs = other._seqs.get(origin)
            if theirs is None or not seqs.issubset(theirs):
                return False
        return True

    def covers(self, other: IdSet) -> bool:
        """Whether this set holds every id of *other* (``other <= self``)."""
        return other.issubset(self)

    def __or__(self, other: object) -> IdSet:
        if not isinstance(other, IdSet):
            return NotImplemented
        return self.union(other)

    def __sub__(self, other: object) -> IdSet:
        if not isinstance(other, IdSet | IdSetBuilder):
            return NotImplemented
        return self.difference(other)

    def __and__(self, other: object) -> IdSet:
        if not isinstance(other, IdSet | IdSetBuilder):
            return NotImplemented
        return self.intersection(other)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return self.issubset(other)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return other.issubset(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return self != other and self.issubset(other)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return self != other and other.issubset(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return self._seqs == other._seqs

    def __hash__(self) -> int:
        return hash(
            tuple((origin, tuple(seqs.to_msgpack())) for origin, seqs in self._seqs.items())
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"an IdSet is immutable: cannot set {name!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (IdSet.from_wire, (self.to_wire(),))

    # --- serial forms ----------------------------------------------------------

    def to_wire(self) -> dict[str, list[int]]:
        """The wire form ``{origin: [s1, e1, ...]}``: origins in byte order, none empty."""
        return {origin: seqs.to_msgpack() for origin, seqs in self._seqs.items()}

    @classmethod
    def from_wire(cls, data: object, what: str = "the id set") -> IdSet:
        """Unpack the form made by `to_wire`, validating it strictly.

        *data* comes from a peer or a file: it must be a map from node name
        to a non-empty packed range set in canonical form
        (`RangeSet.from_msgpack`).  Raises `InvalidInputError` otherwise, its
        message starting with *what*.
        """
        if type(data) is not dict:
            raise InvalidInputError(f"{what} must be a map by origin, not {_SHORT.repr(data)}")
        result: dict[str, RangeSet] = {}
        for origin, packed in data.items():
            if not is_node_name(origin):
                raise InvalidInputError(f"{what} names an invalid origin {_SHORT.repr(origin)}")
            try:
                seqs = RangeSet.from_msgpack(packed)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{what}: the ranges of {origin!r}: {exc}") from None
            if not seqs:
                raise InvalidInputError(f"{what} lists {origin!r} with no seqs")
            result[origin] = seqs
        return IdSet._owning(dict(sorted(result.items())))

    def __str__(self) -> str:
        """The text form, e.g. ``"pi1:1-500 pi2:1-20,22-40"``; ``""`` when empty."""
        return " ".join(f"{origin}:{seqs}" for origin, seqs in self._seqs.items())

    def __repr__(self) -> str:
        return f"IdSet({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> IdSet:
        """Parse the text form made by `str`: ``origin:ranges`` items, space-separated.

        Ranges are as `RangeSet.parse` reads them; an origin may come more
        than once (its seqs are merged).  ``""`` is the empty set.  Raises
        `InvalidInputError` for anything else.
        """
        builder = IdSetBuilder()
        for item in text.split():
            origin, colon, ranges = item.partition(":")
            if not colon:
                raise InvalidInputError(
                    f"invalid ids {item!r} in {text!r}: write origin:ranges, like 'pi1:1-5,7'"
                )
            builder.update_origin(_check_origin(origin), RangeSet.parse(ranges))
        return builder.build()


_new_object = object.__new__
_set_seqs: Callable[[IdSet, dict[str, RangeSet]], None] = vars(IdSet)["_seqs"].__set__


class IdSetBuilder:
    """A mutable set of event ids, grown in place and turned into an `IdSet` by `build`.

    For code that adds ids one event at a time, where a new `IdSet` per event
    would cost a copy each: the journal's write transaction, a link's tally
    of what crossed it, a node's holdings.  Queries are those an `IdSet` has
    for one id or origin.
    """

    __slots__ = ("_seqs",)

    def __init__(self, ids: IdSet | None = None) -> None:
        """Start with (a copy of) *ids*, or empty."""
        self._seqs: dict[str, RangeSet] = (
            {} if ids is None else {origin: seqs.copy() for origin, seqs in ids._seqs.items()}
        )

    # --- updates ---------------------------------------------------------------

    def add(self, origin: str, seq: int) -> None:
        """Add the id ``origin:seq`` (O(1) when *seq* follows the origin's last)."""
        seqs = self._seqs.get(origin)
        if seqs is None:
            seqs = self._seqs[_check_origin(origin)] = RangeSet()
        seqs.add(seq)

    def add_range(self, origin: str, first: int, last: int) -> None:
        """Add the ids ``origin:first`` .. ``origin:last``."""
        seqs = self._seqs.get(origin)
        if seqs is None:
            seqs = self._seqs[_check_origin(origin)] = RangeSet()
        seqs.add_range(first, last)

    def add_events(self, events: Iterable[Event]) -> None:
        """Add the ids of *events*.

        Events come mostly as runs of one origin's consecutive seqs (a batch,
        a commit): each run is added as one range, not seq by seq.
        """
        origin: str | None = None
        first = last = 0
        for event in events:
            if event.origin == origin and event.seq == last + 1:
                last += 1
                continue
            if origin is not None:
                self._add_run(origin, first, last)
            origin, first, last = event.origin, event.seq, event.seq
        if origin is not None:
            self._add_run(origin, first, last)

    def _add_run(self, origin: str, first: int, last: int) -> None:
        seqs = self._seqs.get(origin)
        if seqs is None:
            seqs = self._seqs[_check_origin(origin)] = RangeSet()
        if first == last:
            seqs.add(first)
        else:
            seqs.add_range(first, last)

    def update(self, ids: IdSet) -> None:
        """Add every id of *ids*."""
        for origin, seqs in ids._seqs.items():
            self.update_origin(origin, seqs)

    def update_origin(self, origin: str, seqs: RangeSet) -> None:
        """Add the ids of *origin* with the seqs *seqs*."""
        if not seqs:
            return
        mine = self._seqs.get(origin)
        if mine is None:
            self._seqs[_check_origin(origin)] = seqs.copy()
        else:
            self._seqs[origin] = mine | seqs

    def seqs(self, origin: str) -> RangeSet:
        """The builder's own, mutable, seqs of *origin*; created empty if it has none.

        For hot paths that add to one origin's set many times: changes to it
        change the builder.  Only ever add to it.
        """
        seqs = self._seqs.get(origin)
        if seqs is None:
            seqs = self._seqs[_check_origin(origin)] = RangeSet()
        return seqs

    # --- queries ---------------------------------------------------------------

    def holds(self, origin: str, seq: int) -> bool:
        """Whether the id ``origin:seq`` was added."""
        seqs = self._seqs.get(origin)
        return seqs is not None and seq in seqs

    def __contains__(self, item: object) -> bool:
        origin, seq = _id_pair(item)
        return self.holds(origin, seq)  # type: ignore[arg-type]

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins with at least one id added, in no particular order."""
        return tuple(origin for origin, seqs in self._seqs.items() if seqs)

    def contiguous_end(self, origin: str) -> int:
        """The highest *n* with all of ``origin:1 .. origin:n`` added; 0 if not 1."""
        seqs = self._seqs.get(origin)
        return 0 if seqs is None else seqs.contiguous_end()

    def max(self, origin: str) -> int:
        """The greatest seq of *origin* added; 0 if none."""
        seqs = self._seqs.get(origin)
        return 0 if seqs is None else seqs.max

    def __bool__(self) -> bool:
        return any(self._seqs.values())

    def build(self) -> IdSet:
        """An `IdSet` of the ids added so far (a copy: the builder may go on)."""
        return IdSet._owning(
            {origin: seqs.copy() for origin, seqs in sorted(self._seqs.items()) if seqs}
        )

    def __repr__(self) -> str:
        return f"<IdSetBuilder {self.build()}>"
