"""moat-log: event-sourced, log-structured state for MoaT installations.

What a script needs is here, as in trio::

    from moat_log import open_client, LIVE, NodeStoppingError

    async with open_client() as client:           # the node serving the data dir
        await client.set("home.kitchen.setpoint", 21.5)

``open_client`` talks to a running node (`moat_log.client`), ``open_node``
runs a node inside the script and talks to it the same way
(`moat_log.node`).  Every name is imported on first use (PEP 562): every
``moat-log`` command imports this package, and a command that needs
neither trio nor the client must not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .client import (
        LIVE,
        Client,
        NodeConnectionError,
        NodeNotRunningError,
        Stream,
        open_client,
        open_client_on,
    )
    from .errors import (
        AuthenticationError,
        BadRequestError,
        ConfigError,
        InvalidInputError,
        MoatLogError,
        NodeBusyError,
        NodeError,
        NodeStoppingError,
        NotFoundError,
        PathSyntaxError,
        PermissionDeniedError,
        StreamOverflowError,
        TimeSyntaxError,
        TypeMismatchError,
    )
    from .event import Event, Op
    from .ids import EventId
    from .node import NodeRunningError, load_config, open_node
    from .path import Path
    from .protocol import Written

#: Where each public name lives (the module is imported when the name is first used).
_HOMES: Final = {
    "LIVE": "client",
    "Client": "client",
    "NodeConnectionError": "client",
    "NodeNotRunningError": "client",
    "Stream": "client",
    "open_client": "client",
    "open_client_on": "client",
    "AuthenticationError": "errors",
    "BadRequestError": "errors",
    "ConfigError": "errors",
    "InvalidInputError": "errors",
    "MoatLogError": "errors",
    "NodeBusyError": "errors",
    "NodeError": "errors",
    "NodeStoppingError": "errors",
    "NotFoundError": "errors",
    "PathSyntaxError": "errors",
    "PermissionDeniedError": "errors",
    "StreamOverflowError": "errors",
    "TimeSyntaxError": "errors",
    "TypeMismatchError": "errors",
    "Event": "event",
    "Op": "event",
    "EventId": "ids",
    "NodeRunningError": "node",
    "load_config": "node",
    "open_node": "node",
    "Path": "path",
    "Written": "protocol",
}

__all__ = [
    "LIVE",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConfigError",
    "Event",
    "EventId",
    "InvalidInputError",
    "MoatLogError",
    "NodeBusyError",
    "NodeConnectionError",
    "NodeError",
    "NodeNotRunningError",
    "NodeRunningError",
    "NodeStoppingError",
    "NotFoundError",
    "Op",
    "Path",
    "PathSyntaxError",
    "PermissionDeniedError",
    "Stream",
    "StreamOverflowError",
    "TimeSyntaxError",
    "TypeMismatchError",
    "Written",
    "load_config",
    "open_client",
    "open_client_on",
    "open_node",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'moat_log' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
