"""Commands that write: ``init``, ``set``, ``delete``, ``ingest``."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from typing import IO

import asyncclick as click

from moat_log.defaults import host_node_name
from moat_log.errors import JournalError
from moat_log.event import Op
from moat_log.ids import EventId, check_node_name
from moat_log.journal.change import Change
from moat_log.journal.store import Journal, journal_dir
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.timespec import format_time

from ._ingest import IngestSummary, LineParser, ingest
from ._main import Settings, cli, printable
from ._node_access import open_access
from ._output import counted, print_json, progress_bar, took, value_text, written_json
from ._values import default_source, parse_value

_SOURCE_HELP = "Who caused the change [default: cli:$USER]."
_cause_option = click.option(
    "--cause",
    metavar="NODE:SEQ",
    help="The event this write responds to: 'moat-log why' follows it. Example: --cause pi1:42",
)


def _cause(text: str | None) -> EventId | None:
    return None if text is None else EventId.parse(text)


@cli.command()
@click.option("--node", help="Node name [default: the host name, e.g. 'pi1' for pi1.lan].")
@click.pass_obj
def init(settings: Settings, node: str | None) -> None:
    """Create the journal in the data directory.

    Running it again is harmless: an existing journal is left alone (a
    different --node is refused).

    \b
    Example:
      moat-log --data-dir /var/lib/moat-log init --node pi1
    """
    settings.require_local()
    if (journal_dir(settings.data_dir) / "data.mdb").is_file():
        with settings.journal() as journal:
            existing, location = journal.node, journal.path
        if node is not None and node != existing:
            raise JournalError(
                f"the journal in {location} belongs to node {existing!r}, not {node!r}: "
                "a journal keeps its node name; use another --data-dir for a new node"
            )
        _report_init(settings, existing, str(location), created=False)
        return
    name = check_node_name(node) if node is not None else host_node_name()
    with open_journal(settings.data_dir, create_node=name) as journal:
        location = journal.path
    _report_init(settings, name, str(location), created=True)


def _report_init(settings: Settings, node: str, location: str, *, created: bool) -> None:
    if settings.as_json:
        print_json({"node": node, "journal": location, "created": created})
    elif created:
        click.echo(f"initialised the journal of node {node!r} in {location}")
    else:
        click.echo(f"already initialised: the journal of node {node!r} is in {location}")


_durability_option = click.option(
    "--durability",
    type=click.Choice(["sync", "batched"]),
    help="When the node commits the write: at once (sync), or within its flush interval, "
    "sharing the commit with other writes (batched); either way it is on disk when "
    "acknowledged. Default: the node's [journal] durability. Without a node every write "
    "is its own commit. Example: --durability batched",
)


@cli.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("path")
@click.argument("value")
@click.option("--string", "force_string", is_flag=True, help="Store VALUE as a string as is.")
@click.option("--source", help=_SOURCE_HELP)
@_cause_option
@_durability_option
@click.pass_obj
async def set_value(
    settings: Settings,
    *,
    path: str,
    value: str,
    force_string: bool,
    source: str | None,
    cause: str | None,
    durability: str | None,
) -> None:
    """Append an event setting PATH to VALUE.

    VALUE is read as JSON when it parses (true, 21.5, null, {"a": 1},
    "quoted"), else taken as a string; --string always takes it as a string.
    Bytes are written {"$bytes": "<base64>"}.  Negative numbers work as is.

    Goes through the node serving the data directory (or --connect); when
    none runs, appends to the journal directly.  Prints the new event's id,
    time, path and value; --json the event without its deps (a node's reply
    does not carry them: 'moat-log --json log' shows them).

    \b
    Example:
      moat-log set home.kitchen.light true
      moat-log set home.kitchen.scene '{"dim": 40}'
      moat-log set --string sensor:3.id 0042
      moat-log set --durability batched sensor:3.temp 21.4
      moat-log set --source script:hall --cause pi1:42 home.hall.light true
    """
    change = Change(
        Path.parse(path),
        parse_value(value, force_string=force_string),
        source=source if source is not None else default_source(),
        cause=_cause(cause),
    )
    await _write_and_print(settings, change, durability)


@cli.command()
@click.argument("path")
@click.option("--source", help=_SOURCE_HELP)
@_cause_option
@_durability_option
@click.pass_obj
async def delete(
    settings: Settings, path: str, source: str | None, cause: str | None, durability: str | None
) -> None:
    """Append a tombstone: PATH has no value afterwards.

    Through the node when one runs, like set; the output is that of set.

    \b
    Example:
      moat-log delete home.kitchen.scene
    """
    source = source if source is not None else default_source()
    change = Change.delete(Path.parse(path), source=source, cause=_cause(cause))
    await _write_and_print(settings, change, durability)


async def _write_and_print(settings: Settings, change: Change, durability: str | None) -> None:
    async with open_access(settings) as access:
        written = await access.write(change, durability)
    if settings.as_json:
        print_json(written_json(change, written))
        return
    if change.op is Op.DELETE:
        what = f"deleted {printable(str(change.path))}"
    else:
        what = f"{printable(str(change.path))} = {value_text(change.value)}"
    click.echo(f"{written.id}  {format_time(written.hlc)}  {what}")


@cli.command("ingest")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_obj
def ingest_file(settings: Settings, file: str) -> None:
    """Bulk-append local events from a JSON lines FILE ('-' for stdin).

    One object per line: "path" (text form or an array of segments),
    "value", optional "op" ("set" or "delete"), "source" (default
    ingest:FILE) and "time" (ISO 8601 or ns since the epoch; times must
    increase).  Lines are written in batches of 10,000.  A bad line stops the
    ingest with FILE:LINE and the reason: nothing of its batch is written,
    earlier batches stay, and the message says from which line to resume.

    \b
    Example:
      moat-log ingest history.jsonl
      {"path": "home.kitchen.temp", "value": 21.5, "time": "2026-11-21T14:03"}
    """
    name = "<stdin>" if file == "-" else file
    source = f"ingest:{'stdin' if file == '-' else os.path.basename(file)}"
    started = time.monotonic()
    with _open_input(file) as stream, settings.journal() as journal:
        parser = LineParser(journal, name, source)
        summary = _ingest_with_progress(journal, stream, parser)
    _report_ingest(settings, summary, time.monotonic() - started)


@contextlib.contextmanager
def _open_input(file: str) -> Iterator[IO[bytes]]:
    if file == "-":
        yield click.get_binary_stream("stdin")
    else:
        with open(file, "rb") as stream:
            yield stream


def _ingest_with_progress(journal: Journal, stream: IO[bytes], parser: LineParser) -> IngestSummary:
    size = _regular_file_size(stream)
    with progress_bar(size, "ingesting") as progress:
        done = 0

        def on_line(length: int) -> None:
            nonlocal done
            done += length
            if progress is not None:
                progress(done)

        return ingest(journal, stream, parser, on_line)


def _regular_file_size(stream: IO[bytes]) -> int:
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):  # a test stream without a descriptor
        return 0
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


def _report_ingest(settings: Settings, summary: IngestSummary, seconds: float) -> None:
    rate = summary.events / seconds if seconds > 0 else 0.0
    first = None if summary.first is None else str(summary.first.id)
    last = None if summary.last is None else str(summary.last.id)
    if settings.as_json:
        print_json(
            {"events": summary.events, "first": first, "last": last,
             "seconds": round(seconds, 3), "rate": round(rate)}
        )  # fmt: skip
    elif summary.first is None or summary.last is None:
        click.echo("appended 0 events (the input holds none)")
    else:
        click.echo(
            f"appended {counted(summary.events, 'event')}, {first} .. {last}, "
            f"{took(summary.events, seconds)}"
        )
