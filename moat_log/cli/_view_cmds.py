"""Commands that read the KV view: ``get``, ``ls``, ``conflicts``, ``projection``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncclick as click

from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.path import ROOT, Path
from moat_log.timespec import format_time

from ._main import CommandError, MoatLogGroup, Settings, cli, printable
from ._node_access import open_access
from ._output import (
    VALUE_COLUMNS,
    event_json,
    json_value,
    print_json,
    print_table,
    value_row,
    value_text,
)
from ._projections import print_side_effects, stored_side_effects

if TYPE_CHECKING:
    from moat_log.projections.journal_chain import JournalChainSource
    from moat_log.projections.why import Chain


def _path_argument(text: str | None) -> Path:
    return ROOT if text is None else Path.parse(text)


@cli.command("get")
@click.argument("path")
@click.pass_obj
async def get(settings: Settings, *, path: str) -> None:
    """Show the current value of PATH: who set it, when, and which event.

    Exits with status 1 if PATH has no value (never set, or deleted).
    Asks the node serving the data directory (or --connect); when none
    runs, reads the journal directly.

    \b
    Example:
      moat-log get home.kitchen.setpoint
      moat-log --json get home.kitchen.setpoint
    """
    target = Path.parse(path)
    async with open_access(settings) as access:
        event = await access.current(target)
    if event is None or event.op is Op.DELETE:
        why = "it was never set" if event is None else f"deleted by {event.id}"
        raise CommandError(f"{target} has no value: {why}")
    if settings.as_json:
        print_json(event_json(event))
        return
    click.echo(value_text(event.value))
    click.echo(
        f"  set by {event.id} at {format_time(event.hlc)}"
        + (f" from {printable(event.source)}" if event.source else ""),
        err=True,
    )


@cli.command("ls")
@click.argument("path", required=False)
@click.option("--recursive", "-r", is_flag=True, help="Every value below PATH, not only children.")
@click.pass_obj
async def ls(settings: Settings, *, path: str | None, recursive: bool) -> None:
    """List the children of PATH, or with --recursive every value below it.

    With --json and --recursive the output is one JSON object mapping each
    path (text form) to its value, in path order: two nodes holding the same
    events print identical output.  Asks the node serving the data directory
    (or --connect); when none runs, reads the journal directly.

    \b
    Example:
      moat-log ls home
      moat-log --json ls home --recursive
    """
    prefix = _path_argument(path)
    async with open_access(settings) as access:
        if recursive:
            events = await access.subtree(prefix)
        else:
            children = await access.children(prefix)
    if not recursive:
        if settings.as_json:
            print_json([str(prefix / child) for child in children])
        else:
            for child in children:
                click.echo(printable(str(prefix / child)))
        return
    if settings.as_json:
        print_json({str(event.path): json_value(event.value) for event in events})
        return
    print_table(VALUE_COLUMNS, [value_row(event) for event in events])


@cli.command("conflicts")
@click.argument("path", required=False)
@click.option(
    "--chains", is_flag=True, help="Show both sides with their chains of causes, as 'why' does."
)
@click.pass_obj
async def conflicts(settings: Settings, *, path: str | None, chains: bool) -> None:
    """List concurrent writes that lost: overwritten by a writer that had not seen them.

    With --chains, each conflict is followed by the chain of causes of the
    winner and of the write that lost (as 'moat-log why' shows them), so you
    see where each side came from; with --json, as "winner_chain" and
    "loser_chain".

    \b
    Example:
      moat-log conflicts home
      moat-log conflicts --chains home.hall
    """
    prefix = _path_argument(path)
    with settings.journal() as journal:
        from moat_log.projections import kv_view
        from moat_log.projections.journal_chain import JournalChainSource

        found = [
            (c.path, c.winner, journal.get(c.loser) or c.loser)
            for c in kv_view(journal).conflicts(prefix)
        ]
        source = JournalChainSource(journal)
        sides = [_chains_of(winner, loser, source) for _, winner, loser in found] if chains else []
    if settings.as_json:
        print_json(
            [
                {
                    "path": str(path),
                    "winner": str(winner.id),
                    "winner_value": json_value(winner.value),
                    "loser": str(loser.id if isinstance(loser, Event) else loser),
                    "loser_value": json_value(loser.value) if isinstance(loser, Event) else None,
                    **(_chains_json(*sides[number]) if chains else {}),
                }
                for number, (path, winner, loser) in enumerate(found)
            ]
        )
        return
    if not found:
        click.echo(f"no conflicts under {printable(str(prefix))}")
        return
    rows = [
        (
            str(path),
            str(winner.id),
            _shown(winner),
            str(loser.id) if isinstance(loser, Event) else str(loser),
            _shown(loser) if isinstance(loser, Event) else "?",
        )
        for path, winner, loser in found
    ]
    print_table(("PATH", "WINNER", "VALUE", "LOST", "LOST VALUE"), rows)
    if chains:
        _print_sides(found, sides)


def _print_sides(
    found: list[tuple[Path, Event, Event | EventId]], sides: list[tuple[Chain, Chain | None]]
) -> None:
    """Each conflict's winner and loser with their chains of causes."""
    from ._chains import print_chain

    for (where, winner, loser), (winner_chain, loser_chain) in zip(found, sides, strict=True):
        lost = loser.id if isinstance(loser, Event) else loser
        click.echo(f"\n{printable(str(where))}: {winner.id} won over {lost}\n  the winner:")
        print_chain(winner_chain, indent="    ")
        click.echo("  the write that lost:")
        if loser_chain is None:
            click.echo(f"    {lost} is no longer held here")
        else:
            print_chain(loser_chain, indent="    ")


