"""The output helpers: the JSON event form, values, tables."""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.cli._output import EventPrinter, event_json, human_bytes, json_value, truncate
from moat_log.cli._values import parse_value
from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.path import Path
from moat_log.timespec import format_time
from moat_log.vclock import VectorClock

T = 1_767_225_600 * 10**9


def event(seq: int = 1, value: object = 1, path: str = "a.b", op: Op = Op.SET) -> Event:
    return Event(
        "pi1", seq, T + seq, VectorClock({"pi2": 3}), Path.parse(path), op, value, "cli:alice"
    )


def test_event_json() -> None:
    e = Event(
        "pi1", 7, T, VectorClock({"pi2": 3}), Path(["sensor", 3, "a.b"]), Op.SET,
        {"raw": b"\x00\xff", 1: [b"", 2.5]}, "knx:1/2/3", EventId("pi2", 3),
    )  # fmt: skip
    assert event_json(e) == {
        "id": "pi1:7",
        "origin": "pi1",
        "seq": 7,
        "hlc": T,
        "time": format_time(T),
        "deps": VectorClock({"pi2": 3}),
        "path": "sensor:3.a:.b",
        "segments": ["sensor", 3, "a.b"],
        "op": "set",
        "value": {"raw": {"$bytes": "AP8="}, "1": [{"$bytes": ""}, 2.5]},
        "source": "knx:1/2/3",
        "cause": "pi2:3",
    }
    json.dumps(event_json(e))  # serialisable as is


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text().filter(lambda key: key != "$bytes"), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip


@given(json_values)
def test_values_survive_json_output_and_set_input(value: object) -> None:
    text = json.dumps(json_value(value))
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 40, 5 << 50)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.0 TiB", "5120.0 TiB",
    ]  # fmt: skip


def test_truncate() -> None:
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdefg", 6) == "abcde…"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_fits_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "get_terminal_size", lambda: os.terminal_size((100, 24)))
    out = Terminal()
    printer = EventPrinter(as_json=False, out=out)
    printer.print_events([event(1, "x" * 500), event(2, 5), event(3, None, op=Op.DELETE)])
    printer.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and all(len(line) <= 100 for line in lines)
    assert '"xxx' in lines[1] and "…" in lines[1] and lines[1].endswith("cli:alice")
    assert lines[3].split()[1:] == ["pi1:3", "delete", "a.b", "cli:alice"]


def test_table_into_a_pipe_is_not_cut() -> None:
    out = io.StringIO()
    printer = EventPrinter(as_json=False, out=out)
    printer.print_events([event(1, "x" * 500)])
    printer.flush()
    assert '"' + "x" * 500 + '"' in out.getvalue()


def test_table_cells_stay_on_their_line() -> None:
    out = io.StringIO()
    printer = EventPrinter(as_json=False, out=out)
    printer.print_events([event(1, "a\nb", path="x"), event(2, 1, path="we\nird")])
    printer.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "we\\nird" in lines[2] and '"a\\nb"' in lines[1]


def test_long_tables_stream_with_one_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EventPrinter, "PREVIEW_ROWS", 3)
    out = io.StringIO()
    printer = EventPrinter(as_json=False, out=out)
    printer.print_events(event(n) for n in range(1, 3))
    assert out.getvalue() == ""  # held back to size the columns
    printer.print_events(event(n) for n in range(3, 11))
    assert out.getvalue().count("\n") >= 9  # streaming now, not held
    printer.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and lines[0].startswith("TIME") and printer.count == 10
    assert [line.split()[1] for line in lines[1:]] == [f"pi1:{n}" for n in range(1, 11)]
