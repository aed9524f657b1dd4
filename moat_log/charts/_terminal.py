"""Panels as text for a terminal, drawn in Unicode braille (2 x 4 dots a cell).

Each panel is a title line (title, unit, the names of its series) and a plot
with its highest and lowest value at the left; the shared time axis is the
last two lines.  A gap is a break in the dots, as in the SVG.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

from ._model import (
    Panel,
    runs,
    thinned,
    time_range,
    time_ticks,
    value_range,
    value_scale,
    zone_name,
)

_BRAILLE_BASE = 0x2800
# Dot bit of (column 0..1, row 0..3) inside a braille cell.
_DOT_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_AXIS_LINES = 3  # the rule, the labels, the zone


class BrailleCanvas:
    """A grid of cells of 2 x 4 dots; (0, 0) is the top left dot."""

    def __init__(self, columns: int, rows: int) -> None:
        self.columns, self.rows = columns, rows
        self.width, self.height = 2 * columns, 4 * rows
        self._cells = [[0] * columns for _ in range(rows)]

    def dot(self, x: int, y: int) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self._cells[y // 4][x // 2] |= _DOT_BITS[y % 4][x % 2]

    def line(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """The dots from (x0, y0) to (x1, y1) (Bresenham)."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        while True:
            self.dot(x0, y0)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x0 += sx
            if doubled <= dx:
                error += dx
                y0 += sy

    def lines(self) -> list[str]:
        return [
            "".join(chr(_BRAILLE_BASE + bits) if bits else " " for bits in row)
            for row in self._cells
        ]


def terminal_chart(
    panels: Sequence[Panel], *, width: int, height: int, tz: dt.tzinfo | None = None
) -> str:
    """*panels* in at most *width* columns and *height* lines (a panel gets at
    least two plot lines), times labelled in *tz* (default: local)."""
    if not panels:
        return ""
    span = time_range(panels)
    plot_rows = max(2, (height - _AXIS_LINES) // len(panels) - 1)
    labels = {id(p): _value_labels(p) for p in panels}
    label_width = max(len(text) for pair in labels.values() for text in pair) + 1
    columns = max(4, width - label_width - 1)
    out: list[str] = []
    for panel in panels:
        unit = f" [{panel.unit}]" if panel.unit else ""
        names = ", ".join(s.name for s in panel.series)
        out.append(_clip(f"{panel.title}{unit}" + (f"  ({names})" if names else ""), width))
        values = value_range(panel)
        if span is None or values is None:
            blank = " " * label_width + "│"
            out += [
                blank + (" no data" if row == plot_rows // 2 else "") for row in range(plot_rows)
            ]
            continue
        canvas = BrailleCanvas(columns, plot_rows)
        scale = value_scale(*values)
        for series in panel.series:
            for whole in runs(series, span[1]):
                run = thinned(whole, *span, canvas.width)
                dots = [
                    (
                        _scaled((t - span[0]) / (span[1] - span[0]), canvas.width),
                        _scaled(1.0 - scale.fraction(v), canvas.height),
                    )
                    for t, v in run
                ]
                if len(dots) == 1:
                    canvas.dot(*dots[0])
                for (x0, y0), (x1, y1) in itertools.pairwise(dots):
                    canvas.line(x0, y0, x1, y1)
        high, low = labels[id(panel)]
        for row, text in enumerate(canvas.lines()):
            label = high if row == 0 else low if row == plot_rows - 1 else ""
            out.append(f"{label:>{label_width}}│{text}")
    out += _time_axis(span, label_width, columns, tz)
    return "\n".join(line.rstrip() for line in out) + "\n"


def _value_labels(panel: Panel) -> tuple[str, str]:
    values = value_range(panel)
    if values is None:
        return "", ""
    scale = value_scale(*values)
    return scale.labels[-1], scale.labels[0]


def _scaled(fraction: float, size: int) -> int:
    return min(size - 1, max(0, round(fraction * (size - 1))))


def _time_axis(
    span: tuple[float, float] | None, label_width: int, columns: int, tz: dt.tzinfo | None
) -> list[str]:
    rule = [" "] * label_width + ["└"] + ["─"] * columns
    text = [" "] * (label_width + 1 + columns)
    if span is None:
        return ["".join(rule)]
    end = 0
    for t, label in time_ticks(*span, max_ticks=max(2, columns // 14), tz=tz):
        column = label_width + 1 + _scaled((t - span[0]) / (span[1] - span[0]), columns)
        rule[column] = "┴"
        start = min(column - len(label) // 2, len(text) - len(label))
        if start < end:
            continue
        text[start : start + len(label)] = label
        end = start + len(label) + 2
    caption = " " * (label_width + 1) + zone_name(span[0], tz)
    return ["".join(rule), "".join(text).rstrip(), caption]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
