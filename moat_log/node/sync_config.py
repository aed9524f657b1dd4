"""The ``[sync]`` table of the node's config: where it meets its peers, and the secret.

::

    [sync]
    listen = "0.0.0.0:27600"
    peers = ["pi2.local:27600", "pi3.local:27600"]
    secret_file = "/etc/moat-log/cluster.key"   # or: secret = "..."

A node with no ``[sync]`` table runs alone.  Every link authenticates with
the cluster secret (both sides prove they know it; it never crosses the
wire), so a ``[sync]`` table without a secret is an error.  The secret is
kept out of the journal and out of the logs; a secret file must be
readable by its owner only (``chmod 600``), like an ssh key.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from moat_log.address import host_and_port, join_host_port
from moat_log.errors import ConfigError
from moat_log.records import FieldError, parse, read
from moat_log.sync.auth import MIN_SECRET_SIZE
from moat_log.sync.connection import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_HAVE_EVERY,
    DEFAULT_MAX_AHEAD,
)
from moat_log.sync.repeats import DEFAULT_REMIND_EVERY

__all__ = [
    "DEFAULT_SYNC_PORT",
    "PeerAddress",
    "SyncConfig",
    "sync_from_table",
]

#: The TCP port of the sync protocol unless configured otherwise.
DEFAULT_SYNC_PORT: Final = 27600
#: Seconds a node with none of its own events waits at start for its peers.
DEFAULT_WAIT_FOR_PEERS: Final = 10.0
MAX_WAIT_FOR_PEERS: Final = 3600
MAX_MAX_CLOCK_AHEAD: Final = 7 * 86400
MAX_SYNC_HANDSHAKE_TIMEOUT: Final = 3600
#: Connections the sync listener serves at once, authenticated or not.
DEFAULT_SYNC_MAX_CONNECTIONS: Final = 64
MAX_SYNC_MAX_CONNECTIONS: Final = 65536
MAX_REMIND_EVERY: Final = 86400


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A peer to dial: a host name or address, and a port."""

    host: str
    port: int = DEFAULT_SYNC_PORT

    @classmethod
    def parse(cls, text: str) -> PeerAddress:
        """``HOST``, ``HOST:PORT`` or ``[V6]:PORT``.  Raises `InvalidInputError`."""
        return cls(*host_and_port(text, DEFAULT_SYNC_PORT))

    def __str__(self) -> str:
        return join_host_port(self.host, self.port)


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """How a node replicates: its sync listener, the peers it dials, the cluster secret.

    *listen* None: the node only dials out.  The secret is kept out of the
    dataclass's repr, so it cannot end up in a log line by accident.
    """

    secret: bytes = field(repr=False)
    listen: tuple[str, int] | None = None
    peers: tuple[PeerAddress, ...] = ()
    #: A node whose journal holds none of its own events waits up to this
    #: many seconds at start for a peer to give them back before it serves
    #: clients (0: it does not wait).  See `moat_log.node._sync.recover_own_history`.
    wait_for_peers: float = DEFAULT_WAIT_FOR_PEERS
    #: Events timed more than this many seconds after the node's clock are
    #: refused (docs/sync-protocol.md, "Events from a clock that runs ahead").
    max_clock_ahead: float = DEFAULT_MAX_AHEAD
    #: A connection that has not authenticated after this many seconds is
    #: ended (goodbye ``protocol``): a stranger holds no link for long.
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    #: Connections accepted on ``listen`` at once; one more gets the goodbye ``busy``.
    max_connections: int = DEFAULT_SYNC_MAX_CONNECTIONS
    #: A failure that repeats (a peer down, a fork, a clock) is logged in
    #: full once, then as a one-line reminder at most once per this many seconds.
    remind_every: float = DEFAULT_REMIND_EVERY
    #: A standing link tells a compacting peer what this node holds this
    #: often (a ``have``): how soon the peer's compaction may go on.
    have_every: float = DEFAULT_HAVE_EVERY

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_SIZE:
            raise ConfigError(
                f"sync: the cluster secret has {len(self.secret)} bytes; "
                f"at least {MIN_SECRET_SIZE} are needed"
            )


