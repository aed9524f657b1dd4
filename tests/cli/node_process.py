"""A real ``moat-log serve`` process for the CLI tests, and twin journals to compare with."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FsPath

from cli_support import TIMEOUT, find_script, script_env


@contextmanager
def short_temp_dir() -> Iterator[FsPath]:
    """A fresh directory in /tmp: a Unix socket path must stay under 108 bytes."""
    path = FsPath(tempfile.mkdtemp(prefix="ml-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
        lines = _read_until_ready(process)
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


def _read_until_ready(process: subprocess.Popen[bytes]) -> list[str]:
    """The lines ``serve`` prints up to its readiness line ``ready``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffered, lines = b"", list[str]()
    deadline = time.monotonic() + TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while "ready" not in lines:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and selector.select(remaining), f"no 'ready' line: {lines}"
            data = os.read(fd, 4096)
            assert data, f"serve exited before it was ready: {lines}"
            buffered += data
            *complete, buffered = buffered.split(b"\n")
            lines.extend(line.decode() for line in complete)
    return lines


@contextmanager
def port_without_listener() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a bound socket that does not listen: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"
