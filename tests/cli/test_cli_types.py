"""``moat-log type set/get/ls/check``, and types on the CLI's offline write paths."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

from cli_support import Invoker, write_events

TEMP_SCHEMA = '{"type": "number", "min": -30, "max": 60, "unit": "°C"}'


async def store_types(invoke: Invoker) -> None:
    await invoke("type", "set", "home.+.light", "bool", "--good", "true", "--bad", '"on"')
    await invoke("type", "set", "home.+.temp", TEMP_SCHEMA, "--good", "21.5", "--bad", "99")


async def test_a_type_is_stored_listed_and_shown(invoke: Invoker, journal_pi1: FsPath) -> None:
    await store_types(invoke)
    listed = await invoke("type", "ls")
    assert listed.stdout.splitlines() == [
        "PATTERN       TYPE               DOC",
        "home.+.light  bool",
        "home.+.temp   number -30..60 °C",
    ]
    shown = json.loads((await invoke("type", "get", "home.+.temp", "--json")).stdout)
    assert shown["description"] == "number -30..60 °C"
    assert (shown["good"], shown["bad"]) == ([21.5], [99])


async def test_a_type_with_wrong_examples_is_refused(invoke: Invoker, journal_pi1: FsPath) -> None:
    line = await invoke.error("type", "set", "home.+.light", "bool", "--good", "1", "--bad", "2")
    assert line == (
        "moat-log: error: the type is not valid: the good example 1 fails: 1 is not true or false"
    )


async def test_an_offline_set_is_checked_against_the_types(
    invoke: Invoker, journal_pi1: FsPath
) -> None:
    await store_types(invoke)
    line = await invoke.error("set", "home.hall.temp", '"warm"')
    assert line == (
        "moat-log: error: home.hall.temp: 'warm' is not a number "
        "(type home.+.temp: number -30..60 °C)"
    )
    await invoke("set", "home.hall.temp", "21")


async def test_type_check_reports_what_does_not_fit_and_changes_nothing(
    invoke: Invoker, journal_pi1: FsPath
) -> None:
    write_events(journal_pi1, ("pi1", "home.hall.light", "on", 1), ("pi2", "home.bath.temp", 80, 2))
    await store_types(invoke)  # after the events: they were never checked
    result = await invoke("type", "check", "--json", status=1)
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(f["path"], f["type"], f["problem"]) for f in found] == [
        ("home.bath.temp", "home.+.temp", "80 is above the maximum 60"),
        ("home.hall.light", "home.+.light", "'on' is not true or false"),
    ]
    await invoke("set", "home.hall.light", "true")
    only_now = await invoke("type", "check", "--json", status=1)
    assert len(only_now.stdout.splitlines()) == 1  # the temperature
    every = await invoke("type", "check", "--all", "home.+.light", "--json", status=1)
    assert [json.loads(line)["id"] for line in every.stdout.splitlines()] == ["pi1:1"]


async def test_ingest_stops_at_a_line_that_does_not_fit(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    await store_types(invoke)
    lines = [{"path": "home.hall.temp", "value": 20}, {"path": "home.hall.light", "value": "on"}]
    file = tmp_path / "lines.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    line = await invoke.error("ingest", str(file))
    assert "lines.jsonl:2: home.hall.light: 'on' is not true or false" in line
    assert "nothing was appended" in line
