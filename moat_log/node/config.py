"""The node's configuration: a TOML file, or the embedded default.

Example (docs/node.md has the reference)::

    node = "pi1"
    data_dir = "/var/lib/moat-log"

    [client]
    listen = ["unix", "127.0.0.1:27586", "0.0.0.0:27586"]

    [client.users.alice]
    verifier = "scram-scrypt$16384$8$1$..."
    read = [":"]
    write = ["home"]

Without ``[client.users]`` nobody can authenticate, so the node serves only
local clients (the Unix socket and loopback addresses) and asks them for
nothing; a non-loopback listen address is then refused.  With users, every
TCP connection must authenticate; the Unix socket, protected by the file
permissions of the data directory, never asks.

Every problem is a `ConfigError` that names the file, the key and what is
wrong with it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from moat_log.adapters.config import AdapterConfig, adapters_from_table
from moat_log.address import host_and_port, is_loopback_host, join_host_port
from moat_log.defaults import SOCKET_NAME, default_data_dir
from moat_log.durability import DEFAULT_FLUSH_INTERVAL, Durability, check_flush_interval
from moat_log.errors import ConfigError, MoatLogError
from moat_log.ids import check_node_name
from moat_log.path import Path
from moat_log.projections.ems.settings import EmsSettings, read_ems
from moat_log.protocol import DEFAULT_SCRYPT_PARAMS, ScryptParams, TokenVerifier, Verifier
from moat_log.protocol.auth import check_user_name
from moat_log.protocol.messages import REQUEST_TYPES
from moat_log.records import FieldError, parse, read

from .retention_config import RetentionConfig, retention_from_table
from .sync_config import SyncConfig, sync_from_table

__all__ = [
    "DEFAULT_PORT",
    "EMBEDDED",
    "SOCKET_NAME",
    "ListenAddress",
    "NodeConfig",
    "UserConfig",
    "load_config",
]

#: The TCP port of the client protocol unless configured otherwise.
DEFAULT_PORT: Final = 27586
#: The Unix socket's file name in the data directory.
#: What error messages call the configuration when there is no file.
EMBEDDED: Final = "(embedded default)"
#: A Unix socket path must fit in ``sockaddr_un.sun_path`` (108 bytes with the NUL).
MAX_SOCKET_PATH: Final = 107


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where the node accepts clients: the Unix socket, or a TCP host and port."""

    kind: Literal["unix", "tcp"]
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, text: str, default_port: int = DEFAULT_PORT) -> ListenAddress:
        """``unix``, ``HOST:PORT``, ``[V6]:PORT`` or ``HOST`` (*default_port*).

        Port 0 asks the system for a free port.  Raises `InvalidInputError`.
        """
        if text == "unix":
            return cls("unix")
        host, port = host_and_port(text, default_port, any_port=True)
        return cls("tcp", host, port)

    @property
    def loopback(self) -> bool:
        """True for the Unix socket and addresses only this machine can reach."""
        return self.kind == "unix" or is_loopback_host(self.host)

    def __str__(self) -> str:
        if self.kind == "unix":
            return "unix"
        return join_host_port(self.host, self.port)


@dataclass(frozen=True, slots=True)
class UserConfig:
    """A client user: its verifier and the path prefixes it may read and write."""

    name: str
    verifier: Verifier | TokenVerifier
    read: tuple[Path, ...] = ()
    write: tuple[Path, ...] = ()

    def may(self, access: str, path: Path) -> bool:
        """True if one of the user's *access* prefixes covers all of *path*."""
        prefixes = self.read if access == "read" else self.write
        return any(prefix.is_prefix_of(path) for prefix in prefixes)


