"""``moat-log ingest``: good files, every kind of bad line, batches, stdin."""

from __future__ import annotations

import json
from pathlib import Path as FsPath
from typing import Any

import pytest
from cli_support import SECOND, T0, Invoker, write_events

from moat_log.cli import _ingest
from moat_log.event import Event, Op
from moat_log.path import Path
from moat_log.projections import open_journal


def jsonl(*lines: Any) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def write(path: FsPath, text: str) -> str:
    path.write_text(text)
    return str(path)


def events_of(data_dir: FsPath) -> list[Event]:
    with open_journal(data_dir) as journal:
        return [event for _, event in journal.scan()]


async def test_ingest_appends_every_form(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    name = write(
        tmp_path / "hist.jsonl",
        jsonl(
            {"path": "home.kitchen.temp", "value": 21.5, "time": "2026-01-01T00:00:01Z"},
            "",
            {"path": ["sensor", 3, "raw"], "value": {"$bytes": "AAE="}, "time": T0 + 2 * SECOND},
            {"path": "home.kitchen.temp", "op": "delete", "source": "me"},
            {"path": "a", "value": {"x": [1, None, "y"]}, "op": "set"},
            {"path": "b", "op": "delete", "value": None},
        ),
    )
    result = await invoke("ingest", name)
    assert "appended 5 events, pi1:1 .. pi1:5" in result.stdout
    events = events_of(journal_pi1)
    assert [(e.path, e.op, e.value) for e in events] == [
        (Path(["home", "kitchen", "temp"]), Op.SET, 21.5),
        (Path(["sensor", 3, "raw"]), Op.SET, b"\x00\x01"),
        (Path(["home", "kitchen", "temp"]), Op.DELETE, None),
        (Path(["a"]), Op.SET, {"x": [1, None, "y"]}),
        (Path(["b"]), Op.DELETE, None),
    ]
    assert [e.hlc for e in events[:2]] == [T0 + SECOND, T0 + 2 * SECOND]
    assert [e.source for e in events] == ["ingest:hist.jsonl"] * 2 + ["me"] + [
        "ingest:hist.jsonl"
    ] * 2


async def test_ingest_json_summary_and_stdin(invoke: Invoker, journal_pi1: FsPath) -> None:
    result = await invoke("--json", "ingest", "-", stdin=jsonl({"path": "a", "value": 1}) * 3)
    summary = json.loads(result.stdout)
    assert summary["events"] == 3 and summary["first"] == "pi1:1" and summary["last"] == "pi1:3"
    assert {e.source for e in events_of(journal_pi1)} == {"ingest:stdin"}
    empty = json.loads((await invoke("--json", "ingest", "-", stdin="")).stdout)
    assert empty["events"] == 0 and empty["first"] is None


GOOD = {"path": "a.b", "value": 1}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object but list"),
        ('"a.b"', "not a JSON object but str"),
        ({"value": 1}, "missing 'path'"),
        ({"path": "a..b", "value": 1}, "path 'a..b', position 2: empty segment"),
        ({"path": ["a", True], "value": 1}, "is a bool"),
        ({"path": 5, "value": 1}, "'path' must be a string or an array"),
        ({"path": "a", "value": 1, "colour": "red"}, "unknown key 'colour'"),
        ({"path": "a", "value": 1, "op": "put"}, '\'op\' must be "set" or "delete"'),
        ({"path": "a"}, "missing 'value'"),
        ({"path": "a", "op": "delete", "value": 1}, "a delete carries no value"),
        ({"path": "a", "value": 1, "source": 7}, "'source' must be a string"),
        ({"path": "a", "value": 1, "time": "yesterday"}, "'yesterday' is not a time"),
        ({"path": "a", "value": 1, "time": "pi1:1"}, "is an event id, not a time"),
        ({"path": "a", "value": 1, "time": 1.5}, "'time' must be an ISO 8601 string or ns"),
        ({"path": "a", "value": 1, "time": -1}, "is not ns since the epoch"),
        ({"path": "a", "value": 1, "time": "2025-01-01"}, "is not after"),
        ({"path": "a", "value": 2**64}, "does not fit in 64 bits"),
        ({"path": "a", "value": {"$bytes": 1}}, "must be a base64 string"),
        ({"path": "a", "value": "x" * (1 << 20)}, "more than the limit"),
        ('{"path": "a", "value": "\\ud800"}', "surrogates not allowed"),
    ],
)
async def test_a_bad_line_stops_the_ingest(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath, line: Any, message: str
) -> None:
    # Lines 1-2 are good but in the same batch as line 3: nothing is written.
    timed = {**GOOD, "time": "2026-01-01T00:00:00Z"}
    name = write(tmp_path / "in.jsonl", jsonl(timed, GOOD, line, GOOD))
    error = await invoke.error("ingest", name)
    assert error.startswith(f"moat-log: error: {name}:3: ")
    assert message in error
    assert error.endswith("nothing was appended")
    assert events_of(journal_pi1) == []


