"""The register codec, byte-exact: golden layouts, pymodbus's own converter, round trips."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from moat_log.adapters.modbus.registers import DATA_TYPES, BitCodec, Order, RegisterCodec
from moat_log.errors import BusDataError

ORDERS: list[Order] = ["big", "little"]


def codec(name: str, word: Order = "big", byte: Order = "big", **kw: float) -> RegisterCodec:
    return RegisterCodec(DATA_TYPES[name], word, byte, **kw)


# (type, word order, byte order, value, registers): the four layouts of the
# complaints (BUSES.md 3.3), 21.5 as float32 among them.
GOLDEN = [
    ("float32", "big", "big", 21.5, (0x41AC, 0x0000)),  # ABCD
    ("float32", "little", "big", 21.5, (0x0000, 0x41AC)),  # CDAB
    ("float32", "big", "little", 21.5, (0xAC41, 0x0000)),  # BADC
    ("float32", "little", "little", 21.5, (0x0000, 0xAC41)),  # DCBA
    ("int16", "big", "big", -2, (0xFFFE,)),
    ("int16", "big", "little", -2, (0xFEFF,)),
    ("uint16", "big", "big", 0x1234, (0x1234,)),
    ("uint16", "little", "big", 0x1234, (0x1234,)),  # one register: no word order
    ("uint16", "big", "little", 0x1234, (0x3412,)),
    ("int32", "big", "big", -100000, (0xFFFE, 0x7960)),
    ("uint32", "big", "big", 70000, (0x0001, 0x1170)),
    ("uint32", "little", "big", 70000, (0x1170, 0x0001)),
    ("uint32", "big", "little", 70000, (0x0100, 0x7011)),
    ("uint32", "little", "little", 70000, (0x7011, 0x0100)),
    ("int64", "big", "big", -2, (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE)),
    ("uint64", "big", "big", 0x0102030405060708, (0x0102, 0x0304, 0x0506, 0x0708)),
    ("uint64", "little", "big", 0x0102030405060708, (0x0708, 0x0506, 0x0304, 0x0102)),
    ("uint64", "big", "little", 0x0102030405060708, (0x0201, 0x0403, 0x0605, 0x0807)),
    ("uint64", "little", "little", 0x0102030405060708, (0x0807, 0x0605, 0x0403, 0x0201)),
    ("float64", "big", "big", 1.0, (0x3FF0, 0, 0, 0)),
    ("float64", "little", "little", 1.0, (0, 0, 0, 0xF03F)),
]


@pytest.mark.parametrize(("name", "word", "byte", "value", "registers"), GOLDEN)
def test_golden_layouts_both_ways(
    name: str, word: Order, byte: Order, value: float, registers: tuple[int, ...]
) -> None:
    c = codec(name, word, byte)
    assert c.encode(value) == registers
    assert c.decode(registers) == value
    assert type(c.decode(registers)) is type(value)


PYMODBUS_TYPES = {
    "int16": ModbusTcpClient.DATATYPE.INT16,
    "uint16": ModbusTcpClient.DATATYPE.UINT16,
    "int32": ModbusTcpClient.DATATYPE.INT32,
    "uint32": ModbusTcpClient.DATATYPE.UINT32,
    "int64": ModbusTcpClient.DATATYPE.INT64,
    "uint64": ModbusTcpClient.DATATYPE.UINT64,
    "float32": ModbusTcpClient.DATATYPE.FLOAT32,
    "float64": ModbusTcpClient.DATATYPE.FLOAT64,
}


def values_of(name: str) -> st.SearchStrategy[int | float]:
    kind = DATA_TYPES[name]
    if kind.integer:
        return st.integers(kind.minimum, kind.maximum)
    if name == "float32":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    return st.floats(allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("name", list(DATA_TYPES))
@pytest.mark.parametrize("word", ORDERS)
@settings(max_examples=50)
@given(data=st.data())
def test_big_byte_order_agrees_with_pymodbus(name: str, word: Order, data: st.DataObject) -> None:
    value = data.draw(values_of(name))
    ours = codec(name, word).encode(value)
    theirs = ModbusTcpClient.convert_to_registers(value, PYMODBUS_TYPES[name], word_order=word)
    assert list(ours) == theirs
    back = ModbusTcpClient.convert_from_registers(list(ours), PYMODBUS_TYPES[name], word)
    decoded = codec(name, word).decode(ours)
    if name == "float32":  # ours is the shortest decimal of the same float32
        assert struct.pack(">f", decoded) == struct.pack(">f", back)
    else:
        assert decoded == back


@pytest.mark.parametrize("name", list(DATA_TYPES))
@settings(max_examples=50)
@given(data=st.data())
def test_every_layout_round_trips(name: str, data: st.DataObject) -> None:
    c = codec(name, data.draw(st.sampled_from(ORDERS)), data.draw(st.sampled_from(ORDERS)))
    value = data.draw(values_of(name))
    registers = c.encode(value)
    assert len(registers) == c.width and all(0 <= r <= 0xFFFF for r in registers)
    if name == "float32":  # the shortest decimal of the same float32
        assert struct.pack(">f", c.decode(registers)) == struct.pack(">f", value)
    else:
        assert c.decode(registers) == value
    assert c.encode(c.decode(registers)) == registers


@pytest.mark.parametrize("name", list(DATA_TYPES))
@settings(max_examples=50)
@given(data=st.data())
def test_any_registers_decode_and_encode_back(name: str, data: st.DataObject) -> None:
    c = codec(name, data.draw(st.sampled_from(ORDERS)), data.draw(st.sampled_from(ORDERS)))
    registers = tuple(
        data.draw(st.lists(st.integers(0, 0xFFFF), min_size=c.width, max_size=c.width))
    )
    try:
        value = c.decode(registers)
    except BusDataError:
        assert not c.data_type.integer  # NaN or infinity: not a reading
        return
    assert c.encode(value) == registers


def test_scale_and_offset_are_decimal() -> None:
    tenths = codec("int16", scale=0.1)
    assert tenths.decode((215,)) == 21.5
    assert tenths.decode((0xFFF6,)) == -1.0
    assert tenths.encode(21.5) == (215,)
    assert tenths.encode(21.55) == (216,)  # rounded half to even to the resolution
    assert tenths.encode(21.45) == (214,)
    kelvin = codec("uint16", scale=0.01, offset=-273.15)
    assert kelvin.decode((29315,)) == 20.0
    assert kelvin.encode(20.0) == (29315,)
    assert codec("uint16", scale=10).decode((5,)) == 50  # int scale: an int
    assert type(codec("uint16", scale=10).decode((5,))) is int
    assert type(codec("uint16", scale=1.0).decode((5,))) is float


def test_float32_stores_the_shortest_decimal() -> None:
    c = codec("float32")
    registers = c.encode(0.1)
    assert registers == tuple(struct.unpack(">HH", struct.pack(">f", 0.1)))
    assert c.decode(registers) == 0.1  # not 0.10000000149011612


@pytest.mark.parametrize(
    ("name", "kw", "value", "message"),
    [
        ("int16", {}, 40000, "40000 does not fit int16 (-32768 .. 32767); not written"),
        ("int16", {"scale": 0.1}, 3276.8, "3276.8 (raw 32768) does not fit int16"),
        ("uint16", {}, -1, "-1 does not fit uint16 (0 .. 65535)"),
        ("uint32", {}, 2**32, "does not fit uint32"),
        ("int64", {}, 2**63, "does not fit int64"),
        ("float32", {}, 1e39, "1e+39 is too large for float32; not written"),
        ("float32", {}, math.nan, "nan cannot be written (not a finite number)"),
        ("float64", {}, math.inf, "inf cannot be written"),
        ("int16", {}, True, "expected a number, got bool True"),
        ("int16", {}, "7", "expected a number, got str '7'"),
        ("int16", {}, None, "expected a number, got NoneType None"),
    ],
)
def test_values_that_do_not_fit_are_refused(
    name: str, kw: dict[str, float], value: object, message: str
) -> None:
    with pytest.raises(BusDataError) as caught:
        RegisterCodec(DATA_TYPES[name], scale=kw.get("scale", 1)).encode(value)
    assert message in str(caught.value)


def test_nan_from_the_device_is_bad_data() -> None:
    with pytest.raises(BusDataError, match="not a number"):
        codec("float32").decode((0x7FC0, 0x0000))
    with pytest.raises(BusDataError, match="expected 2 register"):
        codec("float32").decode((1,))


def test_bits_are_bools_only() -> None:
    bit = BitCodec()
    assert bit.encode(True) == (True,)
    assert bit.decode([False]) is False
    with pytest.raises(BusDataError, match="expected true or false, got int 1"):
        bit.encode(1)


def test_a_zero_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="scale must not be 0"):
        codec("int16", scale=0)
