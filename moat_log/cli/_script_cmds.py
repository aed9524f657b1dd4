"""``moat-log script put/get/ls/run/log`` and ``moat-log errors``: scripts in the node.

See docs/scripting.md, "Scripts in the node".
"""

from __future__ import annotations

import sys
from typing import Any

import asyncclick as click

from moat_log.errors import InvalidInputError, ScriptEntryError
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.reserved import ERRORS, SCRIPTS
from moat_log.scripts.entry import ScriptEntry, script_name, script_path, script_value
from moat_log.timespec import format_time

from ._main import MoatLogGroup, Settings, cli, printable
from ._node_access import open_access
from ._output import event_json, json_value, print_json, print_table, value_text
from ._values import default_source, parse_value


@cli.group("script", cls=MoatLogGroup)
def script_group() -> None:
    """Python scripts stored in the journal and run by the nodes.

    A script is stored at :.moat.script.NAME: its code (which defines
    'async def main(script)'), its parameters and its run entry (where,
    when, as whom).  Every node follows the scripts and runs those meant
    for it; a new version replaces the running one without a restart.
    Stored code runs with the node's process rights: see docs/scripting.md.
    """


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--param {pair!r}: use NAME=VALUE (VALUE as JSON or text)")
        params[key] = parse_value(text)
    return params


@script_group.command("put")
@click.argument("name")
@click.argument("file", type=click.File("r"))
@click.option("--on-start", is_flag=True, help="Call main once when the script starts.")
@click.option(
    "--on-change", multiple=True, metavar="PATH", help="Call main on each change under PATH."
)
@click.option("--every", type=float, metavar="SECONDS", help="Call main every SECONDS.")
@click.option(
    "--where",
    default="any",
    show_default=True,
    help="'any' (one live node), 'every' (each node) or 'node:NAME'.",
)
@click.option("--user", "run_as", metavar="USER", help="Run with this user's permissions.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter.")
@click.option(
    "--retry", type=float, default=1.0, show_default=True, help="First wait after an error (s)."
)
@click.option(
    "--retry-max",
    type=float,
    default=300.0,
    show_default=True,
    help="Longest wait after errors (s).",
)
@click.option("--disabled", is_flag=True, help="Store it, but run it nowhere.")
@click.option("--doc", default="", help="What the script does, for people.")
@click.pass_obj
async def put_script(
    settings: Settings,
    *,
    name: str,
    file: Any,
    on_start: bool,
    on_change: tuple[str, ...],
    every: float | None,
    where: str,
    run_as: str | None,
    params: tuple[str, ...],
    retry: float,
    retry_max: float,
    disabled: bool,
    doc: str,
) -> None:
    """Store script NAME with the code in FILE ('-': stdin) and its run entry.

    The node refuses code that does not compile or has no 'async def
    main(script)', and a run entry that says neither --on-start,
    --on-change nor --every.  A user logged in over TCP (--connect with
    the global --user) may only store scripts that run as that user: the
    script's --user defaults to them.

    \b
    Examples:
      moat-log script put hall-light follow.py --on-change home.hall.switch \\
          --param light=home.hall.light
      moat-log script put heating heating.py --on-start --every 60 \\
          --on-change sensor.living.temp --user heating --param comfort=21
    """
    path = script_path(name)
    if run_as is None and settings.connect is not None:
        run_as = settings.user  # the only user a logged-in user may name
    value = script_value(
        file.read(),
        on_start=on_start,
        on_change=on_change,
        every=every,
        where=where,
        user=run_as,
        params=_params(params),
        retry=retry,
        retry_max=retry_max,
        enabled=not disabled,
        doc=doc,
    )
    async with open_access(settings) as access:
        written = await access.write(Change(path, value, source=default_source()))
    if settings.as_json:
        print_json({"id": str(written.id), "script": name, **json_value(value)})
        return
    click.echo(f"{written.id}  script {name} stored")


async def _entry(settings: Settings, name: str) -> tuple[Event, ScriptEntry]:
    async with open_access(settings) as access:
        event = await access.current(script_path(name))
    if event is None or event.op is Op.DELETE:
        raise InvalidInputError(f"no script {name} is stored ('moat-log script ls' lists them)")
    return event, ScriptEntry.from_value(name, event.value)


