"""Input series: what an input path may hold, and its means over the schedule's slots."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.projections.ems.series import Series, SeriesError


def test_a_number_holds_for_ever() -> None:
    assert Series.parse(0.3).over_slots(1e9, 900, 3) == [0.3, 0.3, 0.3]


def test_hourly_values_average_into_quarter_hours_and_back() -> None:
    hourly = Series.parse({"start": 0, "step": 3600, "values": [1.0, 3.0]})
    assert hourly.over_slots(0, 900, 8) == [1.0] * 4 + [3.0] * 4
    quarters = Series.parse({"start": 0, "step": 900, "values": [1, 2, 3, 4]})
    assert quarters.over_slots(0, 3600, 2) == [2.5]  # the second hour is not covered


def test_a_slot_covered_in_part_gets_the_mean_of_that_part() -> None:
    series = Series.parse({"start": 1800, "step": 900, "values": [2.0, 4.0]})
    assert series.over_slots(0, 3600, 3) == [3.0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "expected a number or a series map"),
        ("0.3", "got str"),
        ({"start": 0, "step": 900}, "has no 'values'"),
        ({"start": 0, "step": 0, "values": [1]}, "step must be more than 0"),
        ({"start": 0, "step": 900, "values": []}, "non-empty list"),
        ({"start": 0, "step": 900, "values": [1, "x"]}, "values[1] must be a number"),
        ({"start": 0, "step": 900, "values": [1], "unit": "kW"}, "unknown key 'unit'"),
        ({"start": 0, "step": 900, "values": [float("nan")]}, "finite"),
    ],
)
def test_what_is_not_a_series_is_named(value: object, message: str) -> None:
    with pytest.raises(SeriesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Series.parse(value)


@given(
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=30),
    st.sampled_from([300.0, 900.0, 1000.0, 3600.0]),
    st.integers(0, 10_000),
    st.integers(-5_000, 15_000),
    st.sampled_from([300, 900, 3600]),
    st.integers(1, 40),
)
def test_the_fast_means_are_the_plain_ones(  # noqa: PLR0917 - given() passes them so
    values: list[float], step: float, start: int, at: int, slot: int, count: int
) -> None:
    series = Series(float(start), step, tuple(values))
    plain: list[float] = []
    for i in range(count):
        mean = series.mean(at + i * slot, at + (i + 1) * slot)
        if mean is None:
            break
        plain.append(mean)
    assert series.over_slots(at, slot, count) == pytest.approx(plain, abs=1e-9)
