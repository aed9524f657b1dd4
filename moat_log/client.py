"""The script API: talk to a running node.

::

    async with moat_log.open_client() as client:        # the data dir's Unix socket
        await client.set("home.kitchen.setpoint", 21.5)
        print(await client.value("home.kitchen.setpoint"))
        async with client.watch("home") as changes:
            async for item in changes:                   # events, LIVE, events ...
                ...

Theory of operation
-------------------
One `ClientConnection` (the sans-io protocol) per connection.  Any number of
tasks send requests at once: each request queues its frame for the single
writer task and waits for its own final reply, which the reader task hands
over by request id.  Stream items are buffered per request: without limit for
``subtree``, ``history``, ``replay`` and a ``log`` without ``follow`` (their
size is that of the answer), and up to `WATCH_BUFFER` items for a watch or a
followed log, after which the stream is cancelled and raises ``overflow`` (a
reader that blocked instead could deadlock a script that awaits another
request inside its watch loop).  Only the changes after the live marker
count: what comes before it (the current subtree, the held events) is the
answer, as big as the request made it.

Times (``since``, ``until``) are what `moat_log.timespec.time_spec` takes:
ns since the epoch, an `EventId`, a `datetime.datetime`, or text such as
``"-1h"``, ``"2026-11-21T14:00"`` or ``"pi1:42"``.  Text and datetimes are
read on this machine (relative times against its clock, naive times in its
zone); the node gets ns or an event id.

Errors the node reports raise a `NodeError` (moat_log.errors): its
``error_type`` is the wire type, and its subclass the kind a script catches
(`PermissionDeniedError`, `NodeStoppingError`, `StreamOverflowError`, ...;
only `BadRequestError` is also a `ValueError`).  A lost or refused
connection raises `NodeConnectionError`.  All are `MoatLogError`.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path as FsPath
from types import TracebackType
from typing import Any, Final, Generic, Literal, TypeVar, overload

import trio

from .address import host_and_port
from .defaults import SOCKET_NAME
from .durability import Durability
from .errors import InvalidInputError, MoatLogError, StreamOverflowError
from .event import Event, Op, Value
from .ids import EventId
from .path import Path, Segment
from .protocol import (
    LIVE,
    NEED_DATA,
    AuthChallenge,
    Authenticated,
    ClientConnection,
    ConnectionClosed,
    ErrorReply,
    ErrorType,
    Goodbye,
    Greeting,
    Item,
    LiveMarker,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    Written,
    salt_password,
)
from .streams import coalesce, single_errors_unwrapped
from .timespec import TimeLike, TimeSpec, time_spec

__all__ = [
    "LIVE",
    "Client",
    "NodeConnectionError",
    "NodeNotRunningError",
    "Stream",
    "open_client",
    "open_client_on",
]

#: Items a watch or a followed log buffers for a reader slower than the changes.
WATCH_BUFFER: Final = 10_000
_RECEIVE_BYTES: Final = 64 * 1024
#: Messages the reader hands out before it lets the tasks it woke run.
_MESSAGES_PER_TURN: Final = 256

T = TypeVar("T")
PathLike = Path | str | Sequence[Segment]
#: What a write may name as its cause: an event (a watch item) or its id.
CauseLike = Event | EventId

#: The cause of this task's writes inside `Client.caused_by` (a contextvar:
#: each trio task has its own, and a child task starts with its parent's).
_CAUSE: ContextVar[EventId | None] = ContextVar("moat_log_cause", default=None)


def _cause(cause: CauseLike | None) -> EventId | None:
    """The id to send as a write's cause: the one given, else that of `caused_by`."""
    if cause is None:
        return _CAUSE.get()
    if isinstance(cause, Event):  # before EventId: both are tuples
        return cause.id
    if isinstance(cause, EventId):
        return cause
    raise TypeError(f"cause must be an Event or an EventId, not {type(cause).__name__}")


