"""One-shot journal shipping with a running node: ``pull`` and ``ship``.

Both open the local journal directly (no node may run on it) and dial the
remote node's sync port with the cluster secret; the work is
`moat_log.sync.oneshot`.  The secret comes from ``--secret-file`` or the
``[sync]`` table of ``--config``, never from the command line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path as FsPath
from typing import Any

import asyncclick as click

from moat_log.errors import ConfigError, InvalidInputError
from moat_log.ids import check_node_name
from moat_log.journal.store import Journal, journal_dir
from moat_log.node._lock import NodeRunningError, holding_data_dir
from moat_log.node.config import load_config
from moat_log.node.sync_config import DEFAULT_SYNC_PORT, host_and_port, sync_from_table
from moat_log.projections import open_journal
from moat_log.sync.link import OneWay
from moat_log.sync.oneshot import Transfer, run_one_link

from ._main import Settings, cli
from ._output import counted, is_terminal, print_json, took

_SECRET_FILE = click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=FsPath),
    help="The cluster secret: a file only its owner can read (chmod 600).",
)
_CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=FsPath),
    help="Take the cluster secret from the [sync] table of this node config.",
)


@cli.command()
@click.option("--from", "source", required=True, metavar="HOST:PORT", help="The node's sync port.")
@_SECRET_FILE
@_CONFIG
@click.option("--node", help="Create the journal with this node name if there is none yet.")
@click.pass_obj
async def pull(
    settings: Settings,
    source: str,
    secret_file: FsPath | None,
    config_file: FsPath | None,
    node: str | None,
) -> None:
    """Fetch the events a running node holds and this journal lacks, then stop.

    Runs one sync link to the node's sync port and ends when everything the
    node held when the link started is stored here.  Running it again
    fetches only what is new (often nothing).  Nothing of this journal is
    sent.  No node may run on this data directory: a running node
    replicates by itself (add the peer to its [sync] peers instead).

    \b
    Example:
      moat-log --data-dir /srv/backup/pi1 pull --from pi1.lan:27600 \\
          --secret-file /etc/moat-log/cluster.key --node backup
    """
    await _run(
        settings, "pull", source, secret_file=secret_file, config_file=config_file, node=node
    )


@cli.command()
@click.option("--to", "target", required=True, metavar="HOST:PORT", help="The node's sync port.")
@_SECRET_FILE
@_CONFIG
@click.pass_obj
async def ship(
    settings: Settings, target: str, secret_file: FsPath | None, config_file: FsPath | None
) -> None:
    """Send a running node the events of this journal it lacks, then stop.

    Runs one sync link to the node's sync port and ends when the node says
    it has stored everything it lacked.  Running it again sends only what
    is new (often nothing).  Nothing of the node's is fetched.  No node may
    run on this data directory.

    \b
    Example:
      moat-log ship --to pi1.lan:27600 --secret-file /etc/moat-log/cluster.key
    """
    await _run(
        settings, "ship", target, secret_file=secret_file, config_file=config_file, node=None
    )


async def _run(
    settings: Settings,
    direction: OneWay,
    address_text: str,
    *,
    secret_file: FsPath | None,
    config_file: FsPath | None,
    node: str | None,
) -> None:
    settings.require_local()
    option = "--from" if direction == "pull" else "--to"
    try:
        address = host_and_port(address_text, DEFAULT_SYNC_PORT)
    except ValueError as exc:
        raise InvalidInputError(f"{option} {address_text}: {exc}") from None
    if address[1] == 0:
        raise InvalidInputError(f"{option} {address_text}: the port cannot be 0")
    secret = _secret(secret_file, config_file)
    label = "pulling" if direction == "pull" else "shipping"
    with (
        _journal(settings.data_dir, node, address_text) as journal,
        _progress_bar(label) as bar,
        _quiet_link_log(),
    ):
        transfer = await run_one_link(journal, address, secret, direction, progress=bar)
    _report(settings, direction, address_text, transfer)


def _secret(secret_file: FsPath | None, config_file: FsPath | None) -> bytes:
    if (secret_file is None) == (config_file is None):
        raise InvalidInputError(
            "give the cluster secret with --secret-file FILE or --config FILE "
            "(a node config with a [sync] table), one of them"
        )
    if secret_file is not None:
        source = f"--secret-file {secret_file}"
        return sync_from_table(source, {"secret_file": str(secret_file)}, None).secret
    assert config_file is not None
    config = load_config(config_file)
    if config.sync is None:
        raise ConfigError(f"{config_file}: has no [sync] table with the cluster secret")
    return config.sync.secret


@contextlib.contextmanager
def _no_node_beside(data_dir: FsPath, address_text: str) -> Iterator[Callable[[str], None]]:
    """Hold the data directory as a node would: none may start during the transfer."""
    try:
        with holding_data_dir(data_dir) as record_holder:
            yield record_holder
    except NodeRunningError:
        raise InvalidInputError(
            f"a node runs on {data_dir}: it replicates by itself; add {address_text} "
            "to the peers of its [sync] table instead (or stop it first)"
        ) from None


@contextlib.contextmanager
def _journal(data_dir: FsPath, node: str | None, address_text: str) -> Iterator[Journal]:
    """The local journal, held against a node starting on it (`holding_data_dir`)."""
    exists = (journal_dir(data_dir) / "data.mdb").is_file()
    if not exists and node is None:
        raise InvalidInputError(
            f"there is no journal in {data_dir}: give --node NAME to create one "
            "(this journal's own node name, not the remote's)"
        )
    create = check_node_name(node) if node is not None and not exists else None
    with (
        _no_node_beside(data_dir, address_text) as record_holder,
        open_journal(data_dir, create_node=create) as journal,
    ):
        record_holder(journal.node)
        if node is not None and journal.node != node:
            raise InvalidInputError(
                f"the journal in {journal.path} belongs to node {journal.node!r}, not {node!r}"
            )
        yield journal


@contextlib.contextmanager
def _quiet_link_log() -> Iterator[None]:
    """The link's own log lines stay out of the way: an error is reported once, as one line."""
    logger = logging.getLogger("moat_log.sync")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class _Bar:
    """A progress bar on a terminal, created once the total is known."""

    def __init__(self, label: str, stack: contextlib.ExitStack) -> None:
        self.label, self.stack = label, stack
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        if self.bar is None:
            self.bar = self.stack.enter_context(
                click.progressbar(length=total, label=self.label, file=sys.stderr)
            )
        if done > self.shown:
            self.bar.update(done - self.shown)
            self.shown = done


@contextlib.contextmanager
def _progress_bar(label: str) -> Iterator[_Bar | None]:
    if not is_terminal(sys.stderr):
        yield None
        return
    with contextlib.ExitStack() as stack:
        yield _Bar(label, stack)


def _report(settings: Settings, direction: OneWay, address: str, transfer: Transfer) -> None:
    if settings.as_json:
        print_json(
            {
                "direction": direction,
                "events": transfer.events,
                "peer": transfer.peer,
                "address": address,
                "bytes_in": transfer.bytes_in,
                "bytes_out": transfer.bytes_out,
                "seconds": round(transfer.seconds, 3),
            }
        )
        return
    verb, way = ("pulled", "from") if direction == "pull" else ("shipped", "to")
    click.echo(
        f"{verb} {counted(transfer.events, 'event')} {way} {transfer.peer} ({address}) "
        f"{took(transfer.events, transfer.seconds)}"
    )
