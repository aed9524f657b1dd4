"""The node server: the journal writer, the views and the client listeners.

``node = await nursery.start(serve_node, config)`` runs a node until it is
cancelled or its *shutdown_trigger* returns; `run_node` does the same until
SIGTERM or SIGINT, which is what ``moat-log serve`` runs.

Stopping (the trigger or a signal) is orderly: stop accepting, end every
connection with a ``shutdown`` goodbye (streams end at once, writes in flight
get a moment to be committed and answered), then close the group-commit
writer, which commits what is queued, and the journal.  Cancelling
`serve_node` from outside skips the goodbyes; the writer still refuses or
commits every queued write whole.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import signal
import socket
import stat
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path as FsPath
from typing import Final

import trio

from moat_log import cycle_collector
from moat_log.adapters.supervisor import plan_adapters, run_adapters
from moat_log.address import peer_address, socket_address
from moat_log.errors import MoatLogError
from moat_log.journal.group_commit import JournalWriter, open_journal
from moat_log.journal.store import journal_dir
from moat_log.projections import default_views
from moat_log.projections.runner import run_side_effects
from moat_log.projections.side_effect import SideEffectProjection, check_side_effects
from moat_log.protocol import ServerConnection
from moat_log.streams import single_errors_unwrapped

from ._lock import NodeRunningError, holding_data_dir
from ._node import Node
from ._recover import RECOVERY_MARKER, recover_own_history
from ._retention import run_retention
from ._session import ClientSession
from ._sync import run_sync
from .config import ListenAddress, NodeConfig

__all__ = ["NodeRunningError", "run_node", "serve_node"]

log = logging.getLogger("moat_log.node")

#: How long stopping waits for connections to say goodbye before cutting them.
STOP_TIMEOUT: Final = 5.0
#: The file in the data directory keying the decoy logins of unknown users.
SECRET_NAME: Final = "client-auth.secret"
#: Connections the kernel queues until the node accepts them (capped by
#: net.core.somaxconn).  Queued connections cost the node nothing; when the
#: queue overflows, the kernel silently drops a burst of connections' final
#: ACKs and their clients wait for seconds, so it is generous.
_BACKLOG: Final = 4096


async def _never() -> None:
    await trio.sleep_forever()


async def serve_node(
    config: NodeConfig,
    *,
    projections: Iterable[SideEffectProjection] = (),
    shutdown_trigger: Callable[[], Awaitable[object]] = _never,
    task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a node on *config* until *shutdown_trigger* returns (or until cancelled).

    The node runs each of the side-effect *projections* behind its journal
    (`moat_log.projections.side_effect`).  Reports the `Node` (its name,
    addresses) to ``nursery.start`` once it accepts clients.
    """
    side_effects = check_side_effects(projections)
    with single_errors_unwrapped():
        await _serve_node(config, shutdown_trigger, task_status, side_effects=side_effects)


async def _serve_node(
    config: NodeConfig,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[Node],
    *,
    side_effects: list[SideEffectProjection],
) -> None:
    data_dir = config.data_dir
    # What can fail without a trace comes first: a TCP port in use leaves no
    # data directory behind; then the lock, so that no second node touches
    # the socket or the journal of a running one.
    tcp = await _open_tcp_listeners(config)
    try:
        with holding_data_dir(data_dir) as record_holder:
            if any(address.kind == "unix" for address in config.listen):
                await _remove_stale_socket(config.socket_path)  # before touching the journal
            node_name = config.node
            if node_name is None and not (journal_dir(data_dir) / "data.mdb").is_file():
                from moat_log.defaults import host_node_name

                node_name = host_node_name()
            async with open_journal(
                data_dir,
                node=node_name,
                projections=default_views(),
                durability=config.durability,
                flush_interval=config.flush_interval,
            ) as writer:
                record_holder(writer.journal.node)
                await _run(
                    config, writer, tcp, shutdown_trigger, task_status, side_effects=side_effects
                )
    finally:
        for listener, _ in tcp:
            await trio.aclose_forcefully(listener)