class _SyncTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The ``[sync]`` table as written; `sync_from_table` turns it into a `SyncConfig`."""

    listen: Annotated[str, Meta(description='a string like "0.0.0.0:27600"')] | None = None
    peers: Annotated[list[str], Meta(description='a list like ["pi2.local:27600"]')] = []
    secret: str | None = None
    secret_file: Annotated[str, Meta(min_length=1, description="a file name")] | None = None
    wait_for_peers: Annotated[
        float,
        Meta(
            ge=0,
            le=MAX_WAIT_FOR_PEERS,
            description=f"a number of seconds 0 .. {MAX_WAIT_FOR_PEERS}",
        ),
    ] = DEFAULT_WAIT_FOR_PEERS
    max_clock_ahead: Annotated[
        float,
        Meta(
            ge=1,
            le=MAX_MAX_CLOCK_AHEAD,
            description=f"a number of seconds 1 .. {MAX_MAX_CLOCK_AHEAD}",
        ),
    ] = DEFAULT_MAX_AHEAD
    handshake_timeout: Annotated[
        float,
        Meta(
            ge=0.1,
            le=MAX_SYNC_HANDSHAKE_TIMEOUT,
            description=f"a number of seconds 0.1 .. {MAX_SYNC_HANDSHAKE_TIMEOUT}",
        ),
    ] = DEFAULT_HANDSHAKE_TIMEOUT
    max_connections: Annotated[
        int,
        Meta(
            ge=1,
            le=MAX_SYNC_MAX_CONNECTIONS,
            description=f"an integer 1 .. {MAX_SYNC_MAX_CONNECTIONS}",
        ),
    ] = DEFAULT_SYNC_MAX_CONNECTIONS
    remind_every: Annotated[
        float,
        Meta(ge=1, le=MAX_REMIND_EVERY, description=f"a number of seconds 1 .. {MAX_REMIND_EVERY}"),
    ] = DEFAULT_REMIND_EVERY
    have_every: Annotated[
        float,
        Meta(
            ge=0.1,
            le=MAX_REMIND_EVERY,
            description=f"a number of seconds 0.1 .. {MAX_REMIND_EVERY}",
        ),
    ] = DEFAULT_HAVE_EVERY


def _listen_address(text: str) -> tuple[str, int]:
    return host_and_port(text, DEFAULT_SYNC_PORT, any_port=True)


def sync_from_table(source: str, table: Any, base: FsPath | None) -> SyncConfig:
    """The ``[sync]`` table of the config file *source* (relative paths from *base*)."""
    try:
        fields = read(_SyncTable, table, where="sync")
        listen = None
        if fields.listen is not None:
            listen = parse(_listen_address, fields.listen, "sync.listen")
        peers = tuple(
            parse(PeerAddress.parse, text, f"sync.peers[{index}]")
            for index, text in enumerate(fields.peers)
        )
    except FieldError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    secret = _secret(source, fields, base)
    try:
        return SyncConfig(
            secret,
            listen,
            peers,
            fields.wait_for_peers,
            fields.max_clock_ahead,
            fields.handshake_timeout,
            fields.max_connections,
            fields.remind_every,
            fields.have_every,
        )
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _secret(source: str, table: _SyncTable, base: FsPath | None) -> bytes:
    if table.secret is not None and table.secret_file is not None:
        raise _error(source, "sync.secret", "give either secret or secret_file, not both")
    if table.secret is not None:
        return table.secret.encode()
    if table.secret_file is None:
        raise _error(
            source,
            "sync",
            "nodes authenticate each other with a cluster secret: add secret_file "
            "(a file only its owner can read) or secret",
        )
    path = FsPath(table.secret_file).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        info = os.stat(path)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise _error(
                source,
                "sync.secret_file",
                f"{path} can be read by others (mode {stat.filemode(info.st_mode)}): chmod 600 it",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise _error(source, "sync.secret_file", f"cannot read {path}: {exc.strerror}") from None
    return data.rstrip(b"\r\n")


def _error(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {problem}")
