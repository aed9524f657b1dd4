"""Holdings: what a node holds and what its links asked for, and the algebra under them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.path import Path
from moat_log.rangeset import RangeSet
from moat_log.sync import Holdings
from moat_log.sync.connection import _is_prefix
from moat_log.sync.held import (
    Held,
    add_events,
    count,
    held_from_wire,
    held_to_wire,
    ids_in_order,
    merge,
    subtract,
    take,
)


def held(**ranges: str) -> Held:
    return {origin: RangeSet.parse(text) for origin, text in ranges.items()}


def event(origin: str, seq: int) -> Event:
    return Event(origin, seq, seq, {}, Path(("x",)), Op.SET, 1)


helds = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.lists(st.tuples(st.integers(1, 30), st.integers(0, 5)), min_size=1, max_size=4).map(
        lambda pairs: RangeSet((start, start + length) for start, length in pairs)
    ),
)


def as_set(value: Held) -> set[EventId]:
    return set(ids_in_order(value))


@given(helds, helds)
def test_subtract_and_merge_are_set_difference_and_union(a: Held, b: Held) -> None:
    assert as_set(subtract(a, b)) == as_set(a) - as_set(b)
    merged = {origin: seqs.copy() for origin, seqs in a.items()}
    merge(merged, b)
    assert as_set(merged) == as_set(a) | as_set(b)
    assert all(seqs for seqs in subtract(a, b).values())


@given(helds, st.integers(0, 100))
def test_take_is_the_first_ids_in_request_order(a: Held, limit: int) -> None:
    taken = take(a, limit)
    assert list(ids_in_order(taken)) == list(ids_in_order(a))[:limit]
    assert count(taken) == min(limit, count(a))


@given(helds)
def test_the_wire_form_round_trips(a: Held) -> None:
    assert held_from_wire(held_to_wire(a), "test") == a


@given(helds, st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 40))))
def test_adding_events_adds_exactly_their_ids(a: Held, ids: list[tuple[str, int]]) -> None:
    # Runs of one origin's consecutive seqs go in as ranges: the result must
    # be the same as adding the ids one by one, in any order, repeats and all.
    target = {origin: seqs.copy() for origin, seqs in a.items()}
    add_events(target, [event(origin, seq) for origin, seq in ids])
    expected = {(origin, seq) for origin, seqs in a.items() for seq in seqs} | set(ids)
    assert {(origin, seq) for origin, seqs in target.items() for seq in seqs} == expected
    assert all(target.values())


def test_request_order_is_origin_then_seq() -> None:
    order = [str(i) for i in ids_in_order(held(b="1-2", a="5,7"))]
    assert order == ["a:5", "a:7", "b:1", "b:2"]


def test_claim_takes_only_what_is_neither_held_nor_requested() -> None:
    holdings = Holdings(held(a="1-10"))
    offered = held(a="1-20", b="1-5")
    assert holdings.claim(offered, 4) == held(a="11-14")
    assert holdings.claim(offered, 100) == held(a="15-20", b="1-5")
    assert holdings.claim(offered, 100) == {}
    assert holdings.requested == held(a="11-20", b="1-5")


def test_storing_drops_the_claim_and_releasing_frees_it() -> None:
    holdings = Holdings()
    holdings.claim(held(a="1-10"), 10)
    holdings.stored([event("a", 3), event("a", 4)])
    assert holdings.summary() == held(a="3-4")
    assert holdings.requested == held(a="1-2,5-10")
    holdings.release(held(a="1-2,5-6"))
    assert holdings.claim(held(a="1-10"), 100) == held(a="1-2,5-6")
    assert holdings.lacks(held(a="1-12")) == held(a="1-2,5-12")


def test_holdings_copy_what_they_are_given_and_what_they_hand_out() -> None:
    start = held(a="1-3")
    holdings = Holdings(start)
    start["a"].add(9)
    holdings.summary()["a"].add(7)
    assert holdings.summary() == held(a="1-3")
    assert holdings.holds("a", 3) and not holdings.holds("a", 4) and not holdings.holds("b", 1)


@given(helds, st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 36))))
def test_a_batch_is_a_prefix_exactly_when_its_ids_open_the_want(
    wanted: Held, ids: list[tuple[str, int]]
) -> None:
    # The connection's check of a batch against its want, range by range,
    # against the definition: the events' ids are the want's first ids.
    in_order = list(ids_in_order(wanted))
    for events in ([event(*id_) for id_ in ids], [event(*id_) for id_ in in_order[: len(ids)]]):
        expected = (
            len(events) <= len(in_order) and [e.id for e in events] == in_order[: len(events)]
        )
        assert _is_prefix(events, wanted) == expected
