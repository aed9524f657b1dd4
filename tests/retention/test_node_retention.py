"""A node with ``retention.every`` compacts by itself: its roll-ups reach its watchers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path as FsPath

import trio

from moat_log import Client, open_client
from moat_log.event import Event
from moat_log.journal.change import Change
from moat_log.journal.compaction import PathPattern, RetentionRule
from moat_log.node.config import ListenAddress, NodeConfig
from moat_log.node.retention_config import RetentionConfig
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.testing import running_node

HOUR = 3600 * 10**9


async def test_the_node_rolls_old_readings_up_every_interval(tmp_path: FsPath) -> None:
    start = (time.time_ns() - 4 * HOUR) // HOUR * HOUR
    with open_journal(tmp_path, create_node="pi1") as journal:
        journal.write_batch(
            [
                Change(Path.parse("home.temp"), float(n), at=start + n * HOUR // 4 + 1)
                for n in range(8)
            ]
        )
    rule = RetentionRule("temps", (PathPattern.parse("home.temp"),), HOUR, HOUR)
    config = NodeConfig(
        node="pi1",
        data_dir=tmp_path,
        listen=(ListenAddress("unix"),),
        retention=RetentionConfig((rule,), every=10**8),  # every 0.1 s
    )
    with trio.fail_after(20):
        async with running_node(config), open_client(data_dir=tmp_path) as client:
            seen: list[Event] = []
            async with client.watch("moat-log.rollup") as items:
                async for item in items:
                    if isinstance(item, Event):
                        seen.append(item)
                    if len(seen) == 2:
                        break
            history = [event async for event in _history(client, "home.temp")]
    assert sorted(event.value["count"] for event in seen) == [4, 4]
    assert [event.value for event in history] == [7.0], "only the winner is left"


async def _history(client: Client, path: str) -> AsyncIterator[Event]:
    async with client.history(path) as items:
        async for item in items:
            yield item
