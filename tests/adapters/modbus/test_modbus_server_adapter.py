"""The Modbus server adapter in a node, used by pymodbus's own client and by raw sockets.

Each test runs a node in-process with its config read from TOML text, as
``moat-log serve`` reads it, listening on a free port of 127.0.0.1.  The
client is pymodbus's sync `ModbusTcpClient` in a worker thread (what a
wallbox or a PLC would be); garbage and floods come from trio sockets.
Waiting is on the adapter's status (its change callbacks), never on a
clock.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import partial
from pathlib import Path as FsPath
from typing import Any, TypeVar, cast

import pytest
import trio
import trio.testing
from pymodbus.client import ModbusTcpClient

from moat_log.adapters.modbus.mbap import Frame, encode_frame
from moat_log.adapters.modbus.pdu import ReadRequest, WriteRequest, encode_request
from moat_log.adapters.modbus.server import Incoming
from moat_log.adapters.modbus.server_session import ServerSession
from moat_log.adapters.modbus.tcp_server import ClientLimits, serve_connection
from moat_log.adapters.status import BadDataLog
from moat_log.event import Value
from moat_log.journal.change import Change
from moat_log.node._node import Node
from moat_log.path import Path
from moat_log.testing import in_process_config, running_node
from moat_log.testing import until_adapter_status as until_status

MAP = """
[[adapters.plc.map]]                # what the PLC reads: a temperature in tenths
path = "home.temperature"
function = "input"
address = 0
type = "int16"
scale = 0.1

[[adapters.plc.map]]                # a power reading, float32
path = "home.power"
function = "input"
address = 1
type = "float32"

[[adapters.plc.map]]                # a current limit the PLC sets and we may set too
path = "wallbox.limit"
function = "holding"
address = 10
scale = 0.1
direction = "both"
min = 6
max = 32

[[adapters.plc.map]]                # a counter the PLC only reads
path = "wallbox.energy"
function = "holding"
address = 11
type = "uint32"

[[adapters.plc.map]]                # a target the PLC writes, float32
path = "wallbox.target"
function = "holding"
address = 13
type = "float32"
direction = "in"

[[adapters.plc.map]]                # a command the PLC writes
path = "wallbox.enable"
function = "coil"
address = 0
direction = "in"
"""

T = TypeVar("T")


def node_config(data_dir: FsPath, extra: str = "") -> Any:
    """The node's config: the adapter on a free port unless *extra* says where."""
    listen = "" if "listen =" in extra else 'listen = "127.0.0.1:0"'
    text = f"""
node = "n1"
[adapters.plc]
type = "modbus_server"
{listen}
{extra}
{MAP}
"""
    return in_process_config(text, data_dir)


@asynccontextmanager
async def serving(data_dir: FsPath, extra: str = "") -> AsyncIterator[tuple[Node, int]]:
    """A node with the server adapter, once it listens; and its port."""
    async with running_node(node_config(data_dir, extra)) as node:
        status = node.adapters["plc"]
        await until_status(status, lambda s: s.state == "connected")
        (address,) = status.details["listen"]
        yield node, int(address.rpartition(":")[2])


async def set_and_show(node: Node, path: str, value: Value) -> None:
    """Set *path* and wait until the adapter put the change into its registers."""
    status = node.adapters["plc"]
    sent = status.counts["sent"]
    await node.write(Change(Path.parse(path), value))
    await until_status(status, lambda s: s.counts["sent"] > sent)


@contextmanager
def modbus_client(port: int) -> Iterator[ModbusTcpClient]:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    assert client.connect()  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


