"""Retention: ``compact`` thins the journal out by the config's rules; ``peer`` lists and retires.

Compaction removes only what every known peer has stated holding
(docs/decisions.md, "Retention and compaction"); these commands show who
holds it back and let an operator retire a peer that will not come back.
"""

from __future__ import annotations

import time
from pathlib import Path as FsPath
from typing import Any

import asyncclick as click

from moat_log.errors import InvalidInputError
from moat_log.timespec import format_time

from ._main import Settings, cli, config_file_option
from ._output import human_bytes, print_fields, print_json, print_table

_CONFIG = config_file_option("The node's TOML config, for its [retention] rules and [sync] peers.")


def _load(settings: Settings, config_file: FsPath | None) -> Any:
    from moat_log.node import load_config

    return load_config(config_file, data_dir=settings.data_dir)


@cli.command()
@_CONFIG
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
@click.option(
    "--copy",
    "copy_to",
    type=click.Path(file_okay=False, path_type=FsPath),
    metavar="DIR",
    help="Afterwards write a compacted copy of the journal to DIR (gives disk space back).",
)
@click.pass_obj
def compact(
    settings: Settings, config_file: FsPath | None, dry_run: bool, copy_to: FsPath | None
) -> None:
    """Apply the config's retention rules now: roll-ups in, old raw readings out.

    Removes only events every known peer has stated holding, never a path's
    current value.  Safe while the node runs (LMDB serialises the writes).
    LMDB never shrinks its file: --copy DIR writes a compacted copy to give
    the space back (see docs/operator-guide.md, "Retention").

    \b
    Example:
      moat-log compact --config /etc/moat-log/node.toml --dry-run
      moat-log compact --config node.toml --copy /var/lib/moat-log.new/journal
    """
    from moat_log.node._retention import unanswered_peers
    from moat_log.projections import kv_view
    from moat_log.projections.compactor import compact_journal

    config = _load(settings, config_file)
    rules = config.retention.rules
    addresses = [str(peer) for peer in config.sync.peers] if config.sync is not None else []
    with settings.journal() as journal:
        unanswered = unanswered_peers(journal, addresses)
        report = compact_journal(
            journal,
            kv_view(journal),
            rules,
            now=time.time_ns(),
            unanswered=len(unanswered),
            dry_run=dry_run,
        )
        if copy_to is not None and not dry_run:
            copy_journal(journal, copy_to)
    frontier = report.frontier
    assert frontier is not None
    result = {
        "dry_run": dry_run,
        "rules": len(rules),
        "paths": report.paths,
        "removed": report.removed,
        "removed_bytes": report.removed_bytes,
        "rollups": report.rollups,
        "kept_unconfirmed": report.kept_unconfirmed,
        "peers_counted": [record.name for record in frontier.counted],
        "peers_retired": sorted(frontier.retired),
        "peers_unanswered": unanswered,
    }
    if settings.as_json:
        print_json(result)
        return
    if not rules:
        click.echo("no [retention] rules in the config: everything is kept for ever")
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {report.removed} events ({human_bytes(report.removed_bytes)}), "
        f"{'would write' if dry_run else 'wrote'} {report.rollups} roll-ups, "
        f"over {report.paths} paths"
    )
    if report.kept_unconfirmed:
        names = ", ".join(record.name for record in frontier.counted) or "-"
        click.echo(
            f"kept {report.kept_unconfirmed} old events that not every peer has confirmed "
            f"holding yet (peers counted: {names}); 'moat-log peer ls' shows them"
        )
    for address in unanswered:
        click.echo(f"peer {address} has never answered: nothing is removed until it does")


def copy_journal(journal: Any, target: FsPath) -> None:
    """A compacting copy of the journal's LMDB file (a consistent snapshot) into *target*."""
    target.mkdir(parents=True, exist_ok=True)
    if (target / "data.mdb").exists():
        raise InvalidInputError(f"{target} holds a journal already; give an empty directory")
    journal.copy_to(target)


@cli.group()
def peer() -> None:
    """The peers this node knows: what they confirmed holding, retirement."""


@peer.command("ls")
@_CONFIG
@click.pass_obj
def peer_ls(settings: Settings, config_file: FsPath | None) -> None:
    """List known peers: last seen, what they confirmed holding, retired or not.

    \b
    Example:
      moat-log peer ls
      moat-log --json peer ls
    """
    from moat_log.projections import kv_view
    from moat_log.projections.compactor import frontier_of

    config = _load(settings, config_file) if config_file is not None else None
    away_limit = None if config is None else config.retention.away_limit
    now = time.time_ns()
    with settings.journal() as journal:
        held = journal.summary()
        records = journal.peers()
        frontier = frontier_of(journal, kv_view(journal))
    rows: list[dict[str, Any]] = []
    for name, record in sorted(records.items()):
        retired = frontier.retired.get(name)
        away = now - record.seen
        rows.append(
            {
                "peer": name,
                "address": record.address,
                "last_seen": record.seen,
                "first_seen": record.first,
                "confirmed": record.held.count,
                "lacks": (held - record.held).count,
                "retired": retired,
                "away_too_long": retired is None and away_limit is not None and away > away_limit,
            }
        )
    if settings.as_json:
        print_json({"peers": rows, "frontier": frontier.ids.count})
        return
    if not rows:
        click.echo("no known peers: no sync link has gone live yet")
        return
    print_table(
        ("PEER", "LAST SEEN", "CONFIRMED", "LACKS", "STATE"),
        [
            (
                str(row["peer"]),
                format_time(row["last_seen"]),
                str(row["confirmed"]),
                str(row["lacks"]),
                "retired"
                if row["retired"] is not None
                else ("away too long: retire it?" if row["away_too_long"] else "counted"),
            )
            for row in rows
        ],
    )
    click.echo()
    print_fields({"compaction may remove": f"{frontier.ids.count} events every peer confirmed"})


@peer.command("retire")
@click.argument("name")
@click.pass_obj
def peer_retire(settings: Settings, name: str) -> None:
    """Stop peer NAME from holding compaction back, on every node.

    Writes the event :.moat.peer.NAME.retired, which replicates.  If NAME
    links again later it counts again, and gets the current state, not the
    history removed meanwhile.

    \b
    Example:
      moat-log peer retire pi3
    """
    from moat_log.journal.change import Change
    from moat_log.projections.compactor import retirement_path

    with settings.journal() as journal:
        records = journal.peers()
        if name not in records:
            known = ", ".join(sorted(records)) or "none"
            raise InvalidInputError(f"no known peer {name!r} (known: {known})")
        record = records[name]
        value = {"by": journal.node, "last_seen": record.seen}
        event = journal.append(Change(retirement_path(name), value, source="cli:peer-retire"))
    if settings.as_json:
        print_json({"peer": name, "retired": event.hlc, "event": f"{event.origin}:{event.seq}"})
        return
    click.echo(
        f"retired {name} (last seen {format_time(record.seen)}) as event "
        f"{event.origin}:{event.seq}; it no longer holds compaction back"
    )
