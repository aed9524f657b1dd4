"""What the CLI prints: the JSON event form, aligned tables, progress bars.

Every command prints either for people (tables, one summary line) or, with
``--json``, for programs: one JSON document, or JSON lines for event streams.
`event_json` is the one JSON form of an event; every command uses it.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

import asyncclick as click

from moat_log.event import Event, Op, Value
from moat_log.timespec import format_time

from ._main import printable

if TYPE_CHECKING:
    from moat_log.journal.change import Change
    from moat_log.protocol import Written

#: How bytes appear in JSON: ``{"$bytes": "<base64>"}``.  `_values` reads it back.
BYTES_KEY = "$bytes"

Progress = Callable[[int], None]

_ELLIPSIS = "…"
#: The narrowest a cell is cut to when a table is fitted to the terminal.
_MIN_CELL_WIDTH = 12
#: ... and when that is still too wide.
_LAST_RESORT_WIDTH = 4
_COLUMN_GAP = "  "


# --- JSON ----------------------------------------------------------------


def json_value(value: Value) -> Any:
    """*value* with bytes replaced by ``{"$bytes": base64}``, ready for `json.dumps`.

    Int map keys become strings (JSON has no other keys).
    """
    if isinstance(value, bytes):
        return {BYTES_KEY: base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    return value


def event_json(event: Event) -> dict[str, Any]:
    """The JSON form of an event, shared by every command."""
    return {
        "id": str(event.id),
        "origin": event.origin,
        "seq": event.seq,
        "hlc": event.hlc,
        "time": format_time(event.hlc),
        "deps": dict(event.deps),
        "path": str(event.path),
        "segments": list(event.path),
        "op": str(event.op),
        "value": json_value(event.value),
        "source": event.source,
        "cause": None if event.cause is None else str(event.cause),
    }


def written_json(change: Change, written: Written) -> dict[str, Any]:
    """The JSON form of a new local event, as ``set`` and ``delete`` print it.

    `event_json` without ``deps``: a node answers a write with the event's id
    and hlc only (`Written`), and the rest is what was asked for.
    """
    return {
        "id": str(written.id),
        "origin": written.id.origin,
        "seq": written.id.seq,
        "hlc": written.hlc,
        "time": format_time(written.hlc),
        "path": str(change.path),
        "segments": list(change.path),
        "op": str(change.op),
        "value": json_value(change.value),
        "source": change.source,
        "cause": None if change.cause is None else str(change.cause),
    }


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def dumps(document: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """One JSON document on one line; *default* converts what JSON lacks."""
    if default is None:
        return _ENCODER.encode(document)  # one encoder for the many events of a log
    return json.dumps(document, ensure_ascii=False, separators=(", ", ": "), default=default)


def print_json(document: Any) -> None:
    sys.stdout.write(dumps(document) + "\n")
    sys.stdout.flush()


def value_text(value: Value) -> str:
    """A value as compact JSON text, for tables and summaries."""
    return json.dumps(json_value(value), ensure_ascii=False, separators=(",", ":"))


# --- tables --------------------------------------------------------------

EVENT_COLUMNS = ("TIME", "ID", "OP", "PATH", "VALUE", "SOURCE")

#: The live marker of a watch or followed log: as a table line, as JSON.
LIVE_LINE = "-- live --"
LIVE_JSON = {"state": "live"}


def event_row(event: Event) -> tuple[str, ...]:
    value = "" if event.op is Op.DELETE else value_text(event.value)
    return (
        format_time(event.hlc),
        str(event.id),
        str(event.op),
        printable(str(event.path)),
        printable(value),
        printable(event.source),
    )


#: The columns of a current value: ``ls --recursive`` and ``watch``.
VALUE_COLUMNS = ("PATH", "VALUE", "TIME", "ID")


def value_row(event: Event) -> tuple[str, ...]:
    """A path's current event as a row of `VALUE_COLUMNS`; a tombstone shows ``(deleted)``."""
    value = "(deleted)" if event.op is Op.DELETE else value_text(event.value)
    return (printable(str(event.path)), printable(value), format_time(event.hlc), str(event.id))


