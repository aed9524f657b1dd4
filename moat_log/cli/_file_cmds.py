"""Commands that move events through files: ``export`` and ``import``."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import asyncclick as click

from moat_log.errors import InvalidInputError
from moat_log.ids import check_node_name
from moat_log.journal.store import Journal

from ._main import Settings, cli
from ._output import counted, dumps, human_bytes, print_table, progress_bar
from ._values import TIME_HELP, resolve_range

if TYPE_CHECKING:
    from moat_log.journal.export import ExportHeader, ImportResult


# --- export --------------------------------------------------------------------


@cli.command()
@click.option(
    "-o", "--output", required=True, metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True), help="The export file ('-' for stdout).",
)  # fmt: skip
@click.option("--since", metavar="T", help=f"Only events at or after T: {TIME_HELP}")
@click.option("--until", metavar="T", help=f"Only events at or before T: {TIME_HELP}")
@click.option("--origin", metavar="NODE", help="Only events created by NODE.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_obj
def export(
    settings: Settings,
    *,
    output: str,
    since: str | None,
    until: str | None,
    origin: str | None,
    force: bool,
) -> None:
    """Write events to an export file (compressed, checksummed).

    The file appears only when complete (written under a temporary name,
    then renamed; mode 0600).  An existing FILE is kept unless --force.

    \b
    Example:
      moat-log export -o pi1-2026-11.mlx --since 2026-11-01 --until 2026-12-01
      moat-log export --origin pi1 -o - | ssh pi3 moat-log import -
    """
    from moat_log.journal.export import export_journal

    if output == "-" and click.get_binary_stream("stdout").isatty():
        raise InvalidInputError("an export is binary: redirect standard output or use -o FILE")
    if output != "-":
        _check_destination(output, force=force)
    with settings.journal() as journal:
        start, end = resolve_range(journal, since, until)
        options: dict[str, Any] = {
            "since": start,
            "until": end,
            "origin": check_node_name(origin) if origin is not None else None,
        }
        with progress_bar(_events_held(journal, origin), "exporting") as progress:
            options["progress"] = progress
            header = export_journal(journal, output, **options)
    _report_export(settings, output, header)


def _check_destination(output: str, *, force: bool) -> None:
    if os.path.lexists(output) and not force:
        raise InvalidInputError(f"{output} exists: pass --force to overwrite it")
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise InvalidInputError(f"cannot write {output}: there is no directory {directory}")


def _events_held(journal: Journal, origin: str | None) -> int:
    """How many events an export could hold at most (the progress bar's length)."""
    held = journal.summary()
    return held.count if origin is None else held.seqs(origin).count


def _report_export(settings: Settings, output: str, header: ExportHeader) -> None:
    size = header.body_bytes if output == "-" else FsPath(output).stat().st_size
    ratio = size / header.raw_bytes if header.raw_bytes else 0.0
    ranges = {origin: str(seqs) for origin, seqs in header.ranges.items()}
    # With the export on stdout, the summary must not mix into it.
    err = output == "-"
    if settings.as_json:
        document = {
            "file": output, "events": header.events, "ranges": ranges, "bytes": size,
            "raw_bytes": header.raw_bytes, "ratio": round(ratio, 4), "blocks": header.blocks,
            "sha256": _hex(header.sha256), "node": header.node, "created": header.created,
            "selection": header.selection,
        }  # fmt: skip
        click.echo(dumps(document, default=str), err=err)
        return
    click.echo(
        f"exported {header.events} events to {output}: {human_bytes(size)}, "
        f"{ratio:.2f} of {human_bytes(header.raw_bytes)} raw",
        err=err,
    )
    if ranges and not err:
        print_table(("ORIGIN", "SEQS"), list(ranges.items()), indent="  ")


def _hex(digest: bytes | str) -> str:
    return digest.hex() if isinstance(digest, bytes) else digest


# --- import --------------------------------------------------------------------


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_obj
def import_events(settings: Settings, file: str) -> None:
    """Insert the events of an export FILE ('-' for stdin).

    Events already held are skipped, so importing a file twice changes
    nothing.  A file that is not a valid export (corrupt, truncated, another
    format) is refused before anything is stored.  Exits with status 1 if
    some events are refused because the journal holds a different event
    under the same id (a forked history); each is listed.

    \b
    Example:
      moat-log import pi2-2026-11.mlx
      ssh pi2 moat-log export -o - | moat-log import -
    """
    from moat_log.journal.export import import_file, read_header

    with _seekable(file) as source:
        header = read_header(source)  # not an export: fails here, the journal untouched
        source.seek(0)
        with settings.journal() as journal, progress_bar(header.events, "importing") as bar:
            result = import_file(journal, source, progress=bar)
    _report_import(settings, "<stdin>" if file == "-" else file, result)
    if result.conflict_count:
        raise click.exceptions.Exit(1)


@contextlib.contextmanager
def _seekable(file: str) -> Iterator[BinaryIO]:
    """FILE opened for reading; standard input is spooled to a temporary file."""
    if file != "-":
        with open(file, "rb") as stream:
            yield stream
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(click.get_binary_stream("stdin"), spool, 1 << 20)
        spool.seek(0)
        cast(io.FileIO, spool.raw).name = "<stdin>"  # what error messages call the file
        yield spool


def _report_import(settings: Settings, file: str, result: ImportResult) -> None:
    conflicts = [(str(event_id), reason) for event_id, reason in result.conflicts]
    unlisted = result.conflict_count - len(conflicts)
    if settings.as_json:
        document = {
            "file": file,
            "events": result.events,
            "inserted": result.inserted,
            "already_held": result.already_held,
            "conflict_count": result.conflict_count,
            "conflicts": [{"id": i, "reason": r} for i, r in conflicts],
        }
        click.echo(dumps(document))
        return
    # "refused", not "conflicts": `moat-log conflicts` lists concurrent writes,
    # a different thing; these are ids the journal holds as another event.
    refused = result.conflict_count
    click.echo(
        f"imported {file}: {counted(result.events, 'event')}, {result.inserted} inserted, "
        f"{result.already_held} already held"
        + (f", {refused} refused (held here as different events)" if refused else "")
    )
    for event_id, reason in conflicts:
        click.echo(f"refused: {event_id}: {reason}")
    if unlisted:
        click.echo(f"... and {unlisted} more refused")
