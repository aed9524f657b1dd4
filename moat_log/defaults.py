"""Defaults shared by the command line, the node and the client.

One place decides where the data directory is and what a node is called when
nobody said, so that ``moat-log serve``, ``moat-log status`` and a script's
``open_client()`` all find the same node.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path as FsPath

from .ids import check_node_name

PROG = "moat-log"
#: Overrides the default data directory for every moat-log program.
DATA_DIR_ENV = "MOAT_LOG_DATA_DIR"
#: The node's Unix socket in its data directory, where `open_client()` looks first.
SOCKET_NAME = "moat-log.sock"

_NOT_IN_NODE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def environment_without_settings() -> dict[str, str]:
    """This process's environment without moat-log's ``MOAT_LOG_*`` variables.

    For a child process that must take its settings from its arguments
    only (the demo's nodes, test processes).
    """
    return {name: value for name, value in os.environ.items() if not name.startswith("MOAT_LOG_")}


def xdg_data_dir() -> FsPath:
    """``$XDG_DATA_HOME/moat-log``; ``XDG_DATA_HOME`` defaults to ``~/.local/share``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = FsPath(xdg) if xdg and os.path.isabs(xdg) else FsPath.home() / ".local" / "share"
    return base / PROG


def default_data_dir() -> FsPath:
    """The data directory when none is given: ``$MOAT_LOG_DATA_DIR``, else `xdg_data_dir`."""
    override = os.environ.get(DATA_DIR_ENV)
    return FsPath(override) if override else xdg_data_dir()


def host_node_name(hostname: str | None = None) -> str:
    """The host name reduced to a valid node name: ``my_pi.lan`` -> ``my_pi``."""
    host = (hostname if hostname is not None else socket.gethostname()).split(".")[0]
    name = _NOT_IN_NODE_NAME.sub("-", host).lstrip("_.-")[:64]
    return check_node_name(name or "node")
