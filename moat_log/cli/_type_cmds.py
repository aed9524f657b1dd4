"""``moat-log type set/get/ls/check``: typed paths (docs/types.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import asyncclick as click

from moat_log.errors import InvalidInputError, SchemaError
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.path_types import ANY_SEGMENT, ANY_SEGMENTS, PathType, TypeRegistry, pattern_of
from moat_log.reserved import TYPES
from moat_log.schema import TypeDefinition

from ._main import MoatLogGroup, Settings, cli, printable
from ._node_access import open_access
from ._output import counted, json_value, print_json, print_table, value_text
from ._values import default_source, from_json_value, parse_value


@cli.group("type", cls=MoatLogGroup)
def type_group() -> None:
    """Typed paths: a schema bound to a path pattern, checked on every local write.

    A pattern is a path whose segment '+' stands for any one segment and '#'
    for one or more (home.+.temp, home.#).  The type is stored at
    :.moat.type.PATTERN, so it replicates and has history like any value.
    See docs/types.md.
    """


def _type_path(pattern: str) -> Path:
    parsed = Path.parse(pattern)
    if not parsed:
        raise InvalidInputError("a type's pattern needs at least one segment (# for everything)")
    return TYPES + parsed


@type_group.command("set")
@click.argument("pattern")
@click.argument("schema", required=False)
@click.option("--good", "good", multiple=True, metavar="VALUE", help="A value that fits (JSON).")
@click.option("--bad", "bad", multiple=True, metavar="VALUE", help="A value that does not fit.")
@click.option("--doc", default="", help="What the type means, for people.")
@click.option(
    "--file",
    "file",
    type=click.File("r"),
    help="The whole definition as JSON {schema, good, bad, doc} ('-': stdin).",
)
@click.pass_obj
async def set_type(
    settings: Settings,
    *,
    pattern: str,
    schema: str | None,
    good: tuple[str, ...],
    bad: tuple[str, ...],
    doc: str,
    file: Any,
) -> None:
    """Store the type of the paths matching PATTERN.

    SCHEMA is a kind's name (bool, int, number, string, bytes, enum, list,
    map, any) or a JSON map with its options.  At least one --good and one
    --bad example are required; the node refuses the type unless every good
    one fits and every bad one does not.  Values are read as JSON like
    'moat-log set' reads them.

    \b
    Examples:
      moat-log type set home.+.light bool --good true --good false --bad '"on"'
      moat-log type set home.+.temp '{"type": "number", "min": -30, "max": 60, "unit": "°C"}' \\
          --good 21.5 --bad 99 --bad '"warm"'
      moat-log type set --file heating-mode.json home.heating.mode
    """
    definition = _definition(schema, good, bad, doc, file)
    path = _type_path(pattern)
    change = Change(path, definition.to_value(), source=default_source())
    async with open_access(settings) as access:
        written = await access.write(change)
    if settings.as_json:
        print_json({"id": str(written.id), "pattern": pattern, **_definition_json(definition)})
        return
    click.echo(f"{written.id}  type {printable(pattern)}: {definition.schema.describe()}")


def _definition(
    schema: str | None, good: tuple[str, ...], bad: tuple[str, ...], doc: str, file: Any
) -> TypeDefinition:
    if file is not None:
        if schema is not None or good or bad or doc:
            raise InvalidInputError("give either --file or SCHEMA with --good/--bad, not both")
        try:
            value = from_json_value(json.load(file))
        except ValueError as exc:
            raise InvalidInputError(f"--file: not JSON: {exc}") from None
    else:
        if schema is None:
            raise InvalidInputError("give the type's SCHEMA (e.g. bool) or --file")
        value = {
            "schema": parse_value(schema),
            "good": [parse_value(text) for text in good],
            "bad": [parse_value(text) for text in bad],
        }
        if doc:
            value["doc"] = doc
    try:
        return TypeDefinition.from_value(value)
    except SchemaError as exc:
        raise SchemaError(f"the type is not valid: {exc}") from None


def _definition_json(definition: TypeDefinition) -> dict[str, Any]:
    return {
        "description": definition.schema.describe(),
        **{key: json_value(item) for key, item in definition.to_value().items()},
    }


@type_group.command("get")
@click.argument("pattern")
@click.pass_obj
async def get_type(settings: Settings, pattern: str) -> None:
    """Show the type stored for PATTERN (exactly that pattern).

    \b
    Example:
      moat-log type get home.+.temp
    """
    async with open_access(settings) as access:
        event = await access.current(_type_path(pattern))
    if event is None or event.op is Op.DELETE:
        raise InvalidInputError(f"no type is stored for {pattern} ('moat-log type ls' lists them)")
    definition = TypeDefinition.from_value(event.value)
    if settings.as_json:
        print_json({"pattern": pattern, "id": str(event.id), **_definition_json(definition)})
        return
    click.echo(f"type {printable(pattern)}: {definition.schema.describe()}")
    click.echo(f"  schema: {value_text(definition.schema.source)}")
    click.echo(f"  good:   {', '.join(value_text(v) for v in definition.good)}")
    click.echo(f"  bad:    {', '.join(value_text(v) for v in definition.bad)}")
    if definition.doc:
        click.echo(f"  doc:    {printable(definition.doc)}")
    click.echo(f"  stored: {event.id} by {printable(event.source)}")


@type_group.command("ls")
@click.pass_obj
async def list_types(settings: Settings) -> None:
    """List every type: its pattern, what it takes, and its doc.

    \b
    Example:
      moat-log type ls
    """
    async with open_access(settings) as access:
        events = await access.subtree(TYPES)
    types = list(TypeRegistry(events).types())
    if settings.as_json:
        for found in types:
            print_json({"pattern": str(found.pattern), **_definition_json(found.definition)})
        return
    rows = [(str(t.pattern), t.describe(), t.definition.doc) for t in types]
    print_table(("PATTERN", "TYPE", "DOC"), rows)


@type_group.command("check")
@click.argument("pattern", required=False)
@click.option(
    "--all", "every_event", is_flag=True, help="Check every stored event, not only current values."
)
@click.pass_obj
def check_types(settings: Settings, pattern: str | None, every_event: bool) -> None:
    """Report stored events that do not fit their path's type; change nothing.

    Checks the current value of every typed path (of PATTERN's type only,
    if given), or with --all every event of those paths in the journal.
    Such events exist when a type was stored after them, or when they came
    from a peer or an import (which are never refused: docs/types.md).
    Exits with status 1 if it found any.  Reads the journal directly.

    \b
    Example:
      moat-log type check
      moat-log type check --all home.+.temp
    """
    from moat_log.projections import kv_view

    with settings.journal() as journal:
        kv = kv_view(journal)
        types = TypeRegistry(kv.walk(TYPES))
        only = None if pattern is None else Path.parse(pattern)
        if only is not None and all(t.pattern != only for t in types.types()):
            raise InvalidInputError(f"no type is stored for {pattern}")
        if every_event:
            events: Iterator[Event] = (
                event
                for prefix in _prefixes(types, only)
                for event in journal.history(prefix, subtree=True)
            )
        else:
            events = (event for prefix in _prefixes(types, only) for event in kv.walk(prefix))
        misfits = list(_misfits(types, events, only))
    _report_misfits(settings, misfits)
    if misfits:
        sys.exit(1)


def _prefixes(types: TypeRegistry, only: Path | None) -> list[Path]:
    """The literal beginnings of the patterns, without one below another."""
    starts = []
    for found in types.types():
        if only is not None and found.pattern != only:
            continue
        segments = []
        for segment in found.pattern:
            if segment in (ANY_SEGMENT, ANY_SEGMENTS):
                break
            segments.append(segment)
        starts.append(Path(segments))
    starts.sort(key=Path.sort_key)
    kept: list[Path] = []
    for start in starts:
        if not any(done.is_prefix_of(start) for done in kept):
            kept.append(start)
    return kept


def _misfits(
    types: TypeRegistry, events: Iterator[Event], only: Path | None
) -> Iterator[tuple[Event, PathType, str]]:
    for event in events:
        if event.op is Op.DELETE or pattern_of(event.path) is not None:
            continue
        found = types.type_of(event.path)
        if found is None or (only is not None and found.pattern != only):
            continue
        problem = found.problem(event.value)
        if problem is not None:
            yield event, found, problem


def _report_misfits(settings: Settings, misfits: list[tuple[Event, PathType, str]]) -> None:
    if settings.as_json:
        for event, found, problem in misfits:
            print_json(
                {
                    "path": str(event.path),
                    "id": str(event.id),
                    "value": json_value(event.value),
                    "source": event.source,
                    "type": str(found.pattern),
                    "problem": problem,
                }
            )
        return
    if not misfits:
        click.echo("every checked value fits its type")
        return
    rows = [
        (str(e.path), str(e.id), value_text(e.value), str(t.pattern), problem)
        for e, t, problem in misfits
    ]
    print_table(("PATH", "ID", "VALUE", "TYPE", "PROBLEM"), rows)
    click.echo(f"{counted(len(misfits), 'event')} that do not fit their type", err=True)
