"""Signals to ``moat-log serve``: however many, and whenever, the node stops cleanly and quietly."""

from __future__ import annotations

import signal
import subprocess
from contextlib import suppress

from node_support import environment

from moat_log.testing import moat_log_script, read_until_ready, short_temp_dir


def test_signals_while_the_node_stops_change_nothing() -> None:
    # A double Ctrl-C, or `timeout -s INT` (which signals twice): SIGINT keeps
    # coming until the process is gone, into the stop and the interpreter's exit.
    with short_temp_dir() as base:
        config = base / "node.toml"
        config.write_text(
            f'node = "pi1"\ndata_dir = "{base / "data"}"\n[client]\nlisten = ["unix"]\n'
        )
        for _ in range(3):
            node = subprocess.Popen(
                [moat_log_script(), "serve", "--config", str(config)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(),
            )  # fmt: skip
            read_until_ready(node)
            # A signal, then another each time the node has not exited within
            # a millisecond: a held-down Ctrl-C, up to the process's last moment.
            # (A tight loop without the wait would be a flood no keyboard sends,
            # deep enough to overflow the stack of trio's Python-level handler.)
            while True:
                with suppress(ProcessLookupError):
                    node.send_signal(signal.SIGINT)
                try:
                    node.wait(timeout=0.001)
                    break
                except subprocess.TimeoutExpired:
                    continue
            _, stderr = node.communicate(timeout=30)
            complaints = [line for line in stderr.decode().splitlines() if " INFO " not in line]
            assert (node.returncode, complaints) == (0, [])
