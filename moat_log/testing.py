"""Helpers for testing code that uses moat-log.

* Hypothesis strategies for the core types: `paths`, `values`, `changes` and
  foreign `events`.
* `FakeWallClock`: a wall clock that tests set, advance and step back, for
  ``Journal.create(dir, node, wall_clock=clock)``.
* `kv_winners`, `kv_conflicts`: the KV view's winner and conflict rules as
  plain folds, to compare the state of nodes that hold events in different
  orders.
* `MemoryJournal`: a small in-memory model of `moat_log.journal.store.Journal`
  with the same observable behaviour for writes and queries.  It is the
  reference that the journal's contract tests compare the LMDB journal with,
  and a fast stand-in for code that only needs a journal's interface.

This module needs Hypothesis (the ``test`` extra); import it from tests only.
"""

from __future__ import annotations

import os
import random
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any, Final

import trio
from hypothesis import strategies as st

from moat_log.errors import ClockError, IntegrityError, InvalidEventError, MoatLogError
from moat_log.event import Event, Op, Value
from moat_log.ids import MAX_U64, EventId, check_node_name
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.journal.peers import PeerRecord
from moat_log.path import Path, Segment
from moat_log.rangeset import RangeSet
from moat_log.vclock import VectorClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from moat_log.adapters.status import AdapterStatus
    from moat_log.node._node import Node
    from moat_log.node.config import NodeConfig

__all__ = [
    "DEFAULT_NOW",
    "DOC_EVENT",
    "FakeWallClock",
    "MemoryJournal",
    "ServeProcess",
    "WriteResult",
    "bus_traffic",
    "changes",
    "documented_blocks",
    "documented_frames",
    "event_ids",
    "events",
    "hex_dump_bytes",
    "in_process_config",
    "kv_conflicts",
    "kv_winners",
    "moat_log_script",
    "paths",
    "read_until_ready",
    "running_node",
    "segments",
    "short_temp_dir",
    "texts",
    "until_adapter_status",
    "values",
]

#: What `MemoryJournal.write_batch` (like `Journal.write_batch`) returns per item.
WriteResult = Event | bool | MoatLogError

#: 2023-11-14T22:13:20Z: a plausible "now" that keeps tests independent of the real clock.
DEFAULT_NOW = 1_700_000_000 * 10**9

_INT64 = st.integers(-(2**63), 2**63 - 1)

#: The event ``pi1:3`` of the protocol documents' examples.
DOC_EVENT = Event(
    "pi1",
    3,
    1_763_712_000_000_000_000,
    {"pi2": 7},
    Path(("home", "kitchen", "temp")),
    Op.SET,
    21.5,
    "knx:1/2/3",
    EventId("pi2", 7),
)

_DOC_BLOCK = re.compile(r"<!-- (\w+): ([\w-]+) -->\n```text\n(.*?)```", re.S)
_HEX_BYTE = re.compile(r"[0-9a-f]{2}")


def documented_blocks(text: str, kind: str) -> dict[str, str]:
    """The bodies of a document's ``<!-- KIND: NAME -->`` text blocks, by name."""
    return {name: body for found, name, body in _DOC_BLOCK.findall(text) if found == kind}


def documented_frames(text: str) -> dict[str, bytes]:
    """A protocol document's example frames (``<!-- frame: NAME -->`` hex dumps), by name.

    The frame's 4-byte length prefix must match its body.
    """
    frames = {}
    for name, body in documented_blocks(text, "frame").items():
        data = hex_dump_bytes(body)
        assert int.from_bytes(data[:4], "big") == len(data) - 4, f"{name}: length prefix"
        frames[name] = data
    return frames


def hex_dump_bytes(body: str) -> bytes:
    """The bytes of an annotated hex dump: each line's hex bytes up to its first other word."""
    data = bytearray()
    for line in body.splitlines():
        for token in line.split():
            if not _HEX_BYTE.fullmatch(token):
                break
            data.append(int(token, 16))
    return bytes(data)


_ROOMS = ("kitchen", "living", "bath", "bed1", "bed2", "office", "garage", "hall")
_DEVICES = ("light", "temp", "humidity", "window", "blind", "heating")


def bus_traffic(rng: random.Random, count: int) -> list[Change]:
    """*count* writes that look like a house's bus traffic (sync size tests and benchmarks).

    Few paths, small values (temperatures, percentages, switches) and KNX
    group addresses as sources: what the sync batches compress in practice.
    """
    changes = []
    for _ in range(count):
        room, device = rng.choice(_ROOMS), rng.choice(_DEVICES)
        if device in ("temp", "humidity"):
            value: object = round(rng.uniform(15, 60), 1)
        elif device == "blind":
            value = rng.randint(0, 100)
        else:
            value = rng.choice([True, False])
        source = f"knx:{rng.randint(0, 15)}/{rng.randint(0, 7)}/{rng.randint(0, 255)}"
        changes.append(Change(Path(("home", room, device)), value, source=source))
    return changes


