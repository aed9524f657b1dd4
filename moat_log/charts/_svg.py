"""Panels as an SVG document, written by hand (no plotting library needed).

Layout, top to bottom: the chart's title, then each panel (its title and unit
on the left, a legend of its series on the right, the plot with value ticks
and a grid), then the shared time axis with its labels and the zone they are
in.  Each connected run of a series is one ``<polyline>`` (a lone point, one
``<circle>``) carrying ``data-series``, so a gap is a break between two
elements, not a line drawn through missing data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

from ._model import (
    Panel,
    Run,
    ValueScale,
    runs,
    thinned,
    time_range,
    time_ticks,
    value_range,
    value_scale,
    zone_name,
)

#: Line colours, one per series of a panel (colour-blind safe, Okabe-Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

_LEFT, _RIGHT = 72, 24
_TITLE_HEIGHT = 32
_PANEL_HEADER = 24
_PANEL_GAP = 12
_AXIS_HEIGHT = 44
_FONT = 'font-family="sans-serif" font-size="12"'
#: About the width of a character of that font, for placing labels.
_CHAR_WIDTH = 7


def svg_chart(
    panels: Sequence[Panel],
    *,
    title: str = "",
    width: int = 960,
    panel_height: int = 220,
    tz: dt.tzinfo | None = None,
) -> str:
    """*panels* stacked over one time axis, as the text of an SVG document.

    Times are labelled in *tz* (default: the system's local zone).
    """
    top = _TITLE_HEIGHT if title else 8
    height = top + len(panels) * (panel_height + _PANEL_GAP) + _AXIS_HEIGHT
    plot_width = max(10, width - _LEFT - _RIGHT)
    span = time_range(panels)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {_FONT}>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        parts.append(
            f'<text x="{width / 2:.1f}" y="21" text-anchor="middle" font-size="15" '
            f'font-weight="bold">{escape(title)}</text>'
        )
    ticks = time_ticks(*span, max_ticks=max(2, plot_width // 110), tz=tz) if span else []

    def x_of(t: float) -> float:
        assert span is not None
        return _LEFT + (t - span[0]) / (span[1] - span[0]) * plot_width

    y = top
    for panel in panels:
        plot_top, plot_height = y + _PANEL_HEADER, panel_height - _PANEL_HEADER
        parts += _panel_header(panel, y, width)
        parts.append(
            f'<rect x="{_LEFT}" y="{plot_top}" width="{plot_width}" '
            f'height="{plot_height}" fill="none" stroke="#888"/>'
        )
        parts += [
            f'<line x1="{x_of(t):.1f}" y1="{plot_top}" x2="{x_of(t):.1f}" '
            f'y2="{plot_top + plot_height}" stroke="#eee"/>'
            for t, _ in ticks
        ]
        values = value_range(panel)
        if span is None or values is None:
            parts.append(
                f'<text x="{_LEFT + plot_width / 2:.1f}" y="{plot_top + plot_height / 2:.1f}" '
                f'text-anchor="middle" fill="#888">no data</text>'
            )
        else:
            scale = value_scale(*values, max_ticks=max(2, plot_height // 40))
            parts += _value_axis(scale, plot_top, plot_height, plot_width)

            def y_of(
                v: float, s: ValueScale = scale, top_: int = plot_top, h: int = plot_height
            ) -> float:
                return top_ + (1.0 - s.fraction(v)) * h

            for index, series in enumerate(panel.series):
                colour = PALETTE[index % len(PALETTE)]
                for whole in runs(series, span[1]):
                    run = thinned(whole, *span, plot_width)
                    parts.append(_run(series.name, run, colour, x_of, y_of))
        y += panel_height + _PANEL_GAP
    parts += _time_axis(ticks, x_of, y, span, tz)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _panel_header(panel: Panel, y: int, width: int) -> list[str]:
    unit = f" [{panel.unit}]" if panel.unit else ""
    parts = [
        f'<text x="{_LEFT}" y="{y + 16}" font-weight="bold">{escape(panel.title + unit)}</text>'
    ]
    x = width - _RIGHT
    for index, series in reversed(list(enumerate(panel.series))):
        colour = PALETTE[index % len(PALETTE)]
        x -= _CHAR_WIDTH * len(series.name) + 8
        parts.append(f'<text x="{x}" y="{y + 16}">{escape(series.name)}</text>')
        x -= 22
        parts.append(
            f'<line class="legend" x1="{x}" y1="{y + 12}" x2="{x + 16}" y2="{y + 12}" '
            f'stroke={quoteattr(colour)} stroke-width="2"/>'
        )
        x -= 12
    return parts


def _value_axis(scale: ValueScale, top: int, height: int, plot_width: int) -> list[str]:
    parts = []
    for tick, label in zip(scale.ticks, scale.labels, strict=True):
        y = top + (1.0 - scale.fraction(tick)) * height
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_width}" y2="{y:.1f}" '
            f'stroke="#eee"/>'
        )
        parts.append(
            f'<text class="value-tick" x="{_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    return parts


def _run(
    name: str, run: Run, colour: str, x_of: Callable[[float], float], y_of: Callable[[float], float]
) -> str:
    if len(run) == 1:
        t, v = run[0]
        return (
            f'<circle data-series={quoteattr(name)} cx="{x_of(t):.1f}" cy="{y_of(v):.1f}" '
            f'r="2.5" fill={quoteattr(colour)}/>'
        )
    points = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in run)
    return (
        f'<polyline data-series={quoteattr(name)} points="{points}" fill="none" '
        f'stroke={quoteattr(colour)} stroke-width="1.5" stroke-linejoin="round"/>'
    )


def _time_axis(
    ticks: list[tuple[float, str]],
    x_of: Callable[[float], float],
    y: int,
    span: tuple[float, float] | None,
    tz: dt.tzinfo | None,
) -> list[str]:
    parts = []
    for t, label in ticks:
        x = x_of(t)
        assert span is not None  # there are ticks only on an axis
        # A label that would stick out of the picture is aligned to its tick's side.
        half = _CHAR_WIDTH * len(label) / 2
        anchor = "end" if x + half > x_of(span[1]) + _RIGHT else "middle"
        parts.append(
            f'<text class="time-tick" x="{x:.1f}" y="{y + 4}" text-anchor="{anchor}">'
            f"{escape(label)}</text>"
        )
    if span is not None:
        parts.append(
            f'<text x="{_LEFT}" y="{y + 24}" fill="#555">'
            f"time, {escape(zone_name(span[0], tz))}</text>"
        )
    return parts
