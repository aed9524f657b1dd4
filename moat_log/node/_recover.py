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

A node whose journal holds any of its own events starts at once: it knows
where its numbering continues (an old backup put back is the operator's to
handle: docs/operator-guide.md, "A node lost its data").
"""

from __future__ import annotations

import logging
import math
from functools import partial

import trio

from moat_log.rangeset import RangeSet
from moat_log.sync.link import Replicator

__all__ = ["recover_own_history"]

log = logging.getLogger("moat_log.sync")


def _missing_own(replicator: Replicator) -> int | None:
    """Own events a live peer holds and this node lacks; None without a live link."""
    peers = replicator.peers()
    if not peers:
        return None
    own = replicator.node
    held = replicator.holdings.summary().get(own, RangeSet())
    return max(len(peer.held.get(own, RangeSet()) - held) for peer in peers.values())


def _changed(before: int | None, replicator: Replicator) -> bool:
    return _missing_own(replicator) != before


async def recover_own_history(replicator: Replicator, wait: float) -> int:
    """Wait as the module doc says; the number of own events got back."""
    own = replicator.node
    if wait <= 0 or own in replicator.holdings.summary():
        return 0
    log.info(
        "node %s holds no events of its own: asking its peers for them before serving "
        "(waiting up to %g s for a peer)",
        own,
        wait,
    )
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
    recovered = replicator.holdings.summary().get(own, RangeSet()).count
    if recovered:
        log.info("node %s got %d events of its own back from its peers", own, recovered)
    return recovered
