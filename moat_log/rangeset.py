"""Sets of event sequence numbers, stored as ranges.

A journal records, per origin node, which sequence numbers it holds.  That is
normally the single range ``1..n``; after a partial sync there may be a few
gaps.  `RangeSet` keeps such a set as a sorted list of disjoint, non-adjacent,
inclusive ranges, so it stays tiny however many events it covers, and the
question "what does my peer lack?" is one linear merge (`difference`).

Theory of operation: the ranges live in two parallel lists, ``_starts`` and
``_ends``.  Both are strictly increasing, and ``_starts[i] > _ends[i-1] + 1``
(the canonical form: no overlaps, no touching neighbours).  Look-ups bisect one
of the lists; updates replace the slice of ranges they touch.  Every public
method keeps the canonical form, so equality is list equality and the packed
form is unique.

The members are sequence numbers ``1 .. 2**64-1`` (`MAX_U64`).
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

from .errors import InvalidInputError
from .ids import MAX_U64

__all__ = ["RangeSet"]

# One item of the text form: "7" or "9-12".  2**64-1 has 20 digits; the limit
# also keeps int() away from its 4300-digit guard.
_TEXT_ITEM_RE = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")


def _check_member(n: object) -> int:
    """Return *n* if it can be a member, else raise `InvalidInputError`."""
    if type(n) is not int or not 1 <= n <= MAX_U64:
        raise InvalidInputError(f"invalid sequence number {n!r}: must be an int in 1 .. 2**64-1")
    return n


def _check_range(start: object, end: object) -> tuple[int, int]:
    """Return ``(start, end)`` if it is a valid inclusive range, else raise."""
    first, last = _check_member(start), _check_member(end)
    if first > last:
        raise InvalidInputError(f"invalid range {first}-{last}: start is greater than end")
    return first, last


def _as_pair(item: object) -> tuple[object, object]:
    """Unpack one ``(start, end)`` argument, or raise `InvalidInputError`."""
    if not isinstance(item, tuple | list) or len(item) != 2:
        raise InvalidInputError(f"invalid range {item!r}: must be a (start, end) pair")
    return item[0], item[1]


class RangeSet:
    """A mutable set of integers ``1 .. 2**64-1``, stored as inclusive ranges.

    Supports the usual set operations (``|``, ``-``, ``&``, `issubset`), cheap
    `copy`, and two serial forms: the text form ``"1-5,7,9-12"`` (`str` /
    `parse`) and the packed form ``[1, 5, 7, 7, 9, 12]`` (`to_msgpack` /
    `from_msgpack`).
    """

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        """Build a set from inclusive ``(start, end)`` ranges in any order.

        Overlapping and adjacent ranges are merged.  Raises `InvalidInputError`
        if a range is not a pair of ints ``1 <= start <= end <= 2**64-1``.
        """
        checked = [_check_range(*_as_pair(r)) for r in ranges]
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._extend_sorted(sorted(checked))

    @classmethod
    def _from_canonical(cls, starts: list[int], ends: list[int]) -> RangeSet:
        """Wrap lists that are already in canonical form, without checks."""
        result = cls.__new__(cls)
        result._starts = starts
        result._ends = ends
        return result

    def _extend_sorted(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Append ranges sorted by start, beginning at or after our last range."""
        starts, ends = self._starts, self._ends
        for start, end in ranges:
            if ends and start <= ends[-1] + 1:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)

    # --- updates ---------------------------------------------------------------

    def add(self, n: int) -> None:
        """Add the integer *n*.

        Appending the next sequence number (``n == max + 1``) is O(1); anything
        else bisects and may shift the lists.
        """
        ends = self._ends
        # Fast path: the journal appends its next event.  The type check keeps
        # True (== 1) and friends out even here.
        if ends and type(n) is int and n == ends[-1] + 1 and n <= MAX_U64:
            ends[-1] = n
            return
        self.add_range(n, n)

    def add_range(self, start: int, end: int) -> None:
        """Add every integer in ``start .. end`` (inclusive)."""
        _check_range(start, end)
        # Ranges i .. j-1 overlap or touch the new one and merge with it.
        i = bisect_left(self._ends, start - 1)
        j = bisect_right(self._starts, end + 1)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def discard_range(self, start: int, end: int) -> None:
        """Remove every integer in ``start .. end`` (inclusive) that is present."""
        _check_range(start, end)
        # Ranges i .. j-1 overlap the removed one; their outer parts survive.
        i = bisect_left(self._ends, start)
        j = bisect_right(self._starts, end)
        if i >= j:
            return
        new_starts: list[int] = []
        new_ends: list[int] = []
        if self._starts[i] < start:
            new_starts.append(self._starts[i])
            new_ends.append(start - 1)
        if self._ends[j - 1] > end:
            new_starts.append(end + 1)
            new_ends.append(self._ends[j - 1])
        self._starts[i:j] = new_starts
        self._ends[i:j] = new_ends

    def copy(self) -> RangeSet:
        """Return an independent copy (O(number of ranges))."""
        return RangeSet._from_canonical(self._starts.copy(), self._ends.copy())

    # --- queries ---------------------------------------------------------------

    def __contains__(self, n: object) -> bool:
        if type(n) is not int:
            return False
        i = bisect_right(self._starts, n) - 1
        return i >= 0 and n <= self._ends[i]

    @property
    def count(self) -> int:
        """The number of integers held, as an unbounded int.

        Use this instead of `len` when the set may hold more than
        ``sys.maxsize`` integers: `len` raises `OverflowError` then.
        """
        return sum(self._ends) - sum(self._starts) + len(self._starts)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __iter__(self) -> Iterator[int]:
        """Yield every integer held, ascending, lazily."""
        for start, end in self.ranges():
            yield from range(start, end + 1)

    def ranges(self) -> Iterator[tuple[int, int]]:
        """Yield the canonical inclusive ``(start, end)`` ranges, ascending."""
        return zip(self._starts, self._ends, strict=True)

    @property
    def max(self) -> int:
        """The largest integer held; 0 when empty."""
        return self._ends[-1] if self._ends else 0

    def contiguous_end(self) -> int:
        """The highest *n* such that all of ``1 .. n`` are held; 0 if 1 is not.

        This is the vector-clock entry for the origin: everything up to it is
        present without gaps.
        """
        if self._starts and self._starts[0] == 1:
            return self._ends[0]
        return 0

    # --- set algebra -------------------------------------------------------------

    def union(self, other: RangeSet) -> RangeSet:
        """Return the integers held by either set."""
        result = RangeSet()
        result._extend_sorted(heapq.merge(self.ranges(), other.ranges()))
        return result

    def difference(self, other: RangeSet) -> RangeSet:
        """Return the integers held here but not in *other* (one linear merge)."""
        starts: list[int] = []
        ends: list[int] = []
        o_starts, o_ends, o_len = other._starts, other._ends, len(other._starts)
        j = 0
        for start, end in self.ranges():
            while j < o_len and o_ends[j] < start:
                j += 1
            cursor = start  # lowest number of this range not yet decided
            while j < o_len and o_starts[j] <= end:
                if o_starts[j] > cursor:
                    starts.append(cursor)
                    ends.append(o_starts[j] - 1)
                cursor = max(cursor, o_ends[j] + 1)
                if o_ends[j] > end:
                    break  # other's range reaches into our next range: keep it
                j += 1
            if cursor <= end:
                starts.append(cursor)
                ends.append(end)
        return RangeSet._from_canonical(starts, ends)

    def intersection(self, other: RangeSet) -> RangeSet:
        """Return the integers held by both sets."""
        starts: list[int] = []
        ends: list[int] = []
        i = j = 0
        while i < len(self._starts) and j < len(other._starts):
            low = max(self._starts[i], other._starts[j])
            high = min(self._ends[i], other._ends[j])
            if low <= high:
                # Pieces never touch: touching pieces would lie in one range of
                # each (both inputs are canonical), hence in one piece.
                starts.append(low)
                ends.append(high)
            if self._ends[i] < other._ends[j]:
                i += 1
            else:
                j += 1
        return RangeSet._from_canonical(starts, ends)

    def issubset(self, other: RangeSet) -> bool:
        """Return whether every integer held here is also held by *other*."""
        o_starts, o_ends, o_len = other._starts, other._ends, len(other._starts)
        j = 0
        for start, end in self.ranges():
            while j < o_len and o_ends[j] < start:
                j += 1
            if j == o_len or o_starts[j] > start or o_ends[j] < end:
                return False
        return True

    def __or__(self, other: object) -> RangeSet:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self.union(other)

    def __sub__(self, other: object) -> RangeSet:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self.difference(other)

    def __and__(self, other: object) -> RangeSet:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self.intersection(other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    __hash__ = None  # type: ignore[assignment]  # mutable

    # --- serial forms ------------------------------------------------------------

    def to_msgpack(self) -> list[int]:
        """Return the packed form: the flat list ``[s1, e1, s2, e2, ...]``."""
        return [n for pair in self.ranges() for n in pair]

    @classmethod
    def from_msgpack(cls, data: object) -> RangeSet:
        """Unpack the form made by `to_msgpack`, validating it strictly.

        *data* comes from a peer or a file, so only the canonical form is
        accepted: a list of an even number of ints in ``1 .. 2**64-1``, whose
        ranges are ascending, disjoint and non-adjacent (``[1, 2, 3, 4]`` is
        rejected: it is ``[1, 4]``).  Raises `InvalidInputError` otherwise.
        """
        if not isinstance(data, list):
            raise InvalidInputError(f"packed range set must be a list, not {type(data).__name__}")
        if len(data) % 2:
            raise InvalidInputError(
                f"packed range set must have an even number of items, not {len(data)}"
            )
        starts: list[int] = data[0::2]
        ends: list[int] = data[1::2]
        previous_end = -1
        for start, end in zip(starts, ends, strict=True):
            _check_range(start, end)
            if start <= previous_end + 1:
                raise InvalidInputError(
                    f"packed range set is not canonical: range {start}-{end} "
                    f"overlaps or touches the range before it, ending at {previous_end}"
                )
            previous_end = end
        return cls._from_canonical(starts, ends)

    def __str__(self) -> str:
        """Return the text form, e.g. ``"1-5,7,9-12"``; ``""`` when empty."""
        return ",".join(
            str(start) if start == end else f"{start}-{end}" for start, end in self.ranges()
        )

    def __repr__(self) -> str:
        return f"RangeSet({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> RangeSet:
        """Parse the text form made by `str`, e.g. ``"1-5,7,9-12"``.

        Items may come in any order and overlap (they are merged); spaces
        around items are ignored.  ``""`` is the empty set.  Raises
        `InvalidInputError` for anything else.
        """
        if not text.strip():
            return cls()
        ranges: list[tuple[int, int]] = []
        for item in text.split(","):
            match = _TEXT_ITEM_RE.fullmatch(item.strip())
            if match is None:
                raise InvalidInputError(
                    f"invalid range {item.strip()!r} in {text!r}: write ranges like '1-5,7,9-12'"
                )
            start = int(match[1])
            end = int(match[2]) if match[2] is not None else start
            ranges.append((start, end))
        return cls(ranges)
