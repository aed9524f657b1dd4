"""Which node runs a script: a pure function of the script and the live nodes.

``where = "any"`` picks one node of those this node sees alive (itself and
the peers it has a live sync link to) by rendezvous hashing: the node whose
``sha256(script name, node name)`` is greatest.  Every node that sees the
same live set picks the same node, scripts spread over the nodes, and when
a node goes, only its scripts move.  During a partition each side sees its
own live set, so each side may pick a node of its own and the script runs
on both; their writes then meet as concurrent events when the partition
heals, and show as conflicts (docs/scripting.md, "Where a script runs").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .entry import Where

__all__ = ["chosen_node", "runs_here"]


def _rank(script: str, node: str) -> bytes:
    return hashlib.sha256(f"{script}\x00{node}".encode()).digest()


def chosen_node(script: str, live: Iterable[str]) -> str:
    """The node of *live* (not empty) that runs *script* when it may run on any."""
    return max(live, key=lambda node: _rank(script, node))


def runs_here(script: str, where: Where, here: str, live: Iterable[str]) -> bool:
    """Whether node *here*, which sees the nodes *live* (itself among them), runs *script*."""
    if where.kind == "every":
        return True
    if where.kind == "node":
        return where.node == here
    return chosen_node(script, {here, *live}) == here
