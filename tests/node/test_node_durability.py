"""Durability per write: sync and batched writes through a real node, and kill -9.

A batched write waits up to the node's flush interval for its commit; it is
acknowledged only once that commit is on disk, like a sync write.  So a node
killed with SIGKILL at any moment keeps every write it acknowledged, of
either kind, and its journal verifies.
"""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest
import trio
from node_support import environment

from moat_log import open_client
from moat_log.client import NodeConnectionError
from moat_log.journal.verify import verify_journal
from moat_log.path import Path
from moat_log.projections import kv_view, open_journal
from moat_log.protocol import RequestError
from moat_log.testing import moat_log_script, read_until_ready, short_temp_dir


def serve(base: FsPath, journal_table: str) -> subprocess.Popen[bytes]:
    """``moat-log serve`` on BASE/data (Unix socket only) with this ``[journal]`` table."""
    config = base / "node.toml"
    config.write_text(
        f'node = "pi4"\ndata_dir = "data"\n[client]\nlisten = ["unix"]\n[journal]\n{journal_table}'
    )
    with open(base / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen(
            [moat_log_script(), "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=stderr, env=environment(),
        )  # fmt: skip
    read_until_ready(process)
    return process


@pytest.fixture
def base() -> Iterator[FsPath]:
    with short_temp_dir() as directory:
        yield directory


@pytest.mark.slow
async def test_kill_9_loses_no_acknowledged_write_of_either_durability(base: FsPath) -> None:
    node = serve(base, 'durability = "batched"\nflush_interval = 0.05\n')
    acknowledged: dict[str, int] = {}
    enough = trio.Event()
    target = random.randrange(200, 600)
    print(f"kill -9 after {target} acknowledged writes")

    async def write_until_gone(number: int) -> None:
        # Odd writers ask for sync, even ones take the node's default: batched.
        durability = "sync" if number % 2 else None
        async with open_client(data_dir=base / "data") as client:
            for index in range(100_000):
                path = f"load.c{number}.i{index:05}"
                try:
                    await client.set(path, index, durability=durability)
                except (NodeConnectionError, RequestError):
                    return
                acknowledged[path] = index
                if len(acknowledged) >= target:
                    enough.set()

    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for number in range(6):
                    nursery.start_soon(write_until_gone, number)
                await enough.wait()
                node.send_signal(signal.SIGKILL)  # while writes of both kinds are in flight
                await trio.to_thread.run_sync(node.wait)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        assert node.stdout is not None
        node.stdout.close()
    assert node.returncode == -signal.SIGKILL
    assert {path.split(".")[1] for path in acknowledged} == {f"c{n}" for n in range(6)}
    with open_journal(base / "data") as journal:
        report = verify_journal(journal)
        assert report.ok, report.problems
        kv = kv_view(journal)
        lost = [p for p, v in acknowledged.items() if kv.value(Path.parse(p)) != v]
    assert lost == []


async def test_a_batched_write_is_acknowledged_once_committed_and_readable(base: FsPath) -> None:
    node = serve(base, "flush_interval = 0.2\n")
    try:
        async with open_client(data_dir=base / "data") as client:
            with trio.fail_after(30):
                await client.set("a.batched", 1, durability="batched")
                await client.delete("a.deleted", durability="batched")
                await client.set("a.sync", 2, durability="sync")
                await client.set("a.default", 3)
            assert await client.value("a.batched") == 1
            assert await client.value("a.sync") == 2
            with pytest.raises(ValueError, match="'sync' or 'batched'"):
                await client.set("a.bad", 4, durability="later")
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=30) == 0
        assert node.stdout is not None
        node.stdout.close()


def test_the_cli_passes_durability_to_the_node(base: FsPath) -> None:
    node = serve(base, 'durability = "sync"\n')
    try:
        argv = [moat_log_script(), "--data-dir", str(base / "data")]
        run = subprocess.run(
            [*argv, "set", "--durability", "batched", "sensor.t", "21.5"],
            capture_output=True, text=True, env=environment(), timeout=30, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "sensor.t = 21.5" in run.stdout
        bad = subprocess.run(
            [*argv, "set", "--durability", "later", "sensor.t", "1"],
            capture_output=True, text=True, env=environment(), timeout=30, check=False,
        )  # fmt: skip
        assert bad.returncode == 2 and "'later' is not one of 'sync', 'batched'" in bad.stderr
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=30) == 0
        assert node.stdout is not None
        node.stdout.close()
