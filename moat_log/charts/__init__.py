"""Charts of values over time: SVG written by hand, a terminal rendering, PNG optional.

``moat-log history PATH --plot FILE`` and ``--chart`` draw with this, and so
can anything else that has numbers over time (the EMS plan).  A chart is a
sequence of `Panel` objects stacked over one shared time axis; each panel has
one value axis with a unit and any number of `Series`.

* `svg_chart` needs no dependency; `terminal_chart` draws in braille for a
  given size (use `shutil.get_terminal_size`); `write_chart` picks by suffix.
* PNG needs matplotlib (the extra ``plots``), imported only when asked.
* Times are epoch seconds and labelled in the local zone, like every time the
  CLI shows; a value None (or NaN) is a gap, drawn as a break.
"""

from __future__ import annotations

import datetime as dt
import itertools
import pathlib
import statistics
from collections.abc import Sequence

from moat_log.errors import InvalidInputError

from ._model import Panel, Series
from ._svg import svg_chart
from ._terminal import terminal_chart

__all__ = ["Panel", "Series", "break_long_gaps", "svg_chart", "terminal_chart", "write_chart"]


def write_chart(
    panels: Sequence[Panel], file: pathlib.Path, *, title: str = "", tz: dt.tzinfo | None = None
) -> None:
    """Write *panels* to *file*: ``.svg`` by hand, ``.png`` through matplotlib.

    Any other suffix is an `InvalidInputError` that names the ones there are.
    """
    suffix = file.suffix.lower()
    if suffix == ".svg":
        file.write_text(svg_chart(panels, title=title, tz=tz), encoding="utf-8")
    elif suffix == ".png":
        from ._png import write_png

        write_png(panels, file, title=title, tz=tz)
    else:
        raise InvalidInputError(
            f"{file}: a chart is written as .svg or .png, not {suffix or 'no suffix'!r}"
        )


def break_long_gaps(
    points: Sequence[tuple[float, float | None]], *, factor: float = 5.0
) -> list[tuple[float, float | None]]:
    """*points* with a gap (value None) wherever reports stopped for longer than
    *factor* times the median interval between them.

    A sensor that reports every 10 s and went silent for an hour shows as a
    break, not as a straight line across the hour.  The gap is placed just
    after the last report before the silence.
    """
    if len(points) < 3:
        return list(points)
    intervals = [b[0] - a[0] for a, b in itertools.pairwise(points)]
    limit = factor * statistics.median(intervals)
    out: list[tuple[float, float | None]] = [points[0]]
    for previous, point, interval in zip(points, points[1:], intervals, strict=False):
        if limit > 0 and interval > limit and previous[1] is not None:
            out.append((previous[0] + limit, None))
        out.append(point)
    return out
