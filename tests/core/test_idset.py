"""IdSet against a plain set of (origin, seq) pairs: its algebra, serial forms, builder."""

from __future__ import annotations

import pickle

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.errors import InvalidInputError
from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.idset import IdSet, IdSetBuilder
from moat_log.path import Path
from moat_log.rangeset import RangeSet

# A small universe: overlaps, gaps and shared origins are common.
ORIGINS = ("a", "b", "pi1")
LIMIT = 60


@st.composite
def id_sets(draw: st.DrawFn) -> IdSet:
    seqs = {}
    for origin in draw(st.lists(st.sampled_from(ORIGINS), unique=True)):
        pairs = draw(st.lists(st.tuples(st.integers(1, LIMIT), st.integers(0, 10)), max_size=4))
        seqs[origin] = RangeSet((start, min(start + length, LIMIT)) for start, length in pairs)
    return IdSet(seqs)


def model(ids: IdSet) -> set[tuple[str, int]]:
    return {(origin, seq) for origin, seqs in ids.items() for seq in seqs}


def assert_canonical(ids: IdSet) -> None:
    origins = [origin for origin, _ in ids.items()]
    assert origins == sorted(origins) == list(ids.origins)
    assert all(seqs for _, seqs in ids.items())


@given(id_sets(), id_sets())
def test_algebra_matches_a_set_of_pairs(a: IdSet, b: IdSet) -> None:
    for result, expected in (
        (a | b, model(a) | model(b)),
        (a - b, model(a) - model(b)),
        (a & b, model(a) & model(b)),
    ):
        assert_canonical(result)
        assert model(result) == expected
        assert len(result) == result.count == len(expected)
    assert (a <= b) == (model(a) <= model(b)) == b.covers(a) == (b >= a)
    assert (a < b) == (model(a) < model(b))
    assert (a == b) == (model(a) == model(b))


@given(id_sets(), id_sets(), id_sets())
def test_union_and_intersection_laws(a: IdSet, b: IdSet, c: IdSet) -> None:
    assert a | b == b | a
    assert a & b == b & a
    assert (a | b) | c == a | (b | c)
    assert (a & b) & c == a & (b & c)
    assert a & (b | c) == (a & b) | (a & c)
    assert a | a == a == a & a
    assert a | IdSet() == a
    assert not a & IdSet()


@given(id_sets(), id_sets())
def test_difference_then_union_restores(a: IdSet, b: IdSet) -> None:
    # What the peer lacks, once sent, makes it hold everything both held.
    lacking = a - b
    assert not lacking & b
    assert b | lacking == a | b
    assert (a - b) | (a & b) == a


@given(id_sets(), id_sets())
def test_covers_iff_the_difference_is_empty(a: IdSet, b: IdSet) -> None:
    assert a.covers(b) == (not (b - a))
    assert a.covers(a & b)
    assert (a | b).covers(a)


@given(id_sets())
def test_wire_form_round_trips_through_msgpack(ids: IdSet) -> None:
    wire = ids.to_wire()
    assert list(wire) == sorted(wire)
    back = IdSet.from_wire(msgpack.unpackb(msgpack.packb(wire)))
    assert back == ids
    assert hash(back) == hash(ids)
    assert IdSet.parse(str(ids)) == ids
    assert pickle.loads(pickle.dumps(ids)) == ids


@given(id_sets())
def test_membership_iteration_and_per_origin_queries(ids: IdSet) -> None:
    pairs = model(ids)
    assert list(ids) == sorted(EventId(o, s) for o, s in pairs)
    for origin in ORIGINS:
        for seq in range(LIMIT + 2):
            assert ((origin, seq) in ids) == ((origin, seq) in pairs) == ids.holds(origin, seq)
        seqs = {s for o, s in pairs if o == origin}
        assert ids.max(origin) == max(seqs, default=0)
        end = 0
        while end + 1 in seqs:
            end += 1
        assert ids.contiguous_end(origin) == end
        assert set(ids.seqs(origin)) == seqs


@given(id_sets(), st.integers(0, 200))
def test_take_is_the_first_ids_in_request_order(ids: IdSet, limit: int) -> None:
    taken = ids.take(limit)
    assert list(taken) == list(ids)[:limit]


@given(id_sets(), id_sets())
def test_builder_agrees_with_the_operators(a: IdSet, b: IdSet) -> None:
    builder = IdSetBuilder(a)
    builder.update(b)
    assert builder.build() == a | b
    assert a == IdSet(dict(a.items()))  # the builder copied: a is unchanged
    one_by_one = IdSetBuilder()
    for origin, seq in b:
        one_by_one.add(origin, seq)
    assert one_by_one.build() == b


