"""The hand-written SVG: valid XML, gaps as breaks, steps, edge cases of data and scale."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.charts import Panel, Series, break_long_gaps, svg_chart, write_chart
from moat_log.errors import InvalidInputError

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_796_000_000.0  # 2026-11-30T00:53:20Z
CET = dt.timezone(dt.timedelta(hours=1), "CET")


def parsed(panels: list[Panel], **kwargs: object) -> ET.Element:
    return ET.fromstring(svg_chart(panels, tz=CET, **kwargs))  # type: ignore[arg-type]


def lines_of(root: ET.Element, name: str) -> list[list[tuple[float, float]]]:
    out = []
    for element in root.iter(f"{SVG}polyline"):
        if element.get("data-series") == name:
            pairs = element.get("points", "").split()
            out.append([(float(x), float(y)) for x, y in (p.split(",") for p in pairs)])
    return out


def texts(root: ET.Element, css_class: str) -> list[str]:
    return [e.text or "" for e in root.iter(f"{SVG}text") if e.get("class") == css_class]


def test_a_chart_is_an_svg_document_with_title_panel_titles_units_and_legend() -> None:
    panels = [
        Panel("price", "EUR/kWh", [Series("spot", [(T0, 0.2), (T0 + 3600, 0.3)])]),
        Panel(
            "power",
            "kW",
            [Series("pv", [(T0, 1.0), (T0 + 3600, 2.0)]), Series("load", [(T0, 0.5)])],
        ),
    ]
    root = parsed(panels, title="plan & prices")
    assert root.tag == f"{SVG}svg"
    words = [e.text for e in root.iter(f"{SVG}text")]
    assert "plan & prices" in words
    assert {"price [EUR/kWh]", "power [kW]", "spot", "pv", "load"} <= set(words)
    assert len([e for e in root.iter(f"{SVG}line") if e.get("class") == "legend"]) == 3


def test_a_gap_splits_the_line_into_two_polylines() -> None:
    points = [(T0, 1.0), (T0 + 60, 2.0), (T0 + 120, None), (T0 + 180, 3.0), (T0 + 240, 4.0)]
    root = parsed([Panel("t", "°C", [Series("room", points)])])
    assert [len(run) for run in lines_of(root, "room")] == [2, 2]


def test_nan_and_infinity_are_gaps_too() -> None:
    points = [
        (T0, 1.0),
        (T0 + 60, float("nan")),
        (T0 + 120, 2.0),
        (T0 + 180, 3.0),
        (T0 + 240, float("inf")),
    ]
    root = parsed([Panel("t", "", [Series("room", points)])])
    assert [len(run) for run in lines_of(root, "room")] == [2]
    assert len([c for c in root.iter(f"{SVG}circle") if c.get("data-series") == "room"]) == 1


def test_a_step_series_holds_each_value_until_the_next_point_and_the_last_to_the_end() -> None:
    panel = Panel(
        "switch",
        "",
        [Series("lamp", [(T0, 0.0), (T0 + 60, 1.0)], step=True), Series("x", [(T0 + 120, 5.0)])],
    )
    (run,) = lines_of(parsed([panel]), "lamp")
    # (0,0) -> (60,0) -> (60,1) -> (120,1): horizontal, vertical, horizontal.
    assert len(run) == 4
    assert run[0][1] == run[1][1] and run[1][0] == run[2][0] and run[2][1] == run[3][1]
    assert run[3][0] > run[2][0]


def test_a_step_before_a_gap_holds_until_the_gap() -> None:
    points = [(T0, 1.0), (T0 + 60, None), (T0 + 120, 2.0), (T0 + 180, 2.0)]
    runs = lines_of(parsed([Panel("s", "", [Series("s", points, step=True)])]), "s")
    assert len(runs) == 2
    assert runs[0][1][0] > runs[0][0][0]  # held from t0 until the gap at t0+60


def test_empty_series_and_empty_panels_say_no_data_and_still_parse() -> None:
    root = parsed([Panel("nothing", "W", [Series("a", [])]), Panel("none", "", [])])
    assert [e.text for e in root.iter(f"{SVG}text")].count("no data") == 2
    assert not list(root.iter(f"{SVG}polyline"))
    assert ET.fromstring(svg_chart([])).tag == f"{SVG}svg"


def test_one_point_is_a_dot_in_the_middle_of_a_readable_axis() -> None:
    root = parsed([Panel("t", "°C", [Series("room", [(T0, 21.5)])])])
    (dot,) = list(root.iter(f"{SVG}circle"))
    width = float(root.get("width", "0"))
    assert abs(float(dot.get("cx", "0")) - (72 + (width - 96) / 2)) < 1
    assert texts(root, "time-tick")
    values = [float(label) for label in texts(root, "value-tick")]
    assert min(values) < 21.5 < max(values)


def test_all_equal_values_get_an_axis_around_them() -> None:
    root = parsed([Panel("t", "", [Series("flat", [(T0, 7.0), (T0 + 60, 7.0), (T0 + 120, 7.0)])])])
    (run,) = lines_of(root, "flat")
    assert len({y for _, y in run}) == 1
    labels = [float(x) for x in texts(root, "value-tick")]
    assert min(labels) < 7.0 < max(labels)


@pytest.mark.parametrize("magnitude", [1e-9, 1e-4, 1.0, 1e5, 1e12, -1e12])
def test_huge_and_small_magnitudes_have_distinct_readable_tick_labels(magnitude: float) -> None:
    points = [(T0 + i * 60, magnitude * (1 + i / 10)) for i in range(6)]
    labels = texts(parsed([Panel("m", "", [Series("m", points)])]), "value-tick")
    assert len(labels) >= 2
    assert len(set(labels)) == len(labels), labels
    assert all(len(label) <= 10 for label in labels), labels
    values = [float(label) for label in labels]
    assert min(values) <= magnitude * 1 + abs(magnitude) * 1e-6
    assert max(values) >= magnitude * 1.5 - abs(magnitude) * 1e-6


def test_time_labels_are_in_the_given_local_zone_and_the_zone_is_named() -> None:
    # 2026-11-30T00:00Z .. 06:00Z is 01:00 .. 07:00 in CET.
    start = dt.datetime(2026, 11, 30, tzinfo=dt.UTC).timestamp()
    root = parsed([Panel("t", "", [Series("a", [(start, 1.0), (start + 6 * 3600, 2.0)])])])
    labels = texts(root, "time-tick")
    assert labels[0] in {"01:00", "02:00"} and labels[-1] == "07:00", labels
    assert any("CET (UTC+01:00)" in (e.text or "") for e in root.iter(f"{SVG}text"))


def test_a_window_over_several_days_labels_dates() -> None:
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()
    labels = texts(
        parsed([Panel("t", "", [Series("a", [(start, 1.0), (start + 20 * 86400, 2.0)])])]),
        "time-tick",
    )
    assert all(re.fullmatch(r"\d\d-\d\d", label) for label in labels), labels


def test_text_is_escaped() -> None:
    root = parsed([Panel("<a&b>", '"u"', [Series("x<y", [(T0, 1.0), (T0 + 1, 2.0)])])])
    assert lines_of(root, "x<y")


def test_points_out_of_time_order_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="time order"):
        Series("a", [(T0 + 1, 1.0), (T0, 2.0)])


@given(
    st.lists(
        st.tuples(
            st.floats(0, 4e9),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_any_series_gives_a_parsable_svg_with_coordinates_inside_the_plot(
    raw: list[tuple[float, float | None]], step: bool
) -> None:
    points = sorted(raw, key=lambda p: p[0])
    root = ET.fromstring(svg_chart([Panel("p", "", [Series("s", points, step=step)])], width=400))
    for run in lines_of(root, "s"):
        for x, y in run:
            assert 72 - 0.1 <= x <= 400 - 24 + 0.1
            assert 0 <= y <= float(root.get("height", "0"))


def test_break_long_gaps_inserts_a_gap_where_reports_stopped() -> None:
    points = [(T0 + 10 * i, 1.0) for i in range(10)] + [(T0 + 10_000, 2.0), (T0 + 10_010, 2.0)]
    out = break_long_gaps(points, factor=5)
    assert [p for p in out if p[1] is None] == [(T0 + 90 + 50, None)]
    assert break_long_gaps(points[:5]) == points[:5]


def test_write_chart_writes_svg_and_png_and_refuses_other_suffixes(tmp_path: Path) -> None:
    panels = [
        Panel(
            "t",
            "°C",
            [Series("room", [(T0, 1.0), (T0 + 60, None), (T0 + 120, 2.0), (T0 + 180, 3.0)])],
        )
    ]
    write_chart(panels, tmp_path / "a.svg", title="room")
    assert ET.parse(tmp_path / "a.svg").getroot().tag == f"{SVG}svg"
    write_chart(panels, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidInputError, match=r"\.svg or \.png"):
        write_chart(panels, tmp_path / "a.pdf")


def test_a_long_series_is_thinned_to_a_few_points_per_column_and_keeps_its_peaks() -> None:
    points: list[tuple[float, float | None]] = [(T0 + i, float(i % 100)) for i in range(100_000)]
    points[54_321] = (T0 + 54_321, 1000.0)  # one spike
    root = parsed([Panel("t", "", [Series("dense", points)])], width=500)
    (run,) = lines_of(root, "dense")
    assert len(run) <= 4 * (500 - 96)
    assert (run[0][0], run[-1][0]) == (72.0, 500.0 - 24)  # the ends stay
    top_of_plot = 8 + 24  # no title: the plot starts below the panel header
    assert any(abs(y - top_of_plot) < 1 for _, y in run)  # the spike reaches the top
