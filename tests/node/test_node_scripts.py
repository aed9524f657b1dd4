"""Scripts stored in the journal, run by the node: triggers, versions, errors, permissions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Any

import pytest
import script_probe
import trio
import trio.lowlevel
from node_support import (
    ALICE_PASSWORD,
    BOB_PASSWORD,
    FAST,
    config,
    running_node,
    tcp_address,
    users,
)

from moat_log import LIVE
from moat_log.client import Client, open_client, open_client_on
from moat_log.errors import BadRequestError, PermissionDeniedError
from moat_log.event import Event
from moat_log.node import Node
from moat_log.scripts import script_value
from moat_log.scripts.runner import error_path

WAIT = 20  # seconds before a test fails instead of hanging

FOLLOW = """
async def main(script):
    switch = script.trigger
    await script.client.set(script.params["light"], switch.value)
"""


@pytest.fixture(autouse=True)
def _fresh_probe() -> None:
    script_probe.reset()


@asynccontextmanager
async def node_and_client(data_dir: FsPath, **settings: Any) -> AsyncIterator[tuple[Node, Client]]:
    async with (
        running_node(config(data_dir, **settings)) as node,
        open_client_on(node.connect_in_process()) as client,
    ):
        yield node, client


async def next_value(client: Client, path: str, predicate: Callable[[Event], bool]) -> Event:
    """The first event of *path* from now on (or its current one) that *predicate* takes."""
    with trio.fail_after(WAIT):
        async with client.watch(path) as items:
            async for item in items:
                if item is not LIVE and predicate(item):
                    return item
    raise AssertionError("the watch ended")


async def until_status(
    node: Node, name: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Wait until the node's status of script *name* satisfies *predicate* (at each change)."""
    changed = trio.Event()

    def note() -> None:
        changed.set()

    with trio.fail_after(WAIT):
        while node.scripts is None:
            await trio.lowlevel.checkpoint()
        node.scripts.on_change.append(note)
        try:
            while True:
                report: dict[str, Any] | None = node.scripts.status().get(name)
                if report is not None and predicate(report):
                    return report
                await changed.wait()
                changed = trio.Event()
        finally:
            node.scripts.on_change.remove(note)


async def test_a_stored_script_follows_its_trigger_with_source_and_cause(data_dir: FsPath) -> None:
    async with node_and_client(data_dir) as (node, client):
        value = script_value(
            FOLLOW, on_change=["home.hall.switch"], params={"light": "home.hall.light"}
        )
        await client.set(":.moat.script.hall-light", value)
        await until_status(node, "hall-light", lambda s: s["state"] == "running")
        switched = await client.set("home.hall.switch", True)
        light = await next_value(client, "home.hall.light", lambda e: e.value is True)
        assert light.source == "script:hall-light"
        assert light.cause == switched.id


async def test_a_script_that_raises_is_restarted_with_back_off_and_its_error_recorded(
    data_dir: FsPath, caplog: pytest.LogCaptureFixture
) -> None:
    crash = """
async def main(script):
    raise ZeroDivisionError("the script divided by zero")
"""
    async with node_and_client(data_dir) as (node, client):
        value = script_value(crash, on_start=True, retry=0.05, retry_max=0.2)
        stored = await client.set(":.moat.script.crash", value)
        report = await until_status(node, "crash", lambda s: s["errors"] >= 4)
        waits = [
            r.getMessage().rsplit("again in ", 1)[1]
            for r in caplog.records
            if "again in" in r.getMessage()
        ]
        assert waits[:4] == ["0.05 s", "0.1 s", "0.2 s", "0.2 s"]  # doubling up to retry_max
        assert report["last_error"] == "ZeroDivisionError: the script divided by zero"
        assert report["starts"] >= 3
        record = await client.value(error_path("crash", "pi1"))
        assert record["message"] == "ZeroDivisionError: the script divided by zero"
        assert record["path"] == ":.moat.script.crash"
        assert record["version"] == str(stored.id)
        assert record["count"] >= 3 and record["first"] <= record["last"]
        assert "raise ZeroDivisionError" in record["traceback"]
        status = await client.status()
        assert status["scripts"]["crash"]["errors"] >= 3


async def test_a_script_changed_while_it_runs_is_replaced_without_a_restart(
    data_dir: FsPath,
) -> None:
    version = """
import script_probe, trio

async def main(script):
    await script.client.set("who", script.params["me"])
    try:
        await trio.sleep_forever()
    finally:
        script_probe.events[script.params["me"] + " stopped"].set()
"""
    async with node_and_client(data_dir) as (node, client):
        first = await client.set(
            ":.moat.script.who", script_value(version, on_start=True, params={"me": "v1"})
        )
        await next_value(client, "who", lambda e: e.value == "v1")
        await until_status(
            node, "who", lambda s: s["version"] == str(first.id) and s["state"] == "running"
        )
        second = await client.set(
            ":.moat.script.who", script_value(version, on_start=True, params={"me": "v2"})
        )
        await next_value(client, "who", lambda e: e.value == "v2")
        assert script_probe.events["v1 stopped"].is_set()
        assert not script_probe.events["v2 stopped"].is_set()
        report = node.scripts.status()["who"]
        assert report["version"] == str(second.id)
        assert (await client.status())["pid"] == (await client.status())["pid"]  # the same node
        await client.delete(":.moat.script.who")
        await until_status(node, "who", lambda s: s["state"] == "deleted")
        with trio.fail_after(WAIT):
            await script_probe.events["v2 stopped"].wait()


