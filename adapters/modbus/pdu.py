"""The Modbus PDU, sans-io: the requests and responses of the eight data functions.

Theory of operation
-------------------
A PDU is a function code and its data (Modbus Application Protocol 1.1b3,
section 6; numbers big-endian, bits packed least significant first):

====  ========================  =====================================  ===========================
code  function                  request data                           response data
====  ========================  =====================================  ===========================
1     read coils                address, count (1 .. 2000)             byte count, bits
2     read discrete inputs      address, count (1 .. 2000)             byte count, bits
3     read holding registers    address, count (1 .. 125)              byte count, registers
4     read input registers      address, count (1 .. 125)              byte count, registers
5     write single coil         address, 0xFF00 (on) or 0x0000 (off)   the request's echo
6     write single register     address, value                         the request's echo
15    write multiple coils      address, count (1 .. 1968), bytes,     address, count
                                bits
16    write multiple registers  address, count (1 .. 123), bytes,      address, count
                                registers
====  ========================  =====================================  ===========================

A refused request is answered with the function code plus 0x80 and one
exception code (`ExceptionCode`).  The spec's state diagrams (6.1 .. 6.12)
fix which: a function the server lacks is 01; a count out of range, a byte
count that disagrees with it, or data of the wrong length (7: "the implied
length is incorrect") is 03; an address range past 65535 is 02.  What
`decode_request` cannot decode it returns as that `ExceptionResponse`, so
the server answers it and goes on: the MBAP length kept the stream in step.

The client's side (`encode_request`, `decode_response`) and the server's
(`decode_request`, `encode_response`) are one module, so each is tested
against the other and byte for byte against pymodbus.  A response that does
not fit its request (another function, the wrong byte count, an echo of
something else) raises `ModbusProtocolError`: the device is not in step.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from moat_log.errors import ModbusProtocolError

from .plan import BIT_FUNCTIONS, MAX_BITS, MAX_REGISTERS, Function

__all__ = [
    "EXCEPTION_NAMES",
    "MAX_WRITE_BITS",
    "MAX_WRITE_REGISTERS",
    "ExceptionCode",
    "ExceptionResponse",
    "ReadRequest",
    "ReadResponse",
    "Request",
    "Response",
    "WritableFunction",
    "WriteRequest",
    "WriteResponse",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

WritableFunction = Literal["coil", "holding"]

#: The most coils one write may carry (function 15).
MAX_WRITE_BITS: Final = 1968
#: The most registers one write may carry (function 16).
MAX_WRITE_REGISTERS: Final = 123

READ_CODES: Final[Mapping[Function, int]] = {
    "coil": 1,
    "discrete_input": 2,
    "holding": 3,
    "input": 4,
}
SINGLE_WRITE_CODES: Final[Mapping[WritableFunction, int]] = {"coil": 5, "holding": 6}
MULTIPLE_WRITE_CODES: Final[Mapping[WritableFunction, int]] = {"coil": 15, "holding": 16}
_READ_FUNCTIONS: Final = {code: function for function, code in READ_CODES.items()}
_WRITE_FUNCTIONS: Final[Mapping[int, tuple[WritableFunction, bool]]] = {
    5: ("coil", True),
    6: ("holding", True),
    15: ("coil", False),
    16: ("holding", False),
}
_WORD: Final = struct.Struct(">H")
_TWO_WORDS: Final = struct.Struct(">HH")
_COIL_ON: Final = 0xFF00


class ExceptionCode(enum.IntEnum):
    """Modbus exception codes (Modbus Application Protocol 1.1b3, 7)."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_DATA_ADDRESS = 2
    ILLEGAL_DATA_VALUE = 3
    SERVER_DEVICE_FAILURE = 4
    ACKNOWLEDGE = 5
    SERVER_DEVICE_BUSY = 6
    MEMORY_PARITY_ERROR = 8
    GATEWAY_PATH_UNAVAILABLE = 10
    GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND = 11


#: What each exception code means, as messages and status say it.
EXCEPTION_NAMES: Final[Mapping[int, str]] = {
    code.value: code.name.lower().replace("_", " ") for code in ExceptionCode
}


def _read_limit(function: Function) -> int:
    return MAX_BITS if function in BIT_FUNCTIONS else MAX_REGISTERS


