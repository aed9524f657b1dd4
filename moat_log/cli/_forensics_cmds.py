"""Commands that explain: ``why`` (the chain of causes of a value) and ``timeline``.

Both read the local journal, like ``log`` and ``history``.  The walk is
`moat_log.projections.why`; the printing of chains is `_chains`, which
``conflicts --chains`` shares.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

import asyncclick as click

from moat_log.event import Event
from moat_log.journal.selection import EventSelection
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.projections.why import DEFAULT_DEPTH, unseen
from moat_log.timespec import format_time

from ._chains import chain_json, event_summary, print_chain
from ._main import CommandError, Settings, cli, printable
from ._output import counted, dumps, event_json, print_json, stdout_is_terminal
from ._values import TIME_HELP, resolve_range, resolve_time

# --- why ---------------------------------------------------------------------


@cli.command("why")
@click.argument("path")
@click.option(
    "--at", metavar="T", help=f"Explain the value PATH had at T (default now): {TIME_HELP}"
)
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=DEFAULT_DEPTH,
    show_default=True,
    metavar="N",
    help="Show at most N steps.",
)
@click.pass_obj
def why(settings: Settings, path: str, at: str | None, depth: int) -> None:
    """Explain why PATH has its value: the chain of events that led to it.

    Starts at the event that set PATH (as of --at), then follows each
    event's cause back: the script's write, the event it reacted to, down to
    the bus frame or command that started it.  Each step shows what it
    overwrote, or the concurrent write it won over (a conflict).  The last
    line says where the chain starts ("origin: written by knx:1/2/3 without
    a cause") or why it breaks (a cause never held here, or no longer held).

    \b
    Example:
      moat-log why home.hall.light
      moat-log why home.hall.light --at -2h --depth 5
      moat-log --json why home.hall.light | jq '.steps[].event.source'
    """
    from moat_log.projections.journal_chain import explain

    target = Path.parse(path)
    with settings.journal() as journal:
        moment = resolve_time(journal, at, "--at")
        chain = explain(journal, target, moment, depth=depth)
    if chain is None:
        when = "yet" if moment is None else f"at {format_time(moment)}"
        raise CommandError(f"{target} has no event {when}")
    if settings.as_json:
        at_time = None if moment is None else format_time(moment)
        print_json({"path": str(target), "at": moment, "at_time": at_time, **chain_json(chain)})
        return
    print_chain(chain)


# --- timeline ------------------------------------------------------------------------


@cli.command("timeline")
@click.option("--since", metavar="T", default="-1h", show_default=True, help=f"From T: {TIME_HELP}")
@click.option("--until", metavar="T", help=f"Up to T (default now): {TIME_HELP}")
@click.option("--path", "prefix", metavar="PREFIX", help="Only events at PREFIX or below it.")
@click.option(
    "--source",
    "pattern",
    metavar="PATTERN",
    help="Only events whose source matches: a class ('knx'), a source or a glob ('*:hall*').",
)
@click.pass_obj
def timeline(
    settings: Settings, since: str, until: str | None, prefix: str | None, pattern: str | None
) -> None:
    """Show what happened in a time window, hour by hour, who did what where.

    One line per event: its local time, its source (shown where it changes),
    the path and value, its id, and "<- ID" for the event that caused it.
    A write that won over a concurrent one it had not seen is marked
    "! conflict" with the loser.  On a terminal the output goes through a
    pager; --json prints JSON lines (the event, and its conflict).

    \b
    Example:
      moat-log timeline --since -3h --path home
      moat-log timeline --since 2026-11-21T14:00 --until 2026-11-21T15:00 --source knx
      moat-log --json timeline --since -1d --source 'script:*'
    """
    with settings.journal() as journal:
        selection = EventSelection(
            Path.parse(prefix) if prefix is not None else None,
            *resolve_range(journal, since, until),
        )
        # Conflicts are found among all the window's events, then the sources filtered:
        # a write's predecessor may come from a source the filter leaves out.
        marked = (
            (event, loser)
            for event, loser in _with_conflicts(journal, journal.select(selection))
            if _source_matches(event.source, pattern)
        )
        if settings.as_json:
            for event, loser in marked:
                document = event_json(event)
                document["conflict_with"] = None if loser is None else str(loser.id)
                sys.stdout.write(dumps(document) + "\n")
            return
        lines = _timeline_lines(marked)
        if stdout_is_terminal():
            click.echo_via_pager(line + "\n" for line in lines)
        else:
            for line in lines:
                click.echo(line)


def _source_matches(source: str, pattern: str | None) -> bool:
    """A glob matches whole sources; other text a source and what it qualifies.

    ``knx`` matches ``knx:1/2/3 from 1.1.7`` (a class), and so does
    ``knx:1/2/3`` (an address, whatever the sender).
    """
    if pattern is None:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatchcase(source, pattern)
    return source == pattern or source.startswith((pattern + ":", pattern + " "))


def _with_conflicts(
    journal: Journal, events: Iterable[Event]
) -> Iterator[tuple[Event, Event | None]]:
    """Each event with the concurrent write it won over, if any.

    Within the window, a path's previous event is the one printed before;
    for a path's first event in it, the journal is asked (one seek).
    """
    from moat_log.projections.replay import winner_before

    previous: dict[Path, Event] = {}
    for event in events:
        before = previous[event.path] if event.path in previous else winner_before(journal, event)
        previous[event.path] = event
        yield event, unseen(event, before)


def _timeline_lines(marked: Iterable[tuple[Event, Event | None]]) -> Iterator[str]:
    hour: str | None = None
    source: str | None = None
    count = conflicts = 0
    for event, loser in marked:
        moment = dt.datetime.fromtimestamp(event.hlc / 1e9, dt.UTC).astimezone()
        heading = moment.strftime("%Y-%m-%d %H:00 %Z")
        if heading != hour:
            if hour is not None:
                yield ""
            yield f"── {heading} ──"
            hour, source = heading, None
        who = printable(event.source) or "(no source)"
        shown = who if who != source else ""
        source = who
        line = f"{moment.strftime('%H:%M:%S')}  {shown:<20}  {event_summary(event):<40}  {event.id}"
        if event.cause is not None:
            line += f" <- {event.cause}"
        if loser is not None:
            conflicts += 1
            line += f"  ! conflict: won over {loser.id} (concurrent, unseen by {event.origin})"
        count += 1
        yield line
    yield "" if count else "no events in this window"
    if count:
        yield f"{counted(count, 'event')}, {counted(conflicts, 'conflict')}"
