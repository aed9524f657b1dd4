"""Vector clocks: what a node had seen when it created an event."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .errors import InvalidInputError
from .ids import MAX_U64, EventId, check_node_name, is_node_name


class VectorClock(Mapping[str, int]):
    """An immutable map ``{origin: highest contiguous seq seen}``.

    Origins with nothing seen are simply absent (a missing entry means 0).
    Entries are kept sorted by origin so the packed form is canonical: two
    equal clocks always pack to the same bytes.
    """

    __slots__ = ("_entries", "_hash")

    _entries: dict[str, int]

    def __init__(self, entries: Mapping[str, int] | None = None) -> None:
        checked: dict[str, int] = {}
        if entries:
            for origin, seq in entries.items():
                if not is_node_name(origin):
                    check_node_name(origin)  # raises, naming the problem
                if type(seq) is not int or not 0 <= seq <= MAX_U64:
                    raise InvalidInputError(f"vector clock entry {origin}={seq!r} is not a seq")
                if seq:
                    checked[origin] = seq
            if len(checked) > 1 and list(checked) != sorted(checked):
                checked = dict(sorted(checked.items()))
        self._entries = checked
        self._hash: int | None = None

    @classmethod
    def trusted(cls, entries: dict[str, int]) -> VectorClock:
        """A clock of *entries* that are already valid and sorted, nonzero seqs only.

        For deps the journal reads back from its own storage, which holds
        only the canonical `to_msgpack` form of validated clocks.
        """
        clock = object.__new__(cls)
        clock._entries = entries
        clock._hash = None
        return clock

    def __getitem__(self, origin: str) -> int:
        return self._entries[origin]

    def get(self, origin: str, default: int = 0) -> int:  # type: ignore[override]
        return self._entries.get(origin, default)

    def __contains__(self, origin: object) -> bool:
        return origin in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._entries.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VectorClock):
            return self._entries == other._entries
        if isinstance(other, Mapping):
            return self._entries == {k: v for k, v in other.items() if v}
        return NotImplemented

    def __repr__(self) -> str:
        return f"VectorClock({self._entries!r})"

    def covers(self, event_id: EventId) -> bool:
        """True if an event with this clock had seen *event_id*."""
        return self._entries.get(event_id.origin, 0) >= event_id.seq

    def join(self, other: Mapping[str, int]) -> VectorClock:
        """The element-wise maximum: everything either clock had seen."""
        joined = dict(self._entries)
        changed = False
        for origin, seq in other.items():
            if seq > joined.get(origin, 0):
                joined[origin] = seq
                changed = True
        if not changed:
            return self
        return VectorClock.trusted(dict(sorted(joined.items())))

    def first_decrease(self, later: Mapping[str, int]) -> str | None:
        """An origin for which *later* claims less than this clock, or None if none does.

        An origin's events carry clocks that never decrease (docs/event-format.md,
        "deps never decrease"): this names the first origin that breaks it.
        """
        for origin, seq in self._entries.items():
            if later.get(origin, 0) < seq:
                return origin
        return None

    def to_msgpack(self) -> dict[str, int]:
        """The wire form: a map sorted by origin."""
        return self._entries
