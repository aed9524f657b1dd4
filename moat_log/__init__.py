"""moat-log: event-sourced, log-structured state for MoaT installations.

``async with moat_log.open_client() as client:`` talks to a running node
(`moat_log.client`); ``async with moat_log.open_node(data_dir=...) as
client:`` runs a node inside the script and talks to it the same way
(`moat_log.node`).  Both are imported on first use, so that the core stays
free of I/O libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import open_client
    from .node import open_node

__all__ = ["open_client", "open_node"]


def __getattr__(name: str) -> Any:
    if name == "open_client":
        from .client import open_client

        return open_client
    if name == "open_node":
        from .node import open_node

        return open_node
    raise AttributeError(f"module 'moat_log' has no attribute {name!r}")