class NodeConnectionError(MoatLogError):
    """The connection to the node failed, was refused or was lost."""


class NodeNotRunningError(NodeConnectionError):
    """No node answers at the address (nothing listens there)."""


def _path(path: PathLike) -> Path:
    if isinstance(path, Path):
        return path
    if isinstance(path, str):
        return Path.parse(path)
    return Path(path)


def _time(value: TimeLike | None, now_ns: int) -> TimeSpec | None:
    return None if value is None else time_spec(value, now_ns=now_ns)


class _Call:
    """A request with a single reply in flight: its outcome, and the task awaiting it.

    The task parks with `trio.lowlevel.wait_task_rescheduled` and the reader
    reschedules it directly: the hot path of ``get``/``set`` allocates no
    `trio.Event`, and little that lives until the reply (with a thousand
    requests in flight, whatever lives that long is what the cycle
    collector keeps scanning).
    """

    __slots__ = ("done", "error", "result", "task")

    def __init__(self) -> None:
        self.done = False
        self.result: Any = None
        self.error: MoatLogError | None = None
        self.task: trio.lowlevel.Task | None = None

    def finish(self, result: Any = None, error: MoatLogError | None = None) -> None:
        self.done = True
        self.result = result
        self.error = error
        task, self.task = self.task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def wait(self) -> None:
        """Sleep until `finish` (or a cancellation)."""
        if self.done:  # finished before anyone waited (the connection was lost)
            await trio.lowlevel.checkpoint()
            return
        self.task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED


class _Pending:
    """A stream in flight: its items so far, and its final outcome.

    Waiting tasks (the reader, and one in `Stream.aclose`) park as for `_Call`.
    """

    __slots__ = (
        "abandoned",
        "done",
        "dumped",
        "error",
        "items",
        "limit",
        "op",
        "pushed",
        "result",
        "waiters",
    )

    def __init__(self, op: str, limit: int | None = None) -> None:
        self.op = op
        self.done = False
        self.result: Any = None
        self.error: MoatLogError | None = None
        self.items: deque[Any] = deque()
        self.limit = limit
        self.abandoned = False
        #: The tasks parked in `wait`: usually none or one.
        self.waiters: list[trio.lowlevel.Task] = []
        self.pushed = 0  # items ever buffered
        self.dumped: int | None = None  # items up to and with the live marker, once it came

    def _wake(self) -> None:
        waiters = self.waiters
        if waiters:
            self.waiters = []
            for task in waiters:
                trio.lowlevel.reschedule(task)

    def push(self, item: Any) -> bool:
        """Buffer a stream item; False if that overflows the buffer."""
        if self.abandoned or self.error is not None:
            return True
        items = self.items
        if self.limit is not None and self._live_backlog() >= self.limit:
            self.error = StreamOverflowError(
                ErrorType.OVERFLOW,
                f"this client buffered {self.limit} {self.op} items its reader had not taken; "
                f"read faster, then start the {self.op} again",
            )
            self._wake()
            return False
        items.append(item)
        self.pushed += 1
        if item is LIVE and self.dumped is None:
            self.dumped = self.pushed
        self._wake()
        return True

    def _live_backlog(self) -> int:
        """The changes after the live marker that the reader has not taken yet.

        What comes before the marker (a watch's dump, a log's held events) is
        the answer, sized by the request like a `Client.subtree`, so it does
        not count against the limit however slowly the reader starts.
        """
        if self.dumped is None:
            return 0
        taken = self.pushed - len(self.items)
        return len(self.items) - max(0, self.dumped - taken)

    def finish(self, result: Any = None, error: MoatLogError | None = None) -> None:
        self.done = True
        self.result = result
        if self.error is None:
            self.error = error
        self._wake()

    async def wait(self) -> None:
        """Sleep until the next `push` or `finish` (or a cancellation)."""
        task = trio.lowlevel.current_task()
        self.waiters.append(task)

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self.waiters.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


