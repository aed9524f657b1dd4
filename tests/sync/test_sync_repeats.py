"""`RepeatFilter`: a repeated failure is logged in full once, then as rare reminders.

Pure: no trio, the tests pass the time.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.sync.repeats import MAX_KEYS, RepeatFilter, Say, Verdict

CONFLICT = ("pi3", "conflict")


def test_the_first_occurrence_is_logged_in_full_and_repeats_are_counted() -> None:
    repeats = RepeatFilter(600)
    assert repeats.occurred(CONFLICT, 0).say is Say.FULL
    assert [repeats.occurred(CONFLICT, t).say for t in (1, 30, 599)] == [Say.NOTHING] * 3
    assert repeats.occurred(CONFLICT, 600) == Verdict(Say.REMIND, 4, 600)
    assert repeats.occurred(CONFLICT, 700).say is Say.NOTHING
    assert repeats.occurred(CONFLICT, 1300) == Verdict(Say.REMIND, 2, 700)


def test_keys_are_apart_by_peer_and_by_reason() -> None:
    repeats = RepeatFilter(600)
    assert repeats.occurred(CONFLICT, 0).say is Say.FULL
    assert repeats.occurred(("pi3", "clock"), 1).say is Say.FULL
    assert repeats.occurred(("pi2", "conflict"), 2).say is Say.FULL
    assert repeats.occurred(CONFLICT, 3).say is Say.NOTHING


def test_a_forgotten_peer_is_news_again_and_others_are_not() -> None:
    repeats = RepeatFilter(600)
    for key in (CONFLICT, ("pi3", "clock"), ("pi2", "conflict")):
        repeats.occurred(key, 0)
    repeats.forget("pi3")
    assert repeats.occurred(CONFLICT, 1).say is Say.FULL
    assert repeats.occurred(("pi3", "clock"), 1).say is Say.FULL
    assert repeats.occurred(("pi2", "conflict"), 1).say is Say.NOTHING


def test_keys_beyond_the_limit_push_out_the_oldest() -> None:
    repeats = RepeatFilter(600)
    for n in range(MAX_KEYS + 1):
        repeats.occurred((f"host{n}", "protocol"), 0)
    assert repeats.occurred(("host0", "protocol"), 1).say is Say.FULL
    assert repeats.occurred((f"host{MAX_KEYS}", "protocol"), 1).say is Say.NOTHING


def test_an_interval_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="must be > 0 s"):
        RepeatFilter(0)


@given(
    interval=st.floats(0.5, 1000),
    gaps=st.lists(st.floats(0, 2000), max_size=200),
)
def test_lines_are_at_most_one_per_interval_and_every_repeat_is_counted(
    interval: float, gaps: list[float]
) -> None:
    repeats = RepeatFilter(interval)
    now, lines, counted = 0.0, [0.0], 0
    assert repeats.occurred(CONFLICT, now).say is Say.FULL
    for gap in gaps:
        now += gap
        verdict = repeats.occurred(CONFLICT, now)
        if verdict.say is Say.REMIND:
            assert verdict.over == pytest.approx(now - lines[-1])
            assert verdict.over >= interval
            lines.append(now)
            counted += verdict.repeats
        else:
            assert verdict.say is Say.NOTHING
    unreported = len(gaps) - counted  # told by the next reminder
    assert unreported >= 0
    assert (
        unreported == 0 or repeats.occurred(CONFLICT, now + 2 * interval).repeats == unreported + 1
    )