async def _run(
    config: NodeConfig,
    writer: JournalWriter,
    tcp: list[tuple[trio.SocketListener, str]],
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[Node],
    *,
    side_effects: list[SideEffectProjection],
) -> None:
    data_dir = config.data_dir
    secret = await trio.to_thread.run_sync(_auth_secret, data_dir) if config.users else None
    node = Node(config, writer, secret=secret)
    server = _Server(node, tcp)
    adapters = plan_adapters(config.adapters)
    node.adapters = {plan.config.name: plan.status for plan in adapters}
    outputs = [plan.output for plan in adapters if plan.output is not None]
    async with trio.open_nursery() as background:
        await background.start(node.feed.run)
        node.side_effects = await background.start(
            run_side_effects, node.journal, node.feed, [*side_effects, *outputs]
        )
        if config.sync is not None:
            node.sync = await background.start(run_sync, node, config.sync)
            # a node others dial, but that dials none, does not wait for them
            wait = config.sync.wait_for_peers if config.sync.peers else 0
            recover = partial(
                recover_own_history, node.sync.replicator, wait, data_dir / RECOVERY_MARKER
            )
            if not await _unless_stopped(shutdown_trigger, recover):
                background.cancel_scope.cancel()
                return
        # after the recovery: an adapter's writes are the node's own events
        await background.start(run_adapters, node, adapters)
        if config.retention.every and config.retention.rules:
            await background.start(run_retention, node, config.retention)
        if config.ems:
            from moat_log.projections.ems.runner import run_schedules

            node.schedules = await background.start(run_schedules, node, config.ems)
        await _serve_clients(node, server, shutdown_trigger, task_status)
        background.cancel_scope.cancel()
    log.info("node %s: clients served; committing what is queued, then stopping", node.name)


async def _unless_stopped(
    shutdown_trigger: Callable[[], Awaitable[object]], work: Callable[[], Awaitable[object]]
) -> bool:
    """Run *work* unless *shutdown_trigger* returns first; whether it finished."""
    finished = False
    async with trio.open_nursery() as nursery:

        async def stop() -> None:
            await shutdown_trigger()
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop)
        await work()
        finished = True
        nursery.cancel_scope.cancel()
    return finished


async def _serve_clients(
    node: Node,
    server: _Server,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[Node],
) -> None:
    """Accept clients until *shutdown_trigger* returns, then stop their sessions."""
    async with trio.open_nursery() as handlers:
        listeners = await server.open_listeners()
        accepting = trio.CancelScope()
        handlers.start_soon(server.accept, listeners, handlers, accepting)
        log.info(
            "node %s serving %s on %s",
            node.name,
            node.config.data_dir,
            ", ".join(node.addresses) or "no address (in-process clients only)",
        )
        task_status.started(node)
        try:
            await shutdown_trigger()
        finally:
            accepting.cancel()
            server.stop_sessions()
            handlers.cancel_scope.deadline = trio.current_time() + STOP_TIMEOUT


async def run_node(config: NodeConfig, *, ready: Callable[[Node], object] | None = None) -> None:
    """Run a node until SIGTERM or SIGINT, then stop it in order.

    *ready* is called with the `Node` once it accepts clients.  This is the
    whole process's main program: it takes the signals, and it freezes the
    start-up heap for the cycle collector (`cycle_collector.freeze_start_up`).
    A second signal while it stops changes nothing: the queued writes are
    committed all the same, and once the node has stopped, signals are
    ignored until the process exits (a late KeyboardInterrupt would only
    print a traceback over a clean stop: a double Ctrl-C, ``timeout -s INT``).
    """
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    for signum in stop_signals:
        # What the receiver below restores when it closes: a Python no-op.
        # A signal caught just before the restore runs whatever handler is
        # in place by then, and with SIG_IGN there CPython raises "ignored
        # due to race condition".
        signal.signal(signum, _ignore_signal)
    try:
        await _run_until_signalled(config, ready, stop_signals)
    finally:
        for signum in stop_signals:
            # Now the kernel drops them: the interpreter's exit resets Python
            # handlers, and a late SIGINT would end the process with -2.
            signal.signal(signum, signal.SIG_IGN)


