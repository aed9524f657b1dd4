"""Commands that read: ``log``, ``history``, ``stats``, ``verify``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import groupby, islice
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

import asyncclick as click
import trio

from moat_log.event import Event
from moat_log.ids import check_node_name
from moat_log.idset import IdSet
from moat_log.journal.feed import JournalFeed, Overflow
from moat_log.journal.selection import EventSelection
from moat_log.journal.store import Journal, JournalStats
from moat_log.path import Path
from moat_log.streams import single_errors_unwrapped
from moat_log.timespec import format_time

from ._main import FOLLOW_INTERVAL, Settings, cli, printable
from ._output import (
    EventPrinter,
    human_bytes,
    print_fields,
    print_json,
    print_table,
    progress_bar,
)
from ._values import TIME_HELP, resolve_range

if TYPE_CHECKING:
    from moat_log.journal.verify import VerifyReport


#: The selection of ``log``: path prefix, time window, origin.
EventFilter = EventSelection


# --- log -------------------------------------------------------------------


@cli.command("log")
@click.option("--path", "prefix", metavar="PREFIX", help="Only events at PREFIX or below it.")
@click.option("--since", metavar="T", help=f"Only events at or after T: {TIME_HELP}")
@click.option("--until", metavar="T", help=f"Only events at or before T: {TIME_HELP}")
@click.option("--origin", metavar="NODE", help="Only events created by NODE.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1, max=sys.maxsize),  # islice's bound; more is "all" anyway
    metavar="N",
    help="Only the newest N events.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (Ctrl-C stops).")
@click.pass_obj
async def log(
    settings: Settings,
    *,
    prefix: str | None,
    since: str | None,
    until: str | None,
    origin: str | None,
    limit: int | None,
    follow: bool,
) -> None:
    """Show events in time order, oldest first.

    With --limit N only the newest N matching events are shown (like tail -n).
    With --follow, events appended later (by this CLI, a node or an import)
    are printed as they arrive, in arrival order, after a live marker
    ("-- live --", or {"state": "live"} with --json).  The journal is read
    directly, every 0.2 s.

    \b
    Example:
      moat-log log --path home.kitchen --since -1h
      moat-log --json log --origin pi2 --since pi2:1200 --limit 50
      moat-log log -f -n 20
    """
    with settings.journal() as journal:
        selection = EventFilter(
            Path.parse(prefix) if prefix is not None else None,
            *resolve_range(journal, since, until),
            check_node_name(origin) if origin is not None else None,
        )
        printer = EventPrinter(as_json=settings.as_json)
        # Events held now (`held`) are shown by the scan below, events stored
        # after `position` by the follow loop: read together, they split the
        # journal in two.
        held, position = journal.summary_at()
        printer.print_events(_initial_events(journal, selection, held, limit))
        printer.flush()
        if follow:
            printer.live()  # as watch: what follows is new
            await _follow(journal, selection, printer, position)


def _initial_events(
    journal: Journal, selection: EventFilter, held: IdSet, limit: int | None
) -> Iterator[Event]:
    def wanted(event: Event) -> bool:
        return held.holds(event.origin, event.seq)

    if limit is None:
        return filter(wanted, journal.select(selection))
    newest = journal.select(selection, reverse=True)
    # islice refuses a stop beyond sys.maxsize; no journal holds that many events.
    return reversed(list(islice(filter(wanted, newest), min(limit, sys.maxsize))))


async def _follow(
    journal: Journal, selection: EventFilter, printer: EventPrinter, position: int
) -> None:
    """Print the matching events stored after *position*, as they come, until Ctrl-C.

    A journal feed of this process (the node's own code) looks for other
    processes' writes every `FOLLOW_INTERVAL` seconds.
    """
    feed = JournalFeed(journal, position=position, poll_interval=FOLLOW_INTERVAL)
    try:
        with single_errors_unwrapped():
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run)
                with feed.subscribe(
                    after=position, prefix=selection.prefix, on_overflow=Overflow.CATCH_UP
                ) as new:
                    while True:
                        items = await new.receive_batch()
                        printer.print_events(
                            item.event for item in items if selection.matches(item.event)
                        )
                        printer.flush()
    except KeyboardInterrupt:
        return


# --- history -----------------------------------------------------------------


@cli.command()
@click.argument("path")
@click.option("--recursive", "-r", is_flag=True, help="The whole subtree, grouped by path.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    metavar="N",
    help="Only the newest N of each path.",
)
@click.option("--since", metavar="T", help=f"Only events at or after T: {TIME_HELP}")
@click.option("--until", metavar="T", help=f"Only events at or before T: {TIME_HELP}")
@click.option(
    "--plot",
    metavar="FILE",
    help="Draw the values over time into FILE: .svg, or .png (needs moat-log[plots]).",
)
@click.option("--chart", is_flag=True, help="Draw the values over time on the terminal.")
@click.option("--unit", default="", metavar="TEXT", help="The unit of the values, for the chart.")
@click.option(
    "--gap-factor",
    type=click.FloatRange(min=1.0),
    default=5.0,
    show_default=True,
    metavar="F",
    help="In a chart, a silence F times the median interval between events is a gap.",
)
@click.pass_obj
def history(
    settings: Settings,
    *,
    path: str,
    recursive: bool,
    limit: int | None,
    since: str | None,
    until: str | None,
    plot: str | None,
    chart: bool,
    unit: str,
    gap_factor: float,
) -> None:
    """Show the events of PATH, oldest first, or draw its values over time.

    With --recursive, the events of PATH and every path below it, grouped by
    path (in path order).  With --plot FILE or --chart, the numbers (and
    booleans, as 0 and 1) are drawn over time instead of listed; a deletion
    or a long silence is a gap in the line.

    \b
    Example:
      moat-log history home.kitchen.light
      moat-log history -r -n 3 home.kitchen
      moat-log history sensor.hall.temp --since -1d --plot hall.svg --unit °C
      moat-log history -r sensor.hall --since -6h --chart
    """
    target = Path.parse(path)
    printer = EventPrinter(as_json=settings.as_json)
    with settings.journal() as journal:
        start, end = resolve_range(journal, since, until)
        groups = _history_groups(
            journal, target, recursive=recursive, limit=limit, start=start, end=end
        )
        if plot is not None or chart:
            from ._history_chart import history_panel, show

            panel = history_panel(
                printable(str(target)),
                groups,
                unit=unit,
                gap_factor=gap_factor,
                recursive=recursive,
            )
            show(panel, plot, chart)
            return
        for group in groups:
            printer.separate()
            printer.print_events(group)
        printer.flush()
    if not printer.count and not settings.as_json:
        click.echo(f"no events at {target}{' or below' if recursive else ''}", err=True)


def _history_groups(
    journal: Journal,
    target: Path,
    *,
    recursive: bool,
    limit: int | None,
    start: int | None,
    end: int | None,
) -> list[list[Event]]:
    """Per path, its events in the window (the newest *limit*), oldest first."""

    def inside(event: Event) -> bool:
        return (start is None or event.hlc >= start) and (end is None or event.hlc <= end)

    if limit is None:
        history = filter(inside, journal.history(target, subtree=recursive))
        return [list(g) for _, g in groupby(history, _path_of)]
    newest = filter(inside, journal.history(target, subtree=recursive, reverse=True))
    return _newest_per_path(newest, limit)


def _path_of(event: Event) -> Path:
    return event.path


def _newest_per_path(newest_first: Iterable[Event], limit: int) -> list[list[Event]]:
    """From a reversed subtree history, the newest *limit* events of each path."""
    groups: list[list[Event]] = []
    for event in newest_first:
        if not groups or groups[-1][0].path != event.path:
            groups.append([])
        if len(groups[-1]) < limit:
            groups[-1].append(event)
    return [list(reversed(group)) for group in reversed(groups)]


# --- stats ----------------------------------------------------------------------


@cli.command()
@click.option(
    "--usage",
    is_flag=True,
    help="Also read every event: bytes per path class, events and bytes per day.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=FsPath),
    metavar="FILE",
    envvar="MOAT_LOG_CONFIG",
    help="With --usage: the node's config, to say what the next compaction would free.",
)
@click.option("--days", default=14, show_default=True, help="With --usage: the days shown.")
@click.pass_obj
def stats(settings: Settings, usage: bool, config_file: FsPath | None, days: int) -> None:
    """Show counts, ranges and sizes.

    The node, event count, last position and clock; per origin the seqs held;
    per database its entries and bytes; the size of the data file.  With
    --usage (which reads the whole journal): the bytes of each path class
    (a path's first segment), events and bytes stored per day (the SD-card
    wear figure, a lower bound), and with --config what the next
    compaction would free.

    \b
    Example:
      moat-log stats
      moat-log --json stats | jq .origins
      moat-log stats --usage --config /etc/moat-log/node.toml
    """
    with settings.journal() as journal:
        result, location = journal.stats(), str(journal.path)
        found = _usage(settings, journal, config_file) if usage else None
    if settings.as_json:
        document = _stats_json(result, location)
        if found is not None:
            document["usage"] = _usage_json(*found)
        print_json(document)
        return
    if found is not None:
        _print_usage(*found, days=days)
        click.echo()
    print_fields(
        {
            "node": result.node,
            "journal": location,
            "events": str(result.events),
            "last position": str(result.last_position),
            "clock": format_time(result.clock) if result.clock else "(no events yet)",
            "data file": f"{human_bytes(result.file_bytes)} ({result.file_bytes} bytes)",
        }
    )
    click.echo()
    origins = [(o, str(r.count), str(r)) for o, r in result.origins.items()]
    print_table(("ORIGIN", "EVENTS", "SEQS"), origins)
    click.echo()
    dbs = [
        (name, str(db.entries), str(db.bytes), human_bytes(db.bytes))
        for name, db in result.databases.items()
    ]
    print_table(("DATABASE", "ENTRIES", "BYTES", "SIZE"), dbs)


def _usage(settings: Settings, journal: Journal, config_file: FsPath | None) -> tuple[Any, Any]:
    """The usage fold over every event, and a dry-run compaction's report (or None)."""
    import time

    from moat_log.journal.usage import Usage

    found = Usage()
    for _position, data in journal.scan_raw():
        found.add(Event.unpack_trusted(data), len(data))
    report = None
    if config_file is not None:
        from moat_log.node import load_config
        from moat_log.projections import kv_view
        from moat_log.projections.compactor import compact_journal

        config = load_config(config_file, data_dir=settings.data_dir)
        report = compact_journal(
            journal, kv_view(journal), config.retention.rules, now=time.time_ns(), dry_run=True
        )
    return found, report


def _usage_json(found: Any, report: Any) -> dict[str, Any]:
    from moat_log.journal.usage import NS_PER_DAY

    return {
        "classes": {
            name: {"events": e, "bytes": b} for name, (e, b) in sorted(found.by_class.items())
        },
        "days": {
            format_time(day * NS_PER_DAY)[:10]: {"events": e, "bytes": b}
            for day, (e, b) in sorted(found.by_day.items())
        },
        "next_compaction": None
        if report is None
        else {"events": report.removed, "bytes": report.removed_bytes, "rollups": report.rollups},
    }


def _print_usage(found: Any, report: Any, *, days: int) -> None:
    from moat_log.journal.usage import NS_PER_DAY

    rows = [(name, str(e), human_bytes(b)) for name, (e, b) in sorted(found.by_class.items())]
    print_table(("PATH CLASS", "EVENTS", "BYTES"), rows)
    click.echo()
    recent = sorted(found.by_day.items())[-days:]
    rows = [(format_time(day * NS_PER_DAY)[:10], str(e), human_bytes(b)) for day, (e, b) in recent]
    print_table(("DAY", "EVENTS", "BYTES STORED"), rows)
    if report is not None:
        click.echo()
        print_fields(
            {
                "next compaction": f"frees {report.removed} events "
                f"({human_bytes(report.removed_bytes)} packed), writes {report.rollups} roll-ups"
            }
        )


def _stats_json(result: JournalStats, location: str) -> dict[str, Any]:
    return {
        "node": result.node,
        "journal": location,
        "events": result.events,
        "last_position": result.last_position,
        "clock": result.clock,
        "clock_time": format_time(result.clock) if result.clock else None,
        "origins": {
            origin: {"ranges": str(seqs), "count": seqs.count}
            for origin, seqs in result.origins.items()
        },
        "databases": {
            name: {"entries": db.entries, "bytes": db.bytes}
            for name, db in result.databases.items()
        },
        "file_bytes": result.file_bytes,
        "map_bytes": result.map_bytes,
    }


# --- verify -----------------------------------------------------------------------


@cli.command()
@click.pass_obj
def verify(settings: Settings) -> None:
    """Check the journal's events and indexes.

    Every event must unpack and every index agree with the events.

    Prints OK with the counts, or each problem; exits with status 1 when
    there are problems.  Safe while a node writes to the journal.

    \b
    Example:
      moat-log verify
    """
    from moat_log.journal.verify import verify_journal

    with settings.journal() as journal:
        total = journal.last_position
        with progress_bar(total, "verifying") as progress:
            report = verify_journal(journal, progress=progress)
    if settings.as_json:
        print_json(
            {"ok": report.ok, "events": report.events, "problem_count": report.problem_count,
             "problems": list(report.problems), "warnings": list(report.warnings)}
        )  # fmt: skip
    else:
        _print_verify_report(report)
    if not report.ok:
        raise click.exceptions.Exit(1)


def _print_verify_report(report: VerifyReport) -> None:
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    if report.problem_count > len(report.problems):
        click.echo(f"... and {report.problem_count - len(report.problems)} more problems")
    verdict = "OK" if report.ok else f"FAILED: {report.problem_count} problems"
    click.echo(f"{verdict}: {report.events} events checked, {len(report.warnings)} warnings")
