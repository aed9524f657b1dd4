"""The read planner: adjacent values in one request, within the limits, gaps read through."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from moat_log.adapters.modbus.plan import FUNCTIONS, Read, Span, plan_reads, split


def test_adjacent_registers_are_one_read() -> None:
    spans = [Span("holding", 0, 1), Span("holding", 1, 2), Span("holding", 3, 4)]
    assert plan_reads(spans) == (Read("holding", 0, 7, (0, 1, 2)),)


def test_a_gap_up_to_max_gap_is_read_through() -> None:
    spans = [Span("holding", 10, 1), Span("holding", 0, 2), Span("holding", 5, 1)]
    assert plan_reads(spans, max_gap=3) == (
        Read("holding", 0, 6, (1, 2)),
        Read("holding", 10, 1, (0,)),
    )
    assert plan_reads(spans, max_gap=4) == (Read("holding", 0, 11, (1, 2, 0)),)
    assert len(plan_reads(spans, max_gap=0)) == 3


def test_functions_are_never_mixed() -> None:
    spans = [
        Span("input", 0, 1),
        Span("holding", 1, 1),
        Span("coil", 0, 1),
        Span("discrete_input", 1, 1),
    ]
    reads = plan_reads(spans, max_gap=10)
    assert [r.function for r in reads] == ["coil", "discrete_input", "holding", "input"]


def test_the_register_and_bit_limits_hold() -> None:
    registers = [Span("input", a, 1) for a in range(300)]
    assert [r.count for r in plan_reads(registers)] == [125, 125, 50]
    assert [r.count for r in plan_reads(registers, max_registers=64)] == [64, 64, 64, 64, 44]
    bits = [Span("coil", a, 1) for a in range(4500)]
    assert [r.count for r in plan_reads(bits)] == [2000, 2000, 500]
    wide = [Span("holding", 0, 4), Span("holding", 122, 4)]  # 126 registers: two reads
    assert [(r.address, r.count) for r in plan_reads(wide, max_gap=125)] == [(0, 4), (122, 4)]


def test_overlapping_values_share_a_read() -> None:
    spans = [Span("holding", 0, 2), Span("holding", 1, 1), Span("holding", 0, 1)]
    (read,) = plan_reads(spans)
    assert (read.address, read.count, sorted(read.members)) == (0, 2, [0, 1, 2])
    assert [read.offset(spans[i]) for i in (0, 1, 2)] == [0, 1, 0]


def test_a_refused_read_splits_into_one_read_per_value() -> None:
    spans = [Span("holding", 0, 2), Span("holding", 5, 1)]
    (read,) = plan_reads(spans, max_gap=5)
    assert split(read, spans) == (Read("holding", 0, 2, (0,)), Read("holding", 5, 1, (1,)))


spans_strategy = st.lists(
    st.builds(
        Span,
        st.sampled_from(FUNCTIONS),
        st.integers(0, 400),
        st.sampled_from([1, 2, 4]),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(spans=spans_strategy, max_gap=st.integers(0, 20), limit=st.integers(4, 125))
def test_every_value_is_in_exactly_one_read_that_covers_it(
    spans: list[Span], max_gap: int, limit: int
) -> None:
    reads = plan_reads(spans, max_gap=max_gap, max_registers=limit, max_bits=limit)
    members = sorted(m for r in reads for m in r.members)
    assert members == list(range(len(spans)))
    for read in reads:
        assert 1 <= read.count <= limit
        for index in read.members:
            span = spans[index]
            assert span.function == read.function
            assert read.address <= span.address and span.end <= read.address + read.count
    # no two reads of a function could have been one (greedy by address): the next
    # read's first value lies beyond the gap, or would have made the read too long
    # (then it may overlap the read before: overlapping values are read twice)
    for a, b in itertools.pairwise(reads):
        if a.function == b.function:
            first, end = spans[b.members[0]], a.address + a.count
            assert first.address - end > max_gap or max(end, first.end) - a.address > limit
