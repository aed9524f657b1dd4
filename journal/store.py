"""The journal: one LMDB environment per node holding events and their indexes.

Theory of operation
-------------------
Every write goes through `Journal.write_batch`, which runs one LMDB write
transaction for a whole batch of local changes and foreign events and commits
it with one fsync.  Inside that transaction it reads the journal's clock and
per-origin ranges from ``meta``, assigns positions, seqs and hlc timestamps,
writes the event and its three index entries, and writes ``meta`` back.
Because all of that happens inside the transaction, several processes may
write to one journal (LMDB serialises their write transactions) without ever
reusing a seq or a timestamp, and a crash at any instant leaves either the
whole batch or nothing.

A transaction never crosses an ``await`` and never changes threads: callers
from trio run whole batches through `trio.to_thread.run_sync` (see
`moat_log.journal.group_commit`).  Read transactions are short: scans read a
chunk, close the transaction and resume from the next key, so a slow consumer
never pins an old snapshot and memory stays bounded.

When the memory map is full the write is rolled back, the map grows and the
batch is retried; readers in this process are held off meanwhile (LMDB forbids
resizing under live transactions), and readers in other processes adopt the
new size when LMDB tells them.  A full disk rolls the batch back and raises
`StorageFullError`.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, TypeVar, cast

import lmdb
import msgpack

from moat_log.errors import (
    InvalidEventError,
    JournalCorruptError,
    JournalError,
    JournalNotFoundError,
    MoatLogError,
    StorageFullError,
)
from moat_log.event import Event
from moat_log.ids import MAX_U64, EventId, check_node_name
from moat_log.idset import IdSet, IdSetBuilder
from moat_log.path import Path

from . import keys
from .batch import (
    CommittedBatch,
    WriteBatch,
    WriteResult,
    greatest_before,
    load_ranges,
    record_view,
)
from .change import Change
from .keys import MetaKey, pack_u64, unpack_u64
from .peers import PeerRecord, load_peers, store_peer
from .projection import TxnProjection
from .selection import EventSelection, PathsWindow

JOURNAL_FORMAT = 1
#: `Journal.select` sorts at most this many matches of an index read; a
#: selection matching more is answered by the streaming time scan.
SELECT_SORT_LIMIT = 100_000
JOURNAL_SUBDIR = "journal"
SCAN_CHUNK = 1024
REBUILD_CHUNK = 10_000
_T = TypeVar("_T")

#: Address space reserved for the map.  LMDB does not allocate it on disk; the
#: data file grows as events arrive.  32-bit systems (Raspberry Pi OS armhf)
#: have little address space, so start small there and grow.
DEFAULT_MAP_SIZE = (1 << 40) if sys.maxsize > 2**32 else (256 << 20)
MAX_MAP_SIZE = (1 << 44) if sys.maxsize > 2**32 else (1536 << 20)

_DB_NAMES = ("events", "ids", "paths", "times", "meta")
MAX_DBS = 32  # the journal's own five plus the views' databases


@dataclass(frozen=True, slots=True)
class DatabaseStats:
    entries: int
    bytes: int


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one `Journal.compact` did: events removed (and their packed bytes), roll-ups."""

    removed: int
    removed_bytes: int
    rollups: list[Event]


@dataclass(frozen=True, slots=True)
class JournalStats:
    node: str
    events: int
    last_position: int
    clock: int
    origins: IdSet  # the ids held, per origin
    databases: dict[str, DatabaseStats]
    file_bytes: int
    map_bytes: int


def journal_dir(data_dir: str | os.PathLike[str]) -> FsPath:
    return FsPath(data_dir) / JOURNAL_SUBDIR


