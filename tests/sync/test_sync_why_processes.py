"""``why`` across nodes: a write on B caused by an event of A is explained on C after sync.

Three real ``moat-log serve`` processes replicating over 127.0.0.1.  A reads
a bus frame (its source ``knx:1/2/3``); a script on B watches for it and
switches a light with the frame as cause (`Client.caused_by`); C, which
dials both, is asked ``moat-log why`` once it holds both events.  Waiting
is done by watching, never by sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest
import trio
from process_support import NodeProcess

from moat_log import open_client
from moat_log.event import Event
from moat_log.ids import EventId


@pytest.fixture
def three_nodes(base: FsPath) -> Iterator[tuple[NodeProcess, NodeProcess, NodeProcess]]:
    nodes: list[NodeProcess] = []
    try:
        a = NodeProcess("na", base)
        a.start()
        nodes.append(a)
        b = NodeProcess("nb", base, [a.sync_address])
        b.start()
        nodes.append(b)
        c = NodeProcess("nc", base, [a.sync_address, b.sync_address])
        c.start()
        nodes.append(c)
        yield a, b, c
    finally:
        for node in nodes:
            node.stop()


async def until_held(node: NodeProcess, wanted: set[EventId]) -> None:
    """Watch *node* until every one of *wanted* has arrived there."""
    async with open_client(data_dir=node.data_dir) as client, client.watch() as items:
        async for item in items:
            if isinstance(item, Event):
                wanted.discard(item.id)
            if not wanted:
                return


@pytest.mark.slow
async def test_a_write_on_b_caused_by_a_frame_on_a_is_explained_on_c(
    three_nodes: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    a, b, c = three_nodes
    with trio.fail_after(60):
        async with open_client(data_dir=b.data_dir) as script, script.watch("sensor") as items:
            async with open_client(data_dir=a.data_dir) as bus:
                frame = await bus.set("sensor.hall.motion", True, source="knx:1/2/3")
            async for item in items:
                if isinstance(item, Event) and item.id == frame.id:
                    with script.caused_by(item):
                        light = await script.set("home.hall.light", True, source="script:hall")
                    break
        await until_held(c, {frame.id, light.id})
    document = json.loads(c.cli("--json", "why", "home.hall.light"))
    steps = [step["event"] for step in document["steps"]]
    assert [(s["id"], s["source"]) for s in steps] == [
        (str(light.id), "script:hall"),
        (str(frame.id), "knx:1/2/3"),
    ]
    assert steps[0]["cause"] == str(frame.id)
    assert document["end"]["kind"] == "origin"
    text = c.cli("why", "home.hall.light").splitlines()
    assert text[-1] == "  origin: written by knx:1/2/3 without a cause"
    assert f"  caused by {frame.id}" in text
