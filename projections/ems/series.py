"""Input series: a value over time, as the schedule's input paths hold it.

An input path holds one of (docs/ems.md, "Inputs"):

* a number: the same value at every time (a fixed tariff);
* a map ``{"start": T, "step": S, "values": [v0, v1, ...]}``: ``v0`` from
  ``T`` (seconds since the epoch) for ``S`` seconds, then ``v1``, and so on;
  nothing after the last value.

`Series.parse` reads either and says precisely what is wrong otherwise.
`Series.over_slots` averages it over the schedule's slots, weighted by time,
so hourly prices give quarter-hour slots their hour's price and quarter-hour
forecasts give an hourly slot their mean.  A slot the series covers only in
part gets the mean over the covered part; a slot it does not cover at all
ends what the series can plan for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from moat_log.errors import InvalidInputError

__all__ = ["Series", "SeriesError", "series_of"]

#: Values in one series at most (a week of minutes).
MAX_VALUES: Final = 10_080
_KEYS: Final = frozenset({"start", "step", "values"})


class SeriesError(InvalidInputError):
    """An input path's value is not a series."""


@dataclass(frozen=True, slots=True)
class Series:
    """A piecewise-constant function of time; ``step == 0``: one value for ever."""

    start: float
    step: float
    values: tuple[float, ...]

    @classmethod
    def constant(cls, value: float) -> Series:
        return cls(0.0, 0.0, (float(value),))

    @classmethod
    def parse(cls, value: object) -> Series:
        """The series a path's *value* holds; raises `SeriesError`."""
        if isinstance(value, bool):
            raise SeriesError(f"expected a number or a series map, got {value!r}")
        if isinstance(value, (int, float)):
            return cls.constant(_finite(value, "the value"))
        if not isinstance(value, dict):
            raise SeriesError(
                "expected a number or a map with start, step and values, "
                f"got {type(value).__name__}"
            )
        unknown = sorted(str(key) for key in value.keys() - _KEYS)
        if unknown:
            raise SeriesError(f"unknown key {unknown[0]!r}; a series has start, step and values")
        missing = sorted(_KEYS - value.keys())
        if missing:
            raise SeriesError(f"the series map has no {missing[0]!r}")
        start = _number(value["start"], "start")
        step = _number(value["step"], "step")
        if not step > 0:
            raise SeriesError(f"step must be more than 0 seconds, not {step}")
        values = value["values"]
        if not isinstance(values, list) or not values:
            raise SeriesError("values must be a non-empty list of numbers")
        if len(values) > MAX_VALUES:
            raise SeriesError(f"{len(values)} values; a series has at most {MAX_VALUES}")
        return cls(start, step, tuple(_number(v, f"values[{i}]") for i, v in enumerate(values)))

    @property
    def end(self) -> float:
        """The first time without a value (inf for a constant)."""
        return math.inf if self.step == 0 else self.start + self.step * len(self.values)

    def mean(self, begin: float, end: float) -> float | None:
        """The time-weighted mean over the covered part of [begin, end); None: none covered."""
        if self.step == 0:
            return self.values[0]
        lo, hi = max(begin, self.start), min(end, self.end)
        if not hi > lo:
            return None
        first = int((lo - self.start) // self.step)
        last = min(math.ceil((hi - self.start) / self.step), len(self.values))
        total = 0.0
        for index in range(first, last):
            piece_lo = max(lo, self.start + index * self.step)
            piece_hi = min(hi, self.start + (index + 1) * self.step)
            if piece_hi > piece_lo:
                total += self.values[index] * (piece_hi - piece_lo)
        return total / (hi - lo)

    def over_slots(self, start: float, slot: float, count: int) -> list[float]:
        """The means over *count* slots from *start*, up to the first slot not covered.

        Computed for all slots at once from the series' running integral (a
        what-if asks this thousands of times; `mean` is the plain definition,
        and the tests check that both agree).
        """
        if self.step == 0:
            return [self.values[0]] * count
        import numpy as np

        bounds = start + slot * np.arange(count + 1, dtype=np.float64)
        lo = np.maximum(bounds[:-1], self.start)
        hi = np.minimum(bounds[1:], self.end)
        covered = hi > lo
        if not covered.all():
            count = int(np.argmin(covered))  # the first slot not covered
            if count == 0:
                return []
            lo, hi = lo[:count], hi[:count]
        values = np.asarray(self.values, dtype=np.float64)
        running = np.concatenate([[0.0], np.cumsum(values * self.step)])

        def integral(t: object) -> object:
            offset = np.asarray(t) - self.start
            index = np.clip((offset // self.step).astype(np.int64), 0, len(values) - 1)
            return running[index] + values[index] * (offset - index * self.step)

        means = (integral(hi) - integral(lo)) / (hi - lo)  # type: ignore[operator]
        return list(means.tolist())

    def to_value(self) -> float | dict[str, object]:
        """The form `parse` reads."""
        if self.step == 0:
            return self.values[0]
        return {"start": self.start, "step": self.step, "values": list(self.values)}


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SeriesError(f"{what} must be a number, not {value!r}")
    return _finite(value, what)


def _finite(value: float, what: str) -> float:
    number = float(value)
    if not math.isfinite(number) or abs(number) > 1e12:
        raise SeriesError(f"{what} must be a finite number below 1e12, not {value!r}")
    return number


def series_of(values: Sequence[float], start: float, step: float) -> Series:
    """A series of *values* from *start*, *step* seconds each (for scripts and tests)."""
    return Series.parse({"start": start, "step": step, "values": list(values)})
