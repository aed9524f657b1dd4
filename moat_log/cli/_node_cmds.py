"""Commands of the node: ``serve`` runs one, ``status`` asks it (or the journal)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path as FsPath
from typing import Any

import asyncclick as click
from asyncclick.core import ParameterSource

from moat_log.timespec import format_time, short_time

from ._main import Settings, cli, config_file_option
from ._node_access import open_access
from ._output import human_bytes, print_fields, print_json, print_table
from ._projections import (
    print_adapters,
    print_schedules,
    print_side_effects,
    stored_side_effects,
)


@cli.command()
@config_file_option("The node's TOML config [default: none, the embedded default].")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="What the node logs to stderr.",
)
@click.pass_context
async def serve(ctx: click.Context, config_file: FsPath | None, log_level: str) -> None:
    """Run the node in the foreground until SIGTERM or Ctrl-C.

    Serves the journal to clients (scripts, `moat-log status`) on the Unix
    socket DATA_DIR/moat-log.sock and on 127.0.0.1:27586, unless a config
    file says otherwise (docs/node.md).  Creates the journal if there is
    none, named after the host unless the config names the node.  --data-dir
    overrides the config file's data_dir.

    Prints where it listens, then 'ready'.

    \b
    Example:
      moat-log serve
      moat-log --data-dir /var/lib/moat-log serve --config /etc/moat-log/node.toml
    """
    from moat_log.node import load_config, run_node
    from moat_log.node._node import Node

    settings: Settings = ctx.obj
    root = ctx.find_root()
    explicit = root.get_parameter_source("data_dir") in (
        ParameterSource.COMMANDLINE,
        ParameterSource.ENVIRONMENT,
    )
    use_data_dir = explicit or config_file is None
    config = load_config(config_file, data_dir=settings.data_dir if use_data_dir else None)
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def ready(node: Node) -> None:
        click.echo(f"node {node.name}: data directory {config.data_dir}")
        for address in node.addresses:
            click.echo(f"listening on {address}")
        if node.sync is not None:
            for address in node.sync.listen:
                click.echo(f"sync listening on {address}")
        click.echo("ready")
        sys.stdout.flush()

    await run_node(config, ready=ready)


@cli.command()
@click.pass_obj
async def status(settings: Settings) -> None:
    """Show the node: running or not, its journal, views, side effects, adapters and connections.

    Asks the node serving the data directory (or --connect); when none
    runs, reads the journal directly and says 'not running'.

    \b
    Example:
      moat-log status
      moat-log --json status
    """
    async with open_access(settings) as access:
        result = await access.status()
    if not result["running"]:  # the journal read directly: its stored checkpoints
        result["side_effects"] = stored_side_effects(settings)
    if settings.as_json:
        print_json(result)
        return
    _print_status(result)


def _print_scripts(scripts: dict[str, dict[str, Any]]) -> None:
    """A table of the node's scripts (nothing when there are none)."""
    if not scripts:
        return
    click.echo()
    print_table(
        ("SCRIPT", "STATE", "WHERE", "VERSION", "STARTS", "CALLS", "ERRORS", "LAST ERROR"),
        [
            (
                name,
                str(entry["state"]),
                str(entry["where"]) or "-",
                str(entry["version"]),
                str(entry["starts"]),
                str(entry["calls"]),
                str(entry["errors"]),
                entry["last_error"] or "-",
            )
            for name, entry in scripts.items()
        ],
    )


def _print_status(result: dict[str, Any]) -> None:
    journal = result["journal"]
    state = f"running, pid {result.get('pid')}" if result["running"] else "not running"
    fields = {"node": f"{result['node']} ({state})"}
    if result["running"]:
        fields["software"] = str(result.get("software"))
        fields["listen"] = ", ".join(result.get("listen", [])) or "-"
        fields["connections"] = str(result.get("connections"))
    fields.update(
        {
            "clock": format_time(result["clock"]) if result["clock"] else "(no events yet)",
            "journal": journal["path"],
            "events": str(journal["events"]),
            "last position": str(journal["last_position"]),
            "data file": human_bytes(journal["file_bytes"]),
        }
    )
    print_fields(fields)
    click.echo()
    views = result.get("views", {})
    print_table(
        ("VIEW", "VERSION", "CHECKPOINT"),
        [(name, str(v["version"]), str(v["checkpoint"])) for name, v in views.items()],
    )
    print_side_effects(result.get("side_effects", {}), journal["last_position"])
    print_adapters(result.get("adapters", {}))
    _print_scripts(result.get("scripts", {}))
    print_schedules(result.get("ems", {}))
    sync = result.get("sync")
    if sync is not None:
        _print_sync(sync)