class Stream(Generic[T]):
    """The items of a streaming request: an async iterator and context manager.

    Leaving the ``async with`` block (or `aclose`) cancels the request if it
    is still running and waits for the node's final reply.
    """

    def __init__(self, client: Client, request_id: int, pending: _Pending) -> None:
        self._client = client
        self._id = request_id
        self._pending = pending

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        pending = self._pending
        while not pending.items:
            if pending.error is not None:
                raise pending.error
            if pending.done:
                raise StopAsyncIteration
            await pending.wait()
        item: T = pending.items.popleft()
        return item

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the request (if it still runs) and wait for its final reply."""
        pending = self._pending
        pending.abandoned = True
        pending.items.clear()
        if pending.done:
            return
        self._client._cancel(self._id)
        while not pending.done:
            await pending.wait()

    def __del__(self) -> None:
        # Dropped without aclose (a `break` out of `async for`): the reader
        # cancels the request when its next item arrives.
        self._pending.abandoned = True


class Client:
    """A connection to a node; create it with `open_client`."""

    def __init__(self, stream: trio.abc.Stream, conn: ClientConnection) -> None:
        self._stream = stream
        #: The socket's file descriptor, for `_send_now` (None: not a socket).
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else None
        self._writing = False  # the writer task is in the middle of a send
        self._conn = conn
        self._pending: dict[int, _Call | _Pending] = {}
        self._out_send, self._out_receive = trio.open_memory_channel[bytes](float("inf"))
        self._closed: str | None = None  # why the connection is over

    @property
    def node(self) -> str:
        """The name of the node this client is connected to."""
        greeting = self._conn.greeting
        assert greeting is not None
        return greeting.node

    @property
    def user(self) -> str | None:
        """Who this connection authenticated as (None: a local connection)."""
        return self._conn.user

    # --- operations ---------------------------------------------------------

    async def get(self, path: PathLike) -> Event | None:
        """The event holding *path*'s current value, or None if it has none."""
        result: Event | None = await self._request("get", path=_path(path))
        return result

    async def value(self, path: PathLike, default: Value = None) -> Value:
        """The current value of *path*, or *default* if it has none."""
        event = await self.get(path)
        return default if event is None or event.op is Op.DELETE else event.value

    async def set(
        self,
        path: PathLike,
        value: Value,
        *,
        source: str | None = None,
        cause: CauseLike | None = None,
        durability: Durability | str | None = None,
    ) -> Written:
        """Set *path* to *value*; returns the new event's id and hlc once it is on disk.

        *cause* is the event this write responds to (an `Event`, e.g. a
        watch item, or its `EventId`); without it, the one of an enclosing
        `caused_by` block, if any.  *durability* ``"batched"`` lets the node
        hold the write up to its flush interval so that it shares a commit
        (docs/client-protocol.md); None is the node's default.
        """
        result: Written = await self._request(
            "set",
            path=_path(path),
            value=value,
            source=source,
            cause=_cause(cause),
            durability=durability,
        )
        return result

    async def delete(
        self,
        path: PathLike,
        *,
        source: str | None = None,
        cause: CauseLike | None = None,
        durability: Durability | str | None = None,
    ) -> Written:
        """Delete *path* (a tombstone); returns the event's id and hlc (*cause*,
        *durability*: as `set`)."""
        result: Written = await self._request(
            "delete",
            path=_path(path),
            source=source,
            cause=_cause(cause),
            durability=durability,
        )
        return result

    @contextmanager
    def caused_by(self, cause: CauseLike) -> Iterator[EventId]:
        """Inside the block, this task's writes name *cause* as their cause.

        For a script that reacts to a watched event: ``with
        client.caused_by(item): await client.set(...)``, and ``moat-log why``
        leads from the write back to *item*.  It holds for the writes of the
        current trio task (and of tasks it starts inside the block) through
        any client; a `set` or `delete` given its own *cause* uses that.
        Blocks nest; leaving one restores the cause outside it.
        """
        event_id = _cause(cause) if cause is not None else None
        if event_id is None:
            raise TypeError("caused_by needs an Event or an EventId, not None")
        token = _CAUSE.set(event_id)
        try:
            yield event_id
        finally:
            _CAUSE.reset(token)

    async def list(self, path: PathLike = ()) -> list[Segment]:
        """The segments below *path* that lead to a value, in key order."""
        result: tuple[Segment, ...] = await self._request("list", path=_path(path))
        return list(result)

    async def status(self) -> dict[str, Any]:
        """The node's status map (node, software, clock, journal, views, ...)."""
        result: dict[str, Any] = await self._request("status")
        return result

    def subtree(self, path: PathLike = ()) -> Stream[Event]:
        """The current event of *path* and of every path below it with a value."""
        return self._stream_request("subtree", None, path=_path(path))

    def history(
        self, path: PathLike, *, recursive: bool = False, limit: int | None = None
    ) -> Stream[Event]:
        """Every event of *path* (and below it if *recursive*), oldest first."""
        return self._stream_request(
            "history", None, path=_path(path), recursive=recursive, limit=limit
        )

    def watch(self, path: PathLike = ()) -> Stream[Event | LiveMarker]:
        """The subtree's current events, then `LIVE`, then every change as it happens.

        Use it as ``async with client.watch(path) as items: async for item in items``;
        leaving the block cancels the watch.
        """
        return self._stream_request("watch", WATCH_BUFFER, path=_path(path))

    @overload
    def log(
        self,
        *,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        origin: str | None = None,
        path: PathLike | None = None,
        limit: int | None = None,
        follow: Literal[False] = False,
    ) -> Stream[Event]: ...

    @overload
    def log(
        self,
        *,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        origin: str | None = None,
        path: PathLike | None = None,
        limit: int | None = None,
        follow: bool,
    ) -> Stream[Event | LiveMarker]: ...

    def log(
        self,
        *,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        origin: str | None = None,
        path: PathLike | None = None,
        limit: int | None = None,
        follow: bool = False,
    ) -> Stream[Event] | Stream[Event | LiveMarker]:
        """The journal's events in time order (``(hlc, origin)``), oldest first.

        Only those with ``since <= hlc <= until``, created by node *origin*,
        at *path* or below it; with *limit*, only the newest *limit* of them.
        With *follow* (not with *until*), then `LIVE`, then every matching
        event the node stores from then on, in the order it stores them (an
        event arriving late from another node may be older than one already
        sent).  Leave a followed log with ``async with`` as for `watch`.
        Times: see the module docstring.  Bad arguments raise `ValueError`
        or `TypeError` here.
        """
        now = time.time_ns()
        return self._stream_request(
            "log",
            WATCH_BUFFER if follow else None,
            since=_time(since, now),
            until=_time(until, now),
            origin=origin,
            path=None if path is None else _path(path),
            limit=limit,
            follow=follow,
        )

    def replay(self, until: TimeLike, *, path: PathLike = ()) -> Stream[Event]:
        """The state as of *until* under *path*, computed by the node from its journal.

        For each path that had a value then, in key order, the event that
        held it: the greatest ``(hlc, origin)`` among the path's events with
        ``hlc <= until``, including events that arrived later with an earlier
        hlc (docs/replay.md).  Times: see the module docstring.
        """
        prefix = _path(path)
        return self._stream_request(
            "replay",
            None,
            until=time_spec(until, now_ns=time.time_ns()),
            path=prefix if prefix else None,
        )

    # --- plumbing -------------------------------------------------------------

    def _send_request(self, op: str, args: dict[str, Any], pending: _Call | _Pending) -> int:
        if self._closed is not None:
            raise NodeConnectionError(self._closed)
        try:
            request_id, data = self._conn.send_request(op, **args)
        except LocalProtocolError as exc:
            raise NodeConnectionError(f"the connection to the node is closed: {exc}") from exc
        lone = not self._pending
        self._pending[request_id] = pending
        if lone and not self._writing:
            data = self._send_now(data)
            if not data:
                return request_id
        self._out_send.send_nowait(data)
        return request_id

    def _send_now(self, data: bytes) -> bytes:
        """Write what the socket takes at once, without waking the writer task; the rest.

        Only for a request while none is in flight and the writer is idle:
        nothing can be queued before it, so order is kept, and a script that
        awaits each request saves a task switch and trio's send path.  With
        many requests in flight the writer task coalesces them into one send.
        """
        if self._fd is None:
            return data
        try:
            sent = os.write(self._fd, data)
        except OSError:  # full (BlockingIOError) or broken: the writer task's send_all deals
            return data
        return data[sent:]

    async def _request(self, op: str, **args: Any) -> Any:
        call = _Call()
        request_id = self._send_request(op, args, call)
        try:
            await call.wait()  # the reader answers it: nothing has run since the send
        except trio.Cancelled:
            self._cancel(request_id)
            raise
        if call.error is not None:
            raise call.error
        return call.result

    def _stream_request(self, op: str, buffer: int | None, **args: Any) -> Stream[Any]:
        pending = _Pending(op, buffer)
        return Stream(self, self._send_request(op, args, pending), pending)

    def _cancel(self, request_id: int) -> None:
        if self._closed is not None:
            return
        try:
            data = self._conn.send_cancel(request_id)
        except LocalProtocolError:
            return
        if data:
            self._out_send.send_nowait(data)

    async def _write_frames(self) -> None:
        try:
            async for data in self._out_receive:
                self._writing = True
                await self._stream.send_all(coalesce(data, self._out_receive))
                self._writing = False
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._lost(f"the connection to the node broke: {exc}")

    async def _read_replies(self) -> None:
        # One receive can hold a thousand replies.  Handing them all out
        # before the woken tasks run would make them send their next requests
        # in one burst, after which this client waits for the node and the
        # node for this client, in turns.  Every _MESSAGES_PER_TURN the
        # reader steps aside, so the node gets new requests while this
        # client still works on the replies.
        handed_out = 0
        try:
            while True:
                event = self._conn.next_event()
                if event is NEED_DATA:
                    self._conn.receive_data(await self._stream.receive_some(_RECEIVE_BYTES))
                    continue
                handed_out += 1
                if handed_out >= _MESSAGES_PER_TURN:
                    handed_out = 0
                    await trio.lowlevel.checkpoint()
                if isinstance(event, Item):
                    self._dispatch_item(event)
                elif isinstance(event, Reply | ErrorReply):
                    pending = self._pending.pop(event.id, None)
                    if pending is None:
                        continue
                    if isinstance(event, Reply):
                        pending.finish(event.result)
                    else:
                        pending.finish(error=event.exception())
                elif isinstance(event, Goodbye):
                    self._lost(f"the node ended the connection ({event.type}): {event.message}")
                    return
                elif isinstance(event, ConnectionClosed):
                    self._lost("the node closed the connection")
                    return
        except RemoteProtocolError as exc:
            self._lost(f"the node broke the protocol: {exc}")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._lost(f"the connection to the node broke: {exc}")

    def _dispatch_item(self, event: Item) -> None:
        pending = self._pending.get(event.id)
        if type(pending) is not _Pending:
            return  # gone, or not a stream (the connection refuses items for those)
        if pending.abandoned or not pending.push(event.value):
            self._cancel(event.id)

    def _lost(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
        pending, self._pending = self._pending, {}
        for request in pending.values():
            request.finish(error=NodeConnectionError(self._closed))
        self._out_send.close()


async def _connect(data_dir: str | os.PathLike[str] | None, connect: str | None) -> trio.abc.Stream:
    if connect is not None and not connect.startswith("unix:"):
        try:
            host, port = host_and_port(connect)
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"connect={connect!r}: {exc} (or unix:PATH for a Unix socket)"
            ) from None
        try:
            return await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise NodeNotRunningError(f"no node answers at {connect}: {exc}") from exc
    if connect is not None:
        socket_path = FsPath(connect[len("unix:") :])
    else:
        if data_dir is None:
            from .defaults import default_data_dir

            data_dir = default_data_dir()
        socket_path = FsPath(data_dir) / SOCKET_NAME
    try:
        return await trio.open_unix_socket(os.fspath(socket_path))
    except OSError as exc:
        raise NodeNotRunningError(
            f"no node answers on {socket_path} ({exc.strerror}): start one with 'moat-log serve'"
        ) from exc


