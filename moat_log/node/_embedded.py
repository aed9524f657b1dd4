"""`open_node`: a node inside a script's own trio run, and a client to talk to it.

The script gets the same `Client` as `open_client` gives, connected to the
node through an in-process socket pair (`moat_log.node._in_process`): one
protocol, one implementation, the same semantics whether the node runs in
the script or elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

from moat_log.client import Client, open_client_on
from moat_log.projections.side_effect import SideEffectProjection
from moat_log.streams import single_errors_unwrapped

from .config import ListenAddress, NodeConfig
from .server import serve_node

__all__ = ["open_node"]


def _embedded_config(
    data_dir: str | os.PathLike[str] | None, node: str | None, listen: Sequence[str]
) -> NodeConfig:
    if isinstance(listen, str):
        raise TypeError(f"listen is a list of addresses, e.g. [{listen!r}]")
    settings: dict[str, Any] = {"node": node}
    if data_dir is not None:
        settings["data_dir"] = data_dir
    addresses = []
    for text in listen:
        try:
            addresses.append(ListenAddress.parse(text))
        except ValueError as exc:
            raise ValueError(f"listen address {text!r}: {exc}") from None
    return NodeConfig(listen=tuple(addresses), **settings)


@asynccontextmanager
async def open_node(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    node: str | None = None,
    listen: Sequence[str] = (),
    config: NodeConfig | None = None,
    projections: Sequence[SideEffectProjection] = (),
) -> AsyncIterator[Client]:
    """Run a node in this trio run; the block gets a `Client` connected to it.

    The node keeps its journal in *data_dir* (default: as for ``moat-log
    serve``: ``$MOAT_LOG_DATA_DIR``, else ``~/.local/share/moat-log``),
    creating it if needed, under the name *node* (default: the journal's,
    else the host name).  It listens nowhere unless *listen* says so:
    ``["unix"]`` lets other processes (``moat-log get``, other scripts) reach
    it on the data directory's Unix socket, ``"127.0.0.1:27586"`` on TCP.
    Or pass a whole *config* (`load_config`) instead of these three.

    The node runs each of the side-effect *projections* behind its journal
    (`moat_log.projections.side_effect`, docs/node.md).

    Leaving the block stops the node in order (as SIGTERM stops ``moat-log
    serve``): other clients are told goodbye and every acknowledged write is
    on disk.  Raises `NodeRunningError` if another node serves *data_dir* on
    its socket and *listen* asks for it too, `ConfigError` for a listen
    address it refuses (one beyond this machine, without users).
    """
    if config is None:
        config = _embedded_config(data_dir, node, listen)
    elif data_dir is not None or node is not None or listen:
        raise TypeError("give either config= or data_dir=, node= and listen=, not both")
    stop = trio.Event()
    failure: Exception | None = None
    with single_errors_unwrapped():
        async with trio.open_nursery() as nursery:
            running = await nursery.start(
                partial(serve_node, config, projections=projections, shutdown_trigger=stop.wait)
            )
            try:
                async with open_client_on(running.connect_in_process()) as client:
                    yield client
            except Exception as exc:
                failure = exc  # raised below, once the node has stopped in order
            finally:
                stop.set()
    if failure is not None:
        raise failure
