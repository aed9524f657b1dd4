"""What the CLI says where a person may have meant something else."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

import pytest
from cli_support import Invoker

from moat_log.cli._output import counted, took


async def test_a_value_that_looks_like_broken_json_is_stored_as_text_with_a_warning(
    journal_pi1: FsPath, invoke: Invoker
) -> None:
    result = await invoke("set", "home.cfg", '{"bad json')
    assert result.stderr.startswith("moat-log: warning: the value looks like JSON but is not (")
    assert json.loads((await invoke("--json", "get", "home.cfg")).stdout)["value"] == '{"bad json'
    quiet = await invoke("set", "home.cfg", '{"bad json', "--string")
    assert quiet.stderr == ""
    plain = await invoke("set", "home.note", "just words")
    assert plain.stderr == ""  # text that does not start like JSON is a string, silently


@pytest.mark.parametrize("command", ["log", "export"])
async def test_an_inverted_time_range_is_an_error_not_an_empty_answer(
    journal_pi1: FsPath, invoke: Invoker, command: str, tmp_path: FsPath
) -> None:
    await invoke("set", "a", "1")
    extra = ["-o", str(tmp_path / "x.mlog")] if command == "export" else []
    error = await invoke.error(command, "--since", "-1h", "--until", "-2h", *extra)
    assert error == (
        "moat-log: error: --since -1h is after --until -2h, so no event can match; "
        "swap them (--since is the earlier time)"
    )
    assert not (tmp_path / "x.mlog").exists()


def test_counts_and_rates_read_right() -> None:
    assert counted(1, "event") == "1 event"
    assert counted(0, "event") == "0 events"
    assert counted(2, "entry", "entries") == "2 entries"
    assert took(1, 0.001) == "in 1 ms"  # no rate from a millisecond
    assert took(80_000, 1.0) == "in 1.00 s (80,000 events/s)"


async def test_an_error_naming_a_control_character_stays_on_its_line(
    journal_pi1: FsPath, invoke: Invoker
) -> None:
    error = await invoke.error("get", "a\x1eb")  # str.splitlines() breaks at \x1e
    assert error == "moat-log: error: a\\x1eb has no value: it was never set"
