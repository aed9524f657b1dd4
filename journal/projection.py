"""The contract between the journal and the views it keeps up to date.

A view maintained *inside* the journal's write transaction (the KV view is
one) implements `TxnProjection`.  The journal calls `apply` with the events a
batch newly stored, in the same transaction as the events themselves, so the
view is never ahead of the journal or behind it, and a crash can only lose
both or neither.

The journal records in its meta data which views it maintains, with each
view's version and checkpoint (the last position applied).  A process that
opens the journal without one of those views may read but not write: it
would leave the view behind.  A view that is new, or whose version changed,
is rebuilt from the journal when the journal is opened, in one transaction.

The journal never imports a projection (docs/architecture.md, "Layers":
projections depend on the journal, not the other way round); they are
handed to `Journal.open`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import lmdb

from moat_log.event import Event

#: A newly stored event and its packed bytes.
StoredEvent = tuple[Event, bytes]


class TxnProjection(Protocol):
    """A view updated in the journal's write transactions."""

    #: Stable name, used in the meta data and on the command line.
    name: str
    #: Bump when the view's stored form changes: the view is then rebuilt.
    version: int
    #: The LMDB databases the view owns (created and opened by the journal).
    db_names: tuple[str, ...]

    def attach(self, journal: Any, dbs: dict[str, Any]) -> None:
        """Called once when the journal is opened, with the view's databases."""

    def apply(self, txn: lmdb.Transaction, events: Sequence[StoredEvent]) -> None:
        """Fold newly stored *events* into the view, inside *txn*.

        Must be a deterministic function of the set of events ever applied,
        whatever their order and batching (docs/architecture.md, principle 2).
        """

    def check(self) -> list[str]:
        """Compare the stored view with a fresh fold of the journal; describe differences."""