async def _run_until_signalled(
    config: NodeConfig, ready: Callable[[Node], object] | None, stop_signals: tuple[int, ...]
) -> None:
    with trio.open_signal_receiver(*stop_signals) as signals:

        async def signalled() -> None:
            async for signum in signals:
                log.info("received %s: stopping", signal.Signals(signum).name)
                return

        with single_errors_unwrapped():
            # not nursery.start: a node stopped while it waits for its peers
            # (`recover_own_history`) never starts serving, and that is no error
            await serve_node(config, shutdown_trigger=signalled, task_status=_Ready(ready))


def _ignore_signal(signum: int, frame: object) -> None:
    """The handler of SIGTERM and SIGINT once the node stopped: they change nothing."""


class _Ready:
    """The task status of `run_node`: calls *ready* with the node once it serves."""

    def __init__(self, ready: Callable[[Node], object] | None) -> None:
        self._ready = ready

    def started(self, value: Node | None = None) -> None:
        cycle_collector.freeze_start_up()
        if self._ready is not None and value is not None:
            self._ready(value)


@dataclass(frozen=True, slots=True)
class _Entrance:
    """A listener, and how the node treats the clients it accepts."""

    listener: trio.abc.Listener[trio.SocketStream]
    #: What the log calls a local client (no login); None: TCP, named by its address.
    local_name: str | None
    #: Seconds to the first request (None: the node's ``handshake_timeout``).
    handshake_timeout: float | None = None


class _Server:
    """The listeners and the sessions of one node."""

    def __init__(self, node: Node, tcp: list[tuple[trio.SocketListener, str]]) -> None:
        self.node = node
        self._tcp = tcp  # opened before the journal (`_open_tcp_listeners`)
        self._sessions: set[ClientSession] = set()
        self._stopping = False
        self._socket_inode: tuple[int, int] | None = None

    async def open_listeners(self) -> list[_Entrance]:
        """Every configured listener, and the node's in-process one."""
        opened: list[_Entrance] = []
        try:
            for address in self.node.config.listen:
                if address.kind == "unix":
                    # Local scripts may hold an idle connection as long as they like.
                    opened.append(_Entrance(await self._open_unix(), "unix socket", math.inf))
                    self.node.addresses.append(f"unix:{self.node.config.socket_path}")
                else:
                    for listener, name in self._tcp:
                        if name == str(address):
                            opened.append(_Entrance(listener, None))
                            self.node.addresses.append(
                                socket_address(listener.socket.getsockname())
                            )
        except BaseException:
            for entrance in opened:
                await trio.aclose_forcefully(entrance.listener)
            self._remove_socket()
            raise
        in_process = self.node.in_process
        opened.append(_Entrance(in_process, in_process.PEER, in_process.HANDSHAKE_TIMEOUT))
        return opened

    async def _open_unix(self) -> trio.SocketListener:
        path = self.node.config.socket_path
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                await sock.bind(os.fspath(path))
            except OSError as exc:
                raise MoatLogError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
            os.chmod(path, 0o600)  # only the node's user; the data directory guards it too
            info = os.stat(path)
            self._socket_inode = (info.st_dev, info.st_ino)
            sock.listen(_BACKLOG)
        except BaseException:
            sock.close()
            raise
        return trio.SocketListener(sock)

    def _remove_socket(self) -> None:
        """Remove our socket file (not one another node put there since)."""
        if self._socket_inode is None:
            return
        path = self.node.config.socket_path
        with suppress(OSError):
            info = os.stat(path)
            if (info.st_dev, info.st_ino) == self._socket_inode:
                path.unlink()
        self._socket_inode = None

    async def accept(
        self, entrances: list[_Entrance], handlers: trio.Nursery, scope: trio.CancelScope
    ) -> None:
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    for entrance in entrances:
                        nursery.start_soon(self._accept_on, entrance, handlers)
        finally:
            self._remove_socket()

    async def _accept_on(self, entrance: _Entrance, handlers: trio.Nursery) -> None:
        async def handle(stream: trio.SocketStream) -> None:
            await self._serve_client(stream, entrance)

        await trio.serve_listeners(handle, [entrance.listener], handler_nursery=handlers)

    async def _serve_client(self, stream: trio.SocketStream, entrance: _Entrance) -> None:
        node = self.node
        local = entrance.local_name is not None
        peer = entrance.local_name or peer_address(stream)
        if self._stopping:
            return  # accepted just before the listeners closed
        if len(self._sessions) >= node.config.max_connections:
            await _refuse(node, stream, peer)
            return
        if not local:
            with suppress(OSError):
                stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
        session = ClientSession(
            node,
            stream,
            peer,
            authenticate=not local and bool(node.config.users),
            handshake_timeout=entrance.handshake_timeout,
        )
        self._sessions.add(session)
        node.connections = len(self._sessions)
        log.info("connection from %s accepted (%d open)", peer, node.connections)
        why = "the node stopped"
        try:
            why = await session.run()
        except Exception:  # a bug: it ends this connection, never the node
            log.exception("connection from %s failed", peer)
            why = "an internal error (logged above)"
        finally:
            self._sessions.discard(session)
            node.connections = len(self._sessions)
            log.info("connection from %s closed: %s", peer, why)

    def stop_sessions(self) -> None:
        self._stopping = True
        for session in list(self._sessions):
            session.stop()


