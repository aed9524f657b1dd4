"""The node: serves the journal and its views to clients over the client protocol.

``moat-log serve`` runs `run_node`.  A script that embeds a node uses
``async with open_node(data_dir=...) as client:`` (a `Client` of the node in
its own process), or starts `serve_node` in its own nursery::

    config = load_config("node.toml")
    async with trio.open_nursery() as nursery:
        node = await nursery.start(serve_node, config)
        ...  # node.addresses: where it listens

See docs/node.md for the configuration and the guarantees.
"""

from ._embedded import open_node
from ._node import Node
from .config import ListenAddress, NodeConfig, UserConfig, load_config
from .server import NodeRunningError, run_node, serve_node

__all__ = [
    "ListenAddress",
    "Node",
    "NodeConfig",
    "NodeRunningError",
    "UserConfig",
    "load_config",
    "open_node",
    "run_node",
    "serve_node",
]
