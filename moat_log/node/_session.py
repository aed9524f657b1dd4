"""One client connection: the thin trio shell around `ServerConnection`.

Theory of operation
-------------------
Three kinds of task share a connection:

* the **reader** feeds received bytes to the `ServerConnection`, sends what
  the connection answered by itself, and starts one task per request -
  except for the short, hot requests (``get``, ``set``, ``delete``): it
  answers a ``get`` itself and hands a write to the group-commit writer with
  a callback that queues the reply once the write is durable (no task, no
  task switch);
* one **request task** per other request runs the operation and sends its
  items and final reply;
* the **writer** is the only task that writes to the socket.  Everybody else
  queues frames in the `Outbox`: a request task waits while a few frames
  are queued, and the reader waits before it reads more requests, so a
  client that stops reading stops the node from producing more for it
  instead of making it buffer without bound.  A send that makes no progress
  for ``send_timeout`` seconds ends the connection.

A request is cancelled only while it waits, never in the middle of a frame:
the writer alone touches the socket, and it is never cancelled but with the
whole connection.  A client's ``cancel`` stops a stream (``watch``,
``subtree``, ``history``, ``log``, ``replay``); writes and other short
requests simply finish.

The connection ends when the client closes it (everything in flight is
dropped), when it breaks the protocol (goodbye ``protocol``), when it has
not authenticated or sent a request within ``handshake_timeout`` (goodbye
``protocol``), or when the node stops: then streams end with ``shutdown``,
short requests get a moment to finish, and the goodbye is ``shutdown``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from functools import partial
from itertools import islice
from typing import Any, Final

import trio

from moat_log.errors import (
    FeedOverflowError,
    InvalidInputError,
    JournalClosedError,
    MoatLogError,
    TypeCheckError,
)
from moat_log.event import MAX_SOURCE_CHARS, Event, Op
from moat_log.journal.change import Change, check_source
from moat_log.path import ROOT, Path
from moat_log.projections.replay import walk_state_at
from moat_log.projections.watch import SubtreeWatch
from moat_log.protocol import (
    LIVE,
    NEED_DATA,
    Authenticated,
    Cancel,
    ConnectionClosed,
    DeleteRequest,
    ErrorType,
    FrameTooLargeError,
    GetRequest,
    HistoryRequest,
    ListRequest,
    LogRequest,
    PackedEvent,
    ProtocolError,
    Rejected,
    RemoteProtocolError,
    ReplayRequest,
    Request,
    RequestError,
    ServerConnection,
    SetRequest,
    StatusRequest,
    SubtreeRequest,
    WatchRequest,
    Written,
)

from ._log import LogSelection, held_events, resolve_time, selection_of
from ._node import Node
from ._outbox import Outbox

__all__ = ["ClientSession"]

log = logging.getLogger("moat_log.node")

#: Frames queued for the writer before request tasks (and the reader) wait.
OUTGOING_FRAMES: Final = 16
#: The most bytes one read from the socket takes.
RECEIVE_BYTES: Final = 64 * 1024
#: Requests the reader answers or hands on before it lets other tasks run.
REQUESTS_PER_TURN: Final = 256
#: How long stopping waits for short requests, and then for the goodbye to go out.
STOP_GRACE: Final = 2.0


class ClientSession:
    """Serves one client connection on *stream* until it ends."""

    def __init__(
        self,
        node: Node,
        stream: trio.abc.Stream,
        peer: str,
        *,
        authenticate: bool,
        handshake_timeout: float | None = None,
    ) -> None:
        self.node = node
        self.peer = peer
        self._stream = stream
        #: The socket's file descriptor, for `_send_now` (None: not a socket).
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else None
        #: Seconds to log in or send a first request (None: the node's setting).
        self._handshake_timeout = (
            node.config.handshake_timeout if handshake_timeout is None else handshake_timeout
        )
        self.conn = ServerConnection(
            node.name,
            authenticator=node.authenticator if authenticate else None,
            permission=node.config.permission,
        )
        self._outbox = Outbox(OUTGOING_FRAMES)
        self._writes = 0  # writes handed to the journal writer and not yet answered
        self._writes_answered = trio.Event()
        self._streams: dict[int, trio.CancelScope] = {}
        self._reader_scope = trio.CancelScope()
        self._stopping = False
        self._goodbye = b""
        self._end: str | None = None  # why the connection ended, for the log
        self._writer_done = trio.Event()
        self._handlers: dict[str, Callable[[Any], Awaitable[None]]] = {
            "get": self._get,
            "set": self._write,
            "delete": self._write,
            "list": self._list,
            "subtree": self._subtree,
            "watch": self._watch,
            "history": self._history,
            "log": self._log,
            "replay": self._replay,
            "status": self._status,
        }
        #: Requests the reader answers (or hands on) without a task of their own.
        self._answer_now: dict[str, Callable[[Any], None]] = {
            "get": self._get_now,
            "set": self._write_now,
            "delete": self._write_now,
        }

    @property
    def user(self) -> str | None:
        return self.conn.user

    def stop(self) -> None:
        """The node is stopping: end this connection with a ``shutdown`` goodbye."""
        self._stopping = True
        self._reader_scope.cancel()

    async def run(self) -> str:
        """Serve until the connection ends; returns why it ended."""
        async with trio.open_nursery() as connection:
            connection.start_soon(self._write_frames, connection.cancel_scope)
            async with trio.open_nursery() as requests:
                with self._reader_scope:
                    self._end = await self._read_requests(requests)
                self._end_requests(requests)
            with trio.move_on_after(STOP_GRACE):
                if self._stopping:
                    while self._writes:  # their replies go out before the goodbye
                        await self._writes_answered.wait()
                self._say_goodbye()
                await self._writer_done.wait()
            connection.cancel_scope.cancel()
        return self._end or "the node stopped"

    def _end_requests(self, requests: trio.Nursery) -> None:
        if not self._stopping:
            requests.cancel_scope.cancel()  # the client is gone or broke the protocol
            return
        for scope in self._streams.values():
            scope.cancel()
        requests.cancel_scope.deadline = trio.current_time() + STOP_GRACE

    def _say_goodbye(self) -> None:
        if self._stopping and not self._goodbye:
            self._end = "the node is stopping"
            with suppress(ProtocolError):  # it had failed or said goodbye already
                self._goodbye = self.conn.send_goodbye(ErrorType.SHUTDOWN, "the node is stopping")
        self._outbox.put(self._goodbye)
        self._outbox.close()

    # --- the writer -------------------------------------------------------

    async def _write_frames(self, connection: trio.CancelScope) -> None:
        try:
            while (data := await self._outbox.take()) is not None:
                data = self._send_now(data)
                if not data:
                    continue
                with trio.move_on_after(self.node.config.send_timeout) as timer:
                    await self._stream.send_all(data)
                if timer.cancelled_caught:
                    self._end = "the client stopped reading (send timed out)"
                    connection.cancel()
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._end = self._end or "the connection broke"
            connection.cancel()
        finally:
            self._outbox.broken()
            self._writer_done.set()

    def _send_now(self, data: bytes) -> bytes:
        """Write what the socket takes at once, without a trip through trio; the rest.

        Most replies are small and the socket's buffer has room: the kernel
        takes them whole, and the timed `send_all` (a cancel scope, a
        deadline, a checkpoint) is needed only for what is left.  Only the
        writer task writes to the socket, so this cannot interleave with a
        `send_all` under way.
        """
        if self._fd is None:
            return data
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            return data
        except OSError:
            return data  # let send_all raise it as trio does
        return data[sent:]

    async def _send(self, data: bytes) -> None:
        if data:
            await self._outbox.send(data)

    # --- the reader -------------------------------------------------------

    async def _read_requests(self, requests: trio.Nursery) -> str:
        """Read and dispatch until the connection ends; returns why it ended."""
        try:
            return await self._read_and_dispatch(requests)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return "the connection broke"  # the writer found out first

    async def _read_and_dispatch(self, requests: trio.Nursery) -> str:
        conn = self.conn
        await self._send(conn.greeting())
        timeout = self._handshake_timeout
        deadline = trio.current_time() + timeout
        handed_on = 0
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._goodbye = conn.data_to_send()
                log.warning("connection from %s broke the protocol: %s", self.peer, exc)
                return f"protocol error: {exc}"
            await self._send(conn.data_to_send())
            if event is NEED_DATA:
                if await self._receive(deadline):
                    continue
                self._goodbye = conn.send_goodbye(
                    ErrorType.PROTOCOL,
                    f"no request within {timeout:g} s of connecting; closing the connection",
                )
                return "nothing received in time (handshake timeout)"
            if isinstance(event, ConnectionClosed):
                return "closed by the client"
            if isinstance(event, Request):
                deadline = math.inf
                answer_now = self._answer_now.get(event.OP)
                if answer_now is None or self._stopping:
                    requests.start_soon(self._run, event)
                else:
                    # One read can hold thousands of gets: their replies wait
                    # in the outbox within its limit, like every other frame.
                    await self._outbox.wait_for_room()
                    answer_now(event)
                    handed_on += 1
                    if handed_on >= REQUESTS_PER_TURN:
                        # The journal writer commits what is queued so far
                        # while this task decodes the rest of the read: the
                        # first replies go out sooner, and the client works
                        # on them while the node works on the next ones.
                        handed_on = 0
                        await trio.lowlevel.checkpoint()
            else:
                deadline = self._on_notice(event, deadline)

    def _on_notice(self, event: object, deadline: float) -> float:
        """A cancel, a login or a refusal; the read deadline after it."""
        if isinstance(event, Cancel):
            scope = self._streams.get(event.id)
            if scope is not None:
                scope.cancel()
        elif isinstance(event, Authenticated):
            log.info("connection from %s authenticated as %r", self.peer, event.user)
            return math.inf
        elif isinstance(event, Rejected):
            self._log_rejected(event)
        return deadline

    async def _receive(self, deadline: float) -> bool:
        """Read more for the connection; False if *deadline* passed first."""
        if deadline == math.inf:  # the usual case: no cancel scope to set up
            await self._outbox.wait_for_room()  # the client reads its replies
            self.conn.receive_data(await self._stream.receive_some(RECEIVE_BYTES))
            return True
        with trio.move_on_at(deadline):
            await self._outbox.wait_for_room()
            self.conn.receive_data(await self._stream.receive_some(RECEIVE_BYTES))
            return True
        return False

    def _log_rejected(self, event: Rejected) -> None:
        if event.type == ErrorType.AUTH_FAILED:
            log.warning("connection from %s: authentication failed: %s", self.peer, event.detail)
        elif event.type == ErrorType.PERMISSION_DENIED:
            log.warning("connection from %s: denied: %s", self.peer, event.message)
        else:
            log.debug("connection from %s: request %d refused: %s", self.peer, event.id, event)

    # --- requests -----------------------------------------------------------

    async def _run(self, request: Request) -> None:
        """Run one request to its final reply."""
        handler = self._handlers.get(request.OP)
        scope = trio.CancelScope()
        if request.STREAM:
            self._streams[request.id] = scope
        error_type: str = ErrorType.INTERNAL
        message = "the request ended without a reply"
        try:
            with scope:
                await (handler or self._not_implemented)(request)
                return
        except (ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the connection is over: nobody to answer
        except MoatLogError as exc:
            error_type, message = _error_reply(request, exc)
        except Exception as exc:
            log.exception("request %s from %s failed", request.OP, self.peer)
            error_type, message = ErrorType.INTERNAL, f"the node hit a bug: {exc!r}"
        finally:
            if self._streams.get(request.id) is scope:
                del self._streams[request.id]
        if scope.cancelled_caught:
            if self._stopping:
                error_type, message = ErrorType.SHUTDOWN, "the node is stopping"
            else:
                error_type, message = ErrorType.CANCELLED, "cancelled by the client"
        with suppress(ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            await self._send(self.conn.send_error(request.id, error_type, message))

    async def _not_implemented(self, request: Request) -> None:
        raise RequestError(
            ErrorType.INTERNAL, f"op '{request.OP}' is not implemented yet by this node"
        )  # a protocol op the node has no handler for: a bug

    async def _reply(self, request: Request, result: object) -> None:
        await self._send(self.conn.send_reply(request.id, result))

    async def _item(self, request: Request, item: object) -> None:
        await self._send(self.conn.send_item(request.id, item))

    async def _get(self, request: GetRequest) -> None:
        await self._reply(request, self._current(request))

    def _current(self, request: GetRequest) -> Event | None:
        event = self.node.kv.get(request.path)
        return None if event is None or event.op is Op.DELETE else event

    async def _write(self, request: SetRequest | DeleteRequest) -> None:
        event = await self.node.writer.append(self._change(request))
        await self._reply(request, Written(event.id, event.hlc))

    def _change(self, request: SetRequest | DeleteRequest) -> Change:
        source = recorded_source(self.user, request.source)
        check_source(source)  # the request checked the rest as a change would
        if isinstance(request, SetRequest):
            change = Change.trusted(request.path, request.value, Op.SET, source, request.cause)
        else:
            change = Change.trusted(request.path, None, Op.DELETE, source, request.cause)
        self.node.check(change, self.user)
        return change

    # --- requests answered by the reader itself -------------------------------

    def _get_now(self, request: GetRequest) -> None:
        try:
            frame = self.conn.send_reply(request.id, self._current(request))
        except MoatLogError as exc:
            frame = self.conn.send_error(request.id, *_error_reply(request, exc))
        self._outbox.put(frame)

    def _write_now(self, request: SetRequest | DeleteRequest) -> None:
        """Hand the write to the journal writer; `_written` answers once it is durable."""
        try:
            self.node.writer.submit(
                self._change(request),
                partial(self._written, request),
                durability=request.durability,
            )
        except MoatLogError as exc:
            self._outbox.put(self.conn.send_error(request.id, *_error_reply(request, exc)))
            return
        self._writes += 1

    def _written(self, request: SetRequest | DeleteRequest, result: object) -> None:
        self._writes -= 1
        if not self._writes:
            self._writes_answered.set()
            self._writes_answered = trio.Event()
        try:
            if type(result) is Event:
                frame = self.conn.send_reply(request.id, Written(result.id, result.hlc))
            else:
                assert isinstance(result, MoatLogError), result
                frame = self.conn.send_error(request.id, *_error_reply(request, result))
        except ProtocolError:
            return  # the connection is over: nobody to answer
        self._outbox.put(frame)

    async def _list(self, request: ListRequest) -> None:
        children = await self.node.read(partial(self.node.kv.children, request.path))
        await self._reply(request, children)

    async def _status(self, request: StatusRequest) -> None:
        await self._reply(request, self.node.status(self.user))

    async def _stream_items(self, request: Request, items: Iterator[Event]) -> None:
        while chunk := await self.node.read_chunk(items):
            for event in chunk:
                await self._item(request, event)
        await self._reply(request, None)

    async def _subtree(self, request: SubtreeRequest) -> None:
        await self._stream_items(request, self.node.kv.walk(request.path))

    async def _history(self, request: HistoryRequest) -> None:
        journal = self.node.journal
        if request.limit is None:
            events = journal.history(request.path, subtree=request.recursive)
        elif not request.recursive:
            events = _oldest_first(journal.history(request.path, reverse=True), request.limit)
        else:
            events = _newest_per_path(journal.history(request.path, subtree=True), request.limit)
        await self._stream_items(request, events)

    async def _watch(self, request: WatchRequest) -> None:
        """The subtree, the marker, then each new winner (`moat_log.projections.watch`)."""
        node = self.node
        size = node.config.watch_buffer
        with SubtreeWatch(
            node.feed, node.kv, request.path, limit=size, read_chunk=node.read_chunk_at
        ) as watch:
            try:
                async for event in watch.dump():
                    await self._item(request, event)
                await self._item(request, LIVE)
                async for item in watch.changes():
                    await self._item(request, PackedEvent(item.packed))
            except FeedOverflowError:
                raise _fell_behind(size, "watch") from None

    async def _log(self, request: LogRequest) -> None:
        node = self.node
        selection = await node.read(partial(selection_of, node.journal, request))
        if request.follow:
            await self._follow_log(request, selection)
            return
        summary = await node.read(node.journal.summary)
        await self._stream_items(
            request, held_events(node.journal, selection, summary, request.limit)
        )

    async def _follow_log(self, request: LogRequest, selection: LogSelection) -> None:
        """The held events, the marker, then the new ones (see `moat_log.node._log`)."""
        node = self.node
        summary, position = await node.read(node.journal.summary_at)
        events = held_events(node.journal, selection, summary, request.limit)
        while chunk := await node.read_chunk(events):
            for event in chunk:
                await self._item(request, event)
        await self._item(request, LIVE)
        size = node.config.watch_buffer
        matches = selection.matches
        with node.feed.subscribe(after=position, prefix=selection.prefix, limit=size) as new:
            try:
                while True:
                    for item in await new.receive_batch():
                        if matches(item.event):
                            await self._item(request, PackedEvent(item.packed))
            except FeedOverflowError:
                raise _fell_behind(size, request.OP) from None

    async def _replay(self, request: ReplayRequest) -> None:
        node = self.node
        until = await node.read(partial(resolve_time, node.journal, request.until, "until"))
        prefix = ROOT if request.path is None else request.path
        await self._stream_items(request, walk_state_at(node.journal, until, prefix=prefix))


def _fell_behind(size: int, op: str) -> RequestError:
    return RequestError(
        ErrorType.OVERFLOW,
        f"{op} fell behind: more than {size} changes waited for this client; "
        f"read faster, then start the {op} again",
    )


def _error_reply(request: Request, exc: MoatLogError) -> tuple[str, str]:
    if isinstance(exc, RequestError):
        return exc.error_type, exc.message
    if isinstance(exc, FrameTooLargeError):
        return ErrorType.TOO_LARGE, f"{exc}; ask for less (a deeper path)"
    if isinstance(exc, JournalClosedError):
        return ErrorType.SHUTDOWN, f"the node is stopping: {exc}"
    if isinstance(exc, TypeCheckError):
        return ErrorType.TYPE_MISMATCH, str(exc)
    if isinstance(exc, InvalidInputError) and request.ACCESS == "write":
        return ErrorType.INVALID_VALUE, str(exc)
    log.error("request %s failed: %s", request.OP, exc)
    return ErrorType.INTERNAL, str(exc)


def _oldest_first(newest_first: Iterator[Event], limit: int) -> Iterator[Event]:
    """The first *limit* of *newest_first*, reversed (a generator: runs where it is read)."""
    yield from reversed(list(islice(newest_first, limit)))


def _newest_per_path(events: Iterator[Event], limit: int) -> Iterator[Event]:
    """The newest *limit* events of each path, oldest first, paths as they come."""
    group: deque[Event] = deque(maxlen=limit)
    current: Path | None = None
    for event in events:
        if event.path != current:
            yield from group
            group.clear()
            current = event.path
        group.append(event)
    yield from group


def recorded_source(user: str | None, claimed: str | None) -> str:
    """The source the node stores for a client's write (docs/event-format.md, "What source proves").

    A logged-in user's writes always start with ``client:USER``, the one part
    the node vouches for; what the client says follows after a space, cut to
    fit the 256 characters.  Without a login (the Unix socket, a node without
    users) the client's own source is stored as given, ``client`` if none.
    """
    if user is None:
        return "client" if claimed is None else claimed
    vouched = f"client:{user}"
    if claimed is None or claimed == vouched:
        return vouched
    return f"{vouched} {claimed}"[:MAX_SOURCE_CHARS]
