"""Compaction in the node: every ``retention.every``, in a worker thread.

The planner and the journal do the work (`moat_log.projections.compactor`);
this only decides when, and which configured peers have never told their
name (they hold everything back: nothing is confirmed for them).  Roll-ups
are written in the compaction's own transaction, beside the group commit
(LMDB serialises the two); the journal feed finds them like the writes of
another process, and the links push them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import trio

from moat_log.errors import CompactionRunningError
from moat_log.journal.store import Journal
from moat_log.projections.compactor import CompactionReport, compact_journal

from ._node import Node
from .retention_config import RetentionConfig

__all__ = ["run_retention", "unanswered_peers"]

log = logging.getLogger("moat_log.retention")


def unanswered_peers(journal: Journal, addresses: Sequence[str]) -> list[str]:
    """The configured peer addresses that no peer record names (their node is unknown)."""
    known = {record.address for record in journal.peers().values()}
    return [address for address in addresses if address not in known]


def compact_now(node: Node, config: RetentionConfig) -> CompactionReport:
    """One compaction run of the node's journal (in a worker thread)."""
    sync = node.config.sync
    addresses = [str(peer) for peer in sync.peers] if sync is not None else []
    unanswered = unanswered_peers(node.journal, addresses)
    return compact_journal(
        node.journal, node.kv, config.rules, now=time.time_ns(), unanswered=len(unanswered)
    )


async def run_retention(
    node: Node, config: RetentionConfig, *, task_status: trio.TaskStatus[None]
) -> None:
    """Compact every ``config.every`` ns until cancelled (the first run after one interval)."""
    task_status.started()
    while True:
        await trio.sleep(config.every / 1e9)
        try:
            report = await trio.to_thread.run_sync(compact_now, node, config)
        except CompactionRunningError as exc:  # 'moat-log compact' by hand: next time
            log.info("compaction skipped: %s", exc)
            continue
        if report.removed or report.rollups:
            log.info(
                "compaction: %d events removed (%d bytes), %d roll-ups written",
                report.removed,
                report.removed_bytes,
                report.rollups,
            )