_DEFAULT_LISTEN: Final = (ListenAddress("unix"), ListenAddress("tcp", "127.0.0.1", DEFAULT_PORT))


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to run; `load_config` reads it from a file.

    *node* None means: the name recorded in an existing journal, else the
    host name.  An empty *listen* serves only clients in the node's own
    process (`moat_log.open_node`); a config file may not ask for that.
    *source* names the file for error messages.
    """

    node: str | None = None
    data_dir: FsPath = field(default_factory=default_data_dir)
    listen: tuple[ListenAddress, ...] = _DEFAULT_LISTEN
    users: Mapping[str, UserConfig] = field(default_factory=lambda: MappingProxyType({}))
    max_connections: int = 256
    handshake_timeout: float = 10.0
    send_timeout: float = 60.0
    watch_buffer: int = 1024
    #: When a write that does not say is acknowledged (``[journal] durability``).
    durability: Durability = Durability.SYNC
    #: Seconds a batched write waits at most for its commit (``[journal] flush_interval``).
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    #: Replication with other nodes (``[sync]``); None: the node runs alone.
    sync: SyncConfig | None = None
    #: The bus adapters (``[adapters.NAME]``), in the file's order.
    adapters: tuple[AdapterConfig, ...] = ()
    #: What compaction may thin out, and how often the node runs it (``[retention]``).
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    #: The energy schedules (``[ems.NAME]``, docs/ems.md), in the file's order.
    ems: tuple[EmsSettings, ...] = ()
    source: str = EMBEDDED

    def __post_init__(self) -> None:
        if self.node is not None:
            _check(self.source, "node", check_node_name, self.node)
        object.__setattr__(self, "data_dir", FsPath(self.data_dir))
        object.__setattr__(self, "users", MappingProxyType(dict(self.users)))
        if not self.users:
            for address in self.listen:
                if not address.loopback:
                    raise _error(
                        self.source,
                        "client.listen",
                        f"refusing to listen on {address} without credentials: add [client.users]",
                    )
        if any(address.kind == "unix" for address in self.listen):
            size = len(os.fsencode(self.socket_path))
            if size > MAX_SOCKET_PATH:
                raise _error(
                    self.source,
                    "data_dir",
                    f"the socket path {self.socket_path} is {size} bytes, longer than the "
                    f"{MAX_SOCKET_PATH} bytes a Unix socket path may have: use a shorter data_dir",
                )
        for key in ("max_connections", "watch_buffer"):
            if getattr(self, key) < 1:
                raise _error(self.source, f"client.{key}", "must be at least 1")
        for key in ("handshake_timeout", "send_timeout"):
            if not getattr(self, key) > 0:
                raise _error(self.source, f"client.{key}", "must be more than 0 seconds")
        durability = _check(self.source, "journal.durability", Durability.parse, self.durability)
        object.__setattr__(self, "durability", durability)
        interval = _check(
            self.source, "journal.flush_interval", check_flush_interval, self.flush_interval
        )
        object.__setattr__(self, "flush_interval", interval)

    @property
    def socket_path(self) -> FsPath:
        """The Unix socket: ``DATA_DIR/moat-log.sock``."""
        return self.data_dir / SOCKET_NAME

    @property
    def scrypt_params(self) -> ScryptParams:
        """Parameters of the decoys for unknown users: those most users have."""
        params = [
            u.verifier.params for u in self.users.values() if isinstance(u.verifier, Verifier)
        ]
        return max(params, key=params.count) if params else DEFAULT_SCRYPT_PARAMS

    def permission(self, user: str | None, op: str, path: Path) -> bool:
        """The protocol's permission check: may *user* do *op* on *path*?

        A connection without a user is local and unrestricted (see the module
        docstring); a user's access comes from its read and write prefixes.
        """
        if user is None:
            return True
        account = self.users.get(user)
        access = REQUEST_TYPES[op].ACCESS if op in REQUEST_TYPES else None
        return account is not None and access is not None and account.may(access, path)


# --- reading the file ----------------------------------------------------------


class _UserTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A ``[client.users.NAME]`` table as written."""

    verifier: str
    read: Annotated[list[str], Meta(description="a list of paths")] = []
    write: Annotated[list[str], Meta(description="a list of paths")] = []


class _ClientTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The ``[client]`` table as written; users are read one by one (`_user`)."""

    listen: (
        Annotated[list[str], Meta(description='a list like ["unix", "127.0.0.1:27586"]')] | None
    ) = None  # the default: _DEFAULT_LISTEN
    users: dict[str, Any] = {}
    max_connections: Annotated[int, Meta(ge=1)] = 256
    handshake_timeout: Annotated[float, Meta(gt=0, description="a number of seconds > 0")] = 10.0
    send_timeout: Annotated[float, Meta(gt=0, description="a number of seconds > 0")] = 60.0
    watch_buffer: Annotated[int, Meta(ge=1)] = 1024


class _JournalTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The ``[journal]`` table as written; `NodeConfig` checks the values."""

    durability: Annotated[str, Meta(description='"sync" or "batched"')] = "sync"
    flush_interval: Annotated[float, Meta(description="a number of seconds")] = (
        DEFAULT_FLUSH_INTERVAL
    )


