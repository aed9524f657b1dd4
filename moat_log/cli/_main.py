"""The ``moat-log`` command group: global options and the error boundary.

The global options say where the data lives (``--data-dir``) and, for the
commands that talk to a node, which node and as whom (``--connect``,
``--user``, the password or token from the environment or a file);
`moat_log.cli._node_access` decides between the node and the journal.

Every error moat-log raises on purpose (`MoatLogError`) and every failed file
operation (`OSError`) ends the command with one line on stderr,
``moat-log: error: <message>``, and exit status 1.  Usage errors keep click's
behaviour (usage text, exit status 2).  Anything else is a bug and shows its
traceback.

Each command's module is imported only when that command runs (or a help
text lists it): `COMMAND_MODULES` says where each one lives, so that
``moat-log get`` does not pay for importing ``demo``, the node and sync.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path as FsPath
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar

import asyncclick as click

from moat_log.address import host_and_port
from moat_log.defaults import DATA_DIR_ENV, PROG, default_data_dir, xdg_data_dir
from moat_log.errors import InvalidInputError, MoatLogError

if TYPE_CHECKING:
    from moat_log.journal.store import Journal

CONNECT_ENV = "MOAT_LOG_CONNECT"
USER_ENV = "MOAT_LOG_USER"
#: Secrets come from the environment (or a file), never from an option: the
#: command line of every process shows in ``ps``.
PASSWORD_ENV = "MOAT_LOG_PASSWORD"
#: The node config that commands reading one (serve, adapters, ems, compact) use by default.
CONFIG_ENV = "MOAT_LOG_CONFIG"
TOKEN_ENV = "MOAT_LOG_TOKEN"
#: How often ``log --follow`` and a ``watch`` without a node look for new
#: events in the journal, in seconds.
FOLLOW_INTERVAL = 0.2

#: The module of `moat_log.cli` that defines each command (it registers the
#: command with `cli` when imported).  tests/cli checks that this is complete.
COMMAND_MODULES: Final[Mapping[str, str]] = {
    "adapters": "_adapter_cmds",
    "compact": "_retention_cmds",
    "conflicts": "_view_cmds",
    "delete": "_journal_cmds",
    "demo": "_demo_cmd",
    "diff": "_replay_cmds",
    "ems": "_ems_cmds",
    "errors": "_script_cmds",
    "export": "_file_cmds",
    "get": "_view_cmds",
    "history": "_query_cmds",
    "import": "_file_cmds",
    "ingest": "_journal_cmds",
    "init": "_journal_cmds",
    "log": "_query_cmds",
    "ls": "_view_cmds",
    "make-verifier": "_node_cmds",
    "peer": "_retention_cmds",
    "projection": "_view_cmds",
    "pull": "_ship_cmds",
    "replay": "_replay_cmds",
    "satellite": "_satellite_cmds",
    "script": "_script_cmds",
    "serve": "_node_cmds",
    "set": "_journal_cmds",
    "ship": "_ship_cmds",
    "stats": "_query_cmds",
    "status": "_node_cmds",
    "timeline": "_forensics_cmds",
    "type": "_type_cmds",
    "verify": "_query_cmds",
    "watch": "_watch_cmd",
    "why": "_forensics_cmds",
}


_Command = TypeVar("_Command", bound=Callable[..., Any])


def config_file_option(
    help: str, *, name: str = "--config", dest: str = "config_file"
) -> Callable[[_Command], _Command]:
    """The option naming a node's TOML config (default: ``$MOAT_LOG_CONFIG``)."""
    return click.option(
        name,
        dest,
        type=click.Path(dir_okay=False, path_type=FsPath),
        metavar="FILE",
        envvar=CONFIG_ENV,
        show_envvar=True,
        help=help,
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """The global options, handed to every command as ``ctx.obj``."""

    data_dir: FsPath
    as_json: bool
    #: ``HOST:PORT`` or ``unix:PATH`` of the node to use, without fallback.
    connect: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def require_local(self) -> None:
        """Refuse ``--connect`` for a command that works on the local data directory."""
        if self.connect is not None:
            command = click.get_current_context().info_name
            raise InvalidInputError(
                f"--connect {self.connect}: '{command}' works on the local journal only; "
                f"leave out --connect (and unset ${CONNECT_ENV})"
            )

    @contextmanager
    def journal(self) -> Iterator[Journal]:
        """The data directory's journal, opened once and closed at the end."""
        from moat_log.projections import open_journal

        self.require_local()
        with open_journal(self.data_dir) as journal:
            yield journal


class CommandError(click.ClickException):
    """An expected failure, shown as one line: ``moat-log: error: ...``."""

    def show(self, file: IO[Any] | None = None) -> None:
        message = printable(" ".join(self.format_message().split("\n")))
        click.echo(f"{PROG}: error: {message}", file=file or click.get_text_stream("stderr"))


def printable(text: str) -> str:
    """*text* with control characters escaped, so that it stays on its line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def describe_os_error(exc: OSError) -> str:
    """``[Errno 2] No such file ...: 'x'`` -> ``x: No such file or directory``."""
    if exc.strerror and exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    return exc.strerror or str(exc)


def _json_after_the_command(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.obj = replace(ctx.obj, as_json=True)


class MoatLogGroup(click.Group):
    """The group whose `invoke` is the error boundary of every command.

    Every command also takes ``--json`` after its name (``moat-log ls home
    --json``), the same as the global option before it.

    Commands are loaded on first use from the modules *lazy_commands* names.
    """

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: Final = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands.keys() | self.lazy_commands.keys())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy_commands.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"{__package__}.{module}")  # registers its commands
        return super().get_command(ctx, cmd_name)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        has_json = any("--json" in getattr(param, "opts", ()) for param in cmd.params)
        if not isinstance(cmd, click.Group) and not has_json:
            cmd.params.append(
                click.Option(
                    ["--json"],
                    is_flag=True,
                    expose_value=False,
                    callback=_json_after_the_command,
                    help=f"Machine output, as '{PROG} --json ...'. "
                    f"Example: {PROG} {name or cmd.name} --json",
                )
            )
        super().add_command(cmd, name)

    async def invoke(self, ctx: click.Context) -> Any:
        try:
            return await super().invoke(ctx)
        except MoatLogError as exc:
            raise CommandError(str(exc)) from exc
        except BrokenPipeError:
            raise  # click's main() quietly exits on EPIPE (``moat-log log | head``)
        except OSError as exc:
            raise CommandError(describe_os_error(exc)) from exc


def _check_connect(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or (value.startswith("unix:") and len(value) > len("unix:")):
        return value
    try:
        host_and_port(value)
    except InvalidInputError as exc:
        raise click.BadParameter(
            f"{value!r}: {exc}; use HOST:PORT (pi1.lan:27586) or unix:PATH"
        ) from None
    return value


def _read_password_file(file: FsPath) -> str:
    text = file.read_text(encoding="utf-8")
    password = text.split("\n", 1)[0].removesuffix("\r")
    if not password:
        raise InvalidInputError(f"--password-file {file}: the file is empty")
    return password


def _secrets(password_file: FsPath | None) -> tuple[str | None, str | None]:
    """The password (--password-file, else $MOAT_LOG_PASSWORD) and the token."""
    password = os.environ.get(PASSWORD_ENV) or None
    if password_file is not None:
        password = _read_password_file(password_file)
    return password, os.environ.get(TOKEN_ENV) or None


@click.group(
    cls=MoatLogGroup,
    lazy_commands=COMMAND_MODULES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=FsPath),
    metavar="DIR",
    envvar=DATA_DIR_ENV,
    show_envvar=True,
    help=f"Directory holding the journal [default: $XDG_DATA_HOME/{PROG}, here {xdg_data_dir()}].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine output: JSON (lines for streams).")
@click.option(
    "--connect",
    metavar="HOST:PORT|unix:PATH",
    envvar=CONNECT_ENV,
    show_envvar=True,
    callback=_check_connect,
    help="Use the node at this address, and fail if it does not answer (no fallback to the "
    "journal). For set, delete, get, ls, watch and status; the other commands refuse it. "
    "Example: --connect pi1.lan:27586",
)
@click.option(
    "--user",
    metavar="NAME",
    envvar=USER_ENV,
    show_envvar=True,
    help=f"Log in as NAME where the node asks (TCP with users configured), with the password "
    f"from ${PASSWORD_ENV} or --password-file, or the token from ${TOKEN_ENV}. "
    "Example: MOAT_LOG_PASSWORD=... moat-log --connect pi1.lan:27586 --user alice ls",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=FsPath),
    metavar="FILE",
    help=f"Read the --user's password from FILE (its first line) instead of ${PASSWORD_ENV}. "
    "Example: --password-file ~/.config/moat-log/password",
)
@click.version_option(package_name="moat-log", prog_name=PROG)
@click.pass_context
def cli(
    ctx: click.Context,
    *,
    data_dir: FsPath | None,
    as_json: bool,
    connect: str | None,
    user: str | None,
    password_file: FsPath | None,
) -> None:
    """Write, read and watch moat-log state, through the node or on the journal.

    set, delete, get, ls, watch and status ask the node that serves the data
    directory (its socket DATA_DIR/moat-log.sock); when none runs there they
    work on the journal directly, with the same output.  --connect names a
    node elsewhere (no fallback then).  The other commands (log, history,
    export, verify, ...) always read the journal directly, also while a node
    runs.  Paths use the text form (home.kitchen.light, sensor:3.temp);
    times are ISO 8601 (local unless they have an offset), relative (-10m,
    -2h), 'now', or an event id NODE:SEQ.

    \b
    Example:
      moat-log init --node pi1
      moat-log set home.kitchen.light true
      moat-log watch home --changes 1
      moat-log log --since -1h
      MOAT_LOG_PASSWORD=... moat-log --connect pi1.lan:27586 --user alice get home.temp
    """
    password, token = _secrets(password_file)
    ctx.obj = Settings(
        data_dir if data_dir is not None else default_data_dir(),
        as_json,
        connect=connect,
        user=user,
        password=password,
        token=token,
    )


def main() -> None:
    """Entry point of the ``moat-log`` console script: runs `cli` under trio."""
    import trio

    # trio.run directly, not asyncclick's anyio.run: anyio's trio backend
    # costs a command's start-up about as much as half of trio's own import.
    trio.run(partial(cli.main, prog_name=PROG))
