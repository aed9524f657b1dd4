"""Holdings: what a node holds and what its links asked for, and the algebra under them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.event import Event, Op
from moat_log.idset import IdSet
from moat_log.path import Path
from moat_log.protocol.errors import RemoteProtocolError
from moat_log.rangeset import RangeSet
from moat_log.sync import Holdings
from moat_log.sync.connection import _is_prefix
from moat_log.sync.held import held_from_wire


def held(**ranges: str) -> IdSet:
    return IdSet({origin: RangeSet.parse(text) for origin, text in ranges.items()})


def event(origin: str, seq: int) -> Event:
    return Event(origin, seq, seq, {}, Path(("x",)), Op.SET, 1)


helds = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.lists(st.tuples(st.integers(1, 30), st.integers(0, 5)), min_size=1, max_size=4).map(
        lambda pairs: RangeSet((start, start + length) for start, length in pairs)
    ),
).map(IdSet)


@given(helds, st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 40))))
def test_storing_events_adds_exactly_their_ids(a: IdSet, ids: list[tuple[str, int]]) -> None:
    # Runs of one origin's consecutive seqs go in as ranges: the result must
    # be the same as adding the ids one by one, in any order, repeats and all.
    holdings = Holdings(a)
    holdings.stored([event(origin, seq) for origin, seq in ids])
    assert set(holdings.summary()) == set(a) | set(ids)


def test_a_received_holding_is_checked_as_the_peer_s_fault() -> None:
    assert held_from_wire({"b": [1, 2], "a": [5, 5, 7, 7]}, "the want") == held(a="5,7", b="1-2")
    with pytest.raises(RemoteProtocolError, match="the want lists 'a' with no seqs"):
        held_from_wire({"a": []}, "the want")


def test_request_order_is_origin_then_seq() -> None:
    order = [str(i) for i in held(b="1-2", a="5,7")]
    assert order == ["a:5", "a:7", "b:1", "b:2"]


def test_claim_takes_only_what_is_neither_held_nor_requested() -> None:
    holdings = Holdings(held(a="1-10"))
    offered = held(a="1-20", b="1-5")
    assert holdings.claim(offered, 4) == held(a="11-14")
    assert holdings.claim(offered, 100) == held(a="15-20", b="1-5")
    assert holdings.claim(offered, 100) == IdSet()
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


def test_a_summary_is_what_the_holdings_held_when_it_was_taken() -> None:
    holdings = Holdings(held(a="1-3"))
    before = holdings.summary()
    holdings.stored([event("a", 4)])
    assert before == held(a="1-3")
    assert holdings.summary() == held(a="1-4")
    assert holdings.holds("a", 4) and not holdings.holds("a", 5) and not holdings.holds("b", 1)


@given(helds, st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 36))))
def test_a_batch_is_a_prefix_exactly_when_its_ids_open_the_want(
    wanted: IdSet, ids: list[tuple[str, int]]
) -> None:
    # The connection's check of a batch against its want, range by range,
    # against the definition: the events' ids are the want's first ids.
    in_order = list(wanted)
    for events in ([event(*id_) for id_ in ids], [event(*id_) for id_ in in_order[: len(ids)]]):
        expected = (
            len(events) <= len(in_order) and [e.id for e in events] == in_order[: len(events)]
        )
        assert _is_prefix(events, wanted) == expected
