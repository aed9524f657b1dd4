"""RangeSet against a plain `set` model, plus its serial forms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from moat_log.errors import InvalidInputError
from moat_log.ids import MAX_U64
from moat_log.rangeset import RangeSet

# The model universe: small numbers make overlaps, adjacency and gaps common.
LIMIT = 300

members = st.integers(1, LIMIT)


@st.composite
def ranges(draw: st.DrawFn, low: int = 1, high: int = LIMIT) -> tuple[int, int]:
    start = draw(st.integers(low, high))
    length = draw(st.integers(0, 40))
    return start, min(start + length, high)


range_lists = st.lists(ranges(), max_size=8)


def model_of(pairs: list[tuple[int, int]]) -> set[int]:
    return {n for start, end in pairs for n in range(start, end + 1)}


def assert_canonical(rs: RangeSet) -> None:
    previous_end = -1
    for start, end in rs.ranges():
        assert 1 <= start <= end <= MAX_U64
        assert start > previous_end + 1, f"{rs!r}: ranges overlap or touch"
        previous_end = end


def assert_matches(rs: RangeSet, model: set[int]) -> None:
    assert_canonical(rs)
    assert list(rs) == sorted(model)
    assert len(rs) == len(model)
    assert bool(rs) == bool(model)
    assert rs.max == max(model, default=0)
    for n in range(LIMIT + 2):
        assert (n in rs) == (n in model)


def model_contiguous_end(model: set[int]) -> int:
    n = 0
    while n + 1 in model:
        n += 1
    return n


class RangeSetMachine(RuleBasedStateMachine):
    """Random updates keep a RangeSet equal to a set and in canonical form."""

    def __init__(self) -> None:
        super().__init__()
        self.rs = RangeSet()
        self.model: set[int] = set()
        self.snapshot: tuple[RangeSet, set[int]] | None = None

    @rule(n=members)
    def add(self, n: int) -> None:
        self.rs.add(n)
        self.model.add(n)

    @rule()
    def append_next(self) -> None:
        """The journal's common case: the fast path of `add`."""
        n = self.rs.max + 1
        self.rs.add(n)
        self.model.add(n)

    @rule(r=ranges())
    def add_range(self, r: tuple[int, int]) -> None:
        self.rs.add_range(*r)
        self.model |= model_of([r])

    @rule(r=ranges())
    def discard_range(self, r: tuple[int, int]) -> None:
        self.rs.discard_range(*r)
        self.model -= model_of([r])

    @rule()
    def take_snapshot(self) -> None:
        self.snapshot = (self.rs.copy(), set(self.model))

    @precondition(lambda self: self.snapshot is not None)
    @rule()
    def snapshot_is_independent(self) -> None:
        assert self.snapshot is not None
        copy, model = self.snapshot
        assert_matches(copy, model)

    @invariant()
    def matches_model(self) -> None:
        assert_matches(self.rs, self.model)

    @invariant()
    def contiguous_end_matches_model(self) -> None:
        assert self.rs.contiguous_end() == model_contiguous_end(self.model)

    @invariant()
    def serial_forms_round_trip(self) -> None:
        assert RangeSet.from_msgpack(self.rs.to_msgpack()) == self.rs
        assert RangeSet.parse(str(self.rs)) == self.rs
        assert RangeSet(self.rs.ranges()) == self.rs


TestRangeSetMachine = RangeSetMachine.TestCase


@given(range_lists)
def test_constructor_normalises(pairs: list[tuple[int, int]]) -> None:
    assert_matches(RangeSet(pairs), model_of(pairs))