class EventPrinter:
    """Prints events as JSON lines or as an aligned table.

    Table rows are held back until `PREVIEW_ROWS` have come (or `flush`), so
    that those rows set the column widths; later rows only widen them.  A
    long stream thus prints without being held in memory.  On a terminal
    the widest cells are cut to fit the width; into a pipe rows are whole.
    """

    PREVIEW_ROWS = 1000

    def __init__(self, *, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self.count = 0
        self._widths: list[int] | None = None
        self._pending: list[tuple[str, ...] | None] = []  # None: a blank line
        self._fit = is_terminal(self.out)

    def print_events(self, events: Iterable[Event]) -> None:
        """Print (or, at the start of a table, collect) some events."""
        for event in events:
            self.count += 1
            if self.as_json:
                self.out.write(dumps(event_json(event)) + "\n")
            else:
                self._pending.append(event_row(event))
                if len(self._pending) >= self.PREVIEW_ROWS:
                    self._emit()
        if self._widths is not None:
            self._emit()

    def live(self) -> None:
        """The live marker, as ``watch`` prints it: everything after it is new."""
        self.flush()
        self.out.write((dumps(LIVE_JSON) if self.as_json else LIVE_LINE) + "\n")
        self.out.flush()

    def separate(self) -> None:
        """A blank line between groups of a table (if anything came before)."""
        if not self.as_json and self.count:
            self._pending.append(None)

    def flush(self) -> None:
        """Print everything held back."""
        self._emit()
        self.out.flush()

    def _emit(self) -> None:
        rows = [row for row in self._pending if row is not None]
        if not rows and self._widths is None:
            return
        lines: list[tuple[str, ...] | None] = []
        if self._widths is None:
            lines.append(EVENT_COLUMNS)
        self._widths = column_widths([EVENT_COLUMNS, *rows], self._widths)
        lines.extend(self._pending)
        self.out.write("".join(self._line(row) + "\n" for row in lines))
        self._pending = []

    def _line(self, row: Sequence[str] | None) -> str:
        if row is None:
            return ""
        assert self._widths is not None
        widths = fit_widths(self._widths) if self._fit else self._widths
        return table_line(row, widths)


def column_widths(rows: Iterable[Sequence[str]], widths: list[int] | None = None) -> list[int]:
    for row in rows:
        lengths = [len(cell) for cell in row]
        if widths is not None:
            lengths = [max(w, n) for w, n in zip(widths, lengths, strict=True)]
        widths = lengths
    return widths or []


def fit_widths(widths: Sequence[int], columns: int | None = None) -> list[int]:
    """Column *widths* narrowed so that a row fits *columns* (default: the terminal's).

    The widest columns give way first, none below `_MIN_CELL_WIDTH` (or its
    own width), and then below that to `_LAST_RESORT_WIDTH`; a table that
    cannot fit even so keeps those widths.
    """
    if columns is None:
        columns = shutil.get_terminal_size().columns
    fitted = list(widths)
    room = columns - len(_COLUMN_GAP) * (len(fitted) - 1)
    for narrowest in (_MIN_CELL_WIDTH, _LAST_RESORT_WIDTH):
        floors = [min(narrowest, width) for width in widths]
        while (excess := sum(fitted) - room) > 0:
            shrinkable = [i for i, width in enumerate(fitted) if width > floors[i]]
            if not shrinkable:
                break
            # the widest first; of equals, the rightmost (errors, values, sources)
            widest = max(shrinkable, key=lambda i: (fitted[i], i))
            runner_up = max((fitted[i] for i in shrinkable if i != widest), default=0)
            step = min(excess, max(1, fitted[widest] - runner_up))
            fitted[widest] = max(floors[widest], fitted[widest] - step)
    return fitted


def truncate(text: str, width: int) -> str:
    """*text* cut to *width* characters, marked with an ellipsis."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + _ELLIPSIS


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "") -> None:
    """An aligned table; on a terminal, cells are cut (marked …) so that rows fit its width."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = column_widths([header, *rows])
    if stdout_is_terminal():
        widths = fit_widths(widths, shutil.get_terminal_size().columns - len(indent))
    for row in (header, *rows):
        click.echo(indent + table_line(row, widths))


def table_line(row: Sequence[str], widths: Sequence[int]) -> str:
    """One row of an aligned table, cells cut to *widths*, without trailing blanks."""
    cells = [truncate(cell, w).ljust(w) for cell, w in zip(row, widths, strict=True)]
    return _COLUMN_GAP.join(cells).rstrip()


def stdout_is_terminal() -> bool:
    """Whether the tables go to a terminal (then they fit its width; never in JSON)."""
    return is_terminal(sys.stdout)


def print_fields(fields: Mapping[str, str]) -> None:
    """``name: value`` lines with the values aligned."""
    width = max((len(name) for name in fields), default=0) + 1
    for name, value in fields.items():
        click.echo(f"{name + ':':<{width}} {value}")


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 event``, ``2 events``: a count with its noun in the right number."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def took(count: int, seconds: float) -> str:
    """``in 1.25 s (80,000 events/s)``; a rate only where it means something."""
    if seconds < 0.1:
        return f"in {seconds * 1000:.0f} ms"
    return f"in {seconds:.2f} s ({count / seconds:,.0f} events/s)"


def human_bytes(size: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


# --- progress --------------------------------------------------------------


@contextmanager
def progress_bar(length: int, label: str) -> Iterator[Progress | None]:
    """A progress callback on stderr, or None when stderr is not a terminal.

    The callback takes the *cumulative* count done so far.
    """
    if not is_terminal(sys.stderr) or length <= 0:
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        done = 0

        def report(count: int) -> None:
            nonlocal done
            if count > done:
                bar.update(count - done)
                done = count

        yield report


def is_terminal(stream: TextIO) -> bool:
    """Whether *stream* is a terminal (tables fit its width, progress bars show)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
