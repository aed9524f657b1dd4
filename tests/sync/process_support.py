"""Real ``moat-log serve`` processes with a sync listener, for the process-level tests.

`NodeProcess` starts a node on a Unix socket for clients and ``[sync]``
listening on 127.0.0.1 (any free port), reads its sync address from the
``sync listening on`` line, and waits for ``ready`` on its stdout (no
sleeps).  Its stderr goes to a file the tests read (`NodeProcess.stderr`); with
``follow_log`` also to `NodeProcess.lines`, which `NodeProcess.wait_for_line` waits on.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from moat_log.defaults import environment_without_settings
from moat_log.testing import moat_log_script, read_until_ready

SECRET = "the cluster secret of this test"


def environment() -> dict[str, str]:
    """The environment for a moat-log child process: none of the caller's MOAT_LOG_ settings."""
    return environment_without_settings()


@dataclass
class NodeProcess:
    """One ``moat-log serve`` with a Unix socket for clients and a sync listener."""

    name: str
    base: FsPath
    peers: list[str] = field(default_factory=list)
    #: More lines of the ``[sync]`` table, e.g. ``"max_connections = 2\n"``.
    sync_settings: str = ""
    #: The sync listener's port; 0: any free one (then a restart moves it).
    sync_port: int = 0
    #: More tables of the config after ``[sync]``, e.g. a ``[retention]`` table.
    more_config: str = ""
    #: Read stderr through a thread (still into the file), so that `wait_for_line` works.
    follow_log: bool = False
    process: subprocess.Popen[bytes] | None = None
    sync_address: str = ""
    #: With *follow_log*: the lines of the current process's stderr so far.
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def data_dir(self) -> FsPath:
        return self.base / self.name

    @property
    def config(self) -> FsPath:
        return self.base / f"{self.name}.toml"

    def start(self) -> None:
        config = self.config
        peers = ", ".join(f'"{peer}"' for peer in self.peers)
        config.write_text(
            f'node = "{self.name}"\ndata_dir = "{self.name}"\n'
            '[client]\nlisten = ["unix"]\n'
            f'[sync]\nlisten = "127.0.0.1:{self.sync_port}"\npeers = [{peers}]\n'
            f'secret = "{SECRET}"\n' + self.sync_settings + self.more_config
        )
        log = open(self.base / f"{self.name}.err", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [moat_log_script(), "serve", "--config", str(config), "--log-level", "info"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE if self.follow_log else log,
            env=environment(),
        )  # fmt: skip
        if self.follow_log:
            with self._changed:
                self.lines = []
            threading.Thread(target=self._read_log, args=(self.process, log), daemon=True).start()
        else:
            log.close()
        lines = read_until_ready(self.process)
        [address] = [line.split()[-1] for line in lines if line.startswith("sync listening on")]
        self.sync_address = address

    def _read_log(self, process: subprocess.Popen[bytes], log: Any) -> None:
        assert process.stderr is not None
        with log:
            for raw in process.stderr:
                log.write(raw)
                log.flush()
                with self._changed:
                    self.lines.append(raw.decode(errors="replace").rstrip())
                    self._changed.notify_all()

    def wait_for_line(self, text: str, timeout: float = 60.0) -> str:
        """The first line of the current process's stderr containing *text*, once there is one."""
        with self._changed:
            found = self._changed.wait_for(lambda: any(text in ln for ln in self.lines), timeout)
            assert found, f"{self.name} never logged {text!r}"
            return next(line for line in self.lines if text in line)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=30)
        self.process = None
        return status

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [moat_log_script(), "--data-dir", str(self.data_dir), *args],
            capture_output=True, text=True, timeout=60, env=environment(), check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stderr(self) -> str:
        return (self.base / f"{self.name}.err").read_text()