async def test_a_script_runs_with_the_permissions_of_its_user(data_dir: FsPath) -> None:
    nosy = """
async def main(script):
    await script.client.set("home.note", "bob was here")
"""
    async with node_and_client(data_dir, users=users()) as (node, client):
        await client.set(
            ":.moat.script.nosy", script_value(nosy, on_start=True, user="bob", retry=60)
        )
        report = await until_status(node, "nosy", lambda s: s["errors"] >= 1)
        assert report["last_error"] == (
            "PermissionDeniedError: permission-denied: "
            "the script runs as bob, who may not write home.note"
        )
        assert await client.get("home.note") is None


async def test_a_script_with_a_timer_runs_at_its_interval(data_dir: FsPath) -> None:
    tick = """
async def main(script):
    script.state["n"] = script.state.get("n", 0) + 1
    await script.client.set("ticks", script.state["n"])
"""
    async with node_and_client(data_dir) as (_node, client):
        await client.set(":.moat.script.tick", script_value(tick, every=0.02))
        event = await next_value(client, "ticks", lambda e: e.value >= 3)
        assert event.source == "script:tick" and event.cause is None


async def test_a_script_for_another_node_does_not_run_here(data_dir: FsPath) -> None:
    async with node_and_client(data_dir) as (node, client):
        value = script_value(FOLLOW, on_change=["x"], where="node:pi2", params={"light": "y"})
        await client.set(":.moat.script.elsewhere", value)
        report = await until_status(node, "elsewhere", lambda s: s["state"] == "elsewhere")
        assert report["where"] == "node:pi2"


async def test_only_users_who_may_write_the_script_prefix_store_scripts_and_only_as_themselves(
    data_dir: FsPath,
) -> None:
    """Over TCP: bob may only read home; alice may write everything, scripts included."""
    quiet = script_value(FOLLOW, on_change=["x"], params={"light": "y"})
    async with running_node(config(data_dir, users=users())) as node:
        address = tcp_address(node)
        async with open_client(
            connect=address, user="bob", password=BOB_PASSWORD, min_scrypt_n=FAST.n
        ) as bob:
            with pytest.raises(PermissionDeniedError):
                await bob.set(":.moat.script.mine", quiet)
        async with open_client(
            connect=address, user="alice", password=ALICE_PASSWORD, min_scrypt_n=FAST.n
        ) as alice:
            as_bob = script_value(FOLLOW, on_change=["x"], user="bob", params={"light": "y"})
            with pytest.raises(BadRequestError, match="a script stored by alice runs as alice"):
                await alice.set(":.moat.script.mine", as_bob)
            as_alice = script_value(FOLLOW, on_change=["x"], user="alice", params={"light": "y"})
            await alice.set(":.moat.script.mine", as_alice)
            stored = await alice.get(":.moat.script.mine")
            assert stored is not None and stored.source == "client:alice"


async def test_a_script_running_as_a_user_stores_only_scripts_that_run_as_that_user(
    data_dir: FsPath,
) -> None:
    sneaky = """
from moat_log.scripts import script_value

async def main(script):
    code = "async def main(script):\\n    pass\\n"
    await script.client.set(":.moat.script.other", script_value(code, on_start=True))
"""
    async with node_and_client(data_dir, users=users()) as (node, client):
        await client.set(
            ":.moat.script.sneaky", script_value(sneaky, on_start=True, user="alice", retry=60)
        )
        report = await until_status(node, "sneaky", lambda s: s["errors"] >= 1)
        assert "a script stored by alice runs as alice" in report["last_error"]
        assert await client.get(":.moat.script.other") is None


async def test_a_scripts_writes_name_the_trigger_unless_it_says_another_cause(
    data_dir: FsPath,
) -> None:
    causes = """
async def main(script):
    await script.client.set("out.plain", 1)
    other = await script.client.get("other")
    with script.client.caused_by(other):
        await script.client.set("out.block", 2)
    await script.client.set("out.given", 3, cause=other.id)
"""
    async with node_and_client(data_dir) as (_node, client):
        other = await client.set("other", 0)
        await client.set(":.moat.script.causes", script_value(causes, on_change=["in"]))
        trigger = await client.set("in", 1)
        given = await next_value(client, "out.given", lambda e: e.value == 3)
        plain, block = await client.get("out.plain"), await client.get("out.block")
        assert plain is not None and plain.cause == trigger.id
        assert block is not None and block.cause == other.id
        assert given.cause == other.id
