"""Commands that look back: ``replay`` (and ``replay --restore``) and ``diff``.

They compute the state as of a moment from the journal alone
(`moat_log.projections.replay`, docs/replay.md) and work while a node runs.
Only ``replay --restore`` writes: new events, in one transaction, after
showing them and asking.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncclick as click

from moat_log.errors import InvalidInputError, JournalError, MoatLogError
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.journal.store import Journal
from moat_log.path import ROOT, Path
from moat_log.projections.replay import Difference, diff, restoring, state_at
from moat_log.timespec import format_time

from ._main import Settings, cli, printable
from ._output import (
    event_json,
    is_terminal,
    print_json,
    print_table,
    progress_bar,
    value_text,
)
from ._values import TIME_HELP, resolve_time

_NO_EVENT = "-"  # a table cell: the path had no event yet
_DELETED = "deleted"  # a table cell: the path's winner was a tombstone

_Command = TypeVar("_Command", bound=Callable[..., Any])


def _json_option(command: _Command) -> _Command:
    """``--json`` after the command too: the same as the global ``moat-log --json``."""
    option = click.option(
        "--json", "as_json", is_flag=True, help="Machine output: one JSON document."
    )
    return option(command)


# --- replay --------------------------------------------------------------------


@cli.command("replay")
@click.option("--until", "until", required=True, metavar="T", help=f"The moment: {TIME_HELP}")
@click.option("--path", "prefix", metavar="PREFIX", help="Only PREFIX and the paths below it.")
@click.option(
    "--restore", is_flag=True, help="Append events that bring the paths back to their state at T."
)
@click.option("--yes", "-y", is_flag=True, help="With --restore: do not ask before writing.")
@click.option("--source", help="With --restore: who caused the change [default: restore:T].")
@_json_option
@click.pass_obj
def replay_cmd(
    settings: Settings,
    *,
    until: str,
    prefix: str | None,
    restore: bool,
    yes: bool,
    source: str | None,
    as_json: bool,
) -> None:
    """Show the state as of T, computed from the journal alone.

    Per path the winning event among those at or before T (greatest hlc,
    then origin), including events that arrived later but carry an earlier
    time.  Deleted paths are left out.  Nothing is written, and the live
    state is not touched.

    With --restore, append events that set every path under PREFIX back to
    its value at T and delete the paths that had no value then.  The changes
    are shown first and written in one transaction after you confirm (--yes:
    without asking).  History stays: the restore is a change like any other.

    \b
    Example:
      moat-log replay --until '2026-11-21T14:00' --path home.kitchen
      moat-log replay --until -2h --json
      moat-log replay --until pi1:1200 --path home --restore
    """
    as_json = as_json or settings.as_json
    if not restore and (yes or source is not None):
        raise click.UsageError("--yes and --source only go with --restore")
    target = Path.parse(prefix) if prefix is not None else ROOT
    with settings.journal() as journal:
        moment = resolve_time(journal, until, "--until")
        assert moment is not None
        if restore:
            label = source if source is not None else f"restore:{format_time(moment)}"
            _restore(journal, moment, target, label, as_json=as_json, ask=not yes)
            return
        with progress_bar(journal.last_position, "replaying") as progress:
            state = state_at(journal, moment, prefix=target, progress=progress)
            _finish(progress, journal)
        _say_what_was_thinned(journal, moment, target)
    _print_state(list(state.values()), moment, target, as_json=as_json)


def _say_what_was_thinned(journal: Journal, moment: int, prefix: Path) -> None:
    """On stderr: the paths whose raw events at *moment* compaction replaced by roll-ups."""
    from moat_log.projections import kv_view
    from moat_log.projections.compactor import thinned_before

    for thinned in thinned_before(journal, kv_view(journal), moment, prefix):
        click.echo(
            f"note: the journal holds raw events of {thinned.path} only since "
            f"{format_time(thinned.raw_since)}; before that, {thinned.interval} roll-ups "
            f"('moat-log history {thinned.rollups}')",
            err=True,
        )


def _print_state(live: list[Event], until: int, prefix: Path, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {**_moment_json("until", until), "prefix": str(prefix),
             "paths": {str(event.path): event_json(event) for event in live}}
        )  # fmt: skip
    elif live:
        rows = [
            (str(e.path), value_text(e.value), format_time(e.hlc), str(e.id), e.source)
            for e in live
        ]
        print_table(("PATH", "VALUE", "TIME", "ID", "SOURCE"), rows)
    else:
        click.echo(f"no values{_scope(prefix)} as of {format_time(until)}", err=True)


def _finish(progress: Callable[[int], None] | None, journal: Journal) -> None:
    """Fill the bar: long histories are skipped by seeking, not counted entry by entry."""
    if progress is not None:
        progress(journal.last_position)


def _scope(prefix: Path) -> str:
    """`` at or below PREFIX`` for messages; nothing for the root (every path)."""
    return f" at or below {printable(str(prefix))}" if prefix else ""


def _paths(count: int) -> str:
    return f"{count} path" if count == 1 else f"{count} paths"


def _moment_json(name: str, moment: int) -> dict[str, Any]:
    return {name: moment, f"{name}_time": format_time(moment)}


# --- replay --restore ---------------------------------------------------------------


def _restore(
    journal: Journal, until: int, prefix: Path, source: str, *, as_json: bool, ask: bool
) -> None:
    """Show what brings *prefix* back to *until*, ask, and append it in one batch."""
    with progress_bar(journal.last_position, "comparing") as progress:
        differences = diff(journal, until, None, prefix=prefix, progress=progress)
        _finish(progress, journal)
    changes = [restoring(d, source=source) for d in differences]
    when = format_time(until)
    if not differences:
        if as_json:
            _print_restore_json(until, prefix, source, differences, [])
        else:
            click.echo(f"nothing to restore: the paths{_scope(prefix)} are as of {when}")
        return
    if not as_json:
        _print_differences(("PATH", "NOW", "THEN"), differences, now_first=True)
    if ask:
        _confirm(f"restore {_paths(len(changes))}{_scope(prefix)} to their state as of {when}?")
    written = _write(journal, changes)
    if as_json:
        _print_restore_json(until, prefix, source, differences, written)
        return
    for event in written:
        if event.op is Op.DELETE:
            what = f"deleted {event.path}"
        else:
            what = f"{event.path} = {value_text(event.value)}"
        click.echo(f"{event.id}  {format_time(event.hlc)}  {printable(what)}")
    click.echo(f"restored {_paths(len(written))}{_scope(prefix)} to their state as of {when}")


def _confirm(question: str) -> None:
    if not _interactive():
        raise InvalidInputError(
            "replay --restore asks before it writes, but stdin is not a terminal: "
            "check the changes with 'moat-log diff T now', then add --yes"
        )
    click.confirm(question, abort=True, err=True)


def _interactive() -> bool:
    return is_terminal(sys.stdin)


def _write(journal: Journal, changes: Sequence[Change]) -> list[Event]:
    """Append *changes* in one transaction; every one must be written."""
    results = journal.write_batch(changes)
    refused = [r for r in results if isinstance(r, MoatLogError)]
    if refused:
        raise JournalError(
            f"{len(refused)} of {len(results)} restore events were refused, "
            f"the others were written: {refused[0]}"
        )
    return [r for r in results if isinstance(r, Event)]


def _print_restore_json(
    until: int, prefix: Path, source: str, differences: Sequence[Difference], written: list[Event]
) -> None:
    print_json(
        {
            **_moment_json("until", until),
            "prefix": str(prefix),
            "source": source,
            "changes": [_difference_json(d, "then", "now") for d in differences],
            "written": [event_json(event) for event in written],
        }
    )


# --- diff ----------------------------------------------------------------------------


@cli.command(
    "diff",
    # Relative times are arguments here ("diff -1h now"): keep them from being
    # read as options, which is why this command has no -h (only --help).
    context_settings={"ignore_unknown_options": True, "help_option_names": ["--help"]},
)
@click.argument("t1")
@click.argument("t2")
@click.option("--path", "prefix", metavar="PREFIX", help="Only PREFIX and the paths below it.")
@_json_option
@click.pass_obj
def diff_cmd(settings: Settings, *, t1: str, t2: str, prefix: str | None, as_json: bool) -> None:
    """Show the paths whose value differs between T1 and T2.

    T1 and T2: ISO 8601, relative (-10m), 'now' or an event id NODE:SEQ.  A
    path differs when it has a value at one moment and none at the other, or
    two different values (1, 1.0 and true are different).  In the table '-'
    means no event yet and 'deleted' a deleted path.

    \b
    Example:
      moat-log diff 2026-11-21T06:00 now --path home.kitchen
      moat-log diff -1h now
    """
    as_json = as_json or settings.as_json
    target = Path.parse(prefix) if prefix is not None else ROOT
    with settings.journal() as journal:
        first, second = resolve_time(journal, t1, "T1"), resolve_time(journal, t2, "T2")
        assert first is not None and second is not None
        with progress_bar(journal.last_position, "comparing") as progress:
            differences = diff(journal, first, second, prefix=target, progress=progress)
            _finish(progress, journal)
        _say_what_was_thinned(journal, min(first, second), target)
    if as_json:
        print_json(
            {**_moment_json("t1", first), **_moment_json("t2", second), "prefix": str(target),
             "differences": [_difference_json(d, "before", "after") for d in differences]}
        )  # fmt: skip
    elif differences:
        header = ("PATH", f"AT {format_time(first)}", f"AT {format_time(second)}")
        _print_differences(header, differences, now_first=False)
    else:
        click.echo(
            f"no differences{_scope(target)} between {format_time(first)} "
            f"and {format_time(second)}",
            err=True,
        )


def _difference_json(difference: Difference, before: str, after: str) -> dict[str, Any]:
    return {
        "path": str(difference.path),
        before: None if difference.before is None else event_json(difference.before),
        after: None if difference.after is None else event_json(difference.after),
    }


# --- tables --------------------------------------------------------------------------


def _print_differences(
    header: tuple[str, str, str], differences: Sequence[Difference], *, now_first: bool
) -> None:
    rows = []
    for d in differences:
        first, second = (d.after, d.before) if now_first else (d.before, d.after)
        rows.append((str(d.path), _cell(first), _cell(second)))
    print_table(header, rows)


def _cell(event: Event | None) -> str:
    if event is None:
        return _NO_EVENT
    return _DELETED if event.op is Op.DELETE else value_text(event.value)
