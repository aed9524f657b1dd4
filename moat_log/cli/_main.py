"""The ``moat-log`` command group: global options and the error boundary.

Every error moat-log raises on purpose (`MoatLogError`) and every failed file
operation (`OSError`) ends the command with one line on stderr,
``moat-log: error: <message>``, and exit status 1.  Usage errors keep click's
behaviour (usage text, exit status 2).  Anything else is a bug and shows its
traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import IO, Any

import asyncclick as click

from moat_log.defaults import xdg_data_dir
from moat_log.errors import MoatLogError
from moat_log.journal.store import Journal
from moat_log.projections import open_journal

PROG = "moat-log"
DATA_DIR_ENV = "MOAT_LOG_DATA_DIR"


def default_data_dir() -> FsPath:
    """Where the journal lives unless --data-dir or $MOAT_LOG_DATA_DIR say otherwise."""
    return xdg_data_dir()


@dataclass(frozen=True, slots=True)
class Settings:
    """The global options, handed to every command as ``ctx.obj``."""

    data_dir: FsPath
    as_json: bool

    @contextmanager
    def journal(self) -> Iterator[Journal]:
        """The data directory's journal, opened once and closed at the end."""
        with open_journal(self.data_dir) as journal:
            yield journal


class CommandError(click.ClickException):
    """An expected failure, shown as one line: ``moat-log: error: ...``."""

    def show(self, file: IO[Any] | None = None) -> None:
        message = " ".join(self.format_message().split("\n"))
        click.echo(f"{PROG}: error: {message}", file=file or click.get_text_stream("stderr"))


def describe_os_error(exc: OSError) -> str:
    """``[Errno 2] No such file ...: 'x'`` -> ``x: No such file or directory``."""
    if exc.strerror and exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    return exc.strerror or str(exc)


class MoatLogGroup(click.Group):
    """The group whose `invoke` is the error boundary of every command."""

    async def invoke(self, ctx: click.Context) -> Any:
        try:
            return await super().invoke(ctx)
        except MoatLogError as exc:
            raise CommandError(str(exc)) from exc
        except BrokenPipeError:
            raise  # click's main() quietly exits on EPIPE (``moat-log log | head``)
        except OSError as exc:
            raise CommandError(describe_os_error(exc)) from exc


@click.group(cls=MoatLogGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=FsPath),
    metavar="DIR",
    envvar=DATA_DIR_ENV,
    show_envvar=True,
    help=f"Directory holding the journal [default: $XDG_DATA_HOME/{PROG}, "
    f"here {default_data_dir()}].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine output: JSON (lines for streams).")
@click.version_option(package_name="moat-log", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, data_dir: FsPath | None, as_json: bool) -> None:
    """Inspect and write a moat-log journal directly on its data directory.

    Works while a node has the journal open.  Paths use the text form
    (home.kitchen.light, sensor:3.temp); times are ISO 8601 (local unless
    they have an offset), relative (-10m, -2h), 'now', or an event id NODE:SEQ.

    \b
    Example:
      moat-log init --node pi1
      moat-log set home.kitchen.light true
      moat-log log --since -1h
    """
    ctx.obj = Settings(data_dir if data_dir is not None else default_data_dir(), as_json)


def main() -> None:
    """Entry point of the ``moat-log`` console script: runs `cli` under trio."""
    cli(prog_name=PROG, _anyio_backend="trio")
