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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, Final

from moat_log.address import host_and_port, join_host_port
from moat_log.errors import ConfigError
from moat_log.sync.auth import MIN_SECRET_SIZE
from moat_log.sync.connection import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_AHEAD

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
_KEYS: Final = {
    "handshake_timeout",
    "listen",
    "max_clock_ahead",
    "max_connections",
    "peers",
    "secret",
    "secret_file",
    "wait_for_peers",
}


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

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_SIZE:
            raise ConfigError(
                f"sync: the cluster secret has {len(self.secret)} bytes; "
                f"at least {MIN_SECRET_SIZE} are needed"
            )


def sync_from_table(source: str, table: Any, base: FsPath | None) -> SyncConfig:
    """The ``[sync]`` table of the config file *source* (relative paths from *base*)."""
    if not isinstance(table, Mapping):
        raise _error(source, "sync", f"must be a table, not {table!r}")
    for key in table:
        if key not in _KEYS:
            raise _error(
                source, f"sync.{key}", f"unknown key; known keys are {', '.join(sorted(_KEYS))}"
            )
    listen = None
    if "listen" in table:
        text = table["listen"]
        if not isinstance(text, str):
            raise _error(
                source, "sync.listen", f'must be a string like "0.0.0.0:27600", not {text!r}'
            )
        try:
            listen = host_and_port(text, DEFAULT_SYNC_PORT, any_port=True)
        except ValueError as exc:
            raise _error(source, f"sync.listen {text!r}", str(exc)) from None
    peers_value = table.get("peers", [])
    if not isinstance(peers_value, list):
        raise _error(
            source, "sync.peers", f'must be a list like ["pi2.local:27600"], not {peers_value!r}'
        )
    peers = []
    for index, item in enumerate(peers_value):
        if not isinstance(item, str):
            raise _error(source, f"sync.peers[{index}]", f"must be a string, not {item!r}")
        try:
            peers.append(PeerAddress.parse(item))
        except ValueError as exc:
            raise _error(source, f"sync.peers[{index}] {item!r}", str(exc)) from None
    wait = _seconds(
        source, table, "wait_for_peers", default=DEFAULT_WAIT_FOR_PEERS, low=0,
        high=MAX_WAIT_FOR_PEERS,
    )  # fmt: skip
    ahead = _seconds(
        source, table, "max_clock_ahead", default=DEFAULT_MAX_AHEAD, low=1,
        high=MAX_MAX_CLOCK_AHEAD,
    )  # fmt: skip
    handshake = _seconds(
        source, table, "handshake_timeout", default=DEFAULT_HANDSHAKE_TIMEOUT, low=0.1,
        high=MAX_SYNC_HANDSHAKE_TIMEOUT,
    )  # fmt: skip
    connections = table.get("max_connections", DEFAULT_SYNC_MAX_CONNECTIONS)
    if type(connections) is not int or not 1 <= connections <= MAX_SYNC_MAX_CONNECTIONS:
        raise _error(
            source,
            "sync.max_connections",
            f"must be an integer 1 .. {MAX_SYNC_MAX_CONNECTIONS}, not {connections!r}",
        )
    secret = _secret(source, table, base)
    try:
        return SyncConfig(secret, listen, tuple(peers), wait, ahead, handshake, connections)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _seconds(
    source: str, table: Mapping[str, Any], key: str, *, default: float, low: float, high: float
) -> float:
    value = table.get(key, default)
    if type(value) not in (int, float) or not low <= value <= high:
        raise _error(
            source, f"sync.{key}", f"must be a number of seconds {low:g} .. {high:g}, not {value!r}"
        )
    return float(value)


def _secret(source: str, table: Mapping[str, Any], base: FsPath | None) -> bytes:
    if "secret" in table and "secret_file" in table:
        raise _error(source, "sync.secret", "give either secret or secret_file, not both")
    if "secret" in table:
        text = table["secret"]
        if not isinstance(text, str):
            raise _error(source, "sync.secret", "must be a string")
        return text.encode()
    if "secret_file" not in table:
        raise _error(
            source,
            "sync",
            "nodes authenticate each other with a cluster secret: add secret_file "
            "(a file only its owner can read) or secret",
        )
    name = table["secret_file"]
    if not isinstance(name, str) or not name:
        raise _error(source, "sync.secret_file", "must be a file name")
    path = FsPath(name).expanduser()
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