async def _refuse(node: Node, stream: trio.SocketStream, peer: str) -> None:
    """Greet and say goodbye: the node serves as many connections as it may."""
    limit = node.config.max_connections
    log.warning("connection from %s refused: %d connections open, the limit", peer, limit)
    conn = ServerConnection(node.name)
    data = conn.greeting() + conn.send_goodbye(
        "busy", f"the node serves {limit} connections, its limit; try again later"
    )
    with trio.move_on_after(1), suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(data)


async def _open_tcp_listeners(config: NodeConfig) -> list[tuple[trio.SocketListener, str]]:
    """Every configured TCP listener, each with the address it was configured as."""
    opened: list[tuple[trio.SocketListener, str]] = []
    try:
        for address in config.listen:
            if address.kind != "unix":
                opened.extend((listener, str(address)) for listener in await _open_tcp(address))
    except BaseException:
        for listener, _ in opened:
            await trio.aclose_forcefully(listener)
        raise
    return opened


async def _open_tcp(address: ListenAddress) -> list[trio.SocketListener]:
    try:
        return await trio.open_tcp_listeners(address.port, host=address.host, backlog=_BACKLOG)
    except OSError as exc:
        raise MoatLogError(f"cannot listen on {address}: {exc.strerror or exc}") from exc


async def _remove_stale_socket(path: FsPath) -> None:
    """Remove a socket file left by a node that died; refuse if a node answers on it."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise MoatLogError(f"{path} exists and is not a socket; move it away")
    try:
        stream = await trio.open_unix_socket(os.fspath(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise MoatLogError(f"cannot check the socket {path}: {exc.strerror}") from exc
        log.info("removing the stale socket %s", path)
        with suppress(FileNotFoundError):
            os.unlink(path)
        return
    await stream.aclose()
    raise NodeRunningError(
        f"another node is already serving {path.parent} (it answers on {path}); stop it first"
    )


def _auth_secret(data_dir: FsPath) -> bytes:
    """The persistent key of decoy logins (so decoys do not change on restart)."""
    path = data_dir / SECRET_NAME
    try:
        with open(path, "rb") as file:
            secret = file.read()
        if len(secret) == 32:
            return secret
    except FileNotFoundError:
        pass
    secret = os.urandom(32)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return secret
