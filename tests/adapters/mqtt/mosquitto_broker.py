"""A real mosquitto for the tests: on a free port of 127.0.0.1, stopped by pid.

    broker = Mosquitto(tmp_path)          # persistence false, anonymous
    broker.start()
    ... broker.port ...
    broker.kill(); broker.restart()      # the same port again
    broker.stop()

Readiness is read from mosquitto's stderr (``log_dest stderr``): "Opening
ipv4 listen socket on port N." says which port it binds (it is logged before
the bind), "mosquitto version 2.0.11 running" that every listener listens,
and a probe connection showing up in the log that the main loop runs (a
SIGTERM before that is lost).  A thread keeps reading stderr after that (a
full pipe would stall the broker) and keeps the lines for failure messages.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

#: Where setup-env.sh's apt-get puts it; PATH may lack /usr/sbin for non-root users.
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
_READY_TIMEOUT = 10.0
#: Logged once every listener listens ("Opening ... listen socket" comes *before* bind).
_RUNNING = " running"


def find_mosquitto() -> str | None:
    """The mosquitto executable, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def require_mosquitto(find: Callable[[], str | None] = find_mosquitto) -> str:
    """The executable; without one the test skips, except in CI (CI=true), where it fails."""
    found = find()
    if found is not None:
        return found
    message = "mosquitto is not installed (tools/setup-env.sh test installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; in CI the MQTT tests must run", pytrace=False)
    pytest.skip(message)


def dynamic_security_plugin() -> str | None:
    """mosquitto's dynamic-security plugin (it can refuse subscriptions), or None."""
    found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))
    return found[0] if found else None


def password_line(user: str, password: str, *, iterations: int = 101) -> str:
    """A mosquitto 2 password-file line (``$7$``: PBKDF2-SHA512, as mosquitto_passwd writes)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"{user}:$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mosquitto:
    """One mosquitto process with its config in *directory*.

    *persistent*: retained messages survive `restart` (a persistence file in
    *directory*, written when the broker stops).  *users*: ``{name:
    password}`` for a password file, and anonymous logins refused.
    *extra*: more config lines.
    """

    def __init__(
        self,
        directory: Path,
        *,
        persistent: bool = False,
        users: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.persistent = persistent
        self.users = users
        self.extra = extra
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        #: Everything mosquitto logged, over all its starts.
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reading = False
        self._reader: threading.Thread | None = None

    def _write_config(self) -> Path:
        lines = [f"listener {self.port} 127.0.0.1", "log_dest stderr"]
        if os.geteuid() == 0:
            # As root mosquitto becomes user "mosquitto", who cannot read a
            # test's private temporary folder (passwords, ACL, persistence).
            lines.append("user root")
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwords = self.directory / "passwords"
            passwords.write_text("".join(password_line(u, p) + "\n" for u, p in self.users.items()))
            passwords.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        if self.persistent:
            lines += [
                "persistence true",
                f"persistence_location {self.directory}/",
                "persistence_file mosquitto.db",
            ]
        else:
            lines.append("persistence false")
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join([*lines, *self.extra, ""]))
        return config

    def start(self) -> None:
        """Start on a free port (a port taken between probe and bind: try another)."""
        executable = find_mosquitto()
        assert executable is not None, "mosquitto is not installed (tools/setup-env.sh test)"
        for _ in range(5):
            self.port = free_port()
            if self._launch(executable):
                return
        raise AssertionError(f"mosquitto did not start: {self.lines[-5:]}")

    def restart(self) -> None:
        """Start again on the same port (after `stop` or `kill`)."""
        assert self.process is None or self.process.poll() is not None, "still running"
        executable = find_mosquitto()
        assert executable is not None
        assert self._launch(executable), f"mosquitto did not restart: {self.lines[-5:]}"

    def _launch(self, executable: str) -> bool:
        config = self._write_config()
        first = len(self.lines)
        self.process = subprocess.Popen(
            [executable, "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reading = True
        self._reader = threading.Thread(target=self._read_stderr, args=(self.process,), daemon=True)
        self._reader.start()
        with self._changed:
            # The reader notifies on every line, and once more when stderr ends (an exit).
            self._changed.wait_for(
                lambda: self._has(_RUNNING, first) or not self._reading, _READY_TIMEOUT
            )
            ready = self._reading and self._has(f"listen socket on port {self.port}.", first)
        if ready:
            self._await_main_loop()
            return True
        self._end(signal.SIGKILL)
        return False

    def _await_main_loop(self) -> None:
        """Return once mosquitto's main loop runs: it has logged a probe connection.

        "running" comes before the main loop sets its run flag, and a SIGTERM
        in between is lost (mosquitto 2.0.11 then runs on): `stop` needs this.
        """
        with socket.create_connection(("127.0.0.1", self.port)) as probe:
            mine = probe.getsockname()[1]
            self.wait_for_line(f"New connection from 127.0.0.1:{mine} on port {self.port}.")

    def _has(self, text: str, first: int) -> bool:
        return any(text in line for line in self.lines[first:])

    def _read_stderr(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._changed.notify_all()
        with self._changed:
            self._reading = False
            self._changed.notify_all()

    def mark(self) -> int:
        """The number of log lines so far: `wait_for_line` after this point."""
        with self._changed:
            return len(self.lines)

    def wait_for_line(self, text: str, *, after: int = 0, timeout: float = 10.0) -> str:
        """The first log line after line *after* that contains *text*, once the broker logs it."""
        with self._changed:
            found = self._changed.wait_for(lambda: self._has(text, after), timeout)
            assert found, f"mosquitto never logged {text!r}: {self.lines[after:][-5:]}"
            return next(line for line in self.lines[after:] if text in line)

    def pause(self) -> None:
        """SIGSTOP: the broker is there but answers nothing until `resume`."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM and wait: a clean stop (mosquitto writes its persistence file)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL and wait: the broker vanishes, its sockets reset."""
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, sig)
        if sig != signal.SIGKILL:
            os.kill(process.pid, signal.SIGCONT)  # a paused broker cannot handle SIGTERM
        process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)
