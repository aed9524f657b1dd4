"""The test server (modbus_server.py) as a child process: started, read, killed by pid.

    server = ModbusServerProcess(log_file)
    server.start()                    # a free port; server.port
    server.command("set hr 0 215")    # what the device does by itself
    server.requests(after=mark)       # the requests it answered since a mark
    server.kill(); server.restart()   # the same port again

Readiness is the ``ready PORT`` line the script prints once it listens; a
thread reads its stdout (a full pipe would stall it) and keeps the lines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

SCRIPT = Path(__file__).with_name("modbus_server.py")
_TIMEOUT = 20.0


class ModbusServerProcess:
    """One pymodbus server process (restartable on its port)."""

    def __init__(self, log_file: Path, *, quiet: bool = False, tick: bool = False) -> None:
        self.log_file = log_file
        self.quiet = quiet
        self.tick = tick
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        #: Every line it printed, over all its starts.
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reading = False

    def start(self) -> None:
        """Start on a free port (the server binds port 0 and says which it got)."""
        self._launch(0)

    def restart(self) -> None:
        """Start again on the same port (after `kill`)."""
        assert self.process is None or self.process.poll() is not None, "still running"
        self._launch(self.port)

    def _launch(self, port: int) -> None:
        first = len(self.lines)
        args = [sys.executable, str(SCRIPT), "--port", str(port)]
        if self.quiet:
            args.append("--quiet")
        if self.tick:
            args.append("--tick")
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
            )
        self._reading = True
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        line = self.wait_for_line("ready ", after=first)
        self.port = int(line.split()[1])

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._reading = False
            self._changed.notify_all()

    def mark(self) -> int:
        """The number of lines so far: count `requests` after this point."""
        with self._changed:
            return len(self.lines)

    def wait_for_line(self, prefix: str, *, after: int = 0) -> str:
        """The first line after line *after* starting with *prefix*, once it is printed."""

        def found() -> str | None:
            return next((x for x in self.lines[after:] if x.startswith(prefix)), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or not self._reading, _TIMEOUT)
            line = found()
        assert line is not None, f"the server never printed {prefix!r}: {self.stderr()[-500:]}"
        return line

    def command(self, line: str) -> str:
        """Send a command (modbus_server.py) and return its answer line."""
        process = self.process
        assert process is not None and process.stdin is not None
        first = self.mark()
        process.stdin.write(line.encode() + b"\n")
        process.stdin.flush()
        with self._changed:
            self._changed.wait_for(lambda: self._answer(first) is not None, _TIMEOUT)
            answer = self._answer(first)
        assert answer is not None and not answer.startswith("error"), (line, answer)
        return answer

    def _answer(self, first: int) -> str | None:
        answers = ("ok", "values", "error")
        return next((x for x in self.lines[first:] if x.startswith(answers)), None)

    def requests(self, *, after: int = 0) -> list[tuple[int, int, int]]:
        """The (function code, address, count) of every request answered after line *after*."""
        with self._changed:
            lines = self.lines[after:]
        return [
            (int(f), int(a), int(c))
            for _, f, a, c in (x.split() for x in lines if x.startswith("request "))
        ]

    def stderr(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def kill(self) -> None:
        """SIGKILL by pid and wait: the device vanishes, its connections reset."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        if process.stdin is not None:
            process.stdin.close()
