"""The reconnect back-off: doubling, capped, jittered over its upper half, reset when stable."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.adapters.backoff import Backoff
from moat_log.adapters.status import BadDataLog


def test_delays_double_up_to_the_maximum_within_their_upper_half() -> None:
    backoff = Backoff(first=1.0, maximum=8.0, rng=random.Random(1))
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for ceiling in ceilings:
        delay = backoff.failed()
        assert ceiling / 2 <= delay <= ceiling


def test_a_connection_that_lasted_starts_over_at_the_first_delay() -> None:
    backoff = Backoff(first=1.0, maximum=64.0, stable_after=30.0, rng=random.Random(2))
    for _ in range(5):
        backoff.failed(connected_for=1.0)
    assert backoff.failures == 5
    assert backoff.failed(connected_for=31.0) <= 1.0
    assert backoff.failures == 1


@given(st.integers(0, 2**32), st.integers(1, 200))
def test_jitter_spreads_nodes_apart_but_never_beyond_the_bounds(seed: int, failures: int) -> None:
    backoff = Backoff(first=0.5, maximum=60.0, rng=random.Random(seed))
    for _ in range(failures):
        delay = backoff.failed()
    assert 0.25 <= delay <= 60.0


def test_inverted_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="0 < first"):
        Backoff(first=5, maximum=1)


def test_bad_data_is_logged_first_then_once_per_interval_with_the_repeats() -> None:
    log = BadDataLog(interval=60.0)
    assert log.should_log("1/2/3", 0.0) == 0
    assert [log.should_log("1/2/3", t) for t in (1.0, 2.0, 59.0)] == [None, None, None]
    assert log.should_log("4/5/6", 3.0) == 0  # each address on its own
    assert log.should_log("1/2/3", 61.0) == 3
    assert log.should_log("1/2/3", 62.0) is None


def test_bad_data_memory_is_bounded() -> None:
    log = BadDataLog(interval=60.0, capacity=3)
    for n in range(10):
        log.should_log(str(n), 0.0)
    assert len(log._seen) == 3