@given(range_lists, range_lists)
def test_set_algebra_matches_model(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    rs_a, rs_b = RangeSet(a), RangeSet(b)
    set_a, set_b = model_of(a), model_of(b)
    assert_matches(rs_a | rs_b, set_a | set_b)
    assert_matches(rs_a - rs_b, set_a - set_b)
    assert_matches(rs_a & rs_b, set_a & set_b)
    assert_matches(rs_a.union(rs_b), set_a | set_b)
    assert_matches(rs_a.difference(rs_b), set_a - set_b)
    assert_matches(rs_a.intersection(rs_b), set_a & set_b)
    assert rs_a.issubset(rs_b) == set_a.issubset(set_b)
    assert rs_a.issubset(rs_a | rs_b)
    assert (rs_a & rs_b).issubset(rs_b)
    assert (rs_a == rs_b) == (set_a == set_b)


@given(range_lists, range_lists)
def test_set_algebra_leaves_operands_alone(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> None:
    rs_a, rs_b = RangeSet(a), RangeSet(b)
    for result in (rs_a | rs_b, rs_a - rs_b, rs_a & rs_b):
        result.add_range(1, LIMIT)
    assert rs_a == RangeSet(a)
    assert rs_b == RangeSet(b)


def test_examples() -> None:
    rs = RangeSet([(9, 12), (1, 5), (7, 7), (3, 4)])
    assert str(rs) == "1-5,7,9-12"
    assert repr(rs) == "RangeSet('1-5,7,9-12')"
    assert list(rs.ranges()) == [(1, 5), (7, 7), (9, 12)]
    assert rs.to_msgpack() == [1, 5, 7, 7, 9, 12]
    assert len(rs) == 10
    assert rs.max == 12
    assert rs.contiguous_end() == 5
    assert RangeSet([(2, 3)]).contiguous_end() == 0
    assert RangeSet([(1, 2), (3, 4)]) == RangeSet([(1, 4)])
    assert str(RangeSet()) == ""
    assert repr(RangeSet()) == "RangeSet('')"
    assert RangeSet().max == 0
    assert not RangeSet()


def test_what_a_peer_lacks() -> None:
    mine = RangeSet([(1, 100)])
    peer = RangeSet([(1, 40), (45, 60)])
    assert str(mine - peer) == "41-44,61-100"


def test_add_fast_path_extends_last_range() -> None:
    rs = RangeSet()
    for n in range(1, 1001):
        rs.add(n)
    assert list(rs.ranges()) == [(1, 1000)]
    rs.add(1002)
    rs.add(1001)
    assert list(rs.ranges()) == [(1, 1002)]


def test_copy_is_independent() -> None:
    rs = RangeSet([(1, 5)])
    copy = rs.copy()
    copy.add(6)
    rs.discard_range(2, 2)
    assert str(rs) == "1,3-5"
    assert str(copy) == "1-6"


def test_contains_rejects_non_members() -> None:
    rs = RangeSet([(1, 5)])
    assert True not in rs
    assert 1.0 not in rs
    assert "1" not in rs
    assert 0 not in rs


def test_operators_refuse_other_types() -> None:
    rs = RangeSet([(1, 5)])
    with pytest.raises(TypeError):
        rs | {6}
    with pytest.raises(TypeError):
        rs - {1}
    with pytest.raises(TypeError):
        rs & {1}
    assert rs != {1, 2, 3, 4, 5}


def test_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(RangeSet())


# --- huge values: never materialise these as sets --------------------------------

huge_members = st.integers(MAX_U64 - 2**20, MAX_U64)


@given(st.lists(huge_members, max_size=10))
def test_huge_values_round_trip(points: list[int]) -> None:
    rs = RangeSet((n, min(n + 1000, MAX_U64)) for n in points)
    rs.add_range(1, 2**63)
    packed = rs.to_msgpack()
    assert all(type(n) is int and 1 <= n <= MAX_U64 for n in packed)
    assert RangeSet.from_msgpack(packed) == rs
    assert RangeSet.parse(str(rs)) == rs
    assert_canonical(rs)


def test_huge_values_edges() -> None:
    everything = RangeSet([(1, MAX_U64)])
    assert everything.count == MAX_U64
    with pytest.raises(OverflowError):
        len(everything)
    assert everything.max == MAX_U64
    assert everything.contiguous_end() == MAX_U64
    assert MAX_U64 in everything
    assert MAX_U64 + 1 not in everything

    top = RangeSet([(MAX_U64 - 1, MAX_U64)])
    assert str(everything - top) == f"1-{MAX_U64 - 2}"
    assert everything & top == top
    assert top.issubset(everything)
    assert not everything.issubset(top)
    assert (everything - top) | top == everything

    rs = RangeSet([(MAX_U64 - 1, MAX_U64 - 1)])
    rs.add(MAX_U64)  # fast path at the very top
    assert rs == top
    assert list(rs) == [MAX_U64 - 1, MAX_U64]
    rs.discard_range(MAX_U64, MAX_U64)
    assert rs.to_msgpack() == [MAX_U64 - 1, MAX_U64 - 1]


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param((1, 2), id="tuple"),
        pytest.param({"a": 1}, id="dict"),
        pytest.param(None, id="none"),
        pytest.param(b"\x01\x02", id="bytes"),
        pytest.param([1], id="odd-length"),
        pytest.param([1, 2, 5], id="odd-length-3"),
        pytest.param([5, 7, 1, 2], id="unsorted"),
        pytest.param([1, 5, 3, 8], id="overlapping"),
        pytest.param([1, 5, 5, 8], id="sharing-an-end"),
        pytest.param([1, 2, 3, 4], id="adjacent"),
        pytest.param([3, 1], id="start-after-end"),
        pytest.param([0, 5], id="zero"),
        pytest.param([-3, 5], id="negative"),
        pytest.param([1, MAX_U64 + 1], id="above-u64"),
        pytest.param([True, 3], id="bool-start"),
        pytest.param([1, True], id="bool-end"),
        pytest.param([1.0, 2.0], id="floats"),
        pytest.param(["1", "2"], id="strings"),
        pytest.param([[1, 2]], id="nested"),
    ],
)
def test_from_msgpack_rejects(data: object) -> None:
    with pytest.raises(InvalidInputError):
        RangeSet.from_msgpack(data)


