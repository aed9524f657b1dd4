"""What a chart shows: panels of series of (time, value) points, and their scales.

Everything here is pure: the renderers (`_svg`, `_terminal`, `_png`) share the
way a series is cut into drawable runs, the shared time range and the ticks,
so an SVG, a PNG and a terminal chart of the same panels agree.

A point's value None is a gap: the line stops at the point before it and
starts again at the next point with a value.  So is a value that is not a
finite number (NaN or infinity), which no scale can place.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from moat_log.errors import InvalidInputError

#: A run of points drawn as one connected line (no gap inside).
Run = list[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart.

    *points* are ``(epoch seconds, value)`` in time order; value None is a
    gap.  A *step* series holds each value until the next point (a switch, a
    price slot, a plan); its last value holds to the end of the time axis.
    """

    name: str
    points: Sequence[tuple[float, float | None]]
    step: bool = False

    def __post_init__(self) -> None:
        previous = -math.inf
        for t, _value in self.points:
            if not math.isfinite(t):
                raise InvalidInputError(f"series {self.name!r}: time {t!r} is not a finite number")
            if t < previous:
                raise InvalidInputError(
                    f"series {self.name!r}: points must be in time order ({t} after {previous})"
                )
            previous = t


@dataclass(frozen=True, slots=True)
class Panel:
    """One chart of several series with one value axis, e.g. price in EUR/kWh.

    Panels stack vertically and share the time axis.
    """

    title: str
    unit: str
    series: Sequence[Series]


def finite(value: float | None) -> float | None:
    """*value* if a scale can place it, else None (a gap)."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    value = float(value)
    return value if math.isfinite(value) else None


def runs(series: Series, t_end: float) -> list[Run]:
    """The connected pieces of *series*, each a list of (t, value) to join by lines.

    A step series becomes horizontal-then-vertical segments; its last value
    holds until *t_end* (the end of the time axis) when that is later.
    """
    pieces: list[Run] = []
    current: Run = []
    points = [(float(t), finite(v)) for t, v in series.points]
    for index, (t, value) in enumerate(points):
        if value is None:
            if current:
                pieces.append(current)
            current = []
            continue
        if series.step and current:
            current.append((t, current[-1][1]))
        current.append((t, value))
        last_of_run = index + 1 == len(points) or points[index + 1][1] is None
        if series.step and last_of_run:
            held_until = points[index + 1][0] if index + 1 < len(points) else t_end
            if held_until > t:
                current.append((held_until, value))
    if current:
        pieces.append(current)
    return pieces


def thinned(run: Run, t0: float, t1: float, columns: int) -> Run:
    """*run* with at most four points per column of a plot *columns* wide.

    Per column the first, lowest, highest and last point, in time order: the
    drawn line looks the same (every peak stays), and a year of readings
    every 10 s does not become a 3,000,000-point polyline.
    """
    if len(run) <= 4 * columns or t1 <= t0:
        return run
    out: Run = []
    bucket: Run = []
    current = -1
    for point in run:
        column = min(columns - 1, int((point[0] - t0) / (t1 - t0) * columns))
        if column != current and bucket:
            out.extend(_extremes(bucket))
            bucket = []
        current = column
        bucket.append(point)
    out.extend(_extremes(bucket))
    return out


def _extremes(bucket: Run) -> Run:
    if len(bucket) <= 4:
        return bucket
    low = min(range(len(bucket)), key=lambda i: bucket[i][1])
    high = max(range(len(bucket)), key=lambda i: bucket[i][1])
    keep = sorted({0, low, high, len(bucket) - 1})
    return [bucket[i] for i in keep]


def time_range(panels: Sequence[Panel]) -> tuple[float, float] | None:
    """The first and last time of all points of *panels*, or None without points.

    A range of one instant is widened by a minute each side, so that one point
    sits in the middle of a readable axis.
    """
    times = [float(t) for panel in panels for s in panel.series for t, _ in s.points]
    if not times:
        return None
    lo, hi = min(times), max(times)
    if hi - lo <= 0:
        return lo - 60.0, hi + 60.0
    return lo, hi


def value_range(panel: Panel) -> tuple[float, float] | None:
    """The smallest and largest value of *panel*, or None if it has none.

    All-equal values get a range around them, so the line sits mid-panel.
    """
    values = [v for s in panel.series for _, raw in s.points if (v := finite(raw)) is not None]
    if not values:
        return None
    lo, hi = min(values), max(values)
    if hi - lo <= abs(hi) * 1e-12:
        pad = abs(hi) * 0.1 if hi else 1.0
        return lo - pad, hi + pad
    return lo, hi


@dataclass(frozen=True, slots=True)
class ValueScale:
    """A panel's value axis: its ends (on tick marks) and the ticks between them."""

    lo: float
    hi: float
    ticks: tuple[float, ...]
    labels: tuple[str, ...]

    def fraction(self, value: float) -> float:
        """Where *value* lies between the ends, 0.0 (bottom) .. 1.0 (top)."""
        return (value - self.lo) / (self.hi - self.lo)


