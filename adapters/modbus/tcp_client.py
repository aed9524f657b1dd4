"""A Modbus TCP device on a trio socket: the client adapter's transport for TCP.

The sans-io codec (`mbap`, `pdu`) makes and reads the bytes; this module
only sends a request and waits for its answer, one request at a time per
device (a `trio.Lock`; a Modbus TCP device answers in order anyway).  It
replaces pymodbus's sync client in a worker thread for TCP, which cost a
thread hand-off both ways per request (pymodbus stays for serial RTU,
`client.py`).

* Each request gets the next transaction id; a response with another id
  (the late answer to a request that timed out) is dropped.
* No answer within *timeout*: the request is sent again, *retries* times,
  then the device counts as away (`BusUnavailableError`), as with
  pymodbus.  A refused or lost connection is `BusUnavailableError` at once;
  a response that does not fit its request is `ModbusProtocolError` (a
  `BusUnavailableError`): the connection is dropped and made again.
* An exception response is `ModbusExceptionResponse` (bad data for that
  value), or `BusUnavailableError` for the gateway's 10 and 11, exactly as
  `client.py` translates pymodbus's.

The socket is driven with trio's low-level waits (`RawSocket`), not a
`trio.SocketStream`: the stream yields to the scheduler after every send
and guards each call, which for one 12-byte request and its answer at a
time cost half the rate (tools/bench/modbus_adapter.py, docs/decisions.md).
Here a request that fits the socket's buffer, as a Modbus request does
unless the device stopped reading, is one ``send``, and its answer one
``wait_readable`` and one ``recv``.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from moat_log.errors import BusUnavailableError

from .client import Endpoint, exception_error
from .mbap import Frame, FrameReader, encode_frame
from .pdu import (
    ExceptionResponse,
    ReadRequest,
    ReadResponse,
    Request,
    Response,
    WriteRequest,
    decode_response,
    encode_request,
)
from .plan import Function, Read

__all__ = ["TcpDevice", "open_tcp_device"]

#: Bytes read from the socket at once (the largest response is 260).
RECEIVE_SIZE = 4096


class RawSocket:
    """A connected TCP socket for one request at a time: a send is one syscall, a wait one poll.

    Errors of the socket (reset, closed) raise `BusUnavailableError`.  A
    send cut off by a cancellation leaves part of a frame out: `broken`
    says so, and the connection must not be used again.
    """

    def __init__(self, sock: socket.socket, endpoint: Endpoint) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._endpoint = endpoint
        self.broken = False

    async def send(self, data: bytes) -> None:
        sock, view, sent = self._sock, memoryview(data), 0
        try:
            while True:
                with contextlib.suppress(BlockingIOError):
                    sent += sock.send(view[sent:])
                if sent == len(data):
                    return
                self.broken = True  # until the rest is out
                await trio.lowlevel.wait_writable(sock)
                self.broken = False
        except OSError as exc:
            raise BusUnavailableError(f"modbus {self._endpoint}: {exc}") from None

    async def receive(self) -> bytes:
        """The next bytes from the device; `BusUnavailableError` once it closed."""
        sock = self._sock
        try:
            while True:
                try:
                    data = sock.recv(RECEIVE_SIZE)
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(sock)
        except OSError as exc:
            raise BusUnavailableError(f"modbus {self._endpoint}: {exc}") from None
        if not data:
            raise BusUnavailableError(f"modbus {self._endpoint}: the device closed the connection")
        return data

    def close(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


class TcpDevice:
    """One unit at a Modbus TCP address, on a connected stream."""

    def __init__(
        self,
        stream: RawSocket,
        endpoint: Endpoint,
        unit_id: int,
        *,
        timeout: float,
        retries: int,
    ) -> None:
        self._stream = stream
        self.endpoint = endpoint
        self.unit_id = unit_id
        self._timeout = timeout
        self._retries = retries
        self._reader = FrameReader()
        self._transactions = itertools.cycle(range(1, 0x10000))
        self._lock = trio.Lock()
        #: Requests sent so far (reads and writes).
        self.requests = 0

    async def read(self, read: Read) -> list[int] | list[bool]:
        """The registers (or bits) *read* asks for."""
        request = ReadRequest(read.function, read.address, read.count)
        what = f"read {read.function} {read.address}+{read.count}"
        response = await self._request(request, what)
        assert isinstance(response, ReadResponse)
        return list(response.values)

    async def write(self, function: Function, address: int, values: Sequence[int | bool]) -> None:
        """Write *values* to coils or holding registers from *address* (5/6 for one, 15/16)."""
        if function == "coil":
            written: tuple[bool, ...] | tuple[int, ...] = tuple(bool(v) for v in values)
        elif function == "holding":
            written = tuple(int(v) for v in values)
        else:
            raise ValueError(f"{function} cannot be written")
        request = WriteRequest(function, address, written, single=len(values) == 1)
        await self._request(request, f"write {function} {address}+{len(values)}")

    async def _request(self, request: Request, what: str) -> Response:
        data = encode_request(request)
        await trio.lowlevel.checkpoint_if_cancelled()
        async with self._lock:
            for _ in range(self._retries + 1):
                transaction = next(self._transactions)
                self.requests += 1
                frame = encode_frame(Frame(transaction, self.unit_id, data))
                with trio.move_on_after(self._timeout):
                    await self._stream.send(frame)
                    response = await self._answer(request, transaction)
                    break
                if self._stream.broken:  # part of a frame is out: the connection is lost
                    raise BusUnavailableError(
                        f"modbus {self.endpoint}: {what}: not sent within {self._timeout:g} s"
                    )
            else:
                raise BusUnavailableError(
                    f"modbus {self.endpoint}: {what}: no answer within {self._timeout:g} s"
                )
        if isinstance(response, ExceptionResponse):
            raise exception_error(response.code, self.endpoint, self.unit_id, what)
        return response

    async def _answer(self, request: Request, transaction: int) -> Response:
        """The response to *transaction* (late answers to earlier ones are dropped)."""
        reader = self._reader
        while True:
            while (frame := reader.next_frame()) is not None:
                if frame.transaction == transaction:
                    return decode_response(request, frame.pdu)
            reader.receive_data(await self._stream.receive())


@asynccontextmanager
async def open_tcp_device(
    endpoint: Endpoint, unit_id: int, *, request_timeout: float, retries: int
) -> AsyncIterator[TcpDevice]:
    """Connect to *endpoint* (TCP); `BusUnavailableError` if it cannot be reached in time."""
    assert endpoint.host is not None
    stream: trio.SocketStream | None = None
    with trio.move_on_after(request_timeout):
        try:
            stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        except OSError as exc:
            raise BusUnavailableError(f"modbus {endpoint}: cannot connect: {exc}") from None
    if stream is None:
        raise BusUnavailableError(
            f"modbus {endpoint}: cannot connect: no answer within {request_timeout:g} s"
        )
    # trio connected it (name resolution, TCP_NODELAY); from here on it is driven raw
    raw = RawSocket(socket.socket(fileno=stream.socket.detach()), endpoint)
    try:
        yield TcpDevice(raw, endpoint, unit_id, timeout=request_timeout, retries=retries)
    finally:
        raw.close()