@script_group.command("get")
@click.argument("name")
@click.option("--code", "code_only", is_flag=True, help="Print only the code.")
@click.pass_obj
async def get_script(settings: Settings, name: str, code_only: bool) -> None:
    """Show script NAME: its run entry, parameters and code.

    \b
    Example:
      moat-log script get hall-light
      moat-log script get --code hall-light > follow.py
    """
    event, entry = await _entry(settings, name)
    if code_only:
        click.echo(entry.source, nl=not entry.source.endswith("\n"))
        return
    if settings.as_json:
        print_json({"script": name, "id": str(event.id), **json_value(entry.to_value())})
        return
    run = entry.run.to_value()
    click.echo(
        f"script {name}  ({event.id} by {printable(event.source)}, {format_time(event.hlc)})"
    )
    if entry.doc:
        click.echo(f"  doc:    {printable(entry.doc)}")
    click.echo(f"  run:    {value_text(run)}")
    if entry.params:
        click.echo(f"  params: {value_text(dict(entry.params))}")
    click.echo("  code:")
    for line in entry.source.splitlines():
        click.echo(f"    {printable(line)}")


def _when(entry: ScriptEntry) -> str:
    run = entry.run
    parts = ["start"] if run.on_start else []
    parts += [f"change {path}" for path in run.on_change]
    if run.every is not None:
        parts.append(f"every {run.every:g} s")
    return ", ".join(parts)


@script_group.command("ls")
@click.pass_obj
async def list_scripts(settings: Settings) -> None:
    """List the stored scripts: where and when they run, as whom, and (from the node) their state.

    \b
    Example:
      moat-log script ls
    """
    async with open_access(settings) as access:
        events = await access.subtree(SCRIPTS)
        status = await access.status()
    running = status.get("scripts", {})
    rows = []
    for event in events:
        name = script_name(event.path)
        if name is None:
            continue
        try:
            entry = ScriptEntry.from_value(name, event.value)
        except ScriptEntryError as exc:
            rows.append((name, "-", "-", "-", "broken", str(exc)))
            continue
        state = running.get(name, {})
        rows.append(
            (
                name,
                str(entry.run.where) + ("" if entry.run.enabled else " (disabled)"),
                _when(entry),
                entry.run.user or "-",
                state.get("state", "-") if status.get("running") else "(no node)",
                state.get("last_error") or "-",
            )
        )
    if settings.as_json:
        keys = ("script", "where", "when", "user", "state", "last_error")
        for row in rows:
            print_json(dict(zip(keys, row, strict=True)))
        return
    print_table(("SCRIPT", "WHERE", "WHEN", "USER", "STATE", "LAST ERROR"), rows)


@script_group.command("run")
@click.argument("name")
@click.option(
    "--trigger",
    metavar="PATH",
    help="Call main as if PATH's current value had just changed (script.trigger is its event).",
)
@click.pass_obj
async def run_script(settings: Settings, name: str, trigger: str | None) -> None:
    """Run script NAME once, here and now, and show what it raised.

    The stored code's main is called once in this process, with the
    script's parameters and a client of the node serving the data
    directory (or of a node this command runs itself when none does).
    Its writes carry source script:NAME like those of the node's instance;
    the run entry's user is not applied (this command's own rights are).
    The node's own instance goes on meanwhile.  Exit status 1 if main raised.

    \b
    Example:
      moat-log script run hall-light --trigger home.hall.switch
    """
    from moat_log.client import NodeNotRunningError, open_client
    from moat_log.node import open_node
    from moat_log.scripts.runner import load_main

    settings.require_local()
    _, entry = await _entry(settings, name)
    main = load_main(entry)
    try:
        async with open_client(data_dir=settings.data_dir) as client:
            failed = await _run_once(client, entry, main, trigger)
    except NodeNotRunningError:
        async with open_node(data_dir=settings.data_dir) as client:
            failed = await _run_once(client, entry, main, trigger)
    if failed:
        sys.exit(1)


