"""The trio-native Modbus TCP transport of the client adapter, against the real pymodbus server
and against devices of the test's own that misbehave on purpose.

The adapter's own tests (test_modbus_adapter.py) run over this transport
against the real server; here are the requests themselves, and what a
device that is late, silent, garbled or gone does to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Any

import pytest
import trio
from modbus_process import ModbusServerProcess

from moat_log.adapters.modbus.client import (
    Endpoint,
    ModbusExceptionResponse,
    open_pymodbus_device,
)
from moat_log.adapters.modbus.mbap import Frame, FrameReader, encode_frame
from moat_log.adapters.modbus.pdu import ReadResponse, decode_request, encode_response
from moat_log.adapters.modbus.plan import Read
from moat_log.adapters.modbus.tcp_client import TcpDevice, open_tcp_device
from moat_log.errors import BusUnavailableError, ModbusProtocolError

Handler = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def device_at(
    port: int, *, request_timeout: float = 2.0, retries: int = 0
) -> AsyncIterator[TcpDevice]:
    endpoint = Endpoint("127.0.0.1", port)
    async with open_tcp_device(
        endpoint, 1, request_timeout=request_timeout, retries=retries
    ) as device:
        yield device


@asynccontextmanager
async def fake_device(handler: Handler) -> AsyncIterator[int]:
    """A listener on a free port whose connections *handler* serves; its port."""
    async with trio.open_nursery() as nursery:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(trio.serve_listeners, handler, [listener])
        yield listener.socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def frames(stream: trio.SocketStream) -> AsyncIterator[Frame]:
    reader = FrameReader()
    while data := await stream.receive_some(4096):
        reader.receive_data(data)
        while (frame := reader.next_frame()) is not None:
            yield frame


def answer(frame: Frame, values: tuple[int, ...], transaction: int | None = None) -> bytes:
    response = ReadResponse("holding", values)
    tid = frame.transaction if transaction is None else transaction
    return encode_frame(Frame(tid, frame.unit, encode_response(response)))


#: Both devices of the adapter: its TCP transport, and pymodbus in a thread (serial lines).
OPENERS = [open_tcp_device, open_pymodbus_device]


@pytest.mark.parametrize("opener", OPENERS, ids=["tcp_client", "pymodbus"])
async def test_reads_and_writes_reach_the_real_server(
    modbus_server: ModbusServerProcess, opener: Callable[..., Any]
) -> None:
    modbus_server.command("set hr 5 7 8 9")
    endpoint = Endpoint("127.0.0.1", modbus_server.port)
    async with opener(endpoint, 1, request_timeout=2, retries=0) as device:
        assert await device.read(Read("holding", 5, 3, (0,))) == [7, 8, 9]
        await device.write("holding", 5, [70])
        await device.write("holding", 6, [80, 90])
        await device.write("coil", 3, [True])
        await device.write("coil", 4, [True, False, True])
        assert await device.read(Read("holding", 5, 3, (0,))) == [70, 80, 90]
        assert await device.read(Read("coil", 3, 4, (0,))) == [True, True, False, True]
        assert device.requests == 7
    assert modbus_server.command("get hr 5 3") == "values 70 80 90"


@pytest.mark.parametrize("opener", OPENERS, ids=["tcp_client", "pymodbus"])
async def test_an_exception_response_is_bad_data_and_the_connection_goes_on(
    modbus_server: ModbusServerProcess, opener: Callable[..., Any]
) -> None:
    endpoint = Endpoint("127.0.0.1", modbus_server.port)
    async with opener(endpoint, 1, request_timeout=2, retries=0) as device:
        with pytest.raises(ModbusExceptionResponse, match="read input 199\\+2: exception 2"):
            await device.read(Read("input", 199, 2, (0,)))
        assert await device.read(Read("input", 0, 1, (0,))) == [0]


async def test_a_late_answer_to_a_request_that_timed_out_is_dropped() -> None:
    async def late(stream: trio.SocketStream) -> None:
        pending: Frame | None = None
        async for frame in frames(stream):
            if pending is None:  # the first request: no answer until it is sent again
                pending = frame
                continue
            await stream.send_all(answer(pending, (1,)) + answer(frame, (2,)))

    async with fake_device(late) as port, device_at(port, request_timeout=0.2, retries=1) as device:
        assert await device.read(Read("holding", 0, 1, (0,))) == [2]
        assert device.requests == 2


async def test_a_silent_device_is_away_after_its_retries() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        async for _ in frames(stream):
            pass

    async with (
        fake_device(silent) as port,
        device_at(port, request_timeout=0.05, retries=2) as device,
    ):
        with pytest.raises(BusUnavailableError, match=r"no answer within 0\.05 s"):
            await device.read(Read("holding", 0, 1, (0,)))
        assert device.requests == 3


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (lambda f: b"\x00" * 12, ModbusProtocolError, "not Modbus TCP"),
        (lambda f: answer(f, (1, 2)), ModbusProtocolError, "answered with 4 bytes"),
        (
            lambda f: encode_frame(Frame(f.transaction, 1, b"\x04\x02\x00\x01")),
            ModbusProtocolError,
            "came with function code 4",
        ),
        (lambda f: b"", BusUnavailableError, "the device closed the connection"),
    ],
)
async def test_a_garbled_answer_or_a_closed_connection_means_the_device_is_away(
    reply: Callable[[Frame], bytes], error: type[Exception], message: str
) -> None:
    async def garbling(stream: trio.SocketStream) -> None:
        async for frame in frames(stream):
            assert decode_request(frame.pdu) is not None
            data = reply(frame)
            if not data:
                await stream.aclose()
                return
            await stream.send_all(data)

    async with fake_device(garbling) as port, device_at(port) as device:
        with pytest.raises(error, match=message):
            await device.read(Read("holding", 0, 1, (0,)))


async def test_a_device_that_is_not_there_is_away(tmp_path: FsPath) -> None:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there now
    with pytest.raises(BusUnavailableError, match="cannot connect"):
        async with device_at(port):
            pass
