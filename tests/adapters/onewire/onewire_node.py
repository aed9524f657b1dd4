"""A node with a 1-Wire adapter in the test's trio run, and ways to wait for it."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path as FsPath
from typing import Any

import trio

from moat_log.adapters.status import AdapterStatus
from moat_log.node._node import Node
from moat_log.node.config import config_from_document
from moat_log.node.server import serve_node


def node_config(data_dir: FsPath, port: int, body: str) -> Any:
    text = f"""
node = "n1"
[adapters.ow]
type = "onewire"
server = "127.0.0.1:{port}"
reconnect_first = 0.01
reconnect_max = 0.05
{body}
"""
    config = config_from_document(tomllib.loads(text), data_dir=data_dir)
    fields = {name: getattr(config, name) for name in config.__dataclass_fields__}
    return type(config)(**{**fields, "listen": ()})


@asynccontextmanager
async def running_node(config: Any) -> AsyncIterator[Node]:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(partial(serve_node, config, shutdown_trigger=stop.wait))
        try:
            yield node
        finally:
            stop.set()


async def until_status(status: AdapterStatus, predicate: Callable[[AdapterStatus], bool]) -> None:
    """Until *predicate* holds for the adapter's status (checked at each change)."""
    changed = trio.Event()

    def note() -> None:
        changed.set()

    status.on_change.append(note)
    try:
        with trio.fail_after(20):
            while not predicate(status):
                await changed.wait()
                changed = trio.Event()
    finally:
        status.on_change.remove(note)
