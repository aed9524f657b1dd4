"""The real ``moat-log`` script in subprocesses: a whole session, concurrent
writers, and ``log --follow``."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import threading
from pathlib import Path as FsPath
from typing import Any

from cli_support import TIMEOUT, Lines, Script

from moat_log.ids import EventId
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_whole_session(script: Script, tmp_path: FsPath) -> None:
    assert "'pi1'" in script.run("init", "--node", "pi1")
    assert "already initialised" in script.run("init")
    script.run("set", "home.kitchen.light", "true")
    script.run("set", "home.kitchen.temp", "21.5")
    script.run("set", "home.kitchen.scene", '{"dim": 40}')
    script.run("set", "--string", "home.kitchen.code", "0042")
    events = json_lines(script.run("--json", "log"))
    assert [(e["id"], e["path"], e["value"]) for e in events] == [
        ("pi1:1", "home.kitchen.light", True),
        ("pi1:2", "home.kitchen.temp", 21.5),
        ("pi1:3", "home.kitchen.scene", {"dim": 40}),
        ("pi1:4", "home.kitchen.code", "0042"),
    ]
    assert [e["hlc"] for e in events] == sorted(e["hlc"] for e in events)
    table = script.run("log", "--path", "home.kitchen.temp").splitlines()
    assert table[0].split() == ["TIME", "ID", "OP", "PATH", "VALUE", "SOURCE"]
    assert table[1].split()[1:5] == ["pi1:2", "set", "home.kitchen.temp", "21.5"]

    assert "deleted home.kitchen.scene" in script.run("delete", "home.kitchen.scene")
    history = json_lines(script.run("--json", "history", "home.kitchen.scene"))
    assert [(e["id"], e["op"], e["value"]) for e in history] == [
        ("pi1:3", "set", {"dim": 40}),
        ("pi1:5", "delete", None),
    ]

    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"path": "garden.pump", "value": "on", "time": "2099-01-01T00:00:00Z"}\n'
        '{"path": ["garden", 2], "value": [1, 2]}\n'
        '{"path": "garden.pump", "op": "delete"}\n'
    )
    assert "appended 3 events, pi1:6 .. pi1:8" in script.run("ingest", str(good))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a", "value": 1}\n{"path": "b", "value": 2}\n{"path": "c"}\n')
    assert script.run("ingest", str(bad), status=1) == ""
    assert script.stderr.startswith(f"moat-log: error: {bad}:3: missing 'value'")

    export = tmp_path / "pi1.mlx"
    assert "exported 8 events" in script.run("export", "-o", str(export))
    other = script.with_dir(tmp_path / "other")
    other.run("init", "--node", "pi2")
    assert "8 inserted" in other.run("import", str(export))
    assert json_lines(other.run("--json", "log")) == json_lines(script.run("--json", "log"))
    stats = json.loads(other.run("--json", "stats"))
    assert stats["events"] == 8 and stats["origins"] == {"pi1": {"ranges": "1-8", "count": 8}}
    assert other.run("verify") == "OK: 8 events checked, 0 warnings\n"
    assert script.run("verify") == "OK: 8 events checked, 0 warnings\n"


def test_cli_beside_a_process_holding_the_journal(script: Script) -> None:
    script.run("init", "--node", "pi1")
    with open_journal(script.data_dir) as journal:
        written: list[str] = []
        stop = threading.Event()

        def keep_writing() -> None:
            while not stop.is_set():
                event = journal.append(Change(Path(["test", "w"]), len(written), source="test"))
                written.append(str(event.id))

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            by_cli = [
                json.loads(script.run("--json", "set", "cli.x", str(n)))["id"] for n in range(3)
            ]
            before_log = list(written)
            logged = [event["id"] for event in json_lines(script.run("--json", "log"))]
        finally:
            stop.set()
            writer.join()
        # This process sees the CLI's events, the CLI saw this process's events.
        assert all(journal.get(EventId.parse(event_id)) is not None for event_id in by_cli)
        assert before_log and set(before_log) <= set(logged)
        assert set(by_cli) <= set(logged)
        # Both wrote to one gapless sequence of pi1 events.
        seqs = sorted(event.seq for _, event in journal.scan())
        assert seqs == list(range(1, len(written) + 4))


def test_log_follow(script: Script) -> None:
    script.run("init", "--node", "pi1")
    script.run("set", "home.before", "0")
    follow = script.popen("--json", "log", "--follow", "--path", "home")
    try:
        assert follow.stdout is not None and follow.stderr is not None
        lines = Lines(follow.stdout)
        assert lines.next_event()["id"] == "pi1:1"
        assert lines.next_event() == {"state": "live"}  # then only what is new
        with open_journal(script.data_dir) as journal:
            journal.append(Change(Path(["garden", "x"]), 1))  # not under home: not shown
            journal.append(Change(Path(["home", "from-test"]), 2))
        event = lines.next_event()
        assert (event["id"], event["path"], event["value"]) == ("pi1:3", "home.from-test", 2)
        script.run("set", "home.from-cli", "3")
        assert lines.next_event()["id"] == "pi1:4"
        follow.send_signal(signal.SIGINT)
        assert follow.wait(TIMEOUT) == 0
        assert lines.rest() == []
        assert follow.stderr.read() == ""
    finally:
        if follow.poll() is None:
            follow.kill()
        follow.communicate()


def test_piped_into_head(script: Script) -> None:
    script.run("init", "--node", "pi1")
    script.run("ingest", "-", stdin='{"path": "a", "value": 1}\n' * 5000)
    pipeline = subprocess.run(
        f"{shlex.join(script.argv('log'))} | head -n 2",
        shell=True, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert len(pipeline.stdout.splitlines()) == 2
    assert "Traceback" not in pipeline.stderr and "error" not in pipeline.stderr
