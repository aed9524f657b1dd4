"""What each known peer has stated holding, kept in the journal's ``meta``.

A node keeps, per peer it has had a standing sync link with, the last
``held`` that peer sent itself (its summary, its ``have``s) and when: the
record survives restarts, and compaction may remove only ids that every
known, unretired peer has stated holding (docs/decisions.md, "Retention
and compaction").  Key ``peer:`` + name, value the msgpack map
``{"held": held ranges, "seen": ns, "first": ns, "address": str}`` (the
address this node dials it at, "" if it dialled in: a configured address
no record names is a peer whose name this node has never learned).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import lmdb
import msgpack

from moat_log.errors import JournalCorruptError
from moat_log.ids import check_node_name
from moat_log.idset import IdSet

from .keys import MetaKey

__all__ = ["PeerRecord", "frontier", "load_peers", "store_peer"]


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A peer's last statement of what it holds; *seen* and *first* in ns since the epoch."""

    name: str
    held: IdSet
    seen: int
    first: int
    address: str = ""

    def pack(self) -> bytes:
        packed: bytes = msgpack.packb(
            {
                "held": self.held.to_wire(),
                "seen": self.seen,
                "first": self.first,
                "address": self.address,
            }
        )
        return packed

    @classmethod
    def unpack(cls, name: str, data: bytes) -> PeerRecord:
        try:
            value = msgpack.unpackb(data)
            held = IdSet.from_wire(value["held"])
            address = str(value.get("address", ""))
            return cls(name, held, int(value["seen"]), int(value["first"]), address)
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalCorruptError(
                f"the journal's record of peer {name!r} is damaged: {exc}"
            ) from exc


def load_peers(txn: lmdb.Transaction, meta: Any) -> dict[str, PeerRecord]:
    found = {}
    cursor = txn.cursor(db=meta)
    if cursor.set_range(MetaKey.PEER):
        for raw_key, value in cursor:
            key = bytes(raw_key)
            if not key.startswith(MetaKey.PEER):
                break
            name = key[len(MetaKey.PEER) :].decode()
            found[name] = PeerRecord.unpack(name, bytes(value))
    return found


def store_peer(  # noqa: PLR0917 - the record's fields
    txn: lmdb.Transaction, meta: Any, name: str, held: IdSet, seen: int, address: str = ""
) -> PeerRecord:
    """Record that *name* stated holding *held* at *seen* (replacing what it said before)."""
    check_node_name(name)
    key = MetaKey.PEER + name.encode()
    old = txn.get(key, db=meta)
    before = None if old is None else PeerRecord.unpack(name, bytes(old))
    first = seen if before is None else before.first
    record = PeerRecord(name, held, seen, first, address or (before.address if before else ""))
    txn.put(key, record.pack(), db=meta)
    return record


def frontier(held: IdSet, peers: Iterable[PeerRecord]) -> IdSet:
    """What every one of *peers* stated holding, of what this node *held*."""
    common = held
    for peer in peers:
        common = common & peer.held
    return common
