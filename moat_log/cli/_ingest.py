"""``moat-log ingest``: bulk-append local events from a JSON lines file.

Theory of operation
-------------------
Each line is one JSON object ``{"path", "value", "op", "source", "time"}``
(blank lines are skipped).  Lines are parsed and fully validated - the
`Change` is built and a trial event packed - before they join a batch, and a
batch of `BATCH_SIZE` lines is written with one `Journal.write_batch` (one
transaction, one fsync).  So a bad line stops the ingest before anything of
its batch is written; earlier batches are valid events and stay written, and
the error says how many there were and from which line to resume.

A line whose value does not fit its path's type (docs/types.md) is a bad
line too, checked against the types the journal holds when the ingest starts.

Event times must increase.  The parser tracks the clock the journal will
have (its clock at the start, each explicit time, and "now" for lines
without a time) and rejects a time that is not after it.  Only a writer
racing us (a node appending to the same journal) can still make the journal
refuse an event; then the rest of that batch has been written, and the
error says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from moat_log.errors import InvalidInputError, JournalError, MoatLogError
from moat_log.event import MAX_SOURCE_CHARS, Event, Op
from moat_log.ids import MAX_U64, EventId
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.reserved import TYPES
from moat_log.timespec import format_time, parse_time
from moat_log.vclock import VectorClock
from moat_log.write_check import WriteCheck

from ._values import from_json_value

BATCH_SIZE = 10_000  # one commit per 10k events: see docs/decisions.md
KEYS = ("path", "value", "op", "source", "time")
_OPS = {"set": Op.SET, "delete": Op.DELETE}
_PACKABLE_SCALARS = (bool, int, float)  # ints were range-checked by `Change`
_SMALL = 4096


@dataclass
class IngestSummary:
    """What an ingest appended so far."""

    events: int = 0
    first: Event | None = None
    last: Event | None = None

    def add(self, event: Event) -> None:
        self.events += 1
        self.first = self.first or event
        self.last = event

    def written(self) -> str:
        if not self.first or not self.last:
            return "nothing was appended"
        appended = "1 event was" if self.events == 1 else f"{self.events} events were"
        return f"{appended} appended ({self.first.id} .. {self.last.id})"

    def stopped_at(self, line: int) -> str:
        """What was written when the ingest stopped before *line*."""
        if not self.events:
            return "nothing was appended"
        return f"{self.written()} from the lines before {line}; resume from line {line}"


class LineParser:
    """Turns lines into validated `Change`s, tracking the clock they need."""

    def __init__(self, journal: Journal, name: str, source: str) -> None:
        self.node = journal.node
        self.name = name
        self.source = source[:MAX_SOURCE_CHARS]
        self.clock = journal.clock
        self.clock_from = "the journal's clock (the latest event time it holds)"
        self.checks = _checks(journal)

    def parse(self, number: int, raw: bytes) -> Change | None:
        """The change on line *number*, None for a blank line; raises on a bad line."""
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            if not text.strip():
                return None
            change = self._change(_json_object(text), number)
            self.checks.check(change.path, change.op, change.value)
            _check_packable(change, self.node)
        except (MoatLogError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{self.name}:{number}: {exc}") from exc
        return change

    def _change(self, line: dict[str, Any], number: int) -> Change:
        unknown = sorted(set(line) - set(KEYS))
        if unknown:
            raise InvalidInputError(
                f"unknown key {', '.join(map(repr, unknown))} (allowed: {', '.join(KEYS)})"
            )
        if "path" not in line:
            raise InvalidInputError("missing 'path'")
        op = _op(line.get("op", "set"))
        if op is Op.SET and "value" not in line:
            raise InvalidInputError("missing 'value' (only a delete has none)")
        if op is Op.DELETE and line.get("value") is not None:
            raise InvalidInputError("a delete carries no value: drop 'value' or make it null")
        source = line.get("source", self.source)
        if not isinstance(source, str):
            raise InvalidInputError(f"'source' must be a string, not {source!r}")
        value = from_json_value(line.get("value"))
        at = self._time(line.get("time"), number)
        return Change(_path(line["path"]), value, op, source, at=at)

    def _time(self, spec: object, number: int) -> int | None:
        """The event time of line *number*, checked to be after the one before."""
        if spec is None:
            self.clock = max(self.clock + 1, time.time_ns())
            self.clock_from = f"line {number}, which has no time and so gets the current time"
            return None
        at = _time(spec)
        if at <= self.clock:
            raise InvalidInputError(
                f"time {format_time(at)} is not after {format_time(self.clock)}, the time of "
                f"{self.clock_from}: event times must increase"
            )
        self.clock, self.clock_from = at, f"line {number}"
        return at


def _checks(journal: Journal) -> WriteCheck:
    """The node's write checks as of the journal's types when the ingest starts.

    A line whose value does not fit its path's type is a bad line like any
    other (docs/types.md, "Where types are enforced"): nothing of its batch
    is written.  Types the file itself stores apply from the next ingest.
    """
    from moat_log.projections import kv_view

    return WriteCheck.from_events(kv_view(journal).walk(TYPES))


def _json_object(text: str) -> dict[str, Any]:
    try:
        line = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"not JSON: {exc}") from exc
    if not isinstance(line, dict):
        raise InvalidInputError(f"not a JSON object but {type(line).__name__}: {text.strip()[:40]}")
    return line


def _path(spec: object) -> Path:
    if isinstance(spec, str):
        return Path.parse(spec)
    if isinstance(spec, list):
        return Path(spec)  # validates: str or int segments, no bools
    raise InvalidInputError(f"'path' must be a string or an array of segments, not {spec!r}")


def _op(spec: object) -> Op:
    if isinstance(spec, str) and spec in _OPS:
        return _OPS[spec]
    raise InvalidInputError(f'\'op\' must be "set" or "delete", not {spec!r}')


def _time(spec: object) -> int:
    if type(spec) is int:
        if not 0 < spec <= MAX_U64:
            raise InvalidInputError(f"'time' {spec} is not ns since the epoch (1 .. 2**64-1)")
        return spec
    if not isinstance(spec, str):
        raise InvalidInputError(
            f"'time' must be an ISO 8601 string or ns since the epoch, not {spec!r}"
        )
    parsed = parse_time(spec, now_ns=time.time_ns())
    if isinstance(parsed, EventId):
        raise InvalidInputError(f"'time' {spec!r} is an event id, not a time")
    if parsed == 0:
        raise InvalidInputError(f"'time' {spec!r} is the epoch itself; events come after it")
    return parsed


def _check_packable(change: Change, node: str) -> None:
    """Pack a trial event so that size or encoding problems show up now.

    Once a batch is handed to the journal, its valid items are committed
    even if one item is refused; catching the problem here keeps the batch
    all-or-nothing.  Small scalar values with an ASCII source, the bulk of
    bus history, always pack (the path was checked already), so they skip it.
    """
    value = change.value
    if change.source.isascii() and (
        value is None
        or type(value) in _PACKABLE_SCALARS
        or (type(value) is str and len(value) < _SMALL and value.isascii())
    ):
        return
    Event.trusted(
        node, MAX_U64, MAX_U64, VectorClock(), change.path, change.op,
        change.value, change.source, change.cause,
    ).pack()  # fmt: skip


def ingest(
    journal: Journal,
    lines: Iterable[bytes],
    parser: LineParser,
    on_line: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Append the events of *lines* in batches; *on_line* gets each line's size."""
    summary = IngestSummary()
    batch: list[tuple[int, Change]] = []
    first_line = 1
    for number, raw in enumerate(lines, 1):
        try:
            change = parser.parse(number, raw)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{exc}; {summary.stopped_at(first_line)}") from exc
        if change is not None:
            batch.append((number, change))
        if len(batch) >= BATCH_SIZE:
            _write(journal, batch, summary, parser.name)
            batch, first_line = [], number + 1
        if on_line is not None:
            on_line(len(raw))
    _write(journal, batch, summary, parser.name)
    return summary


def _write(
    journal: Journal, batch: list[tuple[int, Change]], summary: IngestSummary, name: str
) -> None:
    results = journal.write_batch([change for _, change in batch])
    refused: tuple[int, MoatLogError] | None = None
    for (number, _), result in zip(batch, results, strict=True):
        if isinstance(result, Event):
            summary.add(result)
        elif isinstance(result, MoatLogError) and refused is None:
            refused = (number, result)
    if refused is not None:
        number, error = refused
        raise JournalError(
            f"{name}:{number}: the journal refused the event ({error}), probably because "
            f"another process wrote to it meanwhile; {summary.written()}, including the "
            "valid lines of this batch"
        )
