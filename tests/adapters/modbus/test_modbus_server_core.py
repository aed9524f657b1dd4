"""The Modbus server's sans-io core: the register image and one client connection.

No sockets, no node: requests go in as bytes or request objects, and the
tests assert on the responses and exceptions that come out.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.adapters.config import adapters_from_table
from moat_log.adapters.modbus.image import RegisterImage, ServedValue
from moat_log.adapters.modbus.mbap import Frame, encode_frame
from moat_log.adapters.modbus.pdu import (
    ExceptionResponse,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
    encode_request,
)
from moat_log.adapters.modbus.server import ServerConnection
from moat_log.adapters.modbus.server_adapter import ModbusServerSettings
from moat_log.errors import BusDataError, ModbusProtocolError
from moat_log.event import Event, Op
from moat_log.path import Path
from moat_log.records import FieldError
from moat_log.vclock import VectorClock

MAP: list[dict[str, Any]] = [
    {"path": "pv.power", "function": "input", "address": 0, "type": "float32"},
    {"path": "pv.temp", "function": "input", "address": 2, "type": "int16", "scale": 0.1},
    {"path": "grid.on", "function": "discrete_input", "address": 0},
    {
        "path": "wb.limit",
        "function": "holding",
        "address": 10,
        "scale": 0.1,
        "direction": "both",
        "min": 6,
        "max": 32,
    },
    {"path": "wb.energy", "function": "holding", "address": 11, "type": "uint32"},
    {
        "path": "wb.target",
        "function": "holding",
        "address": 13,
        "type": "float32",
        "direction": "in",
    },
    {"path": "wb.enable", "function": "coil", "address": 0, "direction": "both"},
]


def settings_of(table: dict[str, Any]) -> ModbusServerSettings:
    (config,) = adapters_from_table({"plc": {"type": "modbus_server", **table}})
    assert isinstance(config.settings, ModbusServerSettings)
    return config.settings


def image_of(values: list[dict[str, Any]] = MAP) -> RegisterImage:
    return RegisterImage(settings_of({"map": values}).values)


_seq = iter(range(1, 10**9))


def event(path: str, value: object, *, hlc: int | None = None, origin: str = "n1") -> Event:
    seq = next(_seq)
    op = Op.DELETE if value is None else Op.SET
    return Event(origin, seq, hlc or seq, VectorClock(), Path.parse(path), op, value)


def show(image: RegisterImage, path: str, value: object) -> None:
    index = image.index(Path.parse(path))
    assert index is not None
    image.apply(index, event(path, value))


def refusal(response: object) -> tuple[int, int, str]:
    assert isinstance(response, ExceptionResponse), response
    return response.function_code, response.code, response.reason


# ------------------------------------------------------------------ reads


def test_a_read_shows_the_values_encoded_and_a_wide_value_may_be_read_in_parts() -> None:
    image = image_of()
    show(image, "pv.power", 21.5)
    show(image, "pv.temp", -3.5)
    show(image, "grid.on", True)
    assert image.read(ReadRequest("input", 0, 3)) == ReadResponse("input", (0x41AC, 0, 0xFFDD))
    assert image.read(ReadRequest("input", 1, 1)) == ReadResponse("input", (0,))
    assert image.read(ReadRequest("discrete_input", 0, 1)) == ReadResponse(
        "discrete_input", (True,)
    )


def test_a_read_of_an_unmapped_address_is_exception_2_for_the_whole_read() -> None:
    image = image_of()
    show(image, "pv.power", 1.0)
    show(image, "pv.temp", 1.0)
    assert refusal(image.read(ReadRequest("input", 0, 4))) == (4, 2, "input 3 is not mapped")
    assert refusal(image.read(ReadRequest("holding", 0, 1)))[:2] == (3, 2)
    assert refusal(image.read(ReadRequest("coil", 1, 1)))[:2] == (1, 2)


def test_a_read_of_a_value_that_has_none_is_exception_4_not_zeros() -> None:
    image = image_of()
    show(image, "pv.power", 1.0)
    assert refusal(image.read(ReadRequest("input", 0, 3))) == (
        4,
        4,
        "pv.temp (input 2) has no value to show",
    )
    show(image, "pv.temp", 1.0)
    assert isinstance(image.read(ReadRequest("input", 0, 3)), ReadResponse)
    show(image, "pv.temp", None)  # deleted
    assert refusal(image.read(ReadRequest("input", 2, 1)))[1] == 4


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("pv.temp", 4000, "does not fit int16"),  # raw 40000
        ("pv.temp", "warm", "expected a number, got str"),
        ("grid.on", 1, "expected true or false"),
        ("pv.power", 1e39, "too large for float32"),
    ],
)
def test_a_value_that_does_not_encode_shows_nothing_and_says_why(
    path: str, value: object, problem: str
) -> None:
    image = image_of()
    show(image, path, 1.0 if path != "grid.on" else True)
    index = image.index(Path.parse(path))
    assert index is not None
    with pytest.raises(BusDataError, match=problem):
        image.apply(index, event(path, value))
    assert image.raw[index] is None


@given(st.permutations([(hlc, origin) for hlc in (5, 7, 9) for origin in ("a", "b")]))
def test_the_image_shows_the_winner_whatever_order_the_events_come_in(
    order: list[tuple[int, str]],
) -> None:
    image = image_of()
    for hlc, origin in order:
        image.apply(
            image.index(Path.parse("wb.energy")) or 0,
            event("wb.energy", hlc * 10 + ord(origin), hlc=hlc, origin=origin),
        )
    assert image.read(ReadRequest("holding", 11, 2)) == ReadResponse("holding", (0, 90 + ord("b")))


# ------------------------------------------------------------------ writes


def test_a_write_decodes_every_value_it_covers_whole() -> None:
    image = image_of()
    target = struct.unpack(">HH", struct.pack(">f", 80.5))
    writes = image.decode_write(WriteRequest("holding", 13, target))
    assert not isinstance(writes, ExceptionResponse)
    assert [(w.index, w.raw, w.value) for w in writes] == [(5, target, 80.5)]
    writes = image.decode_write(WriteRequest("holding", 10, (160,), single=True))
    assert not isinstance(writes, ExceptionResponse)
    assert [w.value for w in writes] == [16.0]
    writes = image.decode_write(WriteRequest("coil", 0, (True,), single=True))
    assert not isinstance(writes, ExceptionResponse)
    assert [w.value for w in writes] == [True]


@pytest.mark.parametrize(
    ("request_", "code", "reason"),
    [
        (WriteRequest("holding", 9, (1,), single=True), 2, "holding 9 is not mapped"),
        (WriteRequest("holding", 11, (1, 2)), 2, "wb.energy (holding 11) is read-only"),
        (
            WriteRequest("holding", 13, (1,), single=True),
            2,
            "wb.target (holding 13) is float32 in 13 .. 14: write it whole",
        ),
        (WriteRequest("holding", 14, (1, 2)), 2, "wb.target (holding 13) is float32 in 13 .. 14"),
        (WriteRequest("holding", 13, (0x7FC0, 0)), 3, "wb.target: float32: the device sent nan"),
        (WriteRequest("holding", 10, (59,), single=True), 3, "wb.limit: 5.9 is less than"),
        (WriteRequest("holding", 10, (321,), single=True), 3, "wb.limit: 32.1 is more than"),
        (WriteRequest("coil", 1, (True,)), 2, "coil 1 is not mapped"),
    ],
)
def test_a_write_that_does_not_fit_the_map_is_refused_whole(
    request_: WriteRequest, code: int, reason: str
) -> None:
    function_code, got, why = refusal(image_of().decode_write(request_))
    assert (function_code, got) == (request_.code, code)
    assert why.startswith(reason), why


def test_a_refused_write_applies_none_of_its_values() -> None:
    image = image_of(
        [
            {"path": "a", "function": "holding", "address": 0, "direction": "in"},
            {"path": "b", "function": "holding", "address": 1},
        ]
    )
    assert isinstance(image.decode_write(WriteRequest("holding", 0, (1, 2))), ExceptionResponse)
    assert image.raw == [None, None]


def test_holds_says_whether_a_write_changes_nothing() -> None:
    image = image_of()
    show(image, "wb.limit", 16)
    (same,) = image.decode_write(WriteRequest("holding", 10, (160,), single=True))  # type: ignore[misc]
    (other,) = image.decode_write(WriteRequest("holding", 10, (161,), single=True))  # type: ignore[misc]
    assert image.holds(same) and not image.holds(other)


# ------------------------------------------------------------- the connection


def frame(transaction: int, unit: int, request: ReadRequest | WriteRequest) -> bytes:
    return encode_frame(Frame(transaction, unit, encode_request(request)))


def test_a_connection_yields_each_request_and_answers_it_with_its_transaction_id() -> None:
    connection = ServerConnection(unit_id=1)
    data = frame(7, 1, ReadRequest("holding", 10, 1)) + frame(
        8, 1, WriteRequest("coil", 0, (True,))
    )
    connection.receive_data(data[:5])
    assert connection.next_request() is None
    connection.receive_data(data[5:])
    first = connection.next_request()
    second = connection.next_request()
    assert connection.next_request() is None
    assert first is not None and second is not None
    assert (first.transaction, first.request) == (7, ReadRequest("holding", 10, 1))
    assert (second.transaction, second.request) == (8, WriteRequest("coil", 0, (True,)))
    answer = connection.respond(first, ReadResponse("holding", (43,)))
    assert answer == bytes.fromhex("0007 0000 0005 01 03 02 002b")
    answer = connection.respond(second, WriteResponse("coil", 0, 1))
    assert answer == bytes.fromhex("0008 0000 0006 01 0f 0000 0001")
    connection.data_ended()


@pytest.mark.parametrize(
    ("configured", "unit", "served"),
    [(1, 1, True), (1, 0, True), (1, 255, True), (1, 2, False), (0, 17, True), (255, 3, True)],
)
def test_which_unit_ids_are_served(configured: int, unit: int, served: bool) -> None:
    connection = ServerConnection(unit_id=configured)
    connection.receive_data(frame(1, unit, ReadRequest("input", 0, 1)))
    incoming = connection.next_request()
    assert incoming is not None and incoming.unit == unit
    if served:
        assert incoming.request == ReadRequest("input", 0, 1)
    else:
        assert refusal(incoming.request)[:2] == (4, 11)


def test_a_request_the_codec_refuses_comes_out_with_its_answer_and_the_connection_goes_on() -> None:
    connection = ServerConnection(unit_id=1)
    connection.receive_data(encode_frame(Frame(1, 1, b"\x2b\x0e\x01\x00")))
    connection.receive_data(frame(2, 1, ReadRequest("input", 0, 1)))
    first = connection.next_request()
    assert first is not None
    assert refusal(first.request)[:2] == (0x2B, 1)
    assert connection.respond(first, first.request) == bytes.fromhex("0001 0000 0003 01 ab 01")  # type: ignore[arg-type]
    second = connection.next_request()
    assert second is not None and second.request == ReadRequest("input", 0, 1)


def test_garbage_and_a_frame_cut_off_are_protocol_errors() -> None:
    connection = ServerConnection(unit_id=1)
    connection.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ModbusProtocolError, match="not Modbus TCP"):
        connection.next_request()
    cut = ServerConnection(unit_id=1)
    cut.receive_data(frame(1, 1, ReadRequest("input", 0, 1))[:9])
    assert cut.next_request() is None
    with pytest.raises(ModbusProtocolError, match="left 9 bytes of a frame"):
        cut.data_ended()


# ---------------------------------------------------------------- settings


def test_settings_default_to_this_machine_and_describe_every_value() -> None:
    settings = settings_of({"map": MAP})
    assert (settings.host, settings.port, settings.unit_id) == ("127.0.0.1", 5020, 1)
    assert (settings.limits.max_connections, settings.limits.idle_timeout) == (8, 60.0)
    assert settings.limits.allow is None
    rows = settings.describe()
    assert [r["path"] for r in rows] == [m["path"] for m in MAP]
    assert rows[0] == {
        "path": "pv.power",
        "address": "1/input/0",
        "direction": "out",
        "type": "float32 ABCD",
        "listen": "127.0.0.1:5020",
    }
    assert rows[3] == {
        "path": "wb.limit",
        "address": "1/holding/10",
        "direction": "both",
        "type": "uint16",
        "listen": "127.0.0.1:5020",
        "scale": 0.1,
        "offset": 0,
        "min": 6.0,
        "max": 32.0,
    }


def test_the_allow_list_admits_its_addresses_also_mapped_to_ipv6() -> None:
    limits = settings_of({"allow": ["10.0.0.7", "::1"]}).limits
    assert limits.allows("10.0.0.7") and limits.allows("::ffff:10.0.0.7") and limits.allows("::1")
    assert not limits.allows("10.0.0.8") and not limits.allows("")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"listen": "0.0.0.0:99999"}, "adapters.plc.listen: '0.0.0.0:99999': the port"),
        ({"unit_id": 256}, "adapters.plc.unit_id: expected"),
        ({"max_connections": 0}, "adapters.plc.max_connections: expected"),
        ({"idle_timeout": 0}, "adapters.plc.idle_timeout: expected"),
        ({"allow": ["wallbox.local"]}, "adapters.plc.allow[0]: 'wallbox.local' is no IP address"),
        ({"interval": 1}, "adapters.plc.interval: unknown key"),
        (
            {"map": [{"path": "a", "function": "input", "address": 0, "direction": "in"}]},
            "adapters.plc.map[0].direction: a input cannot be written",
        ),
        (
            {"map": [{"path": "a", "function": "holding", "address": 0, "max": 3}]},
            "adapters.plc.map[0].min: min and max limit what clients write",
        ),
        (
            {"map": [{"path": "a", "function": "coil", "address": 0, "direction": "in", "min": 0}]},
            "adapters.plc.map[0].min: a bool has no range",
        ),
        (
            {
                "map": [
                    {"path": "a", "function": "holding", "address": 0, "direction": "in"}
                    | {"min": 5, "max": 3}
                ]
            },
            "adapters.plc.map[0].min: min 5.0 is more than max 3.0",
        ),
        (
            {"map": [{"path": "a", "function": "holding", "address": 0, "threshold": 1}]},
            "adapters.plc.map[0].threshold: unknown key",
        ),
        (
            {
                "map": [
                    {"path": "a", "function": "holding", "address": 0, "type": "int32"},
                    {"path": "b", "function": "holding", "address": 1},
                ]
            },
            "adapters.plc.map: b and a overlap at 1",
        ),
        (
            {
                "map": [
                    {"path": "a", "function": "holding", "address": 0},
                    {"path": "a", "function": "input", "address": 0},
                ]
            },
            "adapters.plc.map[1].path: a is mapped twice",
        ),
    ],
)
def test_settings_are_read_strictly(table: dict[str, Any], message: str) -> None:
    with pytest.raises(FieldError) as caught:
        settings_of(table)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_served_value_is_a_mapped_value_with_limits() -> None:
    (value,) = settings_of({"map": [MAP[3]]}).values
    assert isinstance(value, ServedValue)
    assert value.out_of_range(6) is None and value.out_of_range(32.0) is None
    assert value.out_of_range(5.9) == "5.9 is less than the least allowed, 6.0"
