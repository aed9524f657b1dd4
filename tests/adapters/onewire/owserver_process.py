"""A real owserver for the tests: a free port of 127.0.0.1, ready when it says so, stopped by pid.

    server = Owserver(["--tester=10,28,29"])
    server.start()            # free port; returns once owserver listens
    ... server.port ...
    server.kill(); server.restart()   # the same port again
    server.stop()

Readiness: owserver (3.2, Debian's build with libsystemd) tells systemd
``READY=1`` through ``$NOTIFY_SOCKET`` once it listens (its service unit is
``Type=notify``), and prints nothing at all then.  So the helper binds a
datagram socket of its own, passes it as ``NOTIFY_SOCKET``, and waits for
that message, or for owserver's stderr to end (it exited: the port was
taken, try another).  No probe connections, no polling.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

_READY_TIMEOUT = 10.0


def find_owserver() -> str | None:
    return shutil.which("owserver") or next(
        (p for p in ("/usr/bin/owserver", "/usr/sbin/owserver") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Owserver:
    """One owserver process with *arguments* (``--fake=10,28`` or ``--tester=...``)."""

    def __init__(self, arguments: list[str]) -> None:
        self.arguments = arguments
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.errors: list[str] = []
        self._folder = Path(tempfile.mkdtemp(prefix="ml-owserver-"))

    def start(self) -> None:
        for _ in range(5):
            self.port = free_port()
            if self._launch():
                return
        raise AssertionError(f"owserver did not start: {self.errors[-5:]}")

    def restart(self) -> None:
        assert self.process is None or self.process.poll() is not None, "still running"
        assert self._launch(), f"owserver did not restart: {self.errors[-5:]}"

    def _launch(self) -> bool:
        executable = find_owserver()
        assert executable is not None, "owserver is not installed (tools/setup-env.sh test)"
        address = self._folder / f"notify-{os.getpid()}-{self.port}"
        address.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(address))
            self.process = subprocess.Popen(
                [
                    executable,
                    *self.arguments,
                    "-p",
                    f"127.0.0.1:{self.port}",
                    "--foreground",
                    "--error_level=1",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={**os.environ, "NOTIFY_SOCKET": str(address)},
            )
            assert self.process.stderr is not None
            stderr = self.process.stderr.fileno()
            os.set_blocking(stderr, False)
            while True:
                readable, _, _ = select.select([notify.fileno(), stderr], [], [], _READY_TIMEOUT)
                if not readable:
                    self._end(signal.SIGKILL)
                    return False
                if notify.fileno() in readable and b"READY=1" in notify.recv(4096).split(b"\n"):
                    return True
                if stderr in readable:
                    text = os.read(stderr, 65536)
                    if not text:  # it exited
                        self._end(signal.SIGKILL)
                        return False
                    self.errors += text.decode(errors="replace").splitlines()

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, sig)
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