def _check_range(address: int, count: int, limit: int) -> None:
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"an address is 0 .. 65535, not {address}")
    if not 1 <= count <= limit:
        raise ValueError(f"a count is 1 .. {limit}, not {count}")
    if address + count > 0x10000:
        raise ValueError(f"{count} from {address} ends past 65535")


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Read *count* coils, discrete inputs, holding or input registers from *address*."""

    function: Function
    address: int
    count: int

    def __post_init__(self) -> None:
        if self.function not in READ_CODES:
            raise ValueError(f"no function {self.function!r}")
        _check_range(self.address, self.count, _read_limit(self.function))

    @property
    def code(self) -> int:
        return READ_CODES[self.function]

    @property
    def end(self) -> int:
        """The address after the last one read."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """Write *values* (bools for coils, 0 .. 0xFFFF for registers) from *address*.

    *single*: with function 5 or 6 (one value) rather than 15 or 16.
    """

    function: WritableFunction
    address: int
    values: tuple[bool, ...] | tuple[int, ...]
    single: bool = False

    def __post_init__(self) -> None:
        if self.function not in SINGLE_WRITE_CODES:
            raise ValueError(f"{self.function!r} cannot be written: only coil and holding")
        coils = self.function == "coil"
        limit = 1 if self.single else MAX_WRITE_BITS if coils else MAX_WRITE_REGISTERS
        _check_range(self.address, len(self.values), limit)
        for value in self.values:
            if coils and type(value) is not bool:
                raise ValueError(f"a coil is True or False, not {value!r}")
            if not coils and (type(value) is not int or not 0 <= value <= 0xFFFF):
                raise ValueError(f"a register is an int 0 .. 65535, not {value!r}")

    @property
    def code(self) -> int:
        codes = SINGLE_WRITE_CODES if self.single else MULTIPLE_WRITE_CODES
        return codes[self.function]

    @property
    def end(self) -> int:
        """The address after the last one written."""
        return self.address + len(self.values)


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """The values a read asked for: bools for bits, ints for registers."""

    function: Function
    values: tuple[bool, ...] | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WriteResponse:
    """A write's acknowledgement: what function 5/6 echoes, or 15/16's address and count."""

    function: WritableFunction
    address: int
    count: int
    single: bool = False
    #: Function 5/6: the value written, as its 16 bits (a coil: 0xFF00 or 0).
    echo: int = 0

    @classmethod
    def acknowledging(cls, request: WriteRequest) -> WriteResponse:
        echo = 0
        if request.single:
            echo = _COIL_ON if request.values[0] is True else int(request.values[0])
        return cls(request.function, request.address, len(request.values), request.single, echo)

    @property
    def code(self) -> int:
        codes = SINGLE_WRITE_CODES if self.single else MULTIPLE_WRITE_CODES
        return codes[self.function]


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """A refusal: the request's function code and an exception code.

    *reason* says why in words (for status and the log); it is not sent.
    """

    function_code: int
    code: int
    reason: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.function_code <= 0x7F:
            raise ValueError(f"a function code is 0 .. 127, not {self.function_code}")
        if not 0 <= self.code <= 0xFF:
            raise ValueError(f"an exception code is 0 .. 255, not {self.code}")

    @property
    def name(self) -> str:
        return EXCEPTION_NAMES.get(self.code, "unknown exception")

    def __str__(self) -> str:
        reason = f": {self.reason}" if self.reason else ""
        return f"exception {self.code} ({self.name}){reason}"


Request = ReadRequest | WriteRequest
Response = ReadResponse | WriteResponse | ExceptionResponse


# ------------------------------------------------------------------ bits


def _pack_bits(bits: tuple[bool, ...] | tuple[int, ...]) -> bytes:
    data = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            data[index // 8] |= 1 << (index % 8)
    return bytes(data)


def _unpack_bits(data: bytes, count: int) -> tuple[bool, ...]:
    return tuple(bool(data[i // 8] >> (i % 8) & 1) for i in range(count))


def _words(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(data) // 2}H", data)


# ---------------------------------------------------------------- server side


def decode_request(pdu: bytes) -> Request | ExceptionResponse:
    """The request in *pdu*, or the `ExceptionResponse` that refuses it."""
    if not pdu:
        raise ValueError("an empty PDU has no function code")
    code = pdu[0]
    if code in _READ_FUNCTIONS:
        return _decode_read(code, pdu[1:])
    if code in _WRITE_FUNCTIONS:
        return _decode_write(code, pdu[1:])
    # 128 .. 255 are exception responses, no requests: refused as 01 like any unknown code
    reason = f"no function {code}"
    return ExceptionResponse(code & 0x7F, ExceptionCode.ILLEGAL_FUNCTION, reason)


def _value_error(code: int, reason: str) -> ExceptionResponse:
    return ExceptionResponse(code, ExceptionCode.ILLEGAL_DATA_VALUE, reason)


def _address_error(code: int, address: int, count: int) -> ExceptionResponse:
    reason = f"{count} from {address} ends past 65535"
    return ExceptionResponse(code, ExceptionCode.ILLEGAL_DATA_ADDRESS, reason)


def _decode_read(code: int, data: bytes) -> ReadRequest | ExceptionResponse:
    function = _READ_FUNCTIONS[code]
    if len(data) != 4:
        return _value_error(code, f"a read carries 4 bytes, not {len(data)}")
    address, count = _TWO_WORDS.unpack(data)
    limit = _read_limit(function)
    if not 1 <= count <= limit:
        return _value_error(code, f"a read of {count}: 1 .. {limit} may be read at once")
    if address + count > 0x10000:
        return _address_error(code, address, count)
    return ReadRequest(function, address, count)


def _decode_write(code: int, data: bytes) -> WriteRequest | ExceptionResponse:
    function, single = _WRITE_FUNCTIONS[code]
    if single:
        return _decode_single_write(code, function, data)
    return _decode_multiple_write(code, function, data)


def _decode_single_write(
    code: int, function: WritableFunction, data: bytes
) -> WriteRequest | ExceptionResponse:
    if len(data) != 4:
        return _value_error(code, f"a single write carries 4 bytes, not {len(data)}")
    address, raw = _TWO_WORDS.unpack(data)
    if function == "holding":
        return WriteRequest(function, address, (raw,), single=True)
    if raw not in (0, _COIL_ON):
        return _value_error(code, f"a coil is written 0xFF00 or 0x0000, not {raw:#06x}")
    return WriteRequest(function, address, (raw == _COIL_ON,), single=True)


def _decode_multiple_write(
    code: int, function: WritableFunction, data: bytes
) -> WriteRequest | ExceptionResponse:
    if len(data) < 5:
        return _value_error(code, f"a write carries at least 5 bytes, not {len(data)}")
    address, count = _TWO_WORDS.unpack_from(data)
    size, values = data[4], data[5:]
    bits = function == "coil"
    limit = MAX_WRITE_BITS if bits else MAX_WRITE_REGISTERS
    expected = (count + 7) // 8 if bits else 2 * count
    if not 1 <= count <= limit:
        return _value_error(code, f"a write of {count}: 1 .. {limit} may be written at once")
    if size != expected or len(values) != expected:
        reason = f"{count} values take {expected} bytes; it says {size} and has {len(values)}"
        return _value_error(code, reason)
    if address + count > 0x10000:
        return _address_error(code, address, count)
    decoded = _unpack_bits(values, count) if bits else _words(values)
    return WriteRequest(function, address, decoded)


def encode_response(response: Response) -> bytes:
    """The PDU of *response*."""
    if isinstance(response, ExceptionResponse):
        return bytes((response.function_code | 0x80, response.code))
    if isinstance(response, WriteResponse):
        second = response.echo if response.single else response.count
        return bytes((response.code,)) + _TWO_WORDS.pack(response.address, second)
    code = READ_CODES[response.function]
    if response.function in BIT_FUNCTIONS:
        data = _pack_bits(response.values)
    else:
        data = struct.pack(f">{len(response.values)}H", *response.values)
    return bytes((code, len(data))) + data


# ---------------------------------------------------------------- client side


def encode_request(request: Request) -> bytes:
    """The PDU of *request*."""
    if isinstance(request, ReadRequest):
        return bytes((request.code,)) + _TWO_WORDS.pack(request.address, request.count)
    values = request.values
    if request.single:
        raw = (_COIL_ON if values[0] else 0) if request.function == "coil" else int(values[0])
        return bytes((request.code,)) + _TWO_WORDS.pack(request.address, raw)
    if request.function == "coil":
        data = _pack_bits(values)
    else:
        data = struct.pack(f">{len(values)}H", *values)
    head = _TWO_WORDS.pack(request.address, len(values)) + bytes((len(data),))
    return bytes((request.code,)) + head + data


def decode_response(request: Request, pdu: bytes) -> Response:
    """The response to *request* in *pdu*; `ModbusProtocolError` if it is not one."""
    if len(pdu) == 2 and pdu[0] == request.code | 0x80:
        return ExceptionResponse(request.code, pdu[1])
    if not pdu or pdu[0] != request.code:
        what = f"function code {pdu[0]}" if pdu else "an empty PDU"
        raise ModbusProtocolError(f"a response to function {request.code} came with {what}")
    if isinstance(request, ReadRequest):
        return _decode_read_response(request, pdu[1:])
    if len(pdu) != 5:
        raise ModbusProtocolError(f"a write's response has 5 bytes, this one {len(pdu)}")
    address, second = _TWO_WORDS.unpack_from(pdu, 1)
    expected = WriteResponse.acknowledging(request)
    got = WriteResponse(
        request.function,
        address,
        len(request.values) if request.single else second,
        request.single,
        second if request.single else 0,
    )
    if got != expected:
        raise ModbusProtocolError(f"a response to {request} acknowledged something else: {got}")
    return got


def _decode_read_response(request: ReadRequest, data: bytes) -> ReadResponse:
    bits = request.function in BIT_FUNCTIONS
    expected = (request.count + 7) // 8 if bits else 2 * request.count
    if not data or data[0] != expected or len(data) != expected + 1:
        raise ModbusProtocolError(
            f"a read of {request.count} {request.function} answered with "
            f"{len(data) - 1 if data else 0} bytes of data ({expected} expected)"
        )
    values = _unpack_bits(data[1:], request.count) if bits else _words(data[1:])
    return ReadResponse(request.function, values)
