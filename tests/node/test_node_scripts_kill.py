"""A real ``moat-log serve`` killed with SIGKILL while its script runs: nothing acknowledged lost.

The node runs a stored script that mirrors ``in.N`` to ``out.N`` and counts
its starts in ``boot``.  A client writes a burst of ``in.N``; at the
hundredth acknowledged write the node gets SIGKILL.  After a restart every
acknowledged write is in the journal, the script started again by itself
(``boot`` is 2), and it goes on mirroring new changes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio

from moat_log import LIVE, Client, open_client
from moat_log.errors import MoatLogError
from moat_log.scripts import script_value
from moat_log.testing import node_processes, short_temp_dir

pytestmark = pytest.mark.slow

TIMEOUT = 30

MIRROR = """
async def main(script):
    if script.reason == "start":
        boots = await script.client.value("boot", 0)
        await script.client.set("boot", boots + 1)
        return
    event = script.trigger
    await script.client.set(["out", event.path[-1]], event.value)
"""


def write_config(folder: FsPath) -> FsPath:
    config = folder / "node.toml"
    config.write_text(
        f'node = "pi1"\ndata_dir = "{folder / "data"}"\n[client]\nlisten = ["unix"]\n'
    )
    return config


async def in_thread(function: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(function)


async def until_value(client: Client, path: str, predicate: Callable[[Any], bool]) -> Any:
    with trio.fail_after(TIMEOUT):
        async with client.watch(path) as items:
            async for item in items:
                if item is not LIVE and predicate(item):
                    return item
    raise AssertionError("the watch ended")


async def test_a_node_killed_while_its_script_runs_loses_nothing_and_resumes_it() -> None:
    count, kill_after = 400, 100
    with short_temp_dir() as folder, node_processes(write_config(folder), TIMEOUT) as start:
        data_dir = folder / "data"
        node = await in_thread(start)
        async with open_client(data_dir=data_dir) as client:
            await client.set(
                ":.moat.script.mirror", script_value(MIRROR, on_start=True, on_change=["in"])
            )
            await until_value(client, "boot", lambda e: e.value == 1)
        acknowledged: dict[int, Any] = {}

        async def set_one(client: Client, i: int) -> None:
            try:
                written = await client.set(["in", i], i * 10)
            except MoatLogError:
                return  # the node died under the client
            acknowledged[i] = written
            if len(acknowledged) == kill_after:
                node.process.send_signal(signal.SIGKILL)

        with trio.fail_after(TIMEOUT):
            try:
                async with open_client(data_dir=data_dir) as client, trio.open_nursery() as burst:
                    for i in range(count):
                        burst.start_soon(set_one, client, i)
            except* (MoatLogError, OSError, trio.BrokenResourceError):
                pass  # the connection's own end, after the node died
        await in_thread(lambda: node.process.wait(TIMEOUT))
        assert node.process.returncode == -signal.SIGKILL
        assert len(acknowledged) >= kill_after

        node = await in_thread(start)
        async with open_client(data_dir=data_dir) as client:
            for i, written in acknowledged.items():
                event = await client.get(["in", i])
                assert event is not None and event.id == written.id, i
            await until_value(client, "boot", lambda e: e.value == 2)  # it started again
            stored = {int(str(n)): await client.get(["out", n]) for n in await client.list("out")}
            assert stored  # it mirrored before the kill
            for i, event in stored.items():
                assert event is not None
                assert event.value == i * 10 and event.source == "script:mirror"
            written = await client.set(["in", 9999], 5)
            mirrored = await until_value(client, "out:9999", lambda e: e.value == 5)
            assert mirrored.cause == written.id


def cli(data_dir: FsPath, *args: str) -> str:
    import subprocess

    from moat_log.defaults import environment_without_settings
    from moat_log.testing import moat_log_script

    done = subprocess.run(
        [moat_log_script(), "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=environment_without_settings(),
        check=True,
        timeout=TIMEOUT,
    )
    return done.stdout


async def test_a_user_stores_a_script_sees_it_run_and_replaces_it_without_a_restart() -> None:
    """The whole journey on the command line, against a real ``moat-log serve``."""
    follow = "async def main(script):\n    await script.client.set('light', script.trigger.value)\n"
    invert = (
        "async def main(script):\n    await script.client.set('light', not script.trigger.value)\n"
    )
    with short_temp_dir() as folder, node_processes(write_config(folder), TIMEOUT) as start:
        data_dir = folder / "data"
        node = await in_thread(start)
        code = folder / "light.py"
        code.write_text(follow)
        await in_thread(
            lambda: cli(data_dir, "script", "put", "light", str(code), "--on-change", "switch")
        )
        async with open_client(data_dir=data_dir) as client:
            pid = (await client.status())["pid"]
            await client.set("switch", True)
            await until_value(client, "light", lambda e: e.value is True)
            code.write_text(invert)
            await in_thread(
                lambda: cli(data_dir, "script", "put", "light", str(code), "--on-change", "switch")
            )
            status = await client.status()
            await client.set("switch", True)
            await until_value(client, "light", lambda e: e.value is False)  # the new version
            assert status["pid"] == pid == node.process.pid  # the same node process throughout
        listed = await in_thread(lambda: cli(data_dir, "script", "ls"))
        assert "light" in listed and "running" in listed
