"""One write transaction: assigns positions, seqs and clocks, writes indexes.

`WriteBatch` lives exactly as long as one LMDB write transaction and runs on
the thread that opened it.  It reads the journal's clock and per-origin ranges
from ``meta`` when it starts and writes them back in `finish`, so the whole
batch - events, indexes and meta - commits or vanishes together.

A local event's ``deps`` are the join (element-wise maximum) of what the
journal holds contiguously of every other origin and the ``deps`` of the
node's newest own event, which the batch reads once (one ``ids`` and one
``events`` lookup).  The join keeps an origin's deps from ever decreasing,
also after the node lost its data and got its own events back before the
others' (docs/event-format.md, "deps never decrease"); a local event that
would break it anyway is refused with `CausalityError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lmdb
import msgpack

from moat_log.errors import (
    CausalityError,
    ClockError,
    IntegrityError,
    InvalidEventError,
    JournalCorruptError,
    MoatLogError,
)
from moat_log.event import Event
from moat_log.ids import MAX_U64
from moat_log.idset import IdSet, IdSetBuilder
from moat_log.rangeset import RangeSet
from moat_log.vclock import VectorClock

from . import keys
from .change import Change
from .item import FeedItem, WinnerKey
from .keys import MetaKey, pack_u64, unpack_u64
from .projection import StoredEvent, TxnProjection

#: What a batch returns per item: the new `Event` for a `Change`, True
#: (inserted) / False (already held) for a foreign event, or the exception
#: that refused that item alone.
WriteResult = Event | bool | MoatLogError


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """What one write transaction did, once it is committed.

    ``items`` are the events it added, at positions ``after + 1``,
    ``after + 2``, ..., with the bytes it wrote and whether each was its
    path's new winner (inserts of events already held store nothing).
    """

    results: list[WriteResult]
    after: int
    items: list[FeedItem]

    @property
    def stored(self) -> list[Event]:
        """The events it added, in position order."""
        return [item.event for item in self.items]


def record_view(txn: lmdb.Transaction, meta: Any, projection: TxnProjection, position: int) -> None:
    """Note in ``meta`` that *projection* has folded everything up to *position*."""
    txn.put(
        MetaKey.VIEW + projection.name.encode(),
        msgpack.packb([projection.version, position]),
        db=meta,
    )


def greatest_before(
    txn: lmdb.Transaction, paths: Any, path_key: bytes, position: int
) -> WinnerKey | None:
    """The greatest ``(hlc, origin)`` of the path's events stored below *position*.

    *path_key* is the path's key in ``paths``.  Reads that path's entries
    backwards and skips those stored at *position* or later: none inside
    the write transaction (everything there is older than the batch), and
    normally few when reading back, as events mostly arrive in time order.
    """
    prefix = path_key + b"\x00"
    cursor = txn.cursor(db=paths)
    found = cursor.set_range(path_key + b"\x01")  # just past the path's own entries
    found = cursor.prev() if found else cursor.last()
    while found:
        key = bytes(cursor.key())
        if not key.startswith(prefix):
            return None
        if unpack_u64(cursor.value()) < position:
            head = len(prefix)
            return unpack_u64(key[head : head + 8]), key[head + 8 :].decode()
        found = cursor.prev()
    return None


def load_ranges(txn: lmdb.Transaction, meta: Any, prefix: bytes = MetaKey.RANGES) -> IdSet:
    """The ids the journal holds, as recorded in ``meta`` (a range set per origin).

    With *prefix* `MetaKey.GONE`: the ids compaction removed (still in the ranges).
    """
    ranges = {}
    cursor = txn.cursor(db=meta)
    if cursor.set_range(prefix):
        for key, value in cursor:
            if not bytes(key).startswith(prefix):
                break
            origin = bytes(key[len(prefix) :]).decode()
            ranges[origin] = RangeSet.from_msgpack(msgpack.unpackb(value))
    return IdSet(ranges)


class WriteBatch:
    """The state of one write transaction."""

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: dict[str, Any],
        node: str,
        wall_clock: Callable[[], int],
        projections: Sequence[TxnProjection] = (),
    ) -> None:
        self._projections = projections
        self._stored: list[StoredEvent] = []  # what this batch added, for the views
        self._winners: list[bool] = []  # per stored event: its path's new winner?
        self._best: dict[bytes, WinnerKey] = {}  # path key -> greatest (hlc, origin) so far
        self._txn = txn
        self._events, self._ids = dbs["events"], dbs["ids"]
        self._paths, self._times, self._meta = dbs["paths"], dbs["times"], dbs["meta"]
        self._node = node
        self._wall_clock = wall_clock
        self._ranges = IdSetBuilder(load_ranges(txn, self._meta))
        self._changed: set[str] = set()
        self._clock = unpack_u64(txn.get(MetaKey.HLC, db=self._meta))
        cursor = txn.cursor(db=self._events)
        self._position = unpack_u64(cursor.key()) if cursor.last() else 0
        #: The journal's last position before this batch.
        self.after = self._position
        self._deps: VectorClock | None = None  # of the next local event, while valid
        #: The deps of the node's newest own event, once read or staged.
        self._own_deps: VectorClock | None = None
        self._node_bytes = node.encode()
        self._own_id_prefix = keys.id_prefix(node)
        self._own_seq = self._ranges.max(node)  # the last seq handed out
        self._own_first = self._own_seq + 1  # the first one not yet in _ranges
        # Staged entries per database, written with one putmulti each in finish().
        self._staged_events: list[tuple[bytes, bytes]] = []
        self._staged_ids: list[tuple[bytes, bytes]] = []
        self._staged_paths: list[tuple[bytes, bytes]] = []
        self._staged_times: dict[bytes, bytes] = {}
        self._staged_by_id: dict[bytes, bytes] = {}  # foreign events: id key -> packed
        self._origin_cache: dict[str, tuple[bytes, bytes]] = {}
        self._gone: IdSet | None = None  # read when an id held is not found

    def write(self, item: Change | Event) -> WriteResult:
        """Stage one item; an error that concerns this item alone is returned."""
        try:
            if type(item) is Change:
                return self._append(item)
            assert isinstance(item, Event)
            return self._insert(item)
        except (CausalityError, ClockError, IntegrityError, InvalidEventError) as exc:
            return exc

    def _append(self, change: Change) -> Event:
        # The hot path of every local write: kept flat on purpose.
        at, clock = change.at, self._clock
        if at is None:
            hlc = max(self._wall_clock(), clock + 1)
            if hlc > MAX_U64:
                raise ClockError("the hybrid logical clock exhausted the 64-bit range")
        elif at > clock:
            hlc = at
        else:
            raise ClockError(
                f"event time {at} is not after the journal's clock {clock}; "
                "history is appended in time order"
            )
        seq = self._own_seq + 1
        event = Event.trusted(
            self._node,
            seq,
            hlc,
            self._fresh_deps() if self._deps is None else self._deps,
            change.path,
            change.op,
            change.value,
            change.source,
            change.cause,
        )
        data = event.pack()  # may refuse this item: nothing is assigned before it
        self._own_seq = seq
        self._own_deps = event.deps
        self._position += 1
        pos = pack_u64(self._position)
        hlc_bytes = pack_u64(hlc)
        self._staged_events.append((pos, data))
        self._stored.append((event, data))
        # Its hlc is above everything the journal holds: always the new winner.
        self._winners.append(True)
        path_key = keys.cached_path_key(change.path)
        self._best[path_key] = (hlc, self._node)
        self._staged_ids.append((self._own_id_prefix + pack_u64(seq), pos))
        self._staged_paths.append((path_key + b"\x00" + hlc_bytes + self._node_bytes, pos))
        self._staged_times[hlc_bytes + self._node_bytes] = pos
        self._clock = hlc
        return event

    def _record_own_seqs(self) -> None:
        """Fold the seqs handed out by `_append` into the node's range set."""
        if self._own_seq >= self._own_first:
            self._ranges.add_range(self._node, self._own_first, self._own_seq)
            self._changed.add(self._node)
        self._own_first = self._own_seq + 1

    def _insert(self, event: Event) -> bool:
        # The hot path of imports and sync: kept flat on purpose.
        data = event.pack()
        origin, seq, hlc = event.origin, event.seq, event.hlc
        own = origin == self._node
        if own:  # our own event coming back (restored from a backup or a peer)
            self._record_own_seqs()
        held = self._ranges.seqs(origin)  # the builder's own: added to below
        prefix, origin_bytes = self._origin_keys(origin)
        id_key = prefix + pack_u64(seq)
        if seq in held:
            self._check_same(event, id_key, data)
            return False
        hlc_bytes = pack_u64(hlc)
        time_key = hlc_bytes + origin_bytes
        if time_key in self._staged_times or self._txn.get(time_key, db=self._times):
            raise IntegrityError(
                f"event {event.id} reuses hlc {hlc} of another event from {origin}; refused"
            )
        self._position += 1
        pos = pack_u64(self._position)
        path_key = keys.cached_path_key(event.path)
        self._winners.append(self._wins(path_key, hlc, origin))
        self._staged_events.append((pos, data))
        self._stored.append((event, data))
        self._staged_ids.append((id_key, pos))
        self._staged_by_id[id_key] = data
        self._staged_paths.append((path_key + b"\x00" + time_key, pos))
        self._staged_times[time_key] = pos
        held.add(seq)
        self._changed.add(origin)
        self._clock = max(self._clock, hlc)
        if own:
            self._own_seq = held.max
            self._own_first = self._own_seq + 1
            if seq == self._own_seq:  # the newest own event now: its deps bound the next
                self._own_deps = event.deps
                self._deps = None
        else:
            self._deps = None
        return True

    def _wins(self, path_key: bytes, hlc: int, origin: str) -> bool:
        """Whether a foreign event is its path's new winner (call before it is staged)."""
        key = (hlc, origin)
        if hlc <= self._clock:  # not above everything seen: compare with the path's best
            best = self._best.get(path_key)
            if best is None:
                best = greatest_before(self._txn, self._paths, path_key, self.after + 1)
            if best is not None and key <= best:
                return False
        self._best[path_key] = key
        return True

    def _origin_keys(self, origin: str) -> tuple[bytes, bytes]:
        """The ids key prefix and the encoded name of an origin."""
        cached = self._origin_cache.get(origin)
        if cached is None:
            cached = self._origin_cache[origin] = (keys.id_prefix(origin), origin.encode())
        return cached

    def _check_same(self, event: Event, id_key: bytes, data: bytes) -> None:
        stored = self._staged_by_id.get(id_key)
        if stored is None:
            pos = self._txn.get(id_key, db=self._ids)
            found = None if pos is None else self._txn.get(pos, db=self._events)
            stored = None if found is None else bytes(found)
        if stored is None:
            if self._is_gone(event):
                return  # compaction removed it: held in the summary's sense, dropped
            raise JournalCorruptError(
                f"event {event.id} is recorded as held but missing; run 'moat-log verify'"
            )
        if stored != data:
            raise IntegrityError(
                f"event {event.id} differs from the stored event with the same id; refused"
            )

    def _is_gone(self, event: Event) -> bool:
        """Whether compaction removed the event with *event*'s id (read once per batch)."""
        if self._gone is None:
            self._gone = load_ranges(self._txn, self._meta, MetaKey.GONE)
        return self._gone.holds(event.origin, event.seq)

    def _fresh_deps(self) -> VectorClock:
        """The deps of the next local event, checked against the newest own event's."""
        previous = self._previous_deps()
        deps = self._seen(previous)
        behind = previous.first_decrease(deps)
        if behind is not None:
            raise CausalityError(
                f"a new event of {self._node} would claim {behind}:{deps.get(behind)} while "
                f"its event {self._node}:{self._own_seq} had seen {behind}:{previous[behind]}; "
                "refused (deps never decrease); run 'moat-log verify'"
            )
        self._deps = deps
        return deps

    def _seen(self, previous: VectorClock) -> VectorClock:
        """What the node has seen: its contiguous holdings joined with *previous*."""
        contiguous = VectorClock.trusted(
            {
                origin: end
                for origin in sorted(self._ranges.origins)
                if origin != self._node and (end := self._ranges.contiguous_end(origin))
            }
        )
        return contiguous.join(previous)

    def _previous_deps(self) -> VectorClock:
        """The deps of the node's newest own event; empty if it has none."""
        if self._own_deps is None:
            if not self._own_seq:
                self._own_deps = VectorClock()
            else:
                self._own_deps = _packed_deps(self._read_own(self._own_seq))
        return self._own_deps

    def _read_own(self, seq: int) -> bytes:
        """The packed own event *seq*, which the journal holds (not one staged here)."""
        pos = self._txn.get(self._own_id_prefix + pack_u64(seq), db=self._ids)
        data = None if pos is None else self._txn.get(pos, db=self._events)
        if data is None:
            raise JournalCorruptError(
                f"event {self._node}:{seq} is recorded as held but missing; run 'moat-log verify'"
            )
        return bytes(data)

    @property
    def items(self) -> list[FeedItem]:
        """The events this batch added, in position order, as the feed hands them out."""
        first = self.after + 1
        return [
            FeedItem(first + index, event, data, winner)
            for index, ((event, data), winner) in enumerate(
                zip(self._stored, self._winners, strict=True)
            )
        ]

    def finish(self) -> None:
        """Write the staged entries, the changed ranges and the clock."""
        self._record_own_seqs()
        _put_sorted(self._txn, self._events, self._staged_events, presorted=True)
        _put_sorted(self._txn, self._ids, self._staged_ids)
        _put_sorted(self._txn, self._paths, self._staged_paths)
        _put_sorted(self._txn, self._times, list(self._staged_times.items()))
        for origin in self._changed:
            self._txn.put(
                MetaKey.RANGES + origin.encode(),
                msgpack.packb(self._ranges.seqs(origin).to_msgpack()),
                db=self._meta,
            )
        self._txn.put(MetaKey.HLC, pack_u64(self._clock), db=self._meta)
        if self._stored:
            for projection in self._projections:
                projection.apply(self._txn, self._stored)
                record_view(self._txn, self._meta, projection, self._position)


def _packed_deps(data: bytes) -> VectorClock:
    """The ``deps`` of a stored event, without unpacking its path or value."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    unpacker.read_array_header()
    for _ in range(4):  # format, origin, seq, hlc
        unpacker.skip()
    # Stored events hold the canonical form of validated clocks (sorted, no zeros).
    return VectorClock.trusted(unpacker.unpack())


def _put_sorted(
    txn: lmdb.Transaction,
    db: Any,
    entries: list[tuple[bytes, bytes]],
    *,
    presorted: bool = False,
) -> None:
    """Put *entries* with one putmulti; append mode when they all go at the end.

    Appending (MDB_APPEND) skips the tree search and fills pages completely;
    it is the common case for positions, for times of fresh events and for
    the ids of a node's own events.
    """
    if not entries:
        return
    if not presorted:
        entries.sort()
    cursor = txn.cursor(db=db)
    at_end = not cursor.last() or bytes(cursor.key()) < entries[0][0]
    cursor.putmulti(entries, append=at_end)