class _ConfigFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The whole file as written; ``[sync]`` is read by `sync_from_table`."""

    node: str | None = None
    data_dir: Annotated[str, Meta(min_length=1, description="a directory name")] | None = None
    client: _ClientTable = _ClientTable()
    journal: _JournalTable = _JournalTable()
    sync: Any = None
    adapters: Any = None
    retention: Any = None
    ems: Any = None


def _error(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {problem}")


def _check(source: str, key: str, check: Any, value: Any) -> Any:
    try:
        return check(value)
    except (MoatLogError, ValueError, TypeError) as exc:
        raise _error(source, key, str(exc)) from None


def load_config(
    file: str | os.PathLike[str] | None = None, *, data_dir: str | os.PathLike[str] | None = None
) -> NodeConfig:
    """Read the node's TOML config; without *file* the embedded default.

    *data_dir* (from the command line) overrides the file's.  A relative
    ``data_dir`` in the file is relative to the file's directory.
    """
    if file is None:
        return NodeConfig() if data_dir is None else NodeConfig(data_dir=FsPath(data_dir))
    source = os.fspath(file)
    try:
        with open(file, "rb") as stream:
            document = tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); a TOML file is UTF-8"
        ) from None
    return config_from_document(
        document, source=source, base=FsPath(file).parent, data_dir=data_dir
    )


def config_from_document(
    document: Mapping[str, Any],
    *,
    source: str = EMBEDDED,
    base: FsPath | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> NodeConfig:
    """Build the config from a parsed TOML document (see `load_config`)."""
    try:
        file = read(_ConfigFile, document)
        client = file.client
        settings: dict[str, Any] = {
            "source": source,
            "listen": _DEFAULT_LISTEN if client.listen is None else _listen(client.listen),
            "users": {name: _user(name, table) for name, table in client.users.items()},
            "max_connections": client.max_connections,
            "handshake_timeout": client.handshake_timeout,
            "send_timeout": client.send_timeout,
            "watch_buffer": client.watch_buffer,
            "durability": file.journal.durability,
            "flush_interval": file.journal.flush_interval,
        }
        if file.node is not None:
            settings["node"] = parse(check_node_name, file.node, "node")
        if file.adapters is not None:
            settings["adapters"] = adapters_from_table(file.adapters)
        if file.ems is not None:
            settings["ems"] = read_ems(file.ems)
    except FieldError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if data_dir is not None:
        settings["data_dir"] = FsPath(data_dir)
    elif file.data_dir is not None:
        path = FsPath(file.data_dir).expanduser()
        settings["data_dir"] = path if path.is_absolute() or base is None else base / path
    if file.sync is not None:
        settings["sync"] = sync_from_table(source, file.sync, base)
    if file.retention is not None:
        settings["retention"] = retention_from_table(source, file.retention)
    return NodeConfig(**settings)


def _listen(texts: list[str]) -> tuple[ListenAddress, ...]:
    if not texts:
        raise FieldError("client.listen", "is empty: the node would serve nobody")
    return tuple(
        parse(ListenAddress.parse, text, f"client.listen[{index}]")
        for index, text in enumerate(texts)
    )


def _user(name: str, table: object) -> UserConfig:
    where = f"client.users.{name}"
    parse(check_user_name, name, where)
    user = read(_UserTable, table, where=where)
    verifier: Verifier | TokenVerifier
    if user.verifier.startswith("token$"):
        verifier = parse(TokenVerifier.parse, user.verifier, f"{where}.verifier", quote=False)
    else:
        verifier = parse(Verifier.parse, user.verifier, f"{where}.verifier", quote=False)
    prefixes = {
        access: tuple(
            parse(Path.parse, text, f"{where}.{access}[{index}]")
            for index, text in enumerate(texts)
        )
        for access, texts in (("read", user.read), ("write", user.write))
    }
    return UserConfig(name, verifier, prefixes["read"], prefixes["write"])