async def _run_once(client: Any, entry: ScriptEntry, main: Any, trigger: str | None) -> bool:
    import traceback

    from moat_log.scripts.context import ScriptContext

    script = ScriptContext(entry.name, client.node, entry.params, client)
    script.reason = "run"
    if trigger is not None:
        script.trigger = await client.get(trigger)
        if script.trigger is None:
            raise InvalidInputError(f"--trigger {trigger}: the path has no value")
    try:
        await main(script)
    except Exception as exc:
        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
        click.echo(
            f"moat-log: error: script {entry.name} raised {type(exc).__name__}: {exc}", err=True
        )
        return True
    click.echo(f"script {entry.name}: main returned")
    return False


@script_group.command("log")
@click.argument("name")
@click.option("--since", default="-1d", show_default=True, help="Writes since this time.")
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="The newest N writes.")
@click.pass_obj
def script_log(settings: Settings, name: str, since: str, limit: int) -> None:
    """Show script NAME's versions, its error records and its recent writes.

    Reads the journal directly (also while a node runs).

    \b
    Example:
      moat-log script log hall-light --since -1h
    """
    from moat_log.projections import kv_view

    from ._values import resolve_time

    path = script_path(name)
    source = f"script:{name}"
    with settings.journal() as journal:
        versions = list(journal.history(path))
        errors = list(kv_view(journal).walk(ERRORS / "script" / name))
        start = resolve_time(journal, since, "--since")
        writes = [event for event in journal.by_time(start) if event.source == source][-limit:]
    if settings.as_json:
        for kind, events in (("version", versions), ("error", errors), ("write", writes)):
            for event in events:
                print_json({"kind": kind, **event_json(event)})
        return
    click.echo(f"script {name}: {len(versions)} versions")
    for event in versions:
        what = "deleted" if event.op is Op.DELETE else _version_text(name, event)
        click.echo(f"  {event.id}  {format_time(event.hlc)}  {printable(event.source)}  {what}")
    _print_errors(errors)
    click.echo(f"writes since {since} (newest {limit}):")
    for event in writes:
        value = "deleted" if event.op is Op.DELETE else value_text(event.value)
        cause = f"  (cause {event.cause})" if event.cause else ""
        click.echo(
            f"  {event.id}  {format_time(event.hlc)}  {printable(str(event.path))} = {value}{cause}"
        )


def _version_text(name: str, event: Event) -> str:
    try:
        return _when(ScriptEntry.from_value(name, event.value))
    except ScriptEntryError as exc:
        return f"(broken: {exc})"


def _print_errors(errors: list[Event]) -> None:
    records = [
        event.value for event in errors if event.op is Op.SET and isinstance(event.value, dict)
    ]
    if not records:
        click.echo("no error records")
        return
    print_table(
        ("SCRIPT", "NODE", "COUNT", "FIRST", "LAST", "MESSAGE"),
        [
            (
                str(record.get("script")),
                str(record.get("node")),
                str(record.get("count")),
                format_time(record["first"]) if "first" in record else "-",
                format_time(record["last"]) if "last" in record else "-",
                str(record.get("message")),
            )
            for record in records
        ],
    )


@cli.command("errors")
@click.option("--traceback", "show_traceback", is_flag=True, help="Show each record's traceback.")
@click.pass_obj
async def errors(settings: Settings, show_traceback: bool) -> None:
    """List the error records: what failed on which node, how often, first and last seen.

    Records stay until the script gets a new version; remove one with
    'moat-log delete :.moat.error.script.NAME.NODE'.

    \b
    Example:
      moat-log errors
      moat-log errors --traceback
    """
    async with open_access(settings) as access:
        events = await access.subtree(ERRORS)
    if settings.as_json:
        for event in events:
            print_json({"path": str(event.path), "id": str(event.id), **json_value(event.value)})
        return
    _print_errors(events)
    if show_traceback:
        for event in events:
            record = event.value
            if isinstance(record, dict) and record.get("traceback"):
                click.echo(f"\n{record.get('script')} on {record.get('node')}:")
                click.echo(str(record["traceback"]).rstrip())
