"""``history --plot FILE`` and ``history --chart``: a path's values over time, drawn.

Numbers are drawn as they are, booleans as 0 and 1 (as steps: a switch holds
its state until the next event), a tombstone as a gap, and so is a silence
longer than ``--gap-factor`` times the median interval between reports
(`moat_log.charts.break_long_gaps`).  A value of another kind (text, a map)
cannot be drawn: without ``--recursive`` that is an error naming the event,
with it the path is left out and named on stderr.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path as FsPath

import asyncclick as click

from moat_log.charts import Panel, Series, break_long_gaps, terminal_chart, write_chart
from moat_log.event import Event, Op

from ._main import CommandError, printable
from ._output import value_text

#: Reports of a path are this many times further apart than usual: a gap.
DEFAULT_GAP_FACTOR = 5.0


class NotANumber(Exception):
    """A path's event whose value cannot be drawn."""

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self.event = event


def _number(event: Event) -> float | None:
    if event.op is Op.DELETE:
        return None
    value = event.value
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    raise NotANumber(event)


def path_series(events: list[Event], *, gap_factor: float) -> Series:
    """One path's events as a series; raises `NotANumber`."""
    points = [(event.hlc / 1e9, _number(event)) for event in events]
    switches = all(e.op is Op.DELETE or isinstance(e.value, bool) for e in events)
    return Series(
        printable(str(events[0].path)), break_long_gaps(points, factor=gap_factor), step=switches
    )


def history_panel(
    title: str, groups: Iterable[list[Event]], *, unit: str, gap_factor: float, recursive: bool
) -> Panel:
    """One panel with a series per path of *groups* (each one path's events, oldest first)."""
    series = []
    for events in groups:
        try:
            series.append(path_series(events, gap_factor=gap_factor))
        except NotANumber as problem:
            event = problem.event
            what = (
                f"{printable(str(event.path))} = {printable(value_text(event.value))} ({event.id})"
            )
            if not recursive:
                raise CommandError(
                    f"{what} is not a number: --plot and --chart draw numbers and booleans"
                ) from None
            click.echo(f"moat-log: left out {what}: not a number", err=True)
    return Panel(title, unit, series)


def show(panel: Panel, plot: str | None, chart: bool) -> None:
    """Write the panel to *plot* and/or draw it on the terminal."""
    if plot is not None:
        write_chart([panel], FsPath(plot), title=f"history of {panel.title}")
        click.echo(f"wrote {plot}", err=True)
    if chart:
        size = shutil.get_terminal_size()
        click.echo(
            terminal_chart([panel], width=size.columns, height=max(8, size.lines - 2)), nl=False
        )
