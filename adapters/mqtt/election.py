"""Which node of a group publishes a mapping: the live node with the least name (sans-io).

Several nodes may run the same MQTT mapping against one broker (each has
the whole journal, so each could publish everything).  To publish once and
not fight, they form a *group* on the broker itself: every node keeps a
retained status message ``online`` on ``<group>/node/<NODE>/status``, with
``offline`` as its will, so the broker marks a node that vanishes (a crash,
a cut cable) after its keep-alive.  Every node reads the group's status
topics, and the **active** node is the one with the least name among the
online ones.  Only the active node publishes and turns MQTT messages into
events; the others stand by, and when the active node goes offline the
next one takes over, repairing the broker from its journal first.

A will is lost when the broker itself restarts, so a status is also a
lease: every node re-publishes ``online`` every third of the group's
*lease* (with that as its MQTT 5 message expiry), and a node not heard of
for a whole lease counts as offline, whatever its last status said.

Liveness is what the broker sees, which is what matters for publishing to
it.  The choice is not consensus: while the broker's view changes, two
nodes can both be active for a moment.  Then a retained state is
published twice with the same value (harmless), and a command may be
written as an event by both (equal values on one path: the KV view keeps
one winner, and ``moat-log conflicts`` shows the other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["OFFLINE", "ONLINE", "Group", "node_of_status_topic", "status_topic"]

ONLINE: Final = b"online"
OFFLINE: Final = b"offline"


def status_topic(group: str, node: str) -> str:
    """The topic carrying *node*'s liveness in *group*."""
    return f"{group}/node/{node}/status"


def status_filter(group: str) -> str:
    """The subscription filter for every node's status in *group*."""
    return f"{group}/node/+/status"


def node_of_status_topic(group: str, topic: str) -> str | None:
    """The node a status topic is about, or None if *topic* is no status topic of *group*."""
    head, tail = f"{group}/node/", "/status"
    if not (topic.startswith(head) and topic.endswith(tail)):
        return None
    node = topic[len(head) : -len(tail)]
    return node if node and "/" not in node else None


@dataclass(slots=True)
class Group:
    """The nodes of one group as this node sees them on the broker.

    Times are the caller's clock in seconds; *lease* is how long a node's
    ``online`` counts without being repeated.
    """

    me: str
    lease: float = 30.0
    #: Node -> when it last said ``online``.
    online: dict[str, float] = field(default_factory=dict)

    def status(self, node: str, payload: bytes, now: float) -> bool:
        """*node* reported *payload* at *now*; whether the active node changed."""
        before = self.active
        if payload == ONLINE:
            self.online[node] = now
        else:
            self.online.pop(node, None)
        return self.active != before

    def expire(self, now: float) -> bool:
        """Forget nodes whose lease ran out by *now*; whether the active node changed."""
        before = self.active
        for node, seen in list(self.online.items()):
            if now - seen >= self.lease and node != self.me:
                del self.online[node]
        return self.active != before

    def next_expiry(self) -> float:
        """When the next lease of another node runs out (inf: none)."""
        others = [seen for node, seen in self.online.items() if node != self.me]
        return min(others) + self.lease if others else float("inf")

    @property
    def active(self) -> str | None:
        """The node that publishes: the least name among those online (None: nobody)."""
        return min(self.online) if self.online else None

    @property
    def is_active(self) -> bool:
        return self.active == self.me
