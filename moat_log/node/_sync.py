"""Replication in the node: the sync listener, the dialled peers, their status.

`run_sync` runs beside the client listeners when the config has a
``[sync]`` table.  It opens the node's `Replicator` (moat_log.sync.link),
accepts links on ``sync.listen``, and dials every peer of ``sync.peers``
in a loop of its own that reconnects with back-off after any failure:
0.5 s at first, doubling up to `MAX_BACKOFF`, back to the start after a
link that was up for a while.  Two nodes that dial each other end up with
one link: the other ends with ``duplicate-link``, and its dialler waits the
longest back-off before trying again (the working link is found then).
What a link or a dial logs, and how its repeats are kept short, is
`moat_log.sync.link_log`'s.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from moat_log.address import peer_address, socket_address
from moat_log.sync.link import LinkEnded, Replicator, open_replicator
from moat_log.sync.link_log import dial_connected, dial_failed
from moat_log.sync.messages import Goodbye, GoodbyeReason, encode

from ._node import Node
from .sync_config import PeerAddress, SyncConfig

__all__ = ["SyncState", "run_sync"]

log = logging.getLogger("moat_log.sync")

FIRST_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 30.0
#: A link that was up this long resets the back-off.
STABLE_LINK: Final = 10.0
_BACKLOG: Final = 64
#: TCP keepalive of sync links: probe after 10 s of silence, every 5 s, give
#: up after 3 unanswered probes - a dead peer is noticed within about 25 s.
_KEEPALIVE: Final = tuple(
    (getattr(socket, name), value)
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
)


@dataclass
class _Dial:
    """What the node knows of a peer it dials."""

    address: PeerAddress
    last_error: str = ""
    attempts: int = 0
    peer: str | None = None  # the node's name, once a link told it
    linked: bool = False  # a link over this dial runs now


@dataclass
class SyncState:
    """The node's replication, for ``status``."""

    replicator: Replicator
    listen: list[str] = field(default_factory=list)
    #: Connections accepted on the sync listeners and not yet ended.
    accepted: int = 0
    dials: dict[str, _Dial] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        """Per peer, live or gone, what it holds and how far behind either side is."""
        ours = self.replicator.holdings.summary()
        # A dial's error is newer than the end of the link before it (a peer gone down).
        errors = {dial.peer: dial.last_error for dial in self.dials.values() if dial.peer}
        known = {**self.replicator.departed(), **self.replicator.peers()}
        peers = {}
        for name, peer in sorted(known.items()):
            peers[name] = {
                "connected": peer.until is None,
                "dialled": peer.dialled,
                "since": int(peer.since * 1e9),
                "until": None if peer.until is None else int(peer.until * 1e9),
                "holds": peer.held.count,
                "missing_here": (peer.held - ours).count,
                "missing_there": (ours - peer.held).count,
                "events_in": peer.stats.events_in,
                "events_out": peer.stats.events_out,
                "bytes_in": peer.stats.bytes_in,
                "bytes_out": peer.stats.bytes_out,
                "last_error": "" if peer.until is None else errors.get(name) or peer.last_error,
            }
        return {
            "listen": list(self.listen),
            "peers": peers,
            "dialling": {
                address: {
                    "peer": dial.peer,
                    "connected": dial.linked,
                    "attempts": dial.attempts,
                    "last_error": dial.last_error,
                }
                for address, dial in sorted(self.dials.items())
            },
        }


async def run_sync(
    node: Node, config: SyncConfig, *, task_status: trio.TaskStatus[SyncState]
) -> None:
    """Replicate until cancelled; reports the `SyncState` once listening."""
    async with open_replicator(
        node.writer,
        node.feed,
        config.secret,
        max_ahead=config.max_clock_ahead,
        handshake_timeout=config.handshake_timeout,
        remind_every=config.remind_every,
        have_every=config.have_every,
    ) as replicator:
        state = SyncState(replicator)
        async with trio.open_nursery() as nursery:
            if config.listen is not None:
                host, port = config.listen
                listeners = await trio.open_tcp_listeners(port, host=host, backlog=_BACKLOG)
                for listener in listeners:
                    state.listen.append(socket_address(listener.socket.getsockname()))
                    nursery.start_soon(_accept, state, listener, config.max_connections)
            for address in config.peers:
                dial = state.dials[str(address)] = _Dial(address)
                nursery.start_soon(_dial_forever, replicator, dial)
            task_status.started(state)


def _keep_alive(stream: trio.SocketStream) -> None:
    """Let the kernel find a peer that vanished without a word (a cut cable, a crash).

    A link that sends nothing would otherwise wait for it forever, and the
    dialling side would never reconnect: a silent partition would not heal.
    """
    with contextlib.suppress(OSError):
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
        for option, value in _KEEPALIVE:
            stream.setsockopt(socket.IPPROTO_TCP, option, value)


async def _accept(state: SyncState, listener: trio.SocketListener, limit: int) -> None:
    """Serve links on *listener*, at most *limit* at once over all sync listeners."""

    async def handle(stream: trio.SocketStream) -> None:
        peer = peer_address(stream)
        if state.accepted >= limit:
            await _refuse(stream, peer, limit)
            return
        state.accepted += 1
        try:
            _keep_alive(stream)
            await state.replicator.run_link(stream, dialled=False, address=peer)
        finally:
            state.accepted -= 1

    await trio.serve_listeners(handle, [listener])


async def _refuse(stream: trio.SocketStream, peer: str, limit: int) -> None:
    """Say goodbye ``busy`` at once: a goodbye is valid in every state, even before hello."""
    log.warning("sync connection from %s refused: %d connections open, the limit", peer, limit)
    message = f"the node serves {limit} sync connections, its limit; try again later"
    goodbye = Goodbye(str(GoodbyeReason.BUSY), message)
    with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError, OSError):
        await stream.send_all(encode(goodbye))
    await trio.aclose_forcefully(stream)


async def _dial_forever(replicator: Replicator, dial: _Dial) -> None:
    backoff = FIRST_BACKOFF
    address = dial.address
    while True:
        dial.attempts += 1
        started = time.monotonic()
        try:
            stream = await trio.open_tcp_stream(address.host, address.port)
        except OSError as exc:
            dial.last_error = f"cannot connect: {exc.strerror or exc}"
            dial_failed(replicator.repeats, trio.current_time(), str(address), dial.last_error)
        else:
            dial_connected(replicator.repeats, str(address))
            _keep_alive(stream)
            dial.linked = True
            try:
                ended = await replicator.run_link(stream, dialled=True, address=str(address))
            finally:
                dial.linked = False
            dial.peer = ended.peer or dial.peer
            dial.last_error = _last_error(ended)
            if ended.reason == GoodbyeReason.DUPLICATE_LINK:
                backoff = MAX_BACKOFF  # a link with this peer works: check back later
            elif time.monotonic() - started >= STABLE_LINK:
                backoff = FIRST_BACKOFF
        await trio.sleep(backoff * random.uniform(0.8, 1.2))
        backoff = min(backoff * 2, MAX_BACKOFF)


def _last_error(ended: LinkEnded) -> str:
    """How a dialled link ended, for ``status`` (nothing when this node stopped it)."""
    if ended.reason == GoodbyeReason.SHUTDOWN and not ended.by_peer:
        return ""
    return f"{ended.reason}: {ended.message}"