async def _next_event(conn: ClientConnection, stream: trio.abc.Stream) -> Any:
    """The next protocol event while nothing else reads (greeting and login)."""
    while True:
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(_RECEIVE_BYTES))


async def _handshake(
    conn: ClientConnection,
    stream: trio.abc.Stream,
    user: str | None,
    password: str | None,
    token: str | None,
) -> None:
    greeting = await _next_event(conn, stream)
    if not isinstance(greeting, Greeting):
        raise NodeConnectionError(f"the node did not greet: {greeting}")
    if not greeting.auth:
        return  # a local connection: nothing to prove
    if user is None or (password is None and token is None):
        raise NodeConnectionError(
            f"node {greeting.node} requires a login: pass user= and password= (or token=)"
        )
    _, data = conn.start_auth(user, password=password, token=token)
    await stream.send_all(data)
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, AuthChallenge):
            assert password is not None
            salted = await trio.to_thread.run_sync(
                salt_password, password, event.salt, event.params
            )
            _, data = conn.send_auth_proof(salted)
            await stream.send_all(data)
        elif isinstance(event, Authenticated):
            return
        elif isinstance(event, ErrorReply):
            raise event.exception()
        elif isinstance(event, Goodbye):
            raise NodeConnectionError(f"the node ended the connection: {event.message}")
        elif isinstance(event, ConnectionClosed):
            raise NodeConnectionError("the node closed the connection during the login")


