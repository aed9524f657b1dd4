"""A real ``moat-log serve`` process for the CLI tests, and twin journals to compare with."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FsPath

from cli_support import TIMEOUT, find_script, script_env

from moat_log.testing import read_until_ready


@dataclass
class ServedNode:
    """A running ``moat-log serve``: its process, data directory, addresses and log."""

    process: subprocess.Popen[bytes]
    data_dir: FsPath
    addresses: list[str]
    log: FsPath

    @property
    def tcp(self) -> str:
        return next(a for a in self.addresses if not a.startswith("unix:"))

    def connections_accepted(self) -> int:
        """How many connections the node logged as accepted so far.

        The node logs the line before it serves the connection, so once a
        command got its answer its connection is counted.
        """
        return self.log.read_text().count(" accepted (")

    def stop(self) -> None:
        """SIGTERM, and check that the node stopped cleanly."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=TIMEOUT) == 0, self.log.read_text()
        assert "Traceback" not in self.log.read_text()


def write_config(path: FsPath, data_dir: FsPath, *, listen: str, users: str = "") -> FsPath:
    """A node config for pi1 on *data_dir*; *listen* and *users* are TOML text."""
    path.write_text(f'node = "pi1"\ndata_dir = "{data_dir}"\n[client]\nlisten = {listen}\n{users}')
    return path


@contextmanager
def serving(config: FsPath) -> Iterator[ServedNode]:
    """``moat-log serve --config CONFIG`` until the block ends (stopped cleanly if it can be)."""
    log = config.with_suffix(".log")
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [find_script(), "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=stderr, env=script_env(),
        )  # fmt: skip
    try:
        lines = read_until_ready(process)
        addresses = [line.removeprefix("listening on ") for line in lines if "listening" in line]
        data_dir = FsPath(lines[0].split(": data directory ", 1)[1])
        served = ServedNode(process, data_dir, addresses, log)
        yield served
        if process.poll() is None:
            served.stop()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


@contextmanager
def port_without_listener() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a bound socket that does not listen: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"