def _print_sync(sync: dict[str, Any]) -> None:
    """The peers: live links, peers gone since (with what they held), unreachable addresses."""
    click.echo()
    click.echo(f"sync listening on {', '.join(sync['listen']) or '- (dials out only)'}")
    rows = [
        (
            name,
            ("dialled" if peer["dialled"] else "accepted") if peer["connected"] else "down",
            short_time(peer["since"] if peer["connected"] else peer["until"]),
            str(peer["holds"]),
            str(peer["missing_here"]),
            str(peer.get("missing_there", "-")),
            f"{peer['events_in']}/{peer['events_out']}",
            peer.get("last_error") or "-",
        )
        for name, peer in sync["peers"].items()
    ]
    rows += [
        (address, "not connected", "-", "-", "-", "-", "-", dial["last_error"] or "-")
        for address, dial in sync["dialling"].items()
        if not dial["connected"] and dial["peer"] not in sync["peers"]
    ]
    heads = ("PEER", "LINK", "SINCE", "HOLDS", "BEHIND HERE", "BEHIND THERE", "IN/OUT")
    if any(row[-1] != "-" for row in rows):
        print_table((*heads, "LAST ERROR"), rows)
    else:
        print_table(heads, [row[:-1] for row in rows])


@cli.command("make-verifier")
@click.option(
    "--token",
    is_flag=True,
    help="Make a new random token for a script (printed once) and its verifier.",
)
@click.option(
    "--from-file",
    "password_file",
    type=click.Path(dir_okay=False, exists=True, path_type=FsPath),
    metavar="FILE",
    help="Read the password from FILE's first line [default: a prompt, or stdin's first line].",
)
@click.pass_obj
async def make_verifier(settings: Settings, token: bool, password_file: FsPath | None) -> None:
    """Print the verifier of a password (or of a new token) for a node's [client.users].

    The node stores the verifier, never the password: put the line into the
    user's table as  verifier = "...".  The password is asked for twice
    (hidden), or read from --from-file or standard input; never give it on
    the command line, where other users see it.

    \b
    Example:
      moat-log make-verifier                  # asks for the password
      moat-log make-verifier --token          # a token for a script, and its verifier
      moat-log make-verifier --from-file alice.password
    """
    from moat_log.protocol import make_token_verifier
    from moat_log.protocol import make_verifier as password_verifier

    if token:
        import secrets

        if password_file is not None:
            raise click.UsageError("--token makes a new token; it reads no --from-file")
        new_token = secrets.token_urlsafe(32)
        verifier = str(make_token_verifier(new_token))
        if settings.as_json:
            print_json({"token": new_token, "verifier": verifier})
            return
        click.echo(f"token:    {new_token}   (give it to the script as $MOAT_LOG_TOKEN)")
        click.echo(f'verifier = "{verifier}"')
        return
    password = await _read_password(password_file)
    verifier = str(password_verifier(password))
    if settings.as_json:
        print_json({"verifier": verifier})
        return
    click.echo(f'verifier = "{verifier}"')


def _first_lines(path: FsPath) -> list[str]:
    return path.read_text(encoding="utf-8", errors="strict").splitlines()


async def _read_password(path: FsPath | None) -> str:
    from moat_log.errors import InvalidInputError

    if path is not None:
        text = _first_lines(path)
    elif sys.stdin.isatty():
        asked = await click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
        text = [str(asked)]
    else:
        text = sys.stdin.read().splitlines()
    password = text[0] if text else ""
    if not password:
        where = path or "standard input"
        raise InvalidInputError(f"{where}: no password (its first line is empty)")
    return password
