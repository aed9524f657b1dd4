"""Keeps the node's types (`moat_log.path_types.TypeRegistry`) current.

At start the node reads every type from the KV view (deleted ones too, so
that a delete is known as the newest event of its pattern) with the journal
position they are as of, and then follows the feed under ``:.moat.type``
from that position: types stored by peers, by other processes on the data
directory and by the node itself.  The node's own commits also reach the
registry directly, before their writers are answered (`Node._committed`);
the registry keeps the winner per pattern, so seeing an event twice changes
nothing.
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from moat_log.journal.subscription import Overflow
from moat_log.reserved import TYPES

from ._node import Node

__all__ = ["keep_types"]

log = logging.getLogger("moat_log.node")


async def keep_types(
    node: Node, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Load the node's types, report ready, then follow their changes until cancelled."""
    position, events = await node.read(partial(node.kv.snapshot, [TYPES], deleted=True))
    types = node.checks.types
    for event in events:
        types.apply(event)
    if len(types):
        log.info("node %s: %d typed path patterns", node.name, len(types))
    with node.feed.subscribe(after=position, prefix=TYPES, on_overflow=Overflow.CATCH_UP) as feed:
        task_status.started()
        while True:
            for item in await feed.receive_batch():
                types.apply(item.event)
