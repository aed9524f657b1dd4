"""One connection of the Modbus adapter to its device: poll, compare, write.

Theory of operation
-------------------
`ModbusSession.start` reads the journal's values of the mapped paths and
then every mapped value from the device once.  An owned path (``out``,
``both``) whose journal value differs from what the device holds is
written to the device: the journal wins on connect, as it would have been
written had the device been there (and what the device holds already is
not written again: devices keep holding registers in flash that wears).
The output then skips the changes up to that snapshot (`start_position`).
A polled value that differs from the journal is an event.

`ModbusSession.serve` polls each group of values with one interval in its
own task, with the reads that `plan.plan_reads` combined.  A read's
values are compared with what the session knows (`Tracker`): the same
registers as last time are no news; a number that moved by less than its
threshold since the last event is no news either; anything else is an
event with source ``modbus:UNIT/FUNCTION/ADDRESS``.

`ModbusSession.send` writes owned paths' committed changes; registers the
device holds already (our own event coming back through the journal, a
change delivered again after a crash) are not written again, and the next
poll does not read our own write back as news (the registers are the
ones we wrote).  Polls and writes take one lock, so a poll that read the
registers before a write cannot report them after it.

A read refused with a Modbus exception is bad data for its values (a
combined read is first split into one read per value, so that only the
missing value is reported); a device that does not answer ends the
session (`BusUnavailableError`), and the supervisor reconnects after its
back-off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import trio

from moat_log.errors import BusDataError, BusUnavailableError
from moat_log.event import Op, Value
from moat_log.journal.change import Change
from moat_log.journal.item import FeedItem

from ..contract import AdapterLink
from .client import ModbusExceptionResponse
from .device import Device
from .plan import Read, plan_reads, split

if TYPE_CHECKING:
    from .adapter import Entry, ModbusSettings

__all__ = ["ModbusSession", "Tracker"]

_UNKNOWN: Final = object()
Raw = tuple[int, ...] | tuple[bool, ...]


@dataclass(slots=True)
class Tracker:
    """What the session knows of each entry: the device's registers and the journal's value."""

    entries: Sequence[Entry]
    #: The registers (bits) the device held when last read or written.
    raw: list[Raw | None] = field(init=False)
    #: The value of the last event (or the journal's, or what we wrote).
    value: list[object] = field(init=False)

    def __post_init__(self) -> None:
        self.raw = [None] * len(self.entries)
        self.value = [_UNKNOWN] * len(self.entries)

    def read(self, index: int, raw: Raw) -> Value | object:
        """The value to write as an event for *raw*, or `_UNKNOWN` for no news.

        Raises `BusDataError` if *raw* does not decode.
        """
        entry = self.entries[index]
        if raw == self.raw[index] and entry.changes_only:
            return _UNKNOWN
        value = entry.codec.decode(raw)  # type: ignore[arg-type]
        self.raw[index] = raw
        if entry.changes_only and not _moved(self.value[index], value, entry.threshold):
            return _UNKNOWN
        self.value[index] = value
        return value

    def wrote(self, index: int, raw: Raw, value: object) -> None:
        self.raw[index] = raw
        self.value[index] = value


def _moved(old: object, new: Value, threshold: float) -> bool:
    if old is _UNKNOWN or type(old) is not type(new):
        return True
    if threshold and isinstance(new, int | float) and isinstance(old, int | float):
        return math.fabs(new - old) >= threshold
    return old != new


class ModbusSession:
    """Serves one connection to one device."""

    def __init__(self, settings: ModbusSettings, link: AdapterLink, device: Device) -> None:
        self.settings = settings
        self.link = link
        self.device = device
        self.entries = settings.entries
        self.tracker = Tracker(self.entries)
        self._index = {entry.path: i for i, entry in enumerate(self.entries)}
        self._spans = [entry.span for entry in self.entries]
        self._lock = trio.Lock()
        self._start = 0
        self._failed: BusUnavailableError | None = None
        self._failure = trio.Event()

    # ---------------------------------------------------------------- contract

    @property
    def start_position(self) -> int:
        return self._start

    async def send(self, items: Sequence[FeedItem]) -> None:
        if self._failed is not None:
            raise self._failed
        async with self._lock:
            for item in items:
                index = self._index.get(item.event.path)
                if index is None or item.event.op is Op.DELETE:
                    continue  # a delete leaves the device as it is
                try:
                    await self._write(index, item.event.value)
                except BusUnavailableError as exc:
                    self._failed = exc
                    self._failure.set()
                    raise

    # ------------------------------------------------------------------- start

    async def start(self) -> None:
        """Learn the journal's values and the device's; repair owned registers."""
        entries = self.entries
        position, events = await self.link.snapshot([e.path for e in entries if e.owned])
        journal = {e.path: e.value for e in events if e.op is Op.SET}
        polled = [e.path for e in entries if e.polled and e.path not in journal]
        for path, event in zip(polled, await self.link.current(polled), strict=True):
            if event is not None and event.op is Op.SET:
                journal[path] = event.value
        for index, entry in enumerate(entries):
            if entry.path in journal:
                self.tracker.value[index] = journal[entry.path]
        changes: list[Change] = []
        async with self._lock:
            raws = await self._read_all(self._plan(range(len(entries))))
            for index, raw in raws:
                entry = entries[index]
                if entry.owned and entry.path in journal:
                    self.tracker.raw[index] = raw
                    await self._write(index, journal[entry.path])
                elif entry.polled:
                    changes.extend(self._changes([(index, raw)]))
        self._start = position
        await self._store(changes)

    # ------------------------------------------------------------------- serve

    async def serve(self) -> None:
        """Poll every interval group until the device fails (`BusUnavailableError`)."""
        groups: dict[float, list[int]] = {}
        for index, entry in enumerate(self.entries):
            if entry.polled:
                groups.setdefault(entry.interval, []).append(index)
        async with trio.open_nursery() as nursery:
            for interval, members in sorted(groups.items()):
                nursery.start_soon(self._poll_every, interval, self._plan(members))
            await self._failure.wait()
            assert self._failed is not None
            raise self._failed

    async def _poll_every(self, interval: float, reads: list[Read]) -> None:
        due = trio.current_time() + interval
        while True:
            if due > trio.current_time():
                await trio.sleep_until(due)
            else:  # behind: no timer (a sleep into the past costs a Cancelled raised and caught)
                await trio.lowlevel.checkpoint()
            async with self._lock:
                changes = self._changes(await self._read_all(reads))
            await self._store(changes)
            self.link.detail("requests", self.device.requests)
            # a poll that took longer than the interval starts the next one at once
            due = max(due + interval, trio.current_time())

    # ------------------------------------------------------------------- reads

    def _plan(self, members: Sequence[int] | range) -> list[Read]:
        spans = self._spans
        chosen = list(members)
        reads = plan_reads(
            [spans[i] for i in chosen],
            max_gap=self.settings.max_gap,
            max_registers=self.settings.max_registers,
            max_bits=self.settings.max_bits,
        )
        # the planner numbered the chosen spans 0..n-1: back to entry indices
        return [
            Read(r.function, r.address, r.count, tuple(chosen[m] for m in r.members)) for r in reads
        ]

    async def _read_all(self, reads: list[Read]) -> list[tuple[int, Raw]]:
        """The raw registers of every entry of *reads*; refused combined reads are split."""
        found: list[tuple[int, Raw]] = []
        position = 0
        while position < len(reads):
            read = reads[position]
            try:
                data = await self.device.read(read)
            except ModbusExceptionResponse as exc:
                if len(read.members) > 1:
                    reads[position : position + 1] = split(read, self._spans)
                    continue
                self.link.bad_data(self.settings.address(self.entries[read.members[0]]), str(exc))
                position += 1
                continue
            for index in read.members:
                start = read.offset(self._spans[index])
                raw = tuple(data[start : start + self._spans[index].width])
                found.append((index, raw))
            position += 1
        self.link.status.count("received", len(found))
        return found

    def _changes(self, raws: list[tuple[int, Raw]]) -> list[Change]:
        changes: list[Change] = []
        for index, raw in raws:
            entry = self.entries[index]
            address = self.settings.address(entry)
            try:
                value = self.tracker.read(index, raw)
            except BusDataError as exc:
                self.link.bad_data(address, str(exc))
                continue
            if value is _UNKNOWN:
                self.link.status.count("suppressed")
                continue
            changes.append(Change(entry.path, value, source=self.link.source(address)))
        return changes

    async def _store(self, changes: list[Change]) -> None:
        if changes:  # not awaiting the commit: the device is read again at the next poll
            await self.link.submit(changes)

    # ------------------------------------------------------------------ writes

    async def _write(self, index: int, value: Value) -> None:
        """Write *value* to entry *index*'s registers unless the device holds them already."""
        entry = self.entries[index]
        address = self.settings.address(entry)
        try:
            raw = entry.codec.encode(value)
        except BusDataError as exc:
            self.link.bad_data(str(entry.path), f"not written to {address}: {exc}")
            return
        if raw == self.tracker.raw[index]:
            self.tracker.value[index] = value
            self.link.status.count("suppressed")
            return
        try:
            await self.device.write(entry.function, entry.address, raw)
        except ModbusExceptionResponse as exc:
            self.link.bad_data(address, f"{entry.path} not written: {exc}")
            return
        self.tracker.wrote(index, raw, value)
        self.link.status.count("sent")
