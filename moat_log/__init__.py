"""moat-log: event-sourced, log-structured state for MoaT installations.

``async with moat_log.open_client() as client:`` talks to a running node
(`moat_log.client`).  It is imported on first use, so that the core stays
free of I/O libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import open_client

__all__ = ["open_client"]


def __getattr__(name: str) -> Any:
    if name == "open_client":
        from .client import open_client

        return open_client
    raise AttributeError(f"module 'moat_log' has no attribute {name!r}")
