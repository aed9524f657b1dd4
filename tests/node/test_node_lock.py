"""One node per data directory: the lock, its message, and what a failed start leaves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path as FsPath

import pytest
from node_support import config, environment, running_node

import moat_log
from moat_log.errors import MoatLogError
from moat_log.node import ListenAddress, NodeRunningError, serve_node
from moat_log.node._lock import LOCK_NAME
from moat_log.testing import moat_log_script, read_until_ready, short_temp_dir

TCP_ONLY = (ListenAddress.parse("127.0.0.1:0"),)


async def test_a_second_node_is_refused_without_any_socket_to_find(data_dir: FsPath) -> None:
    # Neither node listens on the data directory's socket, the old only guard.
    async with running_node(config(data_dir, listen=TCP_ONLY)) as first:
        with pytest.raises(NodeRunningError) as refused:
            await serve_node(config(data_dir, listen=TCP_ONLY))
        assert str(refused.value) == (
            f"another node ({first.name}, pid {os.getpid()}) is already serving {data_dir}; "
            "stop it first, or give this one its own data directory"
        )
        with pytest.raises(NodeRunningError, match=r"another node \(pi1, pid \d+\)"):
            async with moat_log.open_node(data_dir=data_dir):  # no listener at all
                pass
        assert (data_dir / LOCK_NAME).read_text() == f"pid {os.getpid()} node {first.name}\n"
    assert (data_dir / LOCK_NAME).read_text() == ""  # released: nobody holds it


def leave_a_killed_nodes_lock(data_dir: FsPath) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / LOCK_NAME).write_text("pid 999999 node gone\n")


async def test_a_lock_file_nobody_holds_does_not_block_a_start(data_dir: FsPath) -> None:
    leave_a_killed_nodes_lock(data_dir)
    async with moat_log.open_node(data_dir=data_dir, node="pi1") as client:
        assert await client.set("a", 1)


async def test_a_port_in_use_leaves_no_data_directory(tmp_path: FsPath) -> None:
    data_dir = tmp_path / "new"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MoatLogError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve_node(config(data_dir, listen=(ListenAddress.parse(f"127.0.0.1:{port}"),)))
    assert not data_dir.exists()


def test_a_real_second_node_is_refused_and_a_killed_ones_lock_is_no_obstacle() -> None:
    with short_temp_dir() as base:
        data_dir = base / "data"

        def serve(port: str, stderr: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
            node_config = base / f"node-{port}.toml"
            node_config.write_text(
                f'node = "pi1"\ndata_dir = "{data_dir}"\n[client]\nlisten = ["127.0.0.1:{port}"]\n'
            )
            return subprocess.Popen(
                [moat_log_script(), "serve", "--config", str(node_config)],
                stdout=subprocess.PIPE, stderr=stderr, env=environment(),
            )  # fmt: skip

        first = serve("0")
        try:
            read_until_ready(first)
            second = serve("0", subprocess.PIPE)
            _, stderr = second.communicate(timeout=30)
            assert second.returncode == 1
            message = stderr.decode().strip()
            assert message == (
                f"moat-log: error: another node (pi1, pid {first.pid}) is already serving "
                f"{data_dir}; stop it first, or give this one its own data directory"
            )
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            assert first.stdout is not None
            first.stdout.close()
            first = serve("0")  # the killed node's lock file is still there
            read_until_ready(first)
        finally:
            first.kill()
            first.wait(timeout=30)
            if first.stdout is not None:
                first.stdout.close()
