"""What an adapter did and what it is doing: the ``adapters`` entry of the node's status.

`AdapterStatus` is plain bookkeeping (sans-io): the supervisor records the
connection's ups and downs, the adapter its counts, and `AdapterStatus.report`
is what ``moat-log status`` shows.  Times are wall-clock seconds
(`time.time`) so that an operator can read them.

`BadDataLog` decides when bad bus data is worth a log line: the first time
for each bus address, then at most once per `BadDataLog.interval` for the
same address, with the number of repeats in between, so that a device
sending garbage ten times a second fills neither the log nor the journal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["COUNTERS", "AdapterStatus", "BadDataLog"]

#: The counters every adapter keeps, in the order status shows them.
COUNTERS: Final = (
    "received",  # messages or telegrams read from the bus
    "written",  # events the adapter wrote to the journal (the "in" direction)
    "sent",  # values the adapter wrote to the bus (the "out" direction)
    "suppressed",  # bus messages that produced no event: echoes, unchanged values
    "bad",  # bus data that did not decode or was out of range; never stored
    "refused",  # events the journal refused (logged with the reason)
)

_NOTHING: Final = object()

#: The connection states, as status shows them.
STATES: Final = ("starting", "connecting", "connected", "backing-off", "stopped", "disabled")


@dataclass(slots=True)
class AdapterStatus:
    """One adapter instance's state and counts."""

    name: str
    type: str
    state: str = "starting"
    #: When the current connection came up (None: not connected).
    connected_since: float | None = None
    #: When the next connection attempt is due (state ``backing-off``).
    retry_at: float | None = None
    #: Connections made so far (the first included).
    connections: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    #: The last bad bus data: its address and what was wrong.
    last_bad: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    #: What the adapter itself adds (its broker, its role, ...).
    details: dict[str, Any] = field(default_factory=dict)
    #: What the adapter maps (`AdapterSettings.describe`), for ``moat-log adapters``.
    mappings: list[dict[str, Any]] = field(default_factory=list)
    #: Called after every change of the state, a count or a detail (tests wait on them).
    on_change: list[Callable[[], object]] = field(default_factory=list)

    def _changed(self) -> None:
        for callback in list(self.on_change):
            callback()

    def count(self, counter: str, n: int = 1) -> None:
        self.counts[counter] += n
        if self.on_change:
            self._changed()

    def detail(self, key: str, value: Any) -> None:
        """Show *value* under *key* (the adapter's own status: its broker, its role)."""
        if self.details.get(key, _NOTHING) != value:
            self.details[key] = value
            self._changed()

    def connecting(self) -> None:
        self.state = "connecting"
        self.retry_at = None
        self._changed()

    def connected(self, now: float) -> None:
        self.state = "connected"
        self.connected_since = now
        self.connections += 1
        self._changed()

    def failed(self, error: str, now: float, retry_in: float) -> None:
        """The connection failed or went away with *error*; retried in *retry_in* s."""
        self.state = "backing-off"
        self.connected_since = None
        self.last_error = error
        self.last_error_at = now
        self.retry_at = now + retry_in
        self._changed()

    def stopped(self) -> None:
        self.state = "stopped"
        self.connected_since = None
        self.retry_at = None
        self._changed()

    def report(self, lag: int | None) -> dict[str, Any]:
        """The adapter's entry in the node's status map (docs/adapters.md)."""
        return {
            "type": self.type,
            "state": self.state,
            "connected_since": self.connected_since,
            "retry_at": self.retry_at,
            "connections": self.connections,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_bad": self.last_bad,
            **self.counts,
            "lag": lag,
            **self.details,
            "mappings": self.mappings,
        }


@dataclass(slots=True)
class BadDataLog:
    """When to log bad data from one bus address: first time, then once per interval."""

    interval: float = 60.0
    #: Addresses remembered at most; the oldest is forgotten beyond it.
    capacity: int = 4096
    _seen: dict[str, tuple[float, int]] = field(default_factory=dict)

    def should_log(self, address: str, now: float) -> int | None:
        """None to stay quiet; else the repeats since the last line for *address* (0: first)."""
        seen = self._seen.get(address)
        if seen is not None and now - seen[0] < self.interval:
            self._seen[address] = (seen[0], seen[1] + 1)
            return None
        self._seen.pop(address, None)
        if len(self._seen) >= self.capacity:
            del self._seen[next(iter(self._seen))]
        self._seen[address] = (now, 0)
        return 0 if seen is None else seen[1]
