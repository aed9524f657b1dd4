"""The KV view: the current value of every path, kept inside the journal's transactions.

Theory of operation
-------------------
Two LMDB databases, both updated in the write transaction that stores the
events (see `moat_log.journal.projection`):

``kv``     path key -> the packed winning event of that path
``heads``  path key, 0x00, origin -> u64 seq of that origin's latest event there

The **winner** of a path is its event with the greatest ``(hlc, origin)``;
a winning delete is a tombstone (the path has no value) and stays in ``kv``,
so an older set arriving late cannot bring the value back.  The **head** of
an origin on a path is that origin's event with the greatest seq (an origin's
own events are causally ordered by seq).

A **conflict** is a head that the winner's origin had not seen when it wrote
the winner: another origin's latest write to the path was overwritten by a
writer that did not know about it.  (A write the winner *had* seen was
overwritten knowingly; an origin's older writes are superseded by its own
later ones.)  The winner, the heads and therefore the conflicts are functions
of the *set* of events, whatever order and batching they arrive in; the
stored bytes are identical on every node holding the same events.

`apply` folds a batch in memory first, so a batch costs one read and at
most one write per distinct path (and per path and origin), not per event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import lmdb
import msgpack

from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.journal import keys
from moat_log.journal.projection import StoredEvent
from moat_log.journal.store import Journal
from moat_log.path import ROOT, Path

_SCAN_CHUNK = 1024


@dataclass(frozen=True, slots=True)
class Conflict:
    """*loser*'s latest write to *path* was overwritten by *winner*, which had not seen it."""

    path: Path
    winner: Event
    loser: EventId


class KVView:
    """For each path, the winning event; queries for scripts and the CLI."""

    name: str = "kv"
    version: int = 1
    db_names: tuple[str, ...] = ("kv", "heads")

    def __init__(self) -> None:
        self._journal: Journal | None = None
        self._kv: Any = None
        self._heads: Any = None

    def attach(self, journal: Journal, dbs: dict[str, Any]) -> None:
        self._journal = journal
        self._kv, self._heads = dbs["kv"], dbs["heads"]

    # ------------------------------------------------------------------ folding

    def apply(self, txn: lmdb.Transaction, events: Sequence[StoredEvent]) -> None:
        winners: dict[bytes, tuple[int, str, bytes]] = {}
        heads: dict[bytes, int] = {}
        path_key = keys.cached_path_key
        for event, data in events:
            pkey = path_key(event.path)
            best = winners.get(pkey)
            if best is None or (event.hlc, event.origin) > best[:2]:
                winners[pkey] = (event.hlc, event.origin, data)
            hkey = pkey + b"\x00" + event.origin.encode()
            if event.seq > heads.get(hkey, 0):
                heads[hkey] = event.seq
        for pkey, (hlc, origin, data) in winners.items():
            stored = txn.get(pkey, db=self._kv)
            if stored is None or (hlc, origin) > _hlc_origin(bytes(stored)):
                txn.put(pkey, data, db=self._kv)
        for hkey, seq in heads.items():
            stored = txn.get(hkey, db=self._heads)
            if stored is None or seq > keys.unpack_u64(stored):
                txn.put(hkey, keys.pack_u64(seq), db=self._heads)

    # ------------------------------------------------------------------ queries

    def get(self, path: Path) -> Event | None:
        """The winning event of *path* (a delete if it was deleted), or None if never set."""
        with self._journal_read() as txn:
            data = txn.get(path.key, db=self._kv)
        return None if data is None else Event.unpack(bytes(data))

    def value(self, path: Path, default: Any = None) -> Any:
        """The current value of *path*, or *default* if it has none."""
        event = self.get(path)
        return default if event is None or event.op is Op.DELETE else event.value

    def walk(self, prefix: Path = ROOT, *, deleted: bool = False) -> Iterator[Event]:
        """The winning events of *prefix* and every path below it, in path order.

        Deleted paths are left out unless *deleted* is true.
        """
        for _key, data in self._scan(self._kv, prefix.key):
            event = Event.unpack(data)
            if deleted or event.op is Op.SET:
                yield event

    def children(self, path: Path = ROOT) -> list[str | int]:
        """The next segments below *path* that lead to at least one live value."""
        depth = len(path)
        found: list[str | int] = []
        for event in self.walk(path):
            if len(event.path) > depth:
                segment = event.path[depth]
                if not found or found[-1] != segment:
                    found.append(segment)
        return found

    def conflicts(self, prefix: Path = ROOT) -> Iterator[Conflict]:
        """Concurrent writes to paths under *prefix* that lost without being seen."""
        current: Event | None = None
        for key, data in self._scan(self._heads, prefix.key):
            # The origin (a node name) holds no 0x00, so the last one separates it.
            pkey, _, origin_bytes = key.rpartition(b"\x00")
            if current is None or current.path.key != pkey:
                current = self._winner(pkey)
            origin, seq = origin_bytes.decode(), keys.unpack_u64(data)
            if current is None or origin == current.origin:
                continue
            if current.deps.get(origin) < seq:
                yield Conflict(current.path, current, EventId(origin, seq))

    def _winner(self, pkey: bytes) -> Event | None:
        with self._journal_read() as txn:
            data = txn.get(pkey, db=self._kv)
        return None if data is None else Event.unpack(bytes(data))

    # ----------------------------------------------------------------- plumbing

    def _journal_read(self) -> Any:
        if self._journal is None:
            raise RuntimeError("the KV view is not attached to a journal")
        return self._journal._read()

    def _scan(self, db: Any, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        if self._journal is None:
            raise RuntimeError("the KV view is not attached to a journal")
        return self._journal._scan(db, prefix, keys.prefix_end(prefix))


def _hlc_origin(packed: bytes) -> tuple[int, str]:
    fields = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    return fields[3], fields[1]
