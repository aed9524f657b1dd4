"""The terminal chart: fits its size, draws gaps as breaks, labels times locally."""

from __future__ import annotations

import datetime as dt
import itertools

from moat_log.charts import Panel, Series, terminal_chart
from moat_log.charts._terminal import BrailleCanvas

T0 = dt.datetime(2026, 11, 30, tzinfo=dt.UTC).timestamp()
CET = dt.timezone(dt.timedelta(hours=1), "CET")


def plot_lines(text: str) -> list[str]:
    """The plot rows: the part right of the axis of each line that has one."""
    return [line.split("│", 1)[1] for line in text.splitlines() if "│" in line]


def test_the_chart_fits_the_given_width_and_height() -> None:
    panels = [
        Panel(
            "temperature", "°C", [Series("room", [(T0 + 60 * i, 20 + i % 5) for i in range(200)])]
        ),
        Panel(
            "price",
            "EUR/kWh",
            [Series("spot", [(T0 + 900 * i, 0.2 + i / 100) for i in range(14)], step=True)],
        ),
    ]
    for width, height in [(80, 24), (40, 12), (200, 60)]:
        text = terminal_chart(panels, width=width, height=height, tz=CET)
        lines = text.splitlines()
        assert len(lines) <= height
        assert max(len(line) for line in lines) <= width
        assert "temperature [°C]  (room)" in lines[0]


def test_a_gap_is_a_run_of_empty_columns() -> None:
    points = [(T0 + i, 1.0 if i < 40 or i >= 60 else None) for i in range(100)]
    text = terminal_chart([Panel("t", "", [Series("a", points)])], width=60, height=8, tz=CET)
    row = max(plot_lines(text), key=lambda line: line.count("⠀") + len(line.strip()))
    filled = [column for column, char in enumerate(row) if char != " "]
    assert max(b - a for a, b in itertools.pairwise(filled)) >= 5


def test_time_labels_are_local_and_the_zone_is_named() -> None:
    text = terminal_chart(
        [Panel("t", "", [Series("a", [(T0, 1.0), (T0 + 6 * 3600, 2.0)])])],
        width=80,
        height=10,
        tz=CET,
    )
    assert "02:00" in text and "06:00" in text and "CET (UTC+01:00)" in text


def test_empty_panels_say_no_data_and_one_point_is_a_dot() -> None:
    text = terminal_chart(
        [Panel("e", "", []), Panel("one", "", [Series("a", [(T0, 5.0)])])],
        width=40,
        height=12,
        tz=CET,
    )
    assert "no data" in text
    assert (
        sum(0x2800 < ord(char) <= 0x28FF for row in plot_lines(text) for char in row) == 1
    )  # one braille cell


def test_no_panels_is_no_text() -> None:
    assert terminal_chart([], width=80, height=24) == ""


def test_a_canvas_line_sets_every_dot_between_its_ends() -> None:
    canvas = BrailleCanvas(2, 1)  # 4 x 4 dots
    canvas.line(0, 3, 3, 0)
    # Dots (0,3) (1,2) in the first cell, (2,1) (3,0) in the second.
    assert canvas.lines() == [chr(0x2800 | 0x40 | 0x20) + chr(0x2800 | 0x02 | 0x08)]