@asynccontextmanager
async def open_client(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    connect: str | None = None,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    min_scrypt_n: int = 2**14,
) -> AsyncIterator[Client]:
    """Connect to a node: its Unix socket in *data_dir*, or *connect* (``HOST:PORT``).

    Without either, the default data directory's socket.  *user* with
    *password* or *token* logs in where the node asks for it (TCP with users
    configured); a local connection needs none.  *min_scrypt_n* refuses
    nodes that ask for cheaper password hashing than that.
    """
    stream = await _connect(data_dir, connect)
    async with open_client_on(
        stream, user=user, password=password, token=token, min_scrypt_n=min_scrypt_n
    ) as client:
        yield client


@asynccontextmanager
async def open_client_on(
    stream: trio.abc.Stream,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    min_scrypt_n: int = 2**14,
) -> AsyncIterator[Client]:
    """A client on a stream that is already connected to a node (see `open_client`).

    For transports `open_client` does not make itself (a socket pair to a
    node in this process, a tunnel).  The stream is closed when the block
    ends.
    """
    try:
        conn = ClientConnection(min_scrypt_n=min_scrypt_n)
        try:
            await _handshake(conn, stream, user, password, token)
        except RemoteProtocolError as exc:
            raise NodeConnectionError(f"the node broke the protocol: {exc}") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise NodeConnectionError(f"the connection to the node broke: {exc}") from exc
        client = Client(stream, conn)
        # The reader and writer never raise: an error is the caller's own.
        with single_errors_unwrapped():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client._read_replies)
                nursery.start_soon(client._write_frames)
                try:
                    yield client
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)