class _MapGate:
    """Holds transactions of this process off while the map is resized."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._cond.notify_all()

    @contextmanager
    def resizing(self) -> Iterator[None]:
        with self._cond:
            while self._resizing or self._active:
                self._cond.wait()
            self._resizing = True
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class Journal:
    """The journal of one node.  Thread-safe; every method is synchronous.

    Use `Journal.create` or `Journal.open`, and `close` it (or use it as a
    context manager).  Open a journal only once per process (an LMDB rule).
    """

    def __init__(
        self,
        env: lmdb.Environment,
        *,
        projections: Sequence[TxnProjection] = (),
        wall_clock: Callable[[], int] = time.time_ns,
        max_map_size: int = MAX_MAP_SIZE,
    ) -> None:
        self._env = env
        self._dbs = {name: env.open_db(name.encode()) for name in _DB_NAMES}
        self._wall_clock = wall_clock
        self._max_map_size = max_map_size
        self._gate = _MapGate()
        self._write_lock = threading.Lock()
        self.node = self._check_meta()
        self.projections = {projection.name: projection for projection in projections}
        self._view_dbs: dict[str, dict[str, Any]] = {}
        for projection in projections:
            dbs = {name: env.open_db(name.encode()) for name in projection.db_names}
            self._view_dbs[projection.name] = dbs
            projection.attach(self, dbs)
        self._write_refusal: str | None = None
        self._check_views()

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(cls, data_dir: str | os.PathLike[str], node: str, **kwargs: Any) -> Journal:
        """Create the journal for *node* in *data_dir*, or open it if it exists.

        Opening an existing journal under a different node name is an error.
        """
        check_node_name(node)
        directory = journal_dir(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        env = _open_env(directory, kwargs.pop("map_size", DEFAULT_MAP_SIZE))
        with env.begin(write=True) as txn:
            meta = env.open_db(b"meta", txn=txn)
            for name in _DB_NAMES:
                env.open_db(name.encode(), txn=txn)
            existing = txn.get(MetaKey.NODE, db=meta)
            if existing is None:
                txn.put(MetaKey.NODE, node.encode(), db=meta)
                txn.put(MetaKey.FORMAT, pack_u64(JOURNAL_FORMAT), db=meta)
                txn.put(MetaKey.HLC, pack_u64(0), db=meta)
        if existing is not None and bytes(existing).decode() != node:
            env.close()
            raise JournalError(
                f"the journal in {directory} belongs to node {bytes(existing).decode()!r}, "
                f"not {node!r}"
            )
        return cls(env, **kwargs)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], **kwargs: Any) -> Journal:
        """Open the existing journal in *data_dir*."""
        directory = journal_dir(data_dir)
        if not (directory / "data.mdb").is_file():
            raise JournalNotFoundError(
                f"no journal in {os.fspath(data_dir)!r}: create one with "
                "'moat-log init' or pass --data-dir"
            )
        env = _open_env(directory, kwargs.pop("map_size", DEFAULT_MAP_SIZE), create=False)
        return cls(env, **kwargs)

    def _check_meta(self) -> str:
        with self._read() as txn:
            node = txn.get(MetaKey.NODE, db=self._dbs["meta"])
            fmt = txn.get(MetaKey.FORMAT, db=self._dbs["meta"])
        if node is None or fmt is None:
            raise JournalCorruptError("the journal has no node name or format in its meta data")
        if unpack_u64(fmt) != JOURNAL_FORMAT:
            raise JournalError(
                f"journal format {unpack_u64(fmt)} is not supported "
                f"(this moat-log reads format {JOURNAL_FORMAT}); upgrade moat-log"
            )
        return bytes(node).decode()

    def _check_views(self) -> None:
        """Refuse writes if a recorded view is missing; rebuild new or changed views."""
        recorded = self.views()
        missing = sorted(set(recorded) - set(self.projections))
        if missing:
            self._write_refusal = (
                f"this journal maintains the views {', '.join(missing)}, which this process "
                "does not load; writing would leave them behind (open the journal through "
                "moat_log.projections.open_journal)"
            )
        for name, projection in self.projections.items():
            if recorded.get(name, (None, 0))[0] != projection.version:
                self.rebuild_view(name)

    def views(self) -> dict[str, tuple[int, int]]:
        """The views this journal maintains: ``{name: (version, checkpoint position)}``."""
        with self._read() as txn:
            cursor = txn.cursor(db=self._dbs["meta"])
            found = {}
            if cursor.set_range(MetaKey.VIEW):
                for key, value in _as_bytes(cursor):
                    if not key.startswith(MetaKey.VIEW):
                        break
                    version, checkpoint = msgpack.unpackb(value)
                    found[key[len(MetaKey.VIEW) :].decode()] = (version, checkpoint)
        return found

    def checkpoints(self) -> dict[str, int]:
        """Every named checkpoint (`save_checkpoint`): ``{name: position}``."""
        with self._read() as txn:
            cursor = txn.cursor(db=self._dbs["meta"])
            found = {}
            if cursor.set_range(MetaKey.CHECKPOINT):
                for key, value in _as_bytes(cursor):
                    if not key.startswith(MetaKey.CHECKPOINT):
                        break
                    found[key[len(MetaKey.CHECKPOINT) :].decode()] = unpack_u64(value)
        return found

    def checkpoint(self, name: str) -> int | None:
        """The position saved under *name*, or None if there is none."""
        key = _checkpoint_key(name)
        with self._read() as txn:
            value = txn.get(key, db=self._dbs["meta"])
        return None if value is None else unpack_u64(value)

    def save_checkpoint(self, name: str, position: int) -> None:
        """Durably record that the consumer *name* has handled every position up to *position*.

        For consumers outside the journal's transactions (side-effect
        projections, `moat_log.projections.runner`): one small write
        transaction of its own, serialised with the journal's writes but not
        part of them.  A checkpoint never moves past the journal's end.
        """
        key = _checkpoint_key(name)
        if type(position) is not int or position < 0:
            raise ValueError(f"a checkpoint is a journal position (0 or more), not {position!r}")

        def put(txn: lmdb.Transaction) -> None:
            cursor = txn.cursor(db=self._dbs["events"])
            last = unpack_u64(cursor.key()) if cursor.last() else 0
            if position > last:
                raise JournalError(
                    f"checkpoint {name!r} at position {position} is beyond the journal's "
                    f"last position {last}"
                )
            txn.put(key, pack_u64(position), db=self._dbs["meta"])

        self._write(put)

    def delete_checkpoint(self, name: str) -> bool:
        """Forget the checkpoint *name* (its consumer starts over); whether there was one."""
        key = _checkpoint_key(name)
        return self._write(lambda txn: bool(txn.delete(key, db=self._dbs["meta"])))

    def rebuild_view(self, name: str) -> int:
        """Rebuild a view from the journal in one transaction; returns the events folded."""
        projection = self.projections.get(name)
        if projection is None:
            raise JournalError(f"no view named {name!r}; known: {', '.join(self.projections)}")
        view_dbs = self._view_dbs[name]
        return self._write(lambda txn: _rebuild(txn, self._dbs, projection, view_dbs))

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def wall_clock(self) -> Callable[[], int]:
        """The wall clock (ns since the epoch) the journal's hlc follows."""
        return self._wall_clock

    @property
    def path(self) -> FsPath:
        return FsPath(self._env.path())

    # ------------------------------------------------------ reading, for views

    def read_transaction(self) -> AbstractContextManager[lmdb.Transaction]:
        """A read-only LMDB transaction, for a view's or a check's own reads.

        Keep it short (a few thousand records): a reader holds the pages it
        sees from being reused.  It follows map resizes by other processes.
        """
        return self._read()

    def database(self, name: str) -> Any:
        """The handle of one of the journal's own databases, for a `read_transaction`.

        *name*: ``events``, ``ids``, ``paths``, ``times`` or ``meta``.
        """
        return self._dbs[name]

    def scan_database(
        self, db: str | Any, lo: bytes, hi: bytes | None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """A database's entries with ``lo <= key < hi`` (None: to the end), in key order.

        Read in short transactions; *db* is a `database` name or a view's handle.
        """
        return self._scan(db, lo, hi, reverse=reverse)

    # ----------------------------------------------------------- transactions

    @contextmanager
    def _read(self) -> Iterator[lmdb.Transaction]:
        while True:
            with self._gate.transaction():
                try:
                    txn = self._env.begin()
                except lmdb.MapResizedError:
                    pass  # another process grew the map: adopt it, outside the gate
                else:
                    try:
                        yield txn
                    finally:
                        txn.abort()
                    return
            self._adopt_map_size()

    def _adopt_map_size(self) -> None:
        with self._gate.resizing():
            self._env.set_mapsize(0)

    def _grow_map(self) -> None:
        current = self._env.info()["map_size"]
        if current >= self._max_map_size:
            raise StorageFullError(
                f"the journal reached its maximum size of {self._max_map_size} bytes; "
                "free space by archiving (export) and starting a new journal"
            )
        with self._gate.resizing():
            self._env.set_mapsize(min(current * 2, self._max_map_size))

    # ------------------------------------------------------------------ writes

    def write_batch(self, items: Sequence[Change | Event]) -> list[WriteResult]:
        """Write local changes and foreign events in one durable transaction.

        Returns one `WriteResult` per item, in order.  Problems with a single
        item (a time not after the clock, a conflicting foreign event) refuse
        that item only.  Storage failures raise and write nothing.
        """
        return self.commit(items).results

    def commit(self, items: Sequence[Change | Event]) -> CommittedBatch:
        """`write_batch`, also telling which events were stored at which positions."""
        if not items:
            return CommittedBatch([], self.last_position, [])
        if self._write_refusal is not None:
            raise JournalError(self._write_refusal)
        return self._write(lambda txn: self._stage(txn, items))

    def append(self, change: Change) -> Event:
        """Append one local change durably (one transaction; prefer batches)."""
        result = self.write_batch([change])[0]
        if isinstance(result, MoatLogError):
            raise result
        assert isinstance(result, Event)
        return result

    def insert(self, event: Event) -> bool:
        """Insert a foreign event; False if it was already held."""
        result = self.write_batch([event])[0]
        if isinstance(result, MoatLogError):
            raise result
        return bool(result)

    def _stage(self, txn: lmdb.Transaction, items: Sequence[Change | Event]) -> CommittedBatch:
        batch = WriteBatch(
            txn, self._dbs, self.node, self._wall_clock, tuple(self.projections.values())
        )
        results = [batch.write(item) for item in items]
        batch.finish()
        return CommittedBatch(results, batch.after, batch.items)

    def _write(self, work: Callable[[lmdb.Transaction], _T]) -> _T:
        """Run *work* in one durable write transaction, growing the map as needed."""
        with self._write_lock:
            while True:
                try:
                    return self._try_write(work)
                except lmdb.MapFullError:
                    self._grow_map()
                except lmdb.MapResizedError:
                    self._adopt_map_size()

    def _try_write(self, work: Callable[[lmdb.Transaction], _T]) -> _T:
        with self._gate.transaction():
            txn = self._env.begin(write=True)
            try:
                result = work(txn)
            except BaseException:
                txn.abort()
                raise
            try:
                txn.commit()
            except lmdb.MapFullError:
                raise
            except lmdb.Error as exc:
                raise _storage_error(exc, self.path) from exc
        return result

    # ------------------------------------------------------------------- reads

    def get(self, event_id: EventId) -> Event | None:
        """The event with this id, or None."""
        with self._read() as txn:
            pos = txn.get(keys.id_key(*event_id), db=self._dbs["ids"])
            if pos is None:
                return None
            data = txn.get(pos, db=self._dbs["events"])
        if data is None:
            raise JournalCorruptError(f"event {event_id} is indexed but missing; run verify")
        return _unpack(data, pos)

    def newest(self) -> tuple[int, Event] | None:
        """The most recently stored event with its position, or None."""
        with self._read() as txn:
            cursor = txn.cursor(db=self._dbs["events"])
            if not cursor.last():
                return None
            pos, data = cursor.item()
        return unpack_u64(pos), _unpack(data, pos)

    @property
    def last_position(self) -> int:
        with self._read() as txn:
            cursor = txn.cursor(db=self._dbs["events"])
            return unpack_u64(cursor.key()) if cursor.last() else 0

    @property
    def clock(self) -> int:
        """The greatest hlc this journal has issued or seen."""
        with self._read() as txn:
            return unpack_u64(txn.get(MetaKey.HLC, db=self._dbs["meta"]))

    def summary(self) -> IdSet:
        """The ids of every event held (per origin, the set of seqs)."""
        with self._read() as txn:
            return load_ranges(txn, self._dbs["meta"])

    def gone(self) -> IdSet:
        """The ids compaction removed: still in `summary` (never asked for again), not readable."""
        with self._read() as txn:
            return load_ranges(txn, self._dbs["meta"], MetaKey.GONE)

    def peers(self) -> dict[str, PeerRecord]:
        """What each known peer last stated holding (`moat_log.journal.peers`)."""
        with self._read() as txn:
            return load_peers(txn, self._dbs["meta"])

    def record_peer(self, name: str, held: IdSet, seen: int, address: str = "") -> PeerRecord:
        """Durably note that peer *name* stated holding *held* at *seen* (ns).

        *address*: where this node dials it (kept from before if empty).
        """
        meta = self._dbs["meta"]
        return self._write(lambda txn: store_peer(txn, meta, name, held, seen, address))

    def compact(
        self, rollups: Sequence[Change], removals: Iterable[EventId | Event]
    ) -> CompactionResult:
        """Write *rollups* and remove the events *removals* in one durable transaction.

        The caller (`moat_log.journal.compaction`) decided that removing them
        is safe; this only keeps the journal consistent: each removed event
        loses its record and its three index entries, its id moves to
        ``gone:`` and stays in the ranges (held, in the summary's sense).
        Ids not held, or gone already, are skipped.  Removals given as the
        events themselves (as the planner read them) spare reading them again.
        """
        if self._write_refusal is not None:
            raise JournalError(self._write_refusal)
        removals = list(removals)
        return self._write(lambda txn: self._compact(txn, rollups, removals))

    def _compact(
        self, txn: lmdb.Transaction, rollups: Sequence[Change], removals: list[EventId | Event]
    ) -> CompactionResult:
        dbs = self._dbs
        written: list[Event] = []
        if rollups:
            views = tuple(self.projections.values())
            batch = WriteBatch(txn, dbs, self.node, self._wall_clock, views)
            for change in rollups:
                result = batch.write(change)
                if isinstance(result, MoatLogError):
                    raise result
                assert isinstance(result, Event)
                written.append(result)
            batch.finish()
        gone = IdSetBuilder(load_ranges(txn, dbs["meta"], MetaKey.GONE))
        events_db, ids_db = dbs["events"], dbs["ids"]
        done: list[Event] = []
        removed_bytes = 0
        for item in removals:
            origin, seq = item.origin, item.seq
            id_key = keys.id_key(origin, seq)
            pos = txn.get(id_key, db=ids_db)
            if pos is None:
                continue
            event = item if isinstance(item, Event) else self._removed_event(txn, pos, item)
            removed_bytes += len(event.pack())
            txn.delete(pos, db=events_db)
            txn.delete(id_key, db=ids_db)
            txn.delete(keys.path_key(event.path, event.hlc, origin), db=dbs["paths"])
            txn.delete(keys.time_key(event.hlc, origin), db=dbs["times"])
            done.append(event)
        _add_runs(gone, sorted((event.origin, event.seq) for event in done))
        changed = {event.origin for event in done}
        removed = len(done)
        for origin in changed:
            txn.put(
                MetaKey.GONE + origin.encode(),
                msgpack.packb(gone.seqs(origin).to_msgpack()),
                db=dbs["meta"],
            )
        return CompactionResult(removed, removed_bytes, written)

    def _removed_event(
        self, txn: lmdb.Transaction, pos: keys.BytesLike, event_id: EventId
    ) -> Event:
        data = txn.get(pos, db=self._dbs["events"])
        if data is None:
            raise JournalCorruptError(f"event {event_id} is indexed but missing; run verify")
        return _unpack(data, pos)

    def copy_to(self, target: str | os.PathLike[str]) -> None:
        """Write a compacted copy of the LMDB file to the directory *target*.

        A consistent snapshot, taken in one read transaction: safe while
        other processes write.  The copy holds only pages in use, so it is
        how the space compaction freed goes back to the disk.
        """
        with self._gate.transaction():
            self._env.copy(os.fspath(target), compact=True)

    def summary_at(self) -> tuple[IdSet, int]:
        """`summary` and the last position, read together: the summary is positions 1 .. it."""
        with self._read() as txn:
            cursor = txn.cursor(db=self._dbs["events"])
            position = unpack_u64(cursor.key()) if cursor.last() else 0
            return load_ranges(txn, self._dbs["meta"]), position

    def scan_raw(
        self, start: int = 1, end: int | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[int, bytes]]:
        """``(position, packed event)`` for positions ``start..end`` (inclusive)."""
        lo = pack_u64(start)
        hi = _exclusive_end(end)
        for key, data in self._scan("events", lo, hi, reverse=reverse):
            yield unpack_u64(key), data

    def scan(
        self, start: int = 1, end: int | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[int, Event]]:
        """``(position, event)`` in arrival order on this node."""
        for pos, data in self.scan_raw(start, end, reverse=reverse):
            yield pos, _unpack(data, pos)

    def greatest_before(self, path: Path, position: int) -> tuple[int, str] | None:
        """The greatest ``(hlc, origin)`` of *path*'s events stored below *position*.

        None if it has none there.  An event at *position* on *path* is the
        path's new winner exactly when it is greater (`moat_log.journal.item`).
        """
        with self._read() as txn:
            return greatest_before(txn, self._dbs["paths"], keys.cached_path_key(path), position)

    def by_origin(self, origin: str, first: int = 1, last: int | None = None) -> Iterator[Event]:
        """One origin's events with seqs ``first..last`` in seq order (for shipping)."""
        for event, _data in self.by_origin_packed(origin, first, last):
            yield event

    def by_origin_packed(
        self, origin: str, first: int = 1, last: int | None = None
    ) -> Iterator[tuple[Event, bytes]]:
        """`by_origin`, each event with the bytes stored for it (its `Event.pack`).

        For sending events on (a sync batch): the bytes go out as they are,
        without packing the event again.
        """
        lo = keys.id_key(origin, first)
        if last is None or last >= MAX_U64:
            hi = keys.prefix_end(keys.id_prefix(origin))
        else:
            hi = keys.id_key(origin, last + 1)
        chunk: list[bytes] = []
        for _key, pos in self._scan("ids", lo, hi):
            chunk.append(pos)
            if len(chunk) >= SCAN_CHUNK:
                for _pos, event, data in self._fetch_packed(chunk):
                    yield event, data
                chunk = []
        for _pos, event, data in self._fetch_packed(chunk):
            yield event, data

    def history(
        self, path: Path, *, subtree: bool = False, reverse: bool = False
    ) -> Iterator[Event]:
        """A path's events in hlc order; with *subtree*, grouped by path in key order."""
        prefix = keys.path_prefix(path, subtree=subtree)
        yield from self._resolve(
            self._scan("paths", prefix, keys.prefix_end(prefix), reverse=reverse)
        )

    def by_time(
        self, since: int | None = None, until: int | None = None, *, reverse: bool = False
    ) -> Iterator[Event]:
        """Events with ``since <= hlc <= until`` in (hlc, origin) order."""
        lo = pack_u64(since or 0)
        hi = _exclusive_end(until)
        yield from self._resolve(self._scan("times", lo, hi, reverse=reverse))

    def select(self, selection: EventSelection, *, reverse: bool = False) -> Iterator[Event]:
        """The events *selection* matches, in ``(hlc, origin)`` order (or reversed).

        The same as filtering `by_time` with ``selection.matches``, but read
        from the narrowest index (see `moat_log.journal.selection`).
        """
        found: list[tuple[bytes, bytes]] | None = None
        if selection.prefix:  # not None, not the root
            found = self._select_paths(selection)
        elif selection.origin is not None:
            found = self._select_origin(selection)
        if found is None:  # no narrower index, or it matched too much to sort
            events = self.by_time(selection.since, selection.until, reverse=reverse)
            yield from filter(selection.matches, events)
            return
        found.sort(reverse=reverse)
        yield from self._resolve(iter(found))

    def _select_paths(self, selection: EventSelection) -> list[tuple[bytes, bytes]] | None:
        """``(time key, position)`` of the matches, from the prefix's ``paths`` entries.

        None once there are more than `SELECT_SORT_LIMIT`: the time scan
        streams those in constant memory instead.
        """
        assert selection.prefix is not None
        window = PathsWindow(selection)
        lo: bytes | None = selection.prefix.key
        end = keys.prefix_end(selection.prefix.key)
        found: list[tuple[bytes, bytes]] = []
        while lo is not None and len(found) <= SELECT_SORT_LIMIT:
            with self._read() as txn:
                lo = _walk_paths(txn.cursor(db=self._dbs["paths"]), lo, end, window, found)
        return None if len(found) > SELECT_SORT_LIMIT else found

    def _select_origin(self, selection: EventSelection) -> list[tuple[bytes, bytes]] | None:
        """``(time key, position)`` of the matches, from the origin's ``ids`` entries.

        None once there are more than `SELECT_SORT_LIMIT` (see `_select_paths`).
        """
        assert selection.origin is not None
        prefix = keys.id_prefix(selection.origin)
        entries = self._resolve_positions(self._scan("ids", prefix, keys.prefix_end(prefix)))
        found: list[tuple[bytes, bytes]] = []
        for pos, event in entries:
            if selection.matches(event):
                if len(found) >= SELECT_SORT_LIMIT:
                    return None
                found.append((keys.time_key(event.hlc, event.origin), pos))
        return found

    def _resolve(self, entries: Iterator[tuple[bytes, bytes]]) -> Iterator[Event]:
        """Turn index entries ``(key, position)`` into events, a chunk at a time."""
        for _pos, event in self._resolve_positions(entries):
            yield event

    def _resolve_positions(
        self, entries: Iterator[tuple[bytes, bytes]]
    ) -> Iterator[tuple[bytes, Event]]:
        """`_resolve`, each event with its position (packed)."""
        chunk: list[bytes] = []
        for _key, pos in entries:
            chunk.append(pos)
            if len(chunk) >= SCAN_CHUNK:
                yield from self._fetch(chunk)
                chunk = []
        yield from self._fetch(chunk)

    def _fetch(self, positions: list[bytes]) -> Iterator[tuple[bytes, Event]]:
        for pos, event, _data in self._fetch_packed(positions):
            yield pos, event

    def _fetch_packed(self, positions: list[bytes]) -> Iterator[tuple[bytes, Event, bytes]]:
        """``(position, event, stored bytes)`` of the events at *positions* (packed)."""
        with self._read() as txn:
            found = [(pos, txn.get(pos, db=self._dbs["events"])) for pos in positions]
        for pos, data in found:
            if data is None:
                raise JournalCorruptError(
                    f"an index points at position {unpack_u64(pos)}, which holds no event; "
                    "run 'moat-log verify'"
                )
            # Our transactions never return buffers, only bytes (see `_as_bytes`).
            yield pos, _unpack(data, pos), cast(bytes, data)

    def _scan(
        self, db: str | Any, lo: bytes, hi: bytes | None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Entries with ``lo <= key < hi``, read in short transactions.

        *db* names one of the journal's databases, or is a view's database handle.
        """
        handle = self._dbs[db] if isinstance(db, str) else db
        while True:
            with self._read() as txn:
                chunk = _read_chunk(txn.cursor(db=handle), lo, hi, reverse)
            yield from chunk
            if len(chunk) < SCAN_CHUNK:
                return
            if reverse:
                hi = chunk[-1][0]
            else:
                lo = chunk[-1][0] + b"\x00"

    # ------------------------------------------------------------------- stats

    def stats(self) -> JournalStats:
        with self._read() as txn:
            databases = {}
            for name, handle in self._dbs.items():
                st = txn.stat(handle)
                pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
                databases[name] = DatabaseStats(st["entries"], pages * st["psize"])
            origins = load_ranges(txn, self._dbs["meta"])
            clock = unpack_u64(txn.get(MetaKey.HLC, db=self._dbs["meta"]))
        return JournalStats(
            node=self.node,
            events=databases["events"].entries,
            last_position=self.last_position,
            clock=clock,
            origins=origins,
            databases=databases,
            file_bytes=os.stat(self.path / "data.mdb").st_size,
            map_bytes=self._env.info()["map_size"],
        )


def _add_runs(builder: IdSetBuilder, ids: list[tuple[str, int]]) -> None:
    """Add sorted *ids* to *builder* a run of consecutive seqs at a time (few range inserts)."""
    index = 0
    while index < len(ids):
        origin, first = ids[index]
        last = first
        index += 1
        while index < len(ids) and ids[index] == (origin, last + 1):
            last += 1
            index += 1
        builder.add_range(origin, first, last)


def _open_env(directory: FsPath, map_size: int, *, create: bool = True) -> lmdb.Environment:
    try:
        return lmdb.open(
            os.fspath(directory),
            map_size=map_size,
            max_dbs=MAX_DBS,
            subdir=True,
            sync=True,
            metasync=True,
            readahead=False,
            create=create,
        )
    except lmdb.Error as exc:
        raise JournalError(f"cannot open the journal in {directory}: {exc}") from exc


def _read_chunk(
    cursor: lmdb.Cursor, lo: bytes, hi: bytes | None, reverse: bool
) -> list[tuple[bytes, bytes]]:
    chunk: list[tuple[bytes, bytes]] = []
    if reverse:
        positioned = cursor.set_range(hi) if hi is not None else cursor.last()
        if hi is not None:
            positioned = cursor.prev() if positioned else cursor.last()
        if not positioned:
            return chunk
        for key, value in _as_bytes(cursor.iterprev()):
            if key < lo or len(chunk) >= SCAN_CHUNK:
                break
            chunk.append((key, value))
    else:
        if not cursor.set_range(lo):
            return chunk
        for key, value in _as_bytes(cursor):
            if (hi is not None and key >= hi) or len(chunk) >= SCAN_CHUNK:
                break
            chunk.append((key, value))
    return chunk


def _walk_paths(
    cursor: lmdb.Cursor,
    lo: bytes,
    end: bytes | None,
    window: PathsWindow,
    found: list[tuple[bytes, bytes]],
) -> bytes | None:
    """Collect *window*'s matches among the ``paths`` keys from *lo* (before *end*).

    Within a path it seeks to the window's start and, past its end, to the
    next path.  Stops after `SCAN_CHUNK` steps to keep the read transaction
    short; returns the key to resume from, or None when the walk is done.
    """
    if not cursor.set_range(lo):
        return None
    for _ in range(SCAN_CHUNK):
        key = bytes(cursor.key())
        if end is not None and key >= end:
            return None
        head = window.head_length(key)
        time_key = key[head:]
        if time_key < window.since:
            target = key[:head] + window.since
        elif window.after is not None and time_key >= window.after:
            target = key[: head - 1] + b"\x01"  # the next path: past every "path, 0x00, ..."
        else:
            if window.wants(time_key):
                found.append((time_key, bytes(cursor.value())))
            if not cursor.next():
                return None
            continue
        if not cursor.set_range(target):
            return None
    return bytes(cursor.key())


def _rebuild(
    txn: lmdb.Transaction,
    dbs: dict[str, Any],
    projection: TxnProjection,
    view_dbs: dict[str, Any],
) -> int:
    """Empty a view's databases and fold every event into them again."""
    for handle in view_dbs.values():
        txn.drop(handle, delete=False)
    cursor = txn.cursor(db=dbs["events"])
    count, position, chunk = 0, 0, []
    for key, data in _as_bytes(cursor):
        position = unpack_u64(key)
        chunk.append((_unpack(data, position, trusted=False), data))
        if len(chunk) >= REBUILD_CHUNK:
            projection.apply(txn, chunk)
            count += len(chunk)
            chunk = []
    projection.apply(txn, chunk)
    count += len(chunk)
    record_view(txn, dbs["meta"], projection, position)
    return count


def check_checkpoint_name(name: str) -> str:
    """*name* if it can name a checkpoint: 1 to 100 printable characters, no spaces."""
    if not isinstance(name, str):
        raise TypeError(f"a checkpoint name is a str, not {type(name).__name__}")
    if not 0 < len(name) <= 100 or not name.isprintable() or any(c.isspace() for c in name):
        raise ValueError(
            f"a checkpoint name is 1 to 100 printable characters without spaces, not {name!r}"
        )
    return name


def _checkpoint_key(name: str) -> bytes:
    return MetaKey.CHECKPOINT + check_checkpoint_name(name).encode()


def _exclusive_end(last: int | None) -> bytes | None:
    """The key just after u64 *last*; None when there is no bound."""
    return None if last is None or last >= MAX_U64 else pack_u64(last + 1)


def _as_bytes(entries: Iterable[tuple[Any, Any]]) -> Iterator[tuple[bytes, bytes]]:
    """Narrow LMDB's types: our transactions never return buffers, only bytes."""
    return cast(Iterator[tuple[bytes, bytes]], iter(entries))


def _unpack(data: keys.BytesLike, position: int | keys.BytesLike, *, trusted: bool = True) -> Event:
    """Decode an event read back from ``events``.

    Reads trust it (it was validated when it was written); a rebuild, which
    must not fold a damaged record into a view, validates it again.  Either
    way a record that is not an event is `JournalCorruptError`, naming its
    position, never the `InvalidEventError` of bad input.
    """
    try:
        return Event.unpack_trusted(bytes(data)) if trusted else Event.unpack(bytes(data))
    except InvalidEventError as exc:
        if not isinstance(position, int):
            position = unpack_u64(position)
        raise JournalCorruptError(
            f"the event at position {position} does not unpack: {exc}; run 'moat-log verify'"
        ) from exc


#: Below this much free space a failed commit is blamed on a full disk.  LMDB
#: reports a short write (what a full disk gives) as EIO, not ENOSPC.
FULL_DISK_MARGIN = 1 << 20


def _storage_error(exc: lmdb.Error, directory: FsPath) -> JournalError:
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        free = None
    if (
        getattr(exc, "errno", None) == errno.ENOSPC
        or "No space left" in str(exc)
        or (free is not None and free < FULL_DISK_MARGIN)
    ):
        return StorageFullError(
            f"the disk is full ({free} bytes free in {directory}); the write was rolled back"
        )
    return JournalError(
        f"the disk reported an error writing the journal ({exc}); the write was rolled back. "
        "Check the storage device (dmesg), then run 'moat-log verify'"
    )
