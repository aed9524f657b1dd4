"""A node with none of its own events asks its peers for them before it serves.

Theory of operation
-------------------
An event's id is its origin and seq.  A node that lost its data (a new SD
card) starts over at seq 1 unless it first learns which seqs it used
before: it would then issue ids its peers hold for other events, and the
sync links would refuse it as a forked history (docs/sync-protocol.md,
"Forked histories").  So before the node accepts clients,
`recover_own_history` waits, if its journal holds none of its own events:

* for the first live link, at most *wait* seconds (``sync.wait_for_peers``).
  A fresh node of a new cluster gets an empty answer at once; a node whose
  peers are all away starts after *wait*, with a warning;
* then, while links are live, until it holds every event of its own origin
  that a live peer holds.  There is no time limit while a link is live: a
  long history takes as long as it takes, and stopping half way would fork.
  If every link ends, the *wait* starts again.

The node server calls it only for a node that dials peers (``sync.peers``):
a node that only waits to be dialled cannot tell a new cluster's first node
from one whose peers are away, and would wait on every first start.

A file in the data directory marks a recovery under way, so a node stopped
or killed in the middle of one (it then holds the first of its own events,
not all) waits again when it starts.

A node whose journal holds any of its own events starts at once: it knows
where its numbering continues (an old backup put back is the operator's to
handle: docs/operator-guide.md, "A node lost its data").
"""

from __future__ import annotations

import logging
import math
import os
from functools import partial
from pathlib import Path as FsPath
from typing import Final

import trio

from moat_log.sync.link import Replicator

__all__ = ["RECOVERY_MARKER", "recover_own_history"]

#: The file in the data directory that marks a recovery under way.
RECOVERY_MARKER: Final = "recovering-own-events"

log = logging.getLogger("moat_log.sync")


def _missing_own(replicator: Replicator) -> int | None:
    """Own events a live peer holds and this node lacks; None without a live link."""
    peers = replicator.peers()
    if not peers:
        return None
    own = replicator.node
    held = replicator.holdings.summary().seqs(own)
    # What a peer offers: not what it compacted (it cannot give those back).
    return max(len(peer.offered.seqs(own) - held) for peer in peers.values())


def _changed(before: int | None, replicator: Replicator) -> bool:
    return _missing_own(replicator) != before


async def recover_own_history(
    replicator: Replicator, wait: float, marker: FsPath | None = None
) -> int:
    """Wait as the module doc says; the number of own events got back.

    *marker* is a file that exists while a recovery is under way: a node
    stopped (or killed) in the middle holds some of its own events, and
    without the marker would number its next event after those, not after
    what its peers hold.
    """
    own = replicator.node
    if wait <= 0:
        return 0
    marked = marker is not None and await trio.to_thread.run_sync(marker.exists)
    if own in replicator.holdings.summary().origins and not marked:
        return 0
    if marker is not None:
        await trio.to_thread.run_sync(_create, marker)
    log.info(
        "node %s holds no events of its own (or had not finished getting them back): "
        "asking its peers for them before serving (waiting up to %g s for a peer)",
        own,
        wait,
    )
    recovered = await _recover(replicator, wait)
    if marker is not None:
        await trio.to_thread.run_sync(partial(marker.unlink, missing_ok=True))
    return recovered


def _create(marker: FsPath) -> None:
    """Create *marker* durably: it must outlive a power cut in the middle of a recovery."""
    with marker.open("w") as file:
        file.write("this node is getting its own events back from its peers\n")
        file.flush()
        os.fsync(file.fileno())
    directory = os.open(marker.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


async def _recover(replicator: Replicator, wait: float) -> int:
    own = replicator.node
    deadline = trio.current_time() + wait
    missing = _missing_own(replicator)
    while missing != 0:
        if missing is None and trio.current_time() >= deadline:
            log.warning(
                "node %s: no peer answered within %g s; serving without its own earlier "
                "events (if it had any, its peers will refuse the links as a forked history: "
                "see the operator guide, 'A node lost its data')",
                own,
                wait,
            )
            return 0
        before = missing
        with trio.move_on_at(deadline if missing is None else math.inf):
            await replicator.wait_until(partial(_changed, before))
        missing = _missing_own(replicator)
        if before is not None and missing is None:
            deadline = trio.current_time() + wait  # every link ended: wait for one again
    recovered = replicator.holdings.summary().seqs(own).count
    if recovered:
        log.info("node %s got %d events of its own back from its peers", own, recovered)
    return recovered