def value_scale(lo: float, hi: float, *, max_ticks: int = 6) -> ValueScale:
    """Nice ticks (1, 2, 2.5, 5 times a power of ten) covering *lo* .. *hi*."""
    raw_step = (hi - lo) / max(1, max_ticks - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw_step)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    if last == first:
        last = first + 1
    ticks = tuple(k * step for k in range(first, last + 1))
    labels = tuple(format_value(t, step, ticks) for t in ticks)
    return ValueScale(ticks[0], ticks[-1], ticks, labels)


def format_value(value: float, step: float, ticks: Sequence[float] = ()) -> str:
    """*value* as a tick label: as many decimals as *step* needs, exponent form
    for huge or tiny magnitudes."""
    largest = max((abs(t) for t in ticks), default=abs(value))
    if value == 0 or abs(value) < step * 1e-9:
        return "0"
    if 1e-3 <= largest < 1e6:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        if round(step / 10.0 ** math.floor(math.log10(step)), 6) == 2.5:
            decimals += 1
        return f"{value:.{decimals}f}"
    digits = max(1, math.ceil(math.log10(largest / step) + 1e-9) + 1)
    return f"{value:.{digits}g}"


#: Candidate distances between time ticks, in seconds.
_TIME_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    28 * 86400,
    91 * 86400,
    182 * 86400,
    364 * 86400,
)


def time_ticks(
    t0: float, t1: float, *, max_ticks: int, tz: dt.tzinfo | None = None
) -> list[tuple[float, str]]:
    """Ticks on round local times between *t0* and *t1*, with their labels.

    Labels are in *tz* (default: the system's local zone, as every time the
    CLI shows); a label carries the date where the date changes.
    """
    span = max(t1 - t0, 1e-9)
    step = next((s for s in _TIME_STEPS if span / s <= max(1, max_ticks)), _TIME_STEPS[-1])
    ticks = list(_round_times(t0, t1, step, tz))
    pattern = "%H:%M:%S" if step < 60 else "%H:%M"
    labels: list[tuple[float, str]] = []
    previous_date: dt.date | None = None
    many_days = _local(t0, tz).date() != _local(t1, tz).date()
    for t in ticks:
        moment = _local(t, tz)
        if step >= 86400:
            text = moment.strftime("%Y-%m-%d" if step >= 28 * 86400 else "%m-%d")
        elif many_days and moment.date() != previous_date:
            text = moment.strftime(f"%m-%d {pattern}")
        else:
            text = moment.strftime(pattern)
        previous_date = moment.date()
        labels.append((t, text))
    return labels


def zone_name(t: float, tz: dt.tzinfo | None = None) -> str:
    """The zone the time labels are in, e.g. ``CET (UTC+01:00)``."""
    moment = _local(t, tz)
    offset = moment.strftime("%z")
    return f"{moment.tzname()} (UTC{offset[:3]}:{offset[3:]})"


def _local(t: float, tz: dt.tzinfo | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC).astimezone(tz)


def _round_times(t0: float, t1: float, step: int, tz: dt.tzinfo | None) -> Iterator[float]:
    """Multiples of *step* in local time (days from local midnight) in t0 .. t1."""
    if step < 86400:
        offset = _local(t0, tz).utcoffset() or dt.timedelta()
        shift = offset.total_seconds()
        k = math.ceil((t0 + shift) / step)
        while (t := k * step - shift) <= t1:
            yield t
            k += 1
        return
    day = dt.datetime.combine(_local(t0, tz).date(), dt.time())
    days = step // 86400
    while (t := _attach(day, tz).timestamp()) <= t1:
        if t >= t0:
            yield t
        day += dt.timedelta(days=days)


def _attach(naive: dt.datetime, tz: dt.tzinfo | None) -> dt.datetime:
    """A naive local wall time placed in *tz* (None: the system's zone)."""
    return naive.astimezone() if tz is None else naive.replace(tzinfo=tz)
