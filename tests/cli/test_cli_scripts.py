"""``moat-log script put/get/ls/run/log`` and ``moat-log errors``, on the journal (no node)."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

from cli_support import Invoker

FOLLOW = """
async def main(script):
    switch = script.trigger
    await script.client.set(script.params["light"], switch.value)
"""


def code_file(tmp_path: FsPath, text: str = FOLLOW) -> str:
    path = tmp_path / "script.py"
    path.write_text(text)
    return str(path)


async def put_follow(invoke: Invoker, tmp_path: FsPath) -> None:
    await invoke(
        "script", "put", "hall-light", code_file(tmp_path),
        "--on-change", "home.hall.switch", "--param", "light=home.hall.light", "--doc", "follows",
    )  # fmt: skip


async def test_a_script_is_stored_shown_and_listed(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    await put_follow(invoke, tmp_path)
    shown = json.loads((await invoke("script", "get", "hall-light", "--json")).stdout)
    assert shown["run"] == {"where": "any", "on_change": ["home.hall.switch"]}
    assert shown["params"] == {"light": "home.hall.light"}
    code = await invoke("script", "get", "--code", "hall-light")
    assert code.stdout == FOLLOW
    listed = [
        json.loads(line)
        for line in (await invoke("script", "ls", "--json")).stdout.split("\n")
        if line
    ]
    assert listed == [
        {
            "script": "hall-light",
            "where": "any",
            "when": "change home.hall.switch",
            "user": "-",
            "state": "(no node)",
            "last_error": "-",
        }
    ]


async def test_code_without_main_is_refused(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    line = await invoke.error(
        "script", "put", "x", code_file(tmp_path, "def main(script): pass\n"), "--on-start"
    )
    assert "the code must define 'async def main(script)'" in line
    line = await invoke.error(
        "script", "put", "x", code_file(tmp_path, "async def main(:\n"), "--on-start"
    )
    assert "the code does not compile (line 1)" in line
    line = await invoke.error("script", "put", "x", code_file(tmp_path))
    assert "run must say when the script runs" in line


async def test_script_run_calls_main_once_with_the_trigger_and_log_shows_the_write(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    await put_follow(invoke, tmp_path)
    await invoke("set", "home.hall.switch", "true")
    ran = await invoke("script", "run", "hall-light", "--trigger", "home.hall.switch")
    assert ran.stdout == "script hall-light: main returned\n"
    light = json.loads((await invoke("get", "home.hall.light", "--json")).stdout)
    assert (light["value"], light["source"]) == (True, "script:hall-light")
    logged = [
        json.loads(line)
        for line in (await invoke("script", "log", "hall-light", "--json")).stdout.split("\n")
        if line
    ]
    assert [(entry["kind"], entry["path"]) for entry in logged] == [
        ("version", ":.moat.script.hall-light"),
        ("write", "home.hall.light"),
    ]


async def test_script_run_shows_what_main_raised(
    invoke: Invoker, journal_pi1: FsPath, tmp_path: FsPath
) -> None:
    crash = "async def main(script):\n    raise KeyError('nope')\n"
    await invoke("script", "put", "crash", code_file(tmp_path, crash), "--on-start")
    result = await invoke("script", "run", "crash", status=1)
    assert 'File "<script crash>", line 2, in main' in result.stderr
    assert result.stderr.endswith("moat-log: error: script crash raised KeyError: 'nope'\n")


async def test_errors_lists_the_error_records(invoke: Invoker, journal_pi1: FsPath) -> None:
    record = {
        "path": ":.moat.script.crash", "script": "crash", "node": "pi1", "version": "pi1:1",
        "message": "RuntimeError: boom", "traceback": "Traceback ...", "count": 3,
        "first": 1_700_000_000_000_000_000, "last": 1_700_000_060_000_000_000,
    }  # fmt: skip
    await invoke("set", ":.moat.error.script.crash.pi1", json.dumps(record))
    listed = (await invoke("errors")).stdout.splitlines()
    assert listed[0].split() == ["SCRIPT", "NODE", "COUNT", "FIRST", "LAST", "MESSAGE"]
    assert listed[1].split()[:3] == ["crash", "pi1", "3"]
    assert listed[1].endswith("RuntimeError: boom")
