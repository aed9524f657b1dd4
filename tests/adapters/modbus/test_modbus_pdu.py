"""The sans-io Modbus TCP codec: MBAP framing and PDUs, byte for byte and as round trips.

Byte-exact tables come from the spec's examples (Modbus Application
Protocol 1.1b3, section 6) and are checked against pymodbus's own PDU
classes; Hypothesis checks that every request and response survives
encoding and decoding, and that framing does not depend on how a stream
is cut into chunks.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.pdu import ExceptionResponse as PymodbusException
from pymodbus.pdu import bit_message, register_message

from moat_log.adapters.modbus.mbap import Frame, FrameReader, encode_frame
from moat_log.adapters.modbus.pdu import (
    ExceptionCode,
    ExceptionResponse,
    ReadRequest,
    ReadResponse,
    Request,
    WriteRequest,
    WriteResponse,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from moat_log.adapters.modbus.plan import FUNCTIONS, Function
from moat_log.errors import ModbusProtocolError

# ------------------------------------------------------------------ tables

#: (request, its PDU, pymodbus's request of it): the spec's examples and more.
REQUESTS = [
    (
        ReadRequest("coil", 19, 19),
        "01 0013 0013",
        bit_message.ReadCoilsRequest(address=19, count=19),
    ),
    (
        ReadRequest("discrete_input", 196, 22),
        "02 00c4 0016",
        bit_message.ReadDiscreteInputsRequest(address=196, count=22),
    ),
    (
        ReadRequest("holding", 107, 3),
        "03 006b 0003",
        register_message.ReadHoldingRegistersRequest(address=107, count=3),
    ),
    (
        ReadRequest("input", 8, 1),
        "04 0008 0001",
        register_message.ReadInputRegistersRequest(address=8, count=1),
    ),
    (
        WriteRequest("coil", 172, (True,), single=True),
        "05 00ac ff00",
        bit_message.WriteSingleCoilRequest(address=172, bits=[True]),
    ),
    (
        WriteRequest("holding", 1, (3,), single=True),
        "06 0001 0003",
        register_message.WriteSingleRegisterRequest(address=1, registers=[3]),
    ),
    (
        WriteRequest("coil", 19, (True, False, True, True, False, False, True, True, True, False)),
        "0f 0013 000a 02 cd01",
        bit_message.WriteMultipleCoilsRequest(
            address=19, bits=[True, False, True, True, False, False, True, True, True, False]
        ),
    ),
    (
        WriteRequest("holding", 1, (0x000A, 0x0102)),
        "10 0001 0002 04 000a 0102",
        register_message.WriteMultipleRegistersRequest(address=1, registers=[0x000A, 0x0102]),
    ),
]

#: (request, response, its PDU, pymodbus's response of it).
RESPONSES = [
    (
        ReadRequest("coil", 19, 3),
        ReadResponse("coil", (True, False, True)),
        "01 01 05",
        bit_message.ReadCoilsResponse(bits=[True, False, True]),
    ),
    (
        ReadRequest("holding", 107, 3),
        ReadResponse("holding", (0x022B, 0x0000, 0x0064)),
        "03 06 022b 0000 0064",
        register_message.ReadHoldingRegistersResponse(registers=[0x022B, 0x0000, 0x0064]),
    ),
    (
        ReadRequest("input", 8, 1),
        ReadResponse("input", (0x000A,)),
        "04 02 000a",
        register_message.ReadInputRegistersResponse(registers=[0x000A]),
    ),
    (
        WriteRequest("coil", 172, (True,), single=True),
        WriteResponse("coil", 172, 1, single=True, echo=0xFF00),
        "05 00ac ff00",
        bit_message.WriteSingleCoilResponse(address=172, bits=[True]),
    ),
    (
        WriteRequest("holding", 1, (3,), single=True),
        WriteResponse("holding", 1, 1, single=True, echo=3),
        "06 0001 0003",
        register_message.WriteSingleRegisterResponse(address=1, registers=[3]),
    ),
    (
        WriteRequest("coil", 19, (True,) * 10),
        WriteResponse("coil", 19, 10),
        "0f 0013 000a",
        bit_message.WriteMultipleCoilsResponse(address=19, count=10),
    ),
    (
        WriteRequest("holding", 1, (1, 2)),
        WriteResponse("holding", 1, 2),
        "10 0001 0002",
        register_message.WriteMultipleRegistersResponse(address=1, count=2),
    ),
]


def pdu(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def pymodbus_pdu(message: Any) -> bytes:
    return bytes((message.function_code,)) + bytes(message.encode())


@pytest.mark.parametrize(("request_", "text", "theirs"), REQUESTS)
def test_requests_are_encoded_as_the_spec_and_pymodbus_encode_them(
    request_: Request, text: str, theirs: object
) -> None:
    assert encode_request(request_) == pdu(text) == pymodbus_pdu(theirs)
    assert decode_request(pdu(text)) == request_


@pytest.mark.parametrize(("request_", "response", "text", "theirs"), RESPONSES)
def test_responses_are_encoded_as_the_spec_and_pymodbus_encode_them(
    request_: Request, response: ReadResponse | WriteResponse, text: str, theirs: object
) -> None:
    assert encode_response(response) == pdu(text) == pymodbus_pdu(theirs)
    assert decode_response(request_, pdu(text)) == response
    if isinstance(request_, WriteRequest):
        assert WriteResponse.acknowledging(request_) == response


def test_an_exception_response_is_the_function_code_with_0x80_and_the_code() -> None:
    refusal = ExceptionResponse(3, ExceptionCode.ILLEGAL_DATA_ADDRESS, "not mapped")
    theirs = PymodbusException(3, 2)
    assert (
        encode_response(refusal) == pdu("83 02") == bytes((theirs.function_code,)) + theirs.encode()
    )
    assert decode_response(ReadRequest("holding", 0, 1), pdu("83 02")) == refusal
    assert str(refusal) == "exception 2 (illegal data address): not mapped"


# ---------------------------------------------------------- refused requests


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("07", 1, "no function 7"),  # read exception status: not served
        ("2b 0e 01 00", 1, "no function 43"),  # read device identification
        ("83 0000 0001", 1, "no function 131"),  # an exception code is no request
        ("03 0000 0000", 3, "a read of 0"),
        ("03 0000 007e", 3, "a read of 126"),
        ("01 0000 07d1", 3, "a read of 2001"),
        ("03 ffff 0002", 2, "2 from 65535 ends past 65535"),
        ("03 0000", 3, "a read carries 4 bytes, not 2"),
        ("03 0000 0001 00", 3, "a read carries 4 bytes, not 5"),
        ("05 0000 1234", 3, "a coil is written 0xFF00 or 0x0000, not 0x1234"),
        ("06 0000", 3, "a single write carries 4 bytes"),
        ("10 0000 0002 04 0001", 3, "2 values take 4 bytes; it says 4 and has 2"),
        ("10 0000 0002 03 000100", 3, "2 values take 4 bytes; it says 3 and has 3"),
        ("10 0000 007c f8" + "00" * 248, 3, "a write of 124"),
        ("0f 0000 0009 01 ff", 3, "9 values take 2 bytes"),
        ("0f fffe 0003 01 07", 2, "3 from 65534 ends past 65535"),
        ("10 0000", 3, "a write carries at least 5 bytes"),
    ],
)
def test_a_request_that_cannot_be_served_is_answered_with_the_right_exception(
    text: str, code: int, reason: str
) -> None:
    refusal = decode_request(pdu(text))
    assert isinstance(refusal, ExceptionResponse)
    assert (refusal.function_code, refusal.code) == (pdu(text)[0] & 0x7F, code)
    assert refusal.reason.startswith(reason), refusal.reason


@pytest.mark.parametrize(
    ("request_", "text", "message"),
    [
        (ReadRequest("holding", 0, 2), "04 04 0001 0002", "came with function code 4"),
        (ReadRequest("holding", 0, 2), "03 02 0001", "answered with 2 bytes of data (4 expected)"),
        (ReadRequest("coil", 0, 9), "01 01 ff", "answered with 1 bytes of data (2 expected)"),
        (WriteRequest("holding", 5, (1,), single=True), "06 0005 0002", "acknowledged"),
        (WriteRequest("holding", 5, (1, 2)), "10 0005 0003", "acknowledged something else"),
        (WriteRequest("holding", 5, (1, 2)), "10 0005", "a write's response has 5 bytes"),
        (ReadRequest("input", 0, 1), "", "came with an empty PDU"),
    ],
)
def test_a_response_that_does_not_answer_its_request_is_a_protocol_error(
    request_: Request, text: str, message: str
) -> None:
    with pytest.raises(ModbusProtocolError, match=re.escape(message)):
        decode_response(request_, pdu(text))


def test_requests_refuse_values_they_cannot_carry() -> None:
    with pytest.raises(ValueError, match=re.escape("a count is 1 .. 125")):
        ReadRequest("holding", 0, 126)
    with pytest.raises(ValueError, match="ends past 65535"):
        ReadRequest("coil", 65535, 2)
    with pytest.raises(ValueError, match="'input' cannot be written"):
        WriteRequest("input", 0, (1,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("a register is an int 0 .. 65535")):
        WriteRequest("holding", 0, (65536,))
    with pytest.raises(ValueError, match="a coil is True or False"):
        WriteRequest("coil", 0, (1,))
    with pytest.raises(ValueError, match=re.escape("a count is 1 .. 1")):
        WriteRequest("holding", 0, (1, 2), single=True)


# ---------------------------------------------------------------- round trips

_addresses = st.integers(0, 0xFFFF)


@st.composite
def read_requests(draw: st.DrawFn) -> ReadRequest:
    function: Function = draw(st.sampled_from(FUNCTIONS))
    limit = 2000 if function in ("coil", "discrete_input") else 125
    address = draw(_addresses)
    count = draw(st.integers(1, min(limit, 0x10000 - address)))
    return ReadRequest(function, address, count)


@st.composite
def write_requests(draw: st.DrawFn) -> WriteRequest:
    function = draw(st.sampled_from(["coil", "holding"]))
    single = draw(st.booleans())
    limit = 1 if single else 1968 if function == "coil" else 123
    address = draw(_addresses)
    count = draw(st.integers(1, min(limit, 0x10000 - address)))
    value = st.booleans() if function == "coil" else st.integers(0, 0xFFFF)
    values = tuple(draw(st.lists(value, min_size=count, max_size=count)))
    return WriteRequest(function, address, values, single=single)  # type: ignore[arg-type]


@given(st.one_of(read_requests(), write_requests()))
def test_every_request_decodes_to_itself(request_: Request) -> None:
    assert decode_request(encode_request(request_)) == request_


@given(read_requests(), st.data())
def test_every_read_response_decodes_to_itself(request_: ReadRequest, data: st.DataObject) -> None:
    bits = request_.function in ("coil", "discrete_input")
    value = st.booleans() if bits else st.integers(0, 0xFFFF)
    values = data.draw(st.lists(value, min_size=request_.count, max_size=request_.count))
    response = ReadResponse(request_.function, tuple(values))
    assert decode_response(request_, encode_response(response)) == response


@given(write_requests())
def test_every_write_acknowledgement_decodes_to_itself(request_: WriteRequest) -> None:
    response = WriteResponse.acknowledging(request_)
    assert decode_response(request_, encode_response(response)) == response


@given(st.binary(min_size=1, max_size=253))
def test_any_pdu_decodes_to_a_request_or_its_refusal_and_never_raises(data: bytes) -> None:
    decoded = decode_request(data)
    if isinstance(decoded, ExceptionResponse):
        assert decoded.code in (1, 2, 3)
    else:
        assert encode_request(decoded) == data


# ---------------------------------------------------------------- framing

_frames = st.builds(
    Frame, st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.binary(min_size=1, max_size=253)
)


def test_a_frame_is_the_mbap_header_and_the_pdu() -> None:
    frame = Frame(0x1501, 0xFF, pdu("03 006b 0003"))
    data = encode_frame(frame)
    assert data == pdu("1501 0000 0006 ff 03 006b 0003")
    reader = FrameReader()
    reader.receive_data(data)
    assert reader.next_frame() == frame
    assert reader.next_frame() is None
    assert reader.buffered == 0


@given(st.lists(_frames, max_size=8), st.lists(st.integers(0, 3000), max_size=10))
def test_frames_come_out_whole_however_the_stream_is_cut(
    frames: list[Frame], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(frame) for frame in frames)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    reader = FrameReader()
    out: list[Frame] = []
    for start, end in itertools.pairwise(points):
        reader.receive_data(stream[start:end])
        while (frame := reader.next_frame()) is not None:
            out.append(frame)
    assert out == frames
    assert reader.buffered == 0


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("0001 0001 0006 01", "protocol id 1 and length 6"),  # not Modbus
        ("0001 0000 00ff 01", "protocol id 0 and length 255"),  # a PDU of 254 bytes
        ("0001 0000 0001 01", "protocol id 0 and length 1"),  # no function code
        ("0001 0000 0000 01", "length 0"),
    ],
)
def test_a_header_no_modbus_peer_sends_breaks_the_reader_for_good(
    header: str, message: str
) -> None:
    reader = FrameReader()
    reader.receive_data(pdu(header) + b"\x03\x00\x00\x00\x01")
    with pytest.raises(ModbusProtocolError, match=message):
        reader.next_frame()
    with pytest.raises(ModbusProtocolError, match=message):  # sticky
        reader.receive_data(encode_frame(Frame(1, 1, b"\x03\x00\x00\x00\x01")))
    with pytest.raises(ModbusProtocolError, match=message):
        reader.next_frame()


def test_frames_refuse_fields_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match=re.escape("a PDU is 1 .. 253 bytes")):
        Frame(1, 1, b"\x03" * 254)
    with pytest.raises(ValueError, match=re.escape("a unit id is 0 .. 255")):
        Frame(1, 256, b"\x03")
    with pytest.raises(ValueError, match=re.escape("a transaction id is 0 .. 65535")):
        Frame(65536, 1, b"\x03")
