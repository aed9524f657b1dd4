"""Helpers of the CLI tests: the real console script, and the group in-process."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import IO, Any

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
#: Generous: only reached when something is broken.
TIMEOUT = 30
#: What moat-log reads from the environment besides the data directory.
NODE_ENV = ("MOAT_LOG_CONNECT", "MOAT_LOG_USER", "MOAT_LOG_PASSWORD", "MOAT_LOG_TOKEN")


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

    def run(
        self,
        *args: str,
        status: int = 0,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run, check the exit status, and return stdout; *env* is added to the environment."""
        done = subprocess.run(
            self.argv(*args), input=stdin, capture_output=True, text=True,
            env=script_env(env), timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == status, f"{args}: exit {done.returncode}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        self.stderr = done.stderr
        return done.stdout

    def error(
        self, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
    ) -> str:
        """Run a command that must fail with one ``moat-log: error:`` line; return it."""
        assert self.run(*args, status=1, env=env, stdin=stdin) == ""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("moat-log: error: "), lines[0]
        return lines[0]

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=script_env(),
        )  # fmt: skip

    def with_dir(self, data_dir: FsPath) -> Script:
        return Script(self.exe, data_dir)


def script_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without moat-log's variables, plus *extra*."""
    env = dict(os.environ)
    for name in ("MOAT_LOG_DATA_DIR", "MOAT_LOG_CONFIG", *NODE_ENV):
        env.pop(name, None)
    env.update(extra or {})
    return env


class Lines:
    """Reads a pipe's lines in a thread, so the test can wait with a timeout."""

    def __init__(self, pipe: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._queue.put(line)
        self._queue.put("")  # end of file

    def next_line(self) -> str:
        """The next line without its newline; fails at the end of the stream."""
        line = self._queue.get(timeout=TIMEOUT)
        assert line, "the process ended"
        return line.removesuffix("\n")

    def next_event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.next_line())
        return event

    def rest(self) -> list[str]:
        """The lines after those read, up to the end of the stream."""
        self._thread.join(TIMEOUT)
        lines = []
        while (line := self._queue.get_nowait()) != "":
            lines.append(line)
        return lines


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
            seq = journal.summary().max(origin) + 1
            event = Event(
                origin, seq, hlc, VectorClock(), Path.parse(path), Op.SET, value, "remote"
            )
            assert journal.insert(event)
