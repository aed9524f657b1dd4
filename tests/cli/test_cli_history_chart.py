"""``history --plot FILE`` and ``--chart``: numbers and booleans drawn, gaps as breaks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path as FsPath

from cli_support import Script, write_events

SVG = "{http://www.w3.org/2000/svg}"


def readings(data_dir: FsPath) -> None:
    """A temperature every 10 s, silent for ten minutes in the middle; a switch; a name."""
    items = [("pi1", "sensor.hall.temp", 20.0 + (i % 7) / 2, 10 * i) for i in range(30)]
    items += [("pi1", "sensor.hall.temp", 21.0 + (i % 5) / 2, 900 + 10 * i) for i in range(30)]
    items += [("pi1", "sensor.hall.heater", i % 2 == 0, 5 + 300 * i) for i in range(4)]
    write_events(data_dir, *sorted(items, key=lambda item: item[3]))


def test_plot_writes_an_svg_whose_silence_is_a_break(
    journal_pi1: FsPath, script: Script, tmp_path: FsPath
) -> None:
    readings(journal_pi1)
    target = tmp_path / "hall.svg"
    script.run("history", "sensor.hall.temp", "--plot", str(target), "--unit", "°C")
    assert f"wrote {target}" in script.stderr
    root = ET.parse(target).getroot()
    runs = [e for e in root.iter(f"{SVG}polyline") if e.get("data-series") == "sensor.hall.temp"]
    assert len(runs) == 2
    texts = [e.text for e in root.iter(f"{SVG}text")]
    assert "sensor.hall.temp [°C]" in texts and "history of sensor.hall.temp" in texts


def test_plot_of_a_subtree_draws_each_numeric_path_and_booleans_as_steps(
    journal_pi1: FsPath, script: Script, tmp_path: FsPath
) -> None:
    readings(journal_pi1)
    script.run("set", "sensor.hall.name", '"hall"')
    target = tmp_path / "hall.svg"
    script.run("history", "-r", "sensor.hall", "--plot", str(target))
    assert 'moat-log: left out sensor.hall.name = "hall" (pi1:' in script.stderr
    root = ET.parse(target).getroot()
    names = {e.get("data-series") for e in root.iter(f"{SVG}polyline")}
    assert names == {"sensor.hall.temp", "sensor.hall.heater"}
    (heater,) = [
        e for e in root.iter(f"{SVG}polyline") if e.get("data-series") == "sensor.hall.heater"
    ]
    points = heater.get("points", "").split()
    assert len(points) == 2 * 4  # a step: each value held to the next, the last to the end


def test_plot_png_and_an_unknown_suffix(
    journal_pi1: FsPath, script: Script, tmp_path: FsPath
) -> None:
    readings(journal_pi1)
    script.run("history", "sensor.hall.temp", "--plot", str(tmp_path / "t.png"))
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    message = script.error("history", "sensor.hall.temp", "--plot", str(tmp_path / "t.pdf"))
    assert message.endswith("a chart is written as .svg or .png, not '.pdf'")


def test_chart_draws_on_the_terminal_within_its_size(journal_pi1: FsPath, script: Script) -> None:
    readings(journal_pi1)
    out = script.run("history", "sensor.hall.temp", "--chart", env={"COLUMNS": "60", "LINES": "14"})
    lines = out.splitlines()
    assert lines[0] == "sensor.hall.temp  (sensor.hall.temp)"
    assert len(lines) <= 14 and max(len(line) for line in lines) <= 60
    assert any(0x2800 < ord(c) <= 0x28FF for c in out)
    window = script.run(
        "history", "sensor.hall.temp", "--chart", "--since", "2026-01-01T00:14:00Z",
        env={"COLUMNS": "60", "LINES": "14"},
    )  # fmt: skip
    assert window != out


def test_a_value_that_is_not_a_number_is_refused_by_name(
    journal_pi1: FsPath, script: Script
) -> None:
    script.run("set", "home.scene", "evening")
    message = script.error("history", "home.scene", "--chart")
    assert message == (
        'moat-log: error: home.scene = "evening" (pi1:1) is not a number: '
        "--plot and --chart draw numbers and booleans"
    )
