"""The KV view: the current value of every path, kept inside the journal's transactions.

Theory of operation
-------------------
One LMDB database, updated in the write transaction that stores the events
(see `moat_log.journal.projection`).  Its key is the path key (the root
path, whose key is empty, is stored under a single 0x00 byte: LMDB has no
empty keys, and 0x00 sorts before every path and is a prefix of none); its
value a
msgpack array ``[hlc, origin, winner, heads]``: the winner's hlc and origin
(to compare without unpacking it), the packed winning event, and a map
``{origin: seq}`` (sorted by origin) of every origin's latest event there.

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

from moat_log.errors import InvalidEventError, JournalCorruptError
from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.journal import keys
from moat_log.journal.projection import StoredEvent
from moat_log.journal.store import Journal
from moat_log.path import ROOT, Path, Segment, segment_end

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
    version: int = 2
    db_names: tuple[str, ...] = ("kv",)

    def __init__(self) -> None:
        self._journal: Journal | None = None
        self._kv: Any = None

    def attach(self, journal: Journal, dbs: dict[str, Any]) -> None:
        self._journal = journal
        self._kv = dbs["kv"]

    # ------------------------------------------------------------------ folding

    def apply(self, txn: lmdb.Transaction, events: Sequence[StoredEvent]) -> None:
        # Fold the batch in memory first: one read and one write per path.
        batch: dict[bytes, _Entry] = {}
        for event, data in events:
            pkey = _record_key(event.path)
            entry = batch.get(pkey)
            if entry is None:
                entry = batch[pkey] = _Entry(event.hlc, event.origin, data, {})
            elif (event.hlc, event.origin) > (entry.hlc, entry.origin):
                entry.hlc, entry.origin, entry.winner = event.hlc, event.origin, data
            if event.seq > entry.heads.get(event.origin, 0):
                entry.heads[event.origin] = event.seq
        for pkey, entry in batch.items():
            stored = txn.get(pkey, db=self._kv)
            if stored is not None:
                entry.merge(_Entry.unpack(bytes(stored)))
            txn.put(pkey, entry.pack(), db=self._kv)

    def check(self) -> list[str]:
        """Fold the whole journal in memory (one record per path) and compare."""
        if self._journal is None:
            raise RuntimeError("the KV view is not attached to a journal")
        expected: dict[bytes, _Entry] = {}
        for _position, data in self._journal.scan_raw():
            try:
                event = Event.unpack(data)
            except InvalidEventError:
                continue  # verify reports the record itself, with its position
            pkey = _record_key(event.path)
            fresh = _Entry(event.hlc, event.origin, data, {event.origin: event.seq})
            entry = expected.get(pkey)
            if entry is None:
                expected[pkey] = fresh
            else:
                entry.merge(fresh)
        problems = []
        for pkey, stored in self._scan(self._kv, b""):
            entry = expected.pop(pkey, None)
            if entry is None:
                problems.append(f"kv view: {_record_path(pkey)} has a record but no events")
            elif entry.pack() != stored:
                problems.append(f"kv view: the record of {_record_path(pkey)} is not the fold")
        problems.extend(f"kv view: {_record_path(k)} has events but no record" for k in expected)
        return problems

    # ------------------------------------------------------------------ queries

    def get(self, path: Path) -> Event | None:
        """The winning event of *path* (a delete if it was deleted), or None if never set."""
        return self._winner(_record_key(path))

    def value(self, path: Path, default: Any = None) -> Any:
        """The current value of *path*, or *default* if it has none."""
        event = self.get(path)
        return default if event is None or event.op is Op.DELETE else event.value

    def walk(self, prefix: Path = ROOT, *, deleted: bool = False) -> Iterator[Event]:
        """The winning events of *prefix* and every path below it, in path order.

        Deleted paths are left out unless *deleted* is true.
        """
        for _key, data in self._scan(self._kv, prefix.key):
            event = Event.unpack_trusted(_Entry.unpack(data).winner)
            if deleted or event.op is Op.SET:
                yield event

    def snapshot(
        self, prefixes: Sequence[Path], *, deleted: bool = False
    ) -> tuple[int, list[Event]]:
        """The winners under *prefixes*, and the journal position they are as of.

        Read in one transaction, so the events are exactly the state after
        the position: every stored event up to it, none after.  A bus adapter
        repairs its bus from this and then applies the changes after the
        position.  Keep *prefixes* to a few thousand paths (one reader holds
        its pages while it scans).  Overlapping prefixes yield each path once.
        """
        if self._journal is None:
            raise RuntimeError("the KV view is not attached to a journal")
        events: list[Event] = []
        covered: list[bytes] = []
        with self._journal.read_transaction() as txn:
            cursor = txn.cursor(db=self._journal.database("events"))
            position = keys.unpack_u64(cursor.key()) if cursor.last() else 0
            for prefix in sorted({p.key for p in prefixes}):
                if any(prefix.startswith(done) for done in covered):
                    continue
                covered.append(prefix)
                cursor = txn.cursor(db=self._kv)
                if not cursor.set_range(prefix or _ROOT_RECORD):
                    continue
                end = keys.prefix_end(prefix)
                for key, data in cursor:
                    if end is not None and bytes(key) >= end:
                        break
                    event = Event.unpack_trusted(_Entry.unpack(bytes(data)).winner)
                    if deleted or event.op is Op.SET:
                        events.append(event)
        return position, events

    def children(self, path: Path = ROOT) -> list[Segment]:
        """The next segments below *path* that lead to at least one live value.

        A skip scan over the view's keys: at the first key below a child it
        reads the winner's op only, and once that child is known to lead to a
        value it seeks past the child's subtree.  The cost is one seek per
        child plus one step per tombstone met before a child's first value,
        whatever the size of the subtrees.
        """
        scan = _ChildScan(path)
        found: list[Segment] = []
        resume: bytes | None = path.key
        while resume is not None:
            with self._journal_read() as txn:
                resume = scan.chunk(txn.cursor(db=self._kv), resume, found)
        return found

    def conflicts(self, prefix: Path = ROOT) -> Iterator[Conflict]:
        """Concurrent writes to paths under *prefix* that lost without being seen."""
        for _key, data in self._scan(self._kv, prefix.key):
            entry = _Entry.unpack(data)
            winner: Event | None = None
            for origin, seq in entry.heads.items():
                if origin == entry.origin:
                    continue
                winner = winner or Event.unpack_trusted(entry.winner)
                if winner.deps.get(origin) < seq:
                    yield Conflict(winner.path, winner, EventId(origin, seq))

    def heads(self, prefix: Path = ROOT) -> Iterator[tuple[Path, dict[str, int]]]:
        """Per path under *prefix* (in path order), every origin's latest seq there.

        The winner is among them (an origin's hlc rises with its seq).
        Compaction never removes these events, so this view of what remains
        is the view of what was (docs/decisions.md, "Retention and compaction").
        """
        for key, data in self._scan(self._kv, prefix.key):
            yield _record_path(key), _Entry.unpack(data).heads

    def _winner(self, pkey: bytes) -> Event | None:
        with self._journal_read() as txn:
            data = txn.get(pkey, db=self._kv)
        return None if data is None else Event.unpack_trusted(_Entry.unpack(bytes(data)).winner)

    # ----------------------------------------------------------------- plumbing

    def _journal_read(self) -> Any:
        if self._journal is None:
            raise RuntimeError("the KV view is not attached to a journal")
        return self._journal.read_transaction()

    def _scan(self, db: Any, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        if self._journal is None:
            raise RuntimeError("the KV view is not attached to a journal")
        return self._journal.scan_database(db, prefix, keys.prefix_end(prefix))


_ROOT_RECORD = b"\x00"


class _ChildScan:
    """`KVView.children` in chunks of at most `_SCAN_CHUNK` cursor moves per read transaction."""

    def __init__(self, path: Path) -> None:
        self.prefix = path.key
        self.own = _record_key(path)  # the path's own record is not a child
        self.start = len(self.prefix)

    def chunk(self, cursor: Any, resume: bytes, found: list[Segment]) -> bytes | None:
        """Append the children from key *resume* on; return where to resume, None at the end."""
        prefix, start = self.prefix, self.start
        positioned = cursor.set_range(resume)
        for _ in range(_SCAN_CHUNK):
            if not positioned:
                return None
            key: bytes = cursor.key()
            if not key.startswith(prefix):
                return None
            if key == self.own or not _winner_is_live(key, cursor.value()):
                positioned = cursor.next()
                continue
            child = key[: segment_end(key, start)]
            found.append(Path.from_key(child[start:])[0])
            # Every key of the child's subtree starts with *child*: seek past them all.
            positioned = cursor.set_range(keys.prefix_end(child))
        return cursor.key() if positioned else None


def _winner_is_live(key: bytes, record: bytes) -> bool:
    """Whether a record's winner is a set, reading the winner's fields only up to its op."""
    try:
        outer = msgpack.Unpacker(raw=False, max_buffer_size=len(record))
        outer.feed(record)
        outer.read_array_header()
        outer.skip()  # hlc
        outer.skip()  # origin
        winner = outer.unpack()
        inner = msgpack.Unpacker(raw=False, max_buffer_size=len(winner))
        inner.feed(winner)
        inner.read_array_header()
        for _ in range(6):  # version, origin, seq, hlc, deps, path (event-format.md)
            inner.skip()
        op = inner.unpack()
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise JournalCorruptError(
            f"the kv view's record of {_record_path(key)} does not unpack ({exc}); "
            "run 'moat-log projection rebuild kv'"
        ) from exc
    return bool(op == Op.SET)


def _record_key(path: Path) -> bytes:
    """The view's key of *path*: its path key, or 0x00 for the root."""
    return keys.cached_path_key(path) or _ROOT_RECORD


def _record_path(key: bytes) -> Path:
    return ROOT if key == _ROOT_RECORD else Path.from_key(key)


class _Entry:
    """One path's record: the winner (with its sort key) and the heads."""

    __slots__ = ("heads", "hlc", "origin", "winner")

    def __init__(self, hlc: int, origin: str, winner: bytes, heads: dict[str, int]) -> None:
        self.hlc, self.origin, self.winner, self.heads = hlc, origin, winner, heads

    def merge(self, other: _Entry) -> None:
        """Combine with *other*: the greater winner, the greater head per origin."""
        if (other.hlc, other.origin) > (self.hlc, self.origin):
            self.hlc, self.origin, self.winner = other.hlc, other.origin, other.winner
        for origin, seq in other.heads.items():
            if seq > self.heads.get(origin, 0):
                self.heads[origin] = seq

    def pack(self) -> bytes:
        heads = dict(sorted(self.heads.items()))  # canonical: identical bytes on every node
        packed: bytes = msgpack.packb([self.hlc, self.origin, self.winner, heads])
        return packed

    @classmethod
    def unpack(cls, data: bytes) -> _Entry:
        hlc, origin, winner, heads = msgpack.unpackb(data, raw=False)
        return cls(hlc, origin, winner, heads)
