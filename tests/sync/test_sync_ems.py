"""Two real nodes run one energy schedule: one writes, both agree, the other takes over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from cluster_support import WAIT, event_of, stopped
from process_support import NodeProcess

from moat_log import open_client
from moat_log.event import Event

EMS = """
[ems.home]
slot = 3600
debounce = 0
writers = ["na", "nb"]
[ems.home.inputs]
price_buy = "p.buy"
soc = "b.soc"
"""


def prices(values: list[float]) -> dict[str, Any]:
    return {"start": int(time.time() // 3600) * 3600, "step": 3600, "values": values}


async def write(node: NodeProcess, path: str, value: Any) -> None:
    async with open_client(data_dir=node.data_dir) as client:
        await client.set(path, value)


async def until(node: NodeProcess, path: str, wanted: Any) -> Event:
    """Watch *path* on *node* until an event for which *wanted(event)* holds."""
    async with open_client(data_dir=node.data_dir) as client, client.watch(path) as items:
        async for item in items:
            if isinstance(item, Event) and wanted(item):
                return item
    raise AssertionError("the watch ended")


@pytest.fixture
def pair(base: FsPath) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    a = NodeProcess("na", base, sync_settings=EMS)
    b = NodeProcess("nb", base, sync_settings=EMS)
    try:
        a.start()
        b.peers = [a.sync_address]
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.mark.slow
async def test_the_first_live_writer_writes_and_the_other_takes_over(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, b = pair
    with trio.fail_after(WAIT):
        await write(a, "b.soc", 0.5)
        await write(a, "p.buy", prices([0.1] * 4 + [0.5] * 4 + [0.3] * 8))
        first = await until(b, "ems.home.plan", lambda e: e.origin == "na")
    assert first.source == "ems:home"

    await stopped(a)  # nb is the first live writer now
    with trio.fail_after(WAIT):
        await write(b, "b.soc", 7)  # not a fraction: no plan, and nb says why
        said = await until(b, "ems.home.status", lambda e: e.origin == "nb")
        assert said.value.startswith("error: soc (b.soc)")
        # the inputs na planned from again: nb's plan is the same, byte for byte
        await write(b, "b.soc", 0.5)
        await until(b, "ems.home.status", lambda e: e.origin == "nb" and e.value == "ok")
    current = await event_of(b, "ems.home.plan")
    if current.value["start"] == first.value["start"]:  # the same hour: the same plan
        assert current.id == first.id, "nb wrote a plan equal to na's again"
    with trio.fail_after(WAIT):
        await write(b, "p.buy", prices([0.5] * 4 + [0.1] * 12))
        taken = await until(b, "ems.home.plan", lambda e: e.origin == "nb")
    assert taken.value["inputs"] != first.value["inputs"]
    assert taken.value["price_buy"][:4] == [0.5] * 4
