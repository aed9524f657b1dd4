"""The hybrid logical clock: monotonic under any wall clock, never behind what it saw."""

from hypothesis import given
from hypothesis import strategies as st

from moat_log.hlc import HybridClock, next_hlc, observe_hlc

wall_times = st.integers(min_value=0, max_value=2**62)


@given(
    st.lists(
        st.one_of(st.tuples(st.just("tick"), wall_times), st.tuples(st.just("seen"), wall_times)),
        max_size=200,
    )
)
def test_strictly_increasing_and_never_behind_anything_seen(steps: list[tuple[str, int]]) -> None:
    last, greatest_seen = 0, 0
    issued: list[int] = []
    for kind, ns in steps:
        if kind == "seen":
            last = observe_hlc(last, ns)
            greatest_seen = max(greatest_seen, ns)
            continue
        hlc = next_hlc(last, ns)
        assert hlc > greatest_seen
        assert hlc >= ns, "a sane wall clock is followed exactly"
        assert not issued or hlc > issued[-1]
        issued.append(hlc)
        last = hlc


def test_wall_clock_stepping_back_does_not_move_the_clock_back() -> None:
    wall = [1_000, 2_000, 500, 500, 2_001, 10_000]
    clock = HybridClock(lambda: wall.pop(0))
    assert [clock.tick() for _ in range(6)] == [1_000, 2_000, 2_001, 2_002, 2_003, 10_000]


def test_a_foreign_clock_ahead_pulls_the_clock_forward() -> None:
    clock = HybridClock(lambda: 1_000)
    clock.observe(5_000)
    assert clock.tick() == 5_001
    clock.observe(100)  # an old event changes nothing
    assert clock.tick() == 5_002