async def in_thread(call: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(call)


def frame(transaction: int, request: ReadRequest | WriteRequest, unit: int = 1) -> bytes:
    return encode_frame(Frame(transaction, unit, encode_request(request)))


async def receive_until_closed(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = bytearray()
    while chunk := await stream.receive_some(65536):
        data += chunk
    return bytes(data)


def float_registers(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


# ------------------------------------------------------------------ reads


async def test_a_client_reads_the_journal_values_and_a_set_changes_its_register(
    tmp_path: FsPath,
) -> None:
    async with serving(tmp_path) as (node, port):
        await node.write(Change(Path.parse("home.temperature"), 21.5))
        await node.write(Change(Path.parse("home.power"), 1234.5))
        await node.write(Change(Path.parse("wallbox.energy"), 70000))
        status = node.adapters["plc"]
        await until_status(status, lambda s: s.counts["sent"] == 3)
        with modbus_client(port) as client:
            inputs = await in_thread(lambda: client.read_input_registers(0, count=3))
            assert inputs.registers == [215, *float_registers(1234.5)]
            energy = await in_thread(lambda: client.read_holding_registers(11, count=2))
            assert energy.registers == [1, 4464]  # 70000, high word first
            await node.write(Change(Path.parse("home.temperature"), -0.5))
            await until_status(status, lambda s: s.counts["sent"] == 4)
            again = await in_thread(lambda: client.read_input_registers(0, count=1))
            assert again.registers == [0xFFFB]


async def test_a_path_without_a_value_or_one_that_does_not_encode_reads_as_exception_4(
    tmp_path: FsPath,
) -> None:
    async with serving(tmp_path) as (node, port):
        status = node.adapters["plc"]
        with modbus_client(port) as client:
            unset = await in_thread(lambda: client.read_input_registers(0, count=1))
            assert unset.isError() and unset.exception_code == 4
            await node.write(Change(Path.parse("home.temperature"), "warm"))
            await until_status(status, lambda s: s.counts["bad"] == 1)
            assert status.last_bad is not None
            assert "home.temperature: 1/input/0 shows no value" in status.last_bad
            bad = await in_thread(lambda: client.read_input_registers(0, count=1))
            assert bad.isError() and bad.exception_code == 4
            assert status.counts["sent"] == 0  # the registers show no value
            await set_and_show(node, "home.temperature", 20)
            assert status.counts["sent"] == 1
            good = await in_thread(lambda: client.read_input_registers(0, count=1))
            assert good.registers == [200]
            await node.write(Change.delete(Path.parse("home.temperature")))
            await until_status(status, lambda s: s.counts["sent"] == 2)
            deleted = await in_thread(lambda: client.read_input_registers(0, count=1))
            assert deleted.isError() and deleted.exception_code == 4
        assert status.details["exceptions"] == 3


# ------------------------------------------------------------------ writes


async def test_a_client_write_is_an_event_with_its_source_stored_before_the_answer(
    tmp_path: FsPath,
) -> None:
    async with serving(tmp_path) as (node, port):
        status = node.adapters["plc"]
        before = node.journal.last_position
        with modbus_client(port) as client:
            answer = await in_thread(lambda: client.write_register(10, 160))
            assert not answer.isError()
            # the answer came after the commit: the event is there now, no waiting
            event = node.kv.get(Path.parse("wallbox.limit"))
            assert event is not None
            assert (event.value, event.source) == (16.0, "modbus_server:1/holding/10")
            coil = await in_thread(lambda: client.write_coils(0, [True]))
            assert not coil.isError()
            enable = node.kv.get(Path.parse("wallbox.enable"))
            assert enable is not None
            assert (enable.value, enable.source) == (True, "modbus_server:1/coil/0")
            read_back = await in_thread(lambda: client.read_holding_registers(10, count=1))
            assert read_back.registers == [160]
            same = await in_thread(lambda: client.write_register(10, 160))  # no change
            assert not same.isError()
        await until_status(status, lambda s: s.details["writes"] == 3)
        assert status.counts["suppressed"] == 1
        assert node.journal.last_position == before + 2  # no bounce, no repeat
        assert status.counts["sent"] == 0  # the image showed them when they were stored
        await node.write(Change(Path.parse("wallbox.limit"), 10))  # `both`: we set it too
        await until_status(status, lambda s: s.counts["sent"] == 1)
        with modbus_client(port) as client:
            ours = await in_thread(lambda: client.read_holding_registers(10, count=1))
            assert ours.registers == [100]


@pytest.mark.parametrize(
    ("call", "code", "reason"),
    [
        (lambda c: c.write_register(11, 5), 2, "wallbox.energy (holding 11) is read-only"),
        (lambda c: c.write_registers(11, [0, 5]), 2, "wallbox.energy (holding 11) is read-only"),
        (
            lambda c: c.write_register(14, 5),
            2,
            "wallbox.target (holding 13) is float32 in 13 .. 14",
        ),
        (
            lambda c: c.write_registers(13, [0x7FC0, 0]),
            3,
            "wallbox.target: float32: the device sent nan",
        ),
        (lambda c: c.write_register(20, 5), 2, "holding 20 is not mapped"),
        (lambda c: c.write_coil(1, True), 2, "coil 1 is not mapped"),
        (lambda c: c.write_register(10, 400), 3, "wallbox.limit: 40.0 is more than"),
        (lambda c: c.write_register(10, 1, device_id=7), 11, "unit 7 is not served here"),
        (
            lambda c: c.read_discrete_inputs(0, count=1),
            2,
            "discrete_input 0 is not mapped",
        ),  # a coil, not a discrete input
    ],
)
async def test_a_refused_request_gets_its_exception_code_and_stores_nothing(
    tmp_path: FsPath, call: Callable[[ModbusTcpClient], Any], code: int, reason: str
) -> None:
    async with serving(tmp_path) as (node, port):
        status = node.adapters["plc"]
        before = node.journal.last_position
        with modbus_client(port) as client:
            answer = await in_thread(lambda: call(client))
        assert answer.isError() and answer.exception_code == code
        await until_status(status, lambda s: s.details["exceptions"] == 1)
        assert f": exception {code} " in status.details["last_refused"]
        assert reason in status.details["last_refused"]
        assert node.journal.last_position == before


# ------------------------------------------------------- garbage and floods


async def test_garbage_closes_only_its_connection_and_is_counted(tmp_path: FsPath) -> None:
    async with serving(tmp_path) as (node, port):
        status = node.adapters["plc"]
        await set_and_show(node, "home.temperature", 20)
        with modbus_client(port) as client:
            first = await in_thread(lambda: client.read_input_registers(0, count=1))
            assert first.registers == [200]
            for garbage in (
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not Modbus at all
                bytes.fromhex("0001 0007 0006 01 04 0000 0001"),  # protocol id 7
                bytes.fromhex("0001 0000 0fff 01 04"),  # a length no PDU has
                frame(1, ReadRequest("input", 0, 1))[:9],  # cut off, then gone
            ):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(garbage)
                if len(garbage) == 9:
                    await stream.send_eof()
                assert await receive_until_closed(stream) == b""
                await stream.aclose()
            await until_status(status, lambda s: s.details["dropped_connections"] == 4)
            assert "left 9 bytes of a frame" in status.details["last_refused"]
            after = await in_thread(lambda: client.read_input_registers(0, count=1))
            assert after.registers == [200]  # the other connection never noticed
        assert status.state == "connected" and status.connections == 1


async def test_floods_neither_stall_the_node_nor_another_client(tmp_path: FsPath) -> None:
    requests = frame(1, ReadRequest("input", 0, 1)) * 20_000

    async def flood(stream: trio.SocketStream, *, reads: bool) -> None:
        async with trio.open_nursery() as nursery:
            if reads:  # as fast as it can: pipelined, answers read and dropped
                nursery.start_soon(receive_until_closed, stream)
            with suppress(trio.BrokenResourceError):  # closed at the end of the test
                await stream.send_all(requests)

    async with serving(tmp_path) as (node, port):
        status = node.adapters["plc"]
        await set_and_show(node, "home.temperature", 20)
        async with trio.open_nursery() as nursery:
            stalled = await trio.open_tcp_stream("127.0.0.1", port)  # never reads
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            busy = await trio.open_tcp_stream("127.0.0.1", port)
            nursery.start_soon(partial(flood, stalled, reads=False))
            nursery.start_soon(partial(flood, busy, reads=True))
            await until_status(status, lambda s: s.details["requests"] >= 2000)
            with modbus_client(port) as client:
                for _ in range(20):
                    answer = await in_thread(lambda: client.read_input_registers(0, count=1))
                    assert answer.registers == [200]
                assert status.details["clients"] == 3
            nursery.cancel_scope.cancel()
        await stalled.aclose()
        await busy.aclose()
        await until_status(status, lambda s: s.details["clients"] == 0)
        assert status.state == "connected" and status.details["dropped_connections"] == 0


async def test_the_connection_limit_and_the_allow_list_close_others_at_once(
    tmp_path: FsPath,
) -> None:
    async with serving(tmp_path, "max_connections = 2") as (node, port):
        status = node.adapters["plc"]
        first = await trio.open_tcp_stream("127.0.0.1", port)
        second = await trio.open_tcp_stream("127.0.0.1", port)
        await until_status(status, lambda s: s.details["clients"] == 2)
        third = await trio.open_tcp_stream("127.0.0.1", port)
        assert await receive_until_closed(third) == b""
        await until_status(status, lambda s: s.details["refused_connections"] == 1)
        assert "2 clients connected, the limit" in status.details["last_refused"]
        await first.aclose()
        await until_status(status, lambda s: s.details["clients"] == 1)
        with modbus_client(port) as client:  # a slot is free again
            answer = await in_thread(lambda: client.read_input_registers(0, count=1))
            assert answer.isError() and answer.exception_code == 4  # served: no value yet
        await second.aclose()
    async with serving(tmp_path, 'allow = ["10.9.9.9"]') as (node, port):
        status = node.adapters["plc"]
        stranger = await trio.open_tcp_stream("127.0.0.1", port)
        await stranger.send_all(frame(1, ReadRequest("input", 0, 1)))
        assert await receive_until_closed(stranger) == b""
        await until_status(status, lambda s: s.details["refused_connections"] == 1)
        assert status.details["last_refused"].endswith("not in the allow list")
        assert status.details["requests"] == 0


async def test_a_silent_client_is_closed_after_the_idle_timeout(tmp_path: FsPath) -> None:
    async with serving(tmp_path, "idle_timeout = 0.2") as (node, port):
        status = node.adapters["plc"]
        silent = await trio.open_tcp_stream("127.0.0.1", port)
        assert await receive_until_closed(silent) == b""
        await until_status(status, lambda s: s.details["dropped_connections"] == 1)
        assert status.details["last_refused"].endswith("silent for 0.2 s")
        assert status.details["clients"] == 0


# ---------------------------------------------------------------- restarts


async def test_a_restarted_node_serves_the_values_it_had(tmp_path: FsPath) -> None:
    async with serving(tmp_path) as (node, port):
        await node.write(Change(Path.parse("home.temperature"), 19.5))
        with modbus_client(port) as client:
            assert not (await in_thread(lambda: client.write_register(10, 123))).isError()
            assert not (await in_thread(lambda: client.write_coil(0, True))).isError()
    async with serving(tmp_path) as (node, port):
        with modbus_client(port) as client:
            temperature = await in_thread(lambda: client.read_input_registers(0, count=1))
            limit = await in_thread(lambda: client.read_holding_registers(10, count=1))
        assert (temperature.registers, limit.registers) == ([195], [123])
        status = node.adapters["plc"]
        assert status.counts["sent"] == 0  # from the snapshot, nothing replayed
        assert node.kv.value(Path.parse("wallbox.enable")) is True


async def test_a_port_in_use_is_retried_until_it_is_free(tmp_path: FsPath) -> None:
    (taken,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = taken.socket.getsockname()[1]
    extra = f'listen = "127.0.0.1:{port}"\nreconnect_first = 0.01\nreconnect_max = 0.05'
    async with running_node(node_config(tmp_path, extra)) as node:
        status = node.adapters["plc"]
        await until_status(status, lambda s: s.state == "backing-off")
        assert status.last_error is not None
        assert f"cannot listen on 127.0.0.1:{port}" in status.last_error
        await taken.aclose()
        await until_status(status, lambda s: s.state == "connected")
        await set_and_show(node, "home.temperature", 20)
        with modbus_client(port) as client:
            answer = await in_thread(lambda: client.read_input_registers(0, count=1))
        assert answer.registers == [200]


async def test_the_client_adapter_of_one_node_polls_the_server_adapter_of_another(
    tmp_path: FsPath,
) -> None:
    async with serving(tmp_path / "server") as (server, port):
        await server.write(Change(Path.parse("home.temperature"), 21.5))
        text = f"""
node = "n2"
[adapters.dev]
type = "modbus"
host = "127.0.0.1:{port}"
interval = 0.05
reconnect_first = 0.01
reconnect_max = 0.05

[[adapters.dev.map]]
path = "remote.temperature"
function = "input"
address = 0
type = "int16"
scale = 0.1

[[adapters.dev.map]]
path = "remote.limit"
function = "holding"
address = 10
scale = 0.1
direction = "out"
"""
        async with running_node(in_process_config(text, tmp_path / "client")) as client:
            status = client.adapters["dev"]
            await until_status(status, lambda s: s.counts["written"] == 1)
            assert client.kv.value(Path.parse("remote.temperature")) == 21.5
            await client.write(Change(Path.parse("remote.limit"), 12.5))
            await until_status(status, lambda s: s.counts["sent"] == 1)
        event = server.kv.get(Path.parse("wallbox.limit"))
        assert event is not None
        assert (event.value, event.source) == (12.5, "modbus_server:1/holding/10")


# ------------------------------------------------------ the node stopping


class _StuckSession:
    """A session whose writes never finish (a journal that does not answer)."""

    def __init__(self) -> None:
        self.waiting = trio.Event()

    async def answer(self, incoming: Incoming, peer: str) -> Any:
        self.waiting.set()
        await trio.sleep_forever()

    def dropped(self, peer: str, reason: str) -> None:
        raise AssertionError(f"dropped: {reason}")


async def test_a_write_cut_off_by_the_node_stopping_is_answered_busy() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    session = _StuckSession()
    stuck = cast(ServerSession, session)
    client = ("127.0.0.1", "127.0.0.1:1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_connection, ours, stuck, ClientLimits(), client, BadDataLog())
        await theirs.send_all(frame(9, WriteRequest("holding", 10, (1,), single=True)))
        await session.waiting.wait()
        nursery.cancel_scope.cancel()
    answer = await theirs.receive_some()
    assert answer == bytes.fromhex("0009 0000 0003 01 86 06")  # function 6, exception 6