def test_from_msgpack_messages() -> None:
    with pytest.raises(InvalidInputError, match="must be a list, not tuple"):
        RangeSet.from_msgpack((1, 2))
    with pytest.raises(InvalidInputError, match="even number of items, not 3"):
        RangeSet.from_msgpack([1, 2, 5])
    with pytest.raises(InvalidInputError, match=r"not canonical: range 3-4 .* ending at 2"):
        RangeSet.from_msgpack([1, 2, 3, 4])
    with pytest.raises(InvalidInputError, match=r"invalid sequence number True"):
        RangeSet.from_msgpack([True, 3])


def test_from_msgpack_accepts_empty() -> None:
    assert RangeSet.from_msgpack([]) == RangeSet()


@pytest.mark.parametrize(
    "bad",
    [0, -1, MAX_U64 + 1, True, False, 1.0, "1", None],
)
def test_updates_reject_bad_members(bad: object) -> None:
    rs = RangeSet([(1, 5)])
    for update in (
        lambda: rs.add(bad),  # type: ignore[arg-type]
        lambda: rs.add_range(bad, 7),  # type: ignore[arg-type]
        lambda: rs.add_range(1, bad),  # type: ignore[arg-type]
        lambda: rs.discard_range(bad, 7),  # type: ignore[arg-type]
        lambda: RangeSet([(bad, 7)]),  # type: ignore[list-item]
    ):
        with pytest.raises(InvalidInputError, match="invalid sequence number"):
            update()
    assert rs == RangeSet([(1, 5)])


def test_true_is_not_the_next_member() -> None:
    rs = RangeSet()
    with pytest.raises(InvalidInputError):
        rs.add(True)
    assert not rs


def test_start_after_end_is_rejected() -> None:
    rs = RangeSet()
    with pytest.raises(InvalidInputError, match="start is greater than end"):
        rs.add_range(5, 4)
    with pytest.raises(InvalidInputError, match="start is greater than end"):
        rs.discard_range(5, 4)
    with pytest.raises(InvalidInputError, match="start is greater than end"):
        RangeSet([(5, 4)])


@pytest.mark.parametrize("bad", [(1,), (1, 2, 3), 7, "12"])
def test_constructor_rejects_non_pairs(bad: object) -> None:
    with pytest.raises(InvalidInputError, match=r"must be a \(start, end\) pair"):
        RangeSet([bad])  # type: ignore[list-item]


def test_parse_is_lenient_about_order_and_spaces() -> None:
    assert RangeSet.parse(" 9-12, 1-5 ,7,3-4 ") == RangeSet([(1, 5), (7, 7), (9, 12)])
    assert RangeSet.parse("") == RangeSet()
    assert RangeSet.parse("  ") == RangeSet()


@pytest.mark.parametrize(
    "text",
    [
        *("1,", ",1", "1,,2", "a", "1-", "-1", "1-2-3", "5-4", "0", "0-3", "1 2", "+1", "1.5"),
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() would take it
        str(MAX_U64 + 1),
        "1" * 5000,
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidInputError):
        RangeSet.parse(text)