async def test_times_must_increase_within_the_file(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    lines = [{**GOOD, "time": T0 + 5}, {**GOOD, "time": T0 + 5}]
    error = await invoke.error("ingest", write(tmp_path / "t.jsonl", jsonl(*lines)))
    assert ":2: time " in error and "the time of line 1" in error
    lines = [{**GOOD, "time": T0}, GOOD, {**GOOD, "time": T0 + 1}]
    error = await invoke.error("ingest", write(tmp_path / "t.jsonl", jsonl(*lines)))
    assert ":3: time " in error and "line 2, which has no time" in error


async def test_times_must_follow_the_journal(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    write_events(journal_pi1, ("pi1", "x", 1, 10))
    error = await invoke.error("ingest", write(tmp_path / "t.jsonl", jsonl({**GOOD, "time": T0})))
    assert ":1: time " in error and "the journal's clock" in error
    assert len(events_of(journal_pi1)) == 1


async def test_earlier_batches_stay_written(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_ingest, "BATCH_SIZE", 10)
    lines = [{"path": f"p.{i}", "value": i} for i in range(25)]
    lines[22] = {"path": "p..", "value": 0}  # line 23, in the third batch (lines 21-30)
    error = await invoke.error("ingest", write(tmp_path / "b.jsonl", jsonl(*lines)))
    assert ":23: path " in error
    assert error.endswith(
        "20 events were appended (pi1:1 .. pi1:20) from the lines before 21; resume from line 21"
    )
    assert [e.value for e in events_of(journal_pi1)] == list(range(20))


async def test_blank_lines_count_for_line_numbers(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    error = await invoke.error("ingest", write(tmp_path / "b.jsonl", jsonl(GOOD, "", "  ", "x")))
    assert "b.jsonl:4: not JSON" in error


async def test_not_utf8(invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath) -> None:
    (tmp_path / "bin.jsonl").write_bytes(b'{"path": "a", "value": 1}\n{"path": "\xff"}\n')
    error = await invoke.error("ingest", str(tmp_path / "bin.jsonl"))
    assert "bin.jsonl:2: 'utf-8' codec can't decode" in error


async def test_a_refused_item_is_reported_with_its_line(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer may advance the clock between validation and the write;
    # simulate that by skipping the parser's check of the time.
    monkeypatch.setattr(_ingest.LineParser, "_time", _unchecked_time)
    write_events(journal_pi1, ("pi1", "x", 0, 100))
    name = write(tmp_path / "r.jsonl", jsonl(GOOD, {**GOOD, "time": T0 + 50 * SECOND}, GOOD))
    error = await invoke.error("ingest", name)
    assert "r.jsonl:2: the journal refused the event (event time" in error
    assert "2 events were appended (pi1:2 .. pi1:3), including the valid lines" in error
    assert [e.seq for e in events_of(journal_pi1)] == [1, 2, 3]


def _unchecked_time(self: _ingest.LineParser, spec: object, number: int) -> int | None:
    return None if spec is None else _ingest._time(spec)