def _chains_of(
    winner: Event, loser: Event | EventId, source: JournalChainSource
) -> tuple[Chain, Chain | None]:
    from moat_log.projections.why import walk_chain

    lost = walk_chain(loser, source) if isinstance(loser, Event) else None
    return walk_chain(winner, source), lost


def _chains_json(winner: Chain, loser: Chain | None) -> dict[str, Any]:
    from ._chains import chain_json

    return {
        "winner_chain": chain_json(winner),
        "loser_chain": None if loser is None else chain_json(loser),
    }


def _shown(event: Event) -> str:
    return "(deleted)" if event.op is Op.DELETE else value_text(event.value)


@cli.group("projection", cls=MoatLogGroup)
async def projection() -> None:
    """Inspect and rebuild the views derived from the journal."""


@projection.command("list")
@click.pass_obj
async def projection_list(settings: Settings) -> None:
    """Show each view and side-effect projection with its checkpoint and lag.

    A view's checkpoint is the last position folded into it.  A side-effect
    projection's is the last position it has durably acted on; its state
    (running, retrying with the last error) comes from the node running it,
    'not running' when none does.

    \b
    Example:
      moat-log projection list
      moat-log --json projection list
    """
    async with open_access(settings) as access:
        result = await access.status()
    last = result["journal"]["last_position"]
    views = result["views"]
    side_effects = result.get("side_effects")
    if side_effects is None:  # the journal read directly: only what it stores
        side_effects = stored_side_effects(settings)
    if settings.as_json:
        print_json(
            {
                "journal": last,
                "views": {
                    name: {**view, "lag": last - view["checkpoint"]} for name, view in views.items()
                },
                "side_effects": side_effects,
            }
        )
        return
    print_table(
        ("VIEW", "VERSION", "CHECKPOINT", "JOURNAL"),
        [(name, str(v["version"]), str(v["checkpoint"]), str(last)) for name, v in views.items()],
    )
    print_side_effects(side_effects, last)


@projection.command("rebuild")
@click.argument("name")
@click.pass_obj
async def projection_rebuild(settings: Settings, *, name: str) -> None:
    """Rebuild the view NAME from the journal, in one transaction.

    The result is byte-identical to the view it replaces, unless that was
    damaged.

    \b
    Example:
      moat-log projection rebuild kv
    """
    with settings.journal() as journal:
        folded = journal.rebuild_view(name)
    if settings.as_json:
        print_json({"view": name, "events": folded})
    else:
        click.echo(f"rebuilt the view {name!r} from {folded} events")
