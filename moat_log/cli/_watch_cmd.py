"""``watch``: the current subtree, then every change to it as it happens."""

from __future__ import annotations

import sys
from typing import TextIO

import asyncclick as click

from moat_log.event import Event
from moat_log.path import ROOT, Path
from moat_log.protocol import LiveMarker

from ._main import PROG, Settings, cli
from ._node_access import open_access
from ._output import (
    LIVE_JSON,
    LIVE_LINE,
    VALUE_COLUMNS,
    column_widths,
    dumps,
    event_json,
    fit_widths,
    is_terminal,
    table_line,
    value_row,
)
from ._query_cmds import FOLLOW_INTERVAL

#: The line between the current state and the changes.


class WatchPrinter:
    """Prints the items of a watch: the dump, the live marker, then one line per change.

    As text the dump is the table of ``ls --recursive`` (held back until the
    marker, which sets the column widths); a change is one row of it, aligned
    where it fits.  As JSON every event is one `event_json` line and the
    marker is ``{"state": "live"}``.  Every line after the marker is flushed
    at once: a script reads changes as they come.
    """

    def __init__(self, *, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        #: Changes printed after the marker.
        self.changes = 0
        self._live = False
        self._dump: list[tuple[str, ...]] = []
        self._widths = column_widths([VALUE_COLUMNS])
        self._fit = is_terminal(self.out)

    def print(self, item: Event | LiveMarker) -> None:
        if isinstance(item, LiveMarker):
            self._print_live_marker()
        elif self._live:
            self.changes += 1
            self._write(self._event_line(item))
        elif self.as_json:
            self.out.write(dumps(event_json(item)) + "\n")
        else:
            self._dump.append(value_row(item))

    def _print_live_marker(self) -> None:
        self._live = True
        if self.as_json:
            self._write(dumps(LIVE_JSON))
            return
        self._widths = column_widths([VALUE_COLUMNS, *self._dump])
        lines = [table_line(row, self._fitted()) for row in (VALUE_COLUMNS, *self._dump)]
        self._dump = []
        self._write("\n".join([*lines, LIVE_LINE]))

    def _event_line(self, event: Event) -> str:
        if self.as_json:
            return dumps(event_json(event))
        row = value_row(event)
        self._widths = column_widths([row], self._widths)
        return table_line(row, self._fitted())

    def _fitted(self) -> list[int]:
        """The widths, narrowed to the terminal's when the table goes to one."""
        return fit_widths(self._widths) if self._fit else self._widths

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


@cli.command()
@click.argument("path", required=False)
@click.option(
    "--changes",
    type=click.IntRange(min=1),
    metavar="N",
    help="Exit after N live changes (the current state does not count). "
    "Example: moat-log watch home.door --changes 1",
)
@click.pass_obj
async def watch(settings: Settings, *, path: str | None, changes: int | None) -> None:
    """Print the values below PATH, then every change to them as it happens.

    First the current subtree (as 'ls --recursive' shows it), then a line
    '-- live --', then one line per change: path, value ('(deleted)' for a
    delete), time and event id.  With --json: one event per line (as
    'log --json' prints them), and {"state": "live"} between the current
    state and the changes.  Runs until Ctrl-C, or until --changes N changes
    were printed.

    Through the node serving the data directory (or --connect), which pushes
    each change.  When no node runs, it says so on stderr and polls the
    journal every 0.2 s instead.

    \b
    Example:
      moat-log watch home.kitchen
      moat-log watch home.door --json --changes 1 | jq .value
    """
    prefix = ROOT if path is None else Path.parse(path)
    printer = WatchPrinter(as_json=settings.as_json)
    try:
        async with open_access(settings) as access:
            if access.via == "journal":
                click.echo(
                    f"{PROG}: no node serves {settings.data_dir}; watching the journal "
                    f"directly (polled every {FOLLOW_INTERVAL:g} s)",
                    err=True,
                )
            async with access.watch(prefix) as items:
                async for item in items:
                    printer.print(item)
                    if changes is not None and printer.changes >= changes:
                        break
    except KeyboardInterrupt:
        return
