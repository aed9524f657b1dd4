"""A real knxd with a dummy bus, for the KNX tests; and the private network namespace it needs.

knxd always binds UDP 0.0.0.0:3671 and routing sends multicast, so it runs
in a network namespace of its own (REAL_PARTS.md, "KNX"): `in_private_netns`
says whether this process is in one (set up by `netns_command`), and the
tests that need knxd run there (test_knx_netns.py re-executes them).

    daemon = Knxd(tmp_path)
    daemon.start()        # ready when knxd says READY=1 (sd_notify), no polling
    daemon.groupwrite("1/2/3", b"\\x0c\\x33")   # knxtool, over its Unix socket
    daemon.kill(); daemon.start()              # the same address again

knxd signals readiness through ``NOTIFY_SOCKET`` (it links libsystemd), so
the fixture waits on one datagram instead of a sleep.  Stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

#: Set in the namespace that `netns_command` makes.
NETNS_ENV = "MOAT_LOG_KNX_NETNS"
_READY_TIMEOUT = 10.0


def find_knxd() -> str | None:
    return shutil.which("knxd") or next(
        (p for p in ("/usr/bin/knxd", "/usr/sbin/knxd") if os.access(p, os.X_OK)), None
    )


def find_ip() -> str | None:
    """iproute2's ip (in /usr/sbin, which a non-root PATH may lack)."""
    return shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.access(p, os.X_OK)), None
    )


def in_private_netns() -> bool:
    return os.environ.get(NETNS_ENV) == "1"


def netns_command(argv: list[str]) -> list[str]:
    """*argv* run in a new network namespace with loopback up and a multicast route.

    ``unshare -rn``: a user namespace maps us to root in it, so this needs
    no privilege where unprivileged user namespaces are allowed (and works
    as root everywhere).
    """
    ip = find_ip() or "ip"
    setup = f'{ip} link set lo up && {ip} route add 224.0.0.0/4 dev lo src 127.0.0.1 && exec "$@"'
    return ["unshare", "-rn", "env", f"{NETNS_ENV}=1", "sh", "-c", setup, "sh", *argv]


class Knxd:
    """One knxd (tunnelling and routing server, dummy bus) in this network namespace."""

    def __init__(self, directory: Path, *, clients: int = 16) -> None:
        self.directory = directory
        self.socket = directory / "knxd.sock"
        self.clients = clients
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        executable = find_knxd()
        assert executable is not None, "knxd is not installed (tools/setup-env.sh test)"
        notify_path = self.directory / f"notify{self.starts}"
        self.starts += 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(_READY_TIMEOUT)
            self.process = subprocess.Popen(
                [
                    executable,
                    "-e",
                    "0.0.1",
                    "-E",
                    f"0.0.2:{self.clients}",
                    "-u",
                    str(self.socket),
                    "-D",
                    "-T",
                    "-R",
                    "--arg=interface=lo",
                    "-S",
                    "-b",
                    "dummy:",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
            )
            try:
                while b"READY=1" not in notify.recv(4096):
                    pass
            except TimeoutError:
                self.kill()
                raise AssertionError("knxd did not say READY=1") from None
        notify_path.unlink()

    def kill(self) -> None:
        """SIGKILL and wait: the gateway vanishes without a word to its clients."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def groupwrite(self, address: str, payload: bytes | int) -> None:
        """A GroupValueWrite from outside, through knxtool and knxd's Unix socket."""
        url = f"local:{self.socket}"
        if isinstance(payload, int):
            argv = ["knxtool", "groupswrite", url, address, str(payload)]
        else:
            argv = ["knxtool", "groupwrite", url, address, *(f"{b:x}" for b in payload)]
        subprocess.run(argv, check=True, capture_output=True, timeout=10)