def test_examples() -> None:
    mine = IdSet.parse("pi1:1-500 pi2:1-20,22-40")
    theirs = IdSet({"pi2": RangeSet([(1, 40)]), "pi3": RangeSet([(1, 3)])})
    assert str(theirs - mine) == "pi2:21 pi3:1-3"
    assert repr(mine) == "IdSet('pi1:1-500 pi2:1-20,22-40')"
    assert mine.to_wire() == {"pi1": [1, 500], "pi2": [1, 20, 22, 40]}
    assert len(mine) == 539
    assert EventId("pi2", 21) not in mine
    assert ("pi2", 22) in mine
    assert mine.origins == ("pi1", "pi2")
    assert IdSet.of_range("a", 3, 5) == IdSet.parse("a:3-5")
    assert str(IdSet()) == "" and not IdSet()


def test_of_events_adds_runs() -> None:
    def event(origin: str, seq: int) -> Event:
        return Event(origin, seq, seq, {}, Path.parse("x"), Op.DELETE, None, "test", None)

    events = [event("b", 1), event("b", 2), event("a", 7), event("b", 3), event("a", 8)]
    assert IdSet.of_events(events) == IdSet.parse("a:7-8 b:1-3")


def test_immutable_and_copies_in_and_out() -> None:
    seqs = RangeSet([(1, 3)])
    ids = IdSet({"a": seqs})
    seqs.add(4)
    ids.seqs("a").add(9)
    for _, inside in ids.items():
        inside.add(10)
    assert ids == IdSet.parse("a:1-3")
    with pytest.raises(AttributeError):
        ids._seqs = {}


def test_constructor_drops_empty_sets_and_checks_origins() -> None:
    assert IdSet({"a": RangeSet()}) == IdSet()
    with pytest.raises(InvalidInputError, match="invalid origin"):
        IdSet({"bad name": RangeSet([(1, 1)])})
    with pytest.raises(TypeError):
        IdSet({"a": [1, 2]})  # type: ignore[dict-item]


def test_membership_wants_an_id() -> None:
    with pytest.raises(TypeError, match="origins"):
        "a" in IdSet.parse("a:1")  # noqa: B015


def test_operators_refuse_other_types() -> None:
    ids = IdSet.parse("a:1")
    for operation in (ids.__or__, ids.__sub__, ids.__and__, ids.__le__):
        assert operation({"a": RangeSet([(1, 1)])}) is NotImplemented
    assert ids != {"a": RangeSet([(1, 1)])}


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        pytest.param([1, 2], "must be a map by origin", id="not-a-map"),
        pytest.param({"": [1, 1]}, "invalid origin", id="empty-origin"),
        pytest.param({7: [1, 1]}, "invalid origin", id="int-origin"),
        pytest.param({"a": []}, "lists 'a' with no seqs", id="empty"),
        pytest.param({"a": [1, 2, 3, 4]}, "the ranges of 'a'", id="not-canonical"),
        pytest.param({"a": [0, 2]}, "the ranges of 'a'", id="zero"),
    ],
)
def test_from_wire_refuses_all_but_the_canonical_form(wire: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        IdSet.from_wire(wire, "the summary")
    assert str(info.value).startswith("the summary")


@pytest.mark.parametrize("text", ["a", "a:x", "bad name:1", "a:1-"])
def test_parse_refuses_garbage(text: str) -> None:
    with pytest.raises(InvalidInputError):
        IdSet.parse(text)


@given(id_sets())
def test_ranges_are_the_per_origin_ranges_in_request_order(ids: IdSet) -> None:
    expected = [(o, first, last) for o, seqs in ids.items() for first, last in seqs.ranges()]
    assert list(ids.ranges()) == expected
    assert IdSet(ids) == ids


@given(id_sets(), id_sets())
def test_a_builder_is_subtracted_and_intersected_as_the_set_it_would_build(
    a: IdSet, b: IdSet
) -> None:
    builder = IdSetBuilder(b)
    builder.seqs("c")  # an empty set the hot path made: it holds nothing
    assert a - builder == a - b
    assert a & builder == a & b
    assert sorted(builder.origins) == list(b.origins)
    for origin in (*ORIGINS, "c"):
        assert builder.max(origin) == b.max(origin)
        assert builder.contiguous_end(origin) == b.contiguous_end(origin)
    assert bool(builder) == bool(b)