# --------------------------------------------------------------------------- strategies


def texts(max_size: int = 8) -> st.SearchStrategy[str]:
    """Short text that msgpack can encode: any code point except surrogates."""
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def segments() -> st.SearchStrategy[Segment]:
    """Path segments: short strings (including ``""`` and NULs) and 64-bit ints."""
    return st.one_of(texts(6), _INT64)


def paths(
    segments: st.SearchStrategy[Segment] | None = None, *, max_depth: int = 4
) -> st.SearchStrategy[Path]:
    """Valid paths of up to *max_depth* segments, including the root ``()``.

    Pass a small ``st.sampled_from(...)`` as *segments* to make paths share
    prefixes and collide, which history and subtree tests want.
    """
    segs = _default_segments if segments is None else segments
    return st.lists(segs, max_size=max_depth).map(Path)


_default_segments = segments()

_scalars: st.SearchStrategy[Value] = st.one_of(
    st.none(),
    st.booleans(),
    _INT64,
    st.floats(allow_nan=False),
    texts(12),
    st.binary(max_size=12),
)


def values(*, max_leaves: int = 8) -> st.SearchStrategy[Value]:
    """Small msgpack-able values in their canonical form (lists, str-keyed dicts).

    No NaN (it is not equal to itself), no ints outside signed 64 bits, no
    surrogates: everything that comes back from a round trip equal to itself.
    """
    return st.recursive(
        _scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(texts(6), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )


def event_ids(
    origins: Sequence[str] | st.SearchStrategy[str] = ("b", "c"), *, max_seq: int = 50
) -> st.SearchStrategy[EventId]:
    """Event ids ``(origin, seq)`` with small seqs."""
    return st.builds(EventId, _origin_strategy(origins), st.integers(1, max_seq))


@st.composite
def changes(
    draw: st.DrawFn,
    *,
    paths: st.SearchStrategy[Path] | None = None,
    values: st.SearchStrategy[Value] | None = None,
    at: st.SearchStrategy[int | None] | None = None,
) -> Change:
    """Local changes: sets and deletes of drawn paths, sometimes with a cause.

    *at* draws the requested event time; by default there is none (the journal
    uses its wall clock).
    """
    path = draw(_default_paths if paths is None else paths)
    op = draw(st.sampled_from(Op))
    value = None if op is Op.DELETE else draw(_default_values if values is None else values)
    source = draw(st.sampled_from(["", "cli:alice", "knx:1/2/3", "script:heating"]))
    cause = draw(st.none() | event_ids())
    when = None if at is None else draw(at)
    return Change(path, value, op, source, cause, when)


@st.composite
def events(
    draw: st.DrawFn,
    origins: Sequence[str] | st.SearchStrategy[str] = ("b", "c"),
    *,
    seqs: st.SearchStrategy[int] | None = None,
    hlcs: st.SearchStrategy[int] | None = None,
    paths: st.SearchStrategy[Path] | None = None,
    values: st.SearchStrategy[Value] | None = None,
) -> Event:
    """Foreign events with consistent fields.

    The origin comes from *origins*; ``deps`` name only other origins (of
    *origins* when it is a sequence); a delete carries no value.  Each event
    is valid on its own; a set of them need not be a consistent history.
    """
    origin = draw(_origin_strategy(origins))
    others = [o for o in origins if o != origin] if isinstance(origins, Sequence) else []
    deps = {o: draw(st.integers(0, 20)) for o in others if draw(st.booleans())}
    op = draw(st.sampled_from(Op))
    return Event(
        origin,
        draw(st.integers(1, 50) if seqs is None else seqs),
        draw(st.integers(DEFAULT_NOW - 10**12, DEFAULT_NOW + 10**12) if hlcs is None else hlcs),
        VectorClock(deps),
        draw(_default_paths if paths is None else paths),
        op,
        None if op is Op.DELETE else draw(_default_values if values is None else values),
        draw(st.sampled_from(["", "knx:1/2/3", "onewire:28.4AEC29CDBAAB/temperature"])),
        draw(st.none() | event_ids(origins)),
    )


_default_paths = paths()
_default_values = values()


def _origin_strategy(origins: Sequence[str] | st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    if isinstance(origins, st.SearchStrategy):
        return origins
    for origin in origins:
        check_node_name(origin)
    return st.sampled_from(list(origins))


# --------------------------------------------------------------------------- wall clock


class FakeWallClock:
    """A wall clock (ns since the epoch) that only moves when a test moves it.

    Pass it as ``wall_clock=`` to `Journal.create` / `Journal.open` or to
    `MemoryJournal`.  It may be set backwards, like a clock corrected by NTP.
    """

    def __init__(self, now: int = DEFAULT_NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def set(self, now: int) -> None:
        self.now = now

    def advance(self, ns: int) -> None:
        """Move the clock by *ns*; a negative *ns* steps it back."""
        self.now += ns

    def __repr__(self) -> str:
        return f"FakeWallClock({self.now})"


# --------------------------------------------------------------------------- journal model


class MemoryJournal:
    """An in-memory journal: the reference model of `Journal`.

    Every write is applied item by item to plain lists and dicts; queries
    filter and sort them.  Nothing is fast, everything is easy to check
    against the journal's documented contract:

    * a `Change` becomes an event of this node with the next seq (highest own
      seq + 1), ``hlc = max(wall clock, clock + 1)`` or its ``at`` (which must
      be after the clock, else `ClockError`), and as ``deps`` the contiguous
      ends of every other origin, each raised to what the node's newest own
      event had seen if that was more (deps never decrease);
    * a foreign `Event` is inserted (True), already held (False), or refused
      with `IntegrityError` if its id is held with other packed bytes or its
      ``(hlc, origin)`` belongs to another event.
    """

    def __init__(self, node: str, *, wall_clock: Callable[[], int] | None = None) -> None:
        self.node = check_node_name(node)
        self._wall_clock = FakeWallClock() if wall_clock is None else wall_clock
        self._events: list[Event] = []  # arrival order: position = index + 1
        self._packed: dict[EventId, bytes] = {}
        self._times: set[tuple[int, str]] = set()
        self._held: dict[str, RangeSet] = {}
        self._clock = 0
        self._gone: dict[str, RangeSet] = {}  # removed by compaction, still held
        self._peers: dict[str, PeerRecord] = {}

    # ------------------------------------------------------------------ writes

    def write_batch(self, items: Sequence[Change | Event]) -> list[WriteResult]:
        """Apply *items* in order; one result (or refusing exception) per item."""
        results: list[WriteResult] = []
        for item in items:
            try:
                if isinstance(item, Change):
                    results.append(self._append(item))
                else:
                    results.append(self._insert(item))
            except (ClockError, IntegrityError, InvalidEventError) as exc:
                results.append(exc)
        return results

    def append(self, change: Change) -> Event:
        result = self.write_batch([change])[0]
        if isinstance(result, MoatLogError):
            raise result
        assert isinstance(result, Event)
        return result

    def insert(self, event: Event) -> bool:
        result = self.write_batch([event])[0]
        if isinstance(result, MoatLogError):
            raise result
        return bool(result)

    def _append(self, change: Change) -> Event:
        if change.at is None:
            hlc = max(self._wall_clock(), self._clock + 1)
        elif change.at > self._clock:
            hlc = change.at
        else:
            raise ClockError(f"event time {change.at} is not after the clock {self._clock}")
        if hlc > MAX_U64:
            raise ClockError(f"the clock {self._clock} has no time left after it")
        own = self._held.get(self.node)
        deps = self._deps_after(own.max if own else 0)
        event = Event(
            self.node,
            (own.max if own else 0) + 1,
            hlc,
            deps,
            change.path,
            change.op,
            change.value,
            change.source,
            change.cause,
        )
        self._store(event, event.pack())
        return event

    def _deps_after(self, previous_seq: int) -> VectorClock:
        """What the next local event has seen: held contiguously, joined with its predecessor's."""
        held = {o: seqs.contiguous_end() for o, seqs in self._held.items() if o != self.node}
        previous = self.get(EventId(self.node, previous_seq)) if previous_seq else None
        for origin, seq in previous.deps.items() if previous else ():
            held[origin] = max(held.get(origin, 0), seq)
        return VectorClock(held)

    def _insert(self, event: Event) -> bool:
        data = event.pack()
        stored = self._packed.get(event.id)
        if stored is None and event.seq in self._gone.get(event.origin, ()):
            return False  # compaction removed it: held, in the summary's sense
        if stored is not None:
            if stored != data:
                raise IntegrityError(f"event {event.id} differs from the one held")
            return False
        if (event.hlc, event.origin) in self._times:
            raise IntegrityError(f"event {event.id} reuses the hlc of another event")
        self._store(event, data)
        return True

    def _store(self, event: Event, data: bytes) -> None:
        self._events.append(event)
        self._packed[event.id] = data
        self._times.add((event.hlc, event.origin))
        self._held.setdefault(event.origin, RangeSet()).add(event.seq)
        self._clock = max(self._clock, event.hlc)

    # ------------------------------------------------------------- compaction

    def gone(self) -> IdSet:
        return IdSet(self._gone)

    def peers(self) -> dict[str, PeerRecord]:
        return dict(self._peers)

    def record_peer(self, name: str, held: IdSet, seen: int, address: str = "") -> PeerRecord:
        before = self._peers.get(name)
        first = seen if before is None else before.first
        record = PeerRecord(name, held, seen, first, address or (before.address if before else ""))
        self._peers[name] = record
        return record

    def compact(
        self, rollups: Sequence[Change], removals: Iterable[EventId | Event]
    ) -> list[Event]:
        """`Journal.compact`: write *rollups*, remove the events *removals* (ids stay held)."""
        written = [self.append(change) for change in rollups]
        for item in removals:
            if self._packed.pop(EventId(item.origin, item.seq), None) is not None:
                self._gone.setdefault(item.origin, RangeSet()).add(item.seq)
        return written

    # ------------------------------------------------------------------- reads

    def get(self, event_id: EventId) -> Event | None:
        data = self._packed.get(EventId(*event_id))
        return None if data is None else Event.unpack(data)

    @property
    def clock(self) -> int:
        return self._clock

    @property
    def last_position(self) -> int:
        return len(self._events)

    def summary(self) -> IdSet:
        return IdSet(self._held)

    def scan(
        self, start: int = 1, end: int | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[int, Event]]:
        found = [
            (pos, self._stored(event))
            for pos, event in enumerate(self._events, 1)
            if start <= pos and (end is None or pos <= end) and event.id in self._packed
        ]
        return iter(found[::-1] if reverse else found)

    def by_origin(self, origin: str, first: int = 1, last: int | None = None) -> Iterator[Event]:
        high = MAX_U64 if last is None else last
        found = [
            e
            for e in self._events
            if e.origin == origin and first <= e.seq <= high and e.id in self._packed
        ]
        return self._sorted(found, key=lambda e: e.seq)

    def history(
        self, path: Path, *, subtree: bool = False, reverse: bool = False
    ) -> Iterator[Event]:
        found = [
            e
            for e in self._events
            if (path.is_prefix_of(e.path) if subtree else e.path == path) and e.id in self._packed
        ]
        return self._sorted(found, key=lambda e: (e.path.key, e.hlc, e.origin), reverse=reverse)

    def by_time(
        self, since: int | None = None, until: int | None = None, *, reverse: bool = False
    ) -> Iterator[Event]:
        low, high = since or 0, MAX_U64 if until is None else until
        found = [e for e in self._events if low <= e.hlc <= high and e.id in self._packed]
        return self._sorted(found, key=lambda e: (e.hlc, e.origin), reverse=reverse)

    def _sorted(
        self, found: list[Event], key: Callable[[Event], Any], *, reverse: bool = False
    ) -> Iterator[Event]:
        return iter([self._stored(e) for e in sorted(found, key=key, reverse=reverse)])

    def _stored(self, event: Event) -> Event:
        """The event as a reader gets it back: unpacked from its stored bytes."""
        return Event.unpack(self._packed[event.id])

    # ------------------------------------------------------------- life cycle

    def close(self) -> None:
        """Nothing to release; for symmetry with `Journal`."""

    def __enter__(self) -> MemoryJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- views


def kv_winners(events: Iterable[Event]) -> dict[Path, Event]:
    """Per path, the event with the greatest ``(hlc, origin)`` (docs/kv-view.md).

    A winning delete stays (a tombstone).  The result depends on the set of
    events only, not on their order or on duplicates.
    """
    winners: dict[Path, Event] = {}
    for event in events:
        best = winners.get(event.path)
        if best is None or (event.hlc, event.origin) > (best.hlc, best.origin):
            winners[event.path] = event
    return winners


def kv_conflicts(
    events: Iterable[Event], seen: Callable[[Event], Mapping[str, int]] | None = None
) -> set[tuple[Path, EventId]]:
    """The KV view's conflicts as a plain fold (docs/kv-view.md): ``{(path, loser id)}``.

    Per path, the latest event of each origin (its head) that the path's
    winner had not seen: ``seen(winner)[origin] < head.seq``.  *seen* gives
    what an event's origin had seen when it wrote it; by default its deps.
    """
    events = list(events)
    heads: dict[tuple[Path, str], int] = {}
    for event in events:
        key = (event.path, event.origin)
        heads[key] = max(heads.get(key, 0), event.seq)
    winners = kv_winners(events)
    seen_by = (lambda event: event.deps) if seen is None else seen
    return {
        (path, EventId(origin, seq))
        for (path, origin), seq in heads.items()
        if origin != winners[path].origin and seen_by(winners[path]).get(origin, 0) < seq
    }


# --- real moat-log processes ---------------------------------------------------------


def moat_log_script() -> str:
    """The ``moat-log`` console script installed beside this interpreter (``pip install -e .``)."""
    beside = FsPath(sys.executable).with_name("moat-log")
    assert beside.exists(), "the moat-log console script is not installed: pip install -e ."
    return str(beside)


@contextmanager
def short_temp_dir() -> Iterator[FsPath]:
    """A fresh directory in /tmp: a Unix socket path must stay under 108 bytes."""
    path = FsPath(tempfile.mkdtemp(prefix="ml-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def read_until_ready(process: subprocess.Popen[bytes], timeout: float = 30.0) -> list[str]:
    """The lines ``moat-log serve`` prints up to its readiness line ``ready``.

    Waits on the pipe (no polling); fails if the process exits first or
    nothing arrives within *timeout* seconds.
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffered = b""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while "ready" not in lines:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and selector.select(remaining), f"no 'ready' line: {lines}"
            data = os.read(fd, 4096)
            assert data, f"serve exited before it was ready: {lines}"
            buffered += data
            *complete, buffered = buffered.split(b"\n")
            lines.extend(line.decode() for line in complete)
    return lines


class ServeProcess:
    """A real ``moat-log serve --config FILE --log-level info``, ready when constructed.

    Its stderr is read by a thread into `lines`; `wait_for_line` waits on a
    condition, not by polling.  `kill` is a SIGKILL (no clean stop), `stop`
    a SIGTERM if it still runs.
    """

    def __init__(self, config: FsPath, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [moat_log_script(), "serve", "--config", str(config), "--log-level", "info"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read_stderr, daemon=True).start()
        read_until_ready(self.process, timeout)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._changed.notify_all()

    def wait_for_line(self, text: str) -> str:
        """The first stderr line containing *text*, once there is one."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self.lines), self.timeout
            )
            assert found, f"the node never logged {text!r}: {self.lines[-10:]}"
            return next(line for line in self.lines if text in line)

    def kill(self) -> None:
        """SIGKILL: no clean stop, nothing flushed or checkpointed on the way out."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=self.timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=self.timeout)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def node_processes(config: FsPath, timeout: float = 30.0) -> Iterator[Callable[[], ServeProcess]]:
    """Start `ServeProcess` es on *config* one after another; every one is stopped after."""
    started: list[ServeProcess] = []

    def start() -> ServeProcess:
        node = ServeProcess(config, timeout)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            node.stop()


# --- nodes with adapters, in the test's own trio run -------------------------


def in_process_config(text: str, data_dir: str | os.PathLike[str]) -> NodeConfig:
    """The node config of TOML *text* in *data_dir*, listening nowhere (in-process clients)."""
    import dataclasses
    import tomllib

    from moat_log.node.config import config_from_document

    config = config_from_document(tomllib.loads(text), data_dir=data_dir)
    return dataclasses.replace(config, listen=())


@asynccontextmanager
async def running_node(config: NodeConfig) -> AsyncIterator[Node]:
    """Serve *config* in this trio run; leaving the block stops the node in order."""
    from moat_log.node.server import serve_node

    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(partial(serve_node, config, shutdown_trigger=stop.wait))
        try:
            yield node
        finally:
            stop.set()


#: Seconds `until_adapter_status` waits before the test fails instead of hanging.
ADAPTER_WAIT: Final = 20.0


async def until_adapter_status(
    status: AdapterStatus, predicate: Callable[[AdapterStatus], bool]
) -> None:
    """Wait until *predicate* holds for an adapter's status (checked at each change of it).

    Raises `trio.TooSlowError` after `ADAPTER_WAIT` seconds: a test that waits
    for something that never comes fails instead of hanging.
    """
    changed = trio.Event()

    def note() -> None:
        changed.set()

    status.on_change.append(note)
    try:
        with trio.fail_after(ADAPTER_WAIT):
            while not predicate(status):
                await changed.wait()
                changed = trio.Event()
    finally:
        status.on_change.remove(note)
