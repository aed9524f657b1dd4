"""``log --follow`` in-process: every event is shown exactly once, however
appends interleave with the start-up of the command."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

import pytest
from cli_support import Invoker

from moat_log.cli import _query_cmds
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import open_journal


async def test_follow_shows_each_event_once(
    invoke: Invoker, journal_pi1: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_journal(journal_pi1) as journal:
        journal.append(Change(Path(["a"]), 1))
    real_summary_at = Journal.summary_at
    real_position = Journal.last_position.fget  # type: ignore[attr-defined]
    polls = 0

    def summary_at(self: Journal) -> tuple[IdSet, int]:
        # An append just before the summary and position are read: the
        # initial listing shows it, so the follow loop must not.
        self.append(Change(Path(["b"]), 2))
        return real_summary_at(self)

    def last_position(self: Journal) -> int:
        nonlocal polls
        polls += 1
        if polls == 2:  # the first poll: an event appended while following
            self.append(Change(Path(["c"]), 3))
        if polls == 4:
            raise KeyboardInterrupt  # Ctrl-C on the third poll
        position: int = real_position(self)
        return position

    monkeypatch.setattr(Journal, "summary_at", summary_at)
    monkeypatch.setattr(Journal, "last_position", property(last_position))
    monkeypatch.setattr(_query_cmds, "FOLLOW_INTERVAL", 0)
    result = await invoke("--json", "log", "--follow")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [lines[0], lines[1], {"state": "live"}, lines[3]]  # held, then live
    assert [line.get("id") for line in lines] == ["pi1:1", "pi1:2", None, "pi1:3"]
    assert polls == 4


async def test_follow_respects_the_selection(
    invoke: Invoker, journal_pi1: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_position = Journal.last_position.fget  # type: ignore[attr-defined]
    polls = 0

    def last_position(self: Journal) -> int:
        nonlocal polls
        polls += 1
        if polls == 2:
            for path in ("home.a", "garden.b", "home.c"):
                self.append(Change(Path.parse(path), None))
        if polls == 3:
            raise KeyboardInterrupt
        position: int = real_position(self)
        return position

    monkeypatch.setattr(Journal, "last_position", property(last_position))
    monkeypatch.setattr(_query_cmds, "FOLLOW_INTERVAL", 0)
    result = await invoke("--json", "log", "-f", "--path", "home")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"state": "live"}
    assert [line["path"] for line in lines[1:]] == ["home.a", "home.c"]
