"""Helpers of the CLI tests: the real console script, and the group in-process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from asyncclick.testing import CliRunner, Result

from moat_log.cli import cli
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.vclock import VectorClock

#: 2026-01-01T00:00:00Z in ns: a fixed origin for event times in tests.
T0 = 1_767_225_600 * 10**9
SECOND = 10**9


def find_script() -> str:
    """The installed ``moat-log`` console script (``pip install -e .``)."""
    beside = FsPath(sys.executable).with_name("moat-log")
    found = str(beside) if beside.exists() else shutil.which("moat-log")
    assert found, "the moat-log console script is not installed: run 'pip install -e .'"
    return found


@dataclass
class Script:
    """Runs the real ``moat-log`` script as a subprocess on one data directory."""

    exe: str
    data_dir: FsPath
    stderr: str = ""

    def argv(self, *args: str) -> list[str]:
        return [self.exe, "--data-dir", str(self.data_dir), *args]

    def run(self, *args: str, status: int = 0, stdin: str | None = None) -> str:
        """Run, check the exit status, and return stdout."""
        done = subprocess.run(
            self.argv(*args), input=stdin, capture_output=True, text=True, env=script_env(),
            timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == status, f"{args}: exit {done.returncode}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        self.stderr = done.stderr
        return done.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=script_env(),
        )  # fmt: skip

    def with_dir(self, data_dir: FsPath) -> Script:
        return Script(self.exe, data_dir)


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MOAT_LOG_DATA_DIR", None)
    return env


class Invoker:
    """Runs the ``moat-log`` group in this process with asyncclick's CliRunner."""

    def __init__(self, data_dir: FsPath) -> None:
        self.data_dir = data_dir

    async def __call__(
        self, *args: str, status: int = 0, stdin: str | bytes | None = None
    ) -> Result:
        runner = CliRunner(catch_exceptions=False)
        result = await runner.invoke(cli, ["--data-dir", str(self.data_dir), *args], input=stdin)
        assert result.exit_code == status, (
            f"{args}: exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result

    async def error(self, *args: str, stdin: str | bytes | None = None) -> str:
        """Run a command that must fail with one ``moat-log: error:`` line; return it."""
        result = await self(*args, status=1, stdin=stdin)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("moat-log: error: "), lines[0]
        return lines[0]

    def journal(self) -> Journal:
        return open_journal(self.data_dir)


def write_events(data_dir: FsPath, *items: tuple[str, str, Any, int]) -> None:
    """Write ``(origin, path text, value, seconds after T0)`` in this order.

    Events of the journal's own node are appended (with that time); others
    are inserted as foreign events with the next seq of their origin.
    """
    with open_journal(data_dir) as journal:
        for origin, path, value, seconds in items:
            hlc = T0 + seconds * SECOND
            if origin == journal.node:
                journal.append(Change(Path.parse(path), value, source="test", at=hlc))
                continue
            held = journal.summary().get(origin)
            seq = (held.max if held else 0) + 1
            event = Event(
                origin, seq, hlc, VectorClock(), Path.parse(path), Op.SET, value, "remote"
            )
            assert journal.insert(event)
