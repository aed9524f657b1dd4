"""Helpers of the node tests: configs, an in-process node, raw protocol connections."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path as FsPath
from typing import Any

import trio

from moat_log.client import Client
from moat_log.defaults import environment_without_settings
from moat_log.event import Event
from moat_log.node import ListenAddress, Node, NodeConfig, UserConfig, serve_node
from moat_log.path import Path
from moat_log.protocol import NEED_DATA, FrameDecoder, ScryptParams, encode_frame, make_verifier

#: Cheap scrypt for tests (the default costs 40 ms per login).
FAST = ScryptParams(n=2**10)
ALICE_PASSWORD = "alice's long password"
BOB_PASSWORD = "bob's long password"

UNIX = ListenAddress("unix")
LOOPBACK_ANY_PORT = ListenAddress("tcp", "127.0.0.1", 0)


def users() -> dict[str, UserConfig]:
    """alice may read and write everything; bob may only read home."""
    return {
        "alice": UserConfig(
            "alice", make_verifier(ALICE_PASSWORD, params=FAST), (Path(),), (Path(),)
        ),
        "bob": UserConfig("bob", make_verifier(BOB_PASSWORD, params=FAST), (Path(["home"]),)),
    }


def config(data_dir: FsPath, **settings: Any) -> NodeConfig:
    settings.setdefault("node", "pi1")
    settings.setdefault("listen", (UNIX, LOOPBACK_ANY_PORT))
    return NodeConfig(data_dir=data_dir, **settings)


@asynccontextmanager
async def running_node(node_config: NodeConfig) -> AsyncIterator[Node]:
    """A node serving in this process; stopped in order when the block ends."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        node = await nursery.start(partial(serve_node, node_config, shutdown_trigger=stop.wait))
        try:
            yield node
        finally:
            stop.set()


def tcp_address(node: Node) -> str:
    """The node's first TCP address as ``HOST:PORT``."""
    return next(a for a in node.addresses if not a.startswith("unix:"))


async def open_raw(address: str) -> trio.abc.Stream:
    """A plain stream to the node (``unix:PATH`` or ``HOST:PORT``)."""
    if address.startswith("unix:"):
        return await trio.open_unix_socket(address[len("unix:") :])
    host, _, port = address.rpartition(":")
    return await trio.open_tcp_stream(host, int(port))


class RawConnection:
    """Frames in and out of a stream, with no protocol object in between."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._decoder = FrameDecoder()

    async def send(self, message: dict[str, Any]) -> None:
        await self.stream.send_all(encode_frame(message))

    async def receive(self) -> Any:
        """The next message; None at the end of the stream."""
        while True:
            frame = self._decoder.next_frame()
            if frame is not NEED_DATA:
                return frame
            data = await self.stream.receive_some(65536)
            if not data:
                assert not self._decoder.buffered, "the node closed in the middle of a frame"
                return None
            self._decoder.receive_data(data)

    async def until_closed(self) -> list[Any]:
        """Every message until the node closes the connection."""
        messages = []
        while (message := await self.receive()) is not None:
            messages.append(message)
        return messages


async def stall_a_stream(
    node: Node, writer: Client, request: dict[str, Any]
) -> tuple[RawConnection, list[Any], Any]:
    """Start *request* (a watch or followed log under ``big``, id 1) and stop reading it.

    Each of 60 writes is 100 KB, so the socket, the node's small send queue
    and then the stream's buffer fill up.  Returns the connection, the items
    that came before the stream ended, and the message that ended it.
    """
    raw = RawConnection(await open_raw(node.addresses[0]))
    await raw.receive()
    await raw.send(request)
    assert await raw.receive() == {"id": 1, "item": {"state": "live"}}
    for index in range(60):
        await writer.set(f"big.v{index}", b"x" * 100_000)
    items = []
    while (message := await raw.receive())["id"] == 1 and "item" in message:
        items.append(message)
    return raw, items, message


_WRITE_DIRECTLY = """
import sys
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal
with open_journal(sys.argv[1]) as journal:
    journal.append(Change(Path.parse(sys.argv[2]), sys.argv[3]))
"""


async def write_from_another_process(data_dir: FsPath, path: str, value: str) -> None:
    """Set *path* to *value* by writing the journal from a separate process (no node)."""
    await trio.run_process([sys.executable, "-c", _WRITE_DIRECTLY, str(data_dir), path, value])


_INSERT_DIRECTLY = """
import sys
from moat_log.event import Event
from moat_log.projections import open_journal
with open_journal(sys.argv[1]) as journal:
    journal.insert(Event.unpack(bytes.fromhex(sys.argv[2])))
"""


async def insert_from_another_process(data_dir: FsPath, event: Event) -> None:
    """Store a foreign *event* (as sync would) from a separate process (no node)."""
    await trio.run_process(
        [sys.executable, "-c", _INSERT_DIRECTLY, str(data_dir), event.pack().hex()]
    )


def environment() -> dict[str, str]:
    """The environment for a moat-log child process: none of the caller's MOAT_LOG_ settings."""
    return environment_without_settings()
