"""satproto's CRC, frames and msgpack subset, byte for byte against the spec and msgpack-python."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.firmware import satproto

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
)


def nested(depth: int) -> st.SearchStrategy[Any]:
    """Values of the subset with containers nested at most *depth* deep."""
    if depth == 0:
        return scalars
    inner = nested(depth - 1)
    keys = st.one_of(st.text(max_size=8), st.integers(min_value=-(2**63), max_value=2**64 - 1))
    return st.one_of(
        scalars,
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=5),
    )


values = st.deferred(lambda: nested(3))


def test_crc_check_values_of_the_spec() -> None:
    assert satproto.crc16(b"123456789") == 0xDC07
    assert satproto.frame(b"hi") == bytes.fromhex("fa 02 68 69 a3 28")


def test_crc_continues_over_pieces() -> None:
    assert satproto.crc16(b"6789", satproto.crc16(b"12345")) == 0xDC07


def test_frame_length_takes_two_bytes_from_128() -> None:
    assert satproto.frame(b"x" * 127)[:2] == b"\xfa\x7f"
    assert satproto.frame(b"x" * 128)[:3] == b"\xfa\x80\x01"
    assert satproto.frame(b"x" * 4095)[:3] == b"\xfa\xff\x1f"


@pytest.mark.parametrize("size", [0, 4096])
def test_frame_refuses_empty_and_oversized_payloads(size: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.4095"):
        satproto.frame(b"x" * size)


@given(values)
def test_pack_is_msgpack_byte_for_byte(value: Any) -> None:
    assert satproto.pack(value) == msgpack.packb(value, use_bin_type=True)


@given(values)
def test_unpack_inverts_pack(value: Any) -> None:
    assert satproto.unpack(satproto.pack(value)) == value


@given(values)
def test_unpack_reads_what_msgpack_writes(value: Any) -> None:
    assert satproto.unpack(msgpack.packb(value, use_bin_type=True)) == value


@given(values, st.data())
def test_unpack_rejects_every_truncation(value: Any, data: st.DataObject) -> None:
    packed = satproto.pack(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(packed) - 1))
    with pytest.raises(satproto.ProtocolError):
        satproto.unpack(packed[:cut])


@given(values, st.binary(min_size=1, max_size=4))
def test_unpack_rejects_trailing_bytes(value: Any, tail: bytes) -> None:
    with pytest.raises(satproto.ProtocolError, match="after the value"):
        satproto.unpack(satproto.pack(value) + tail)


@given(st.floats(width=32, allow_nan=False))
def test_unpack_accepts_float32(value: float) -> None:
    assert satproto.unpack(msgpack.packb(value, use_single_float=True)) == value


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xd4\x01\x00", "type byte 0xd4"),  # fixext 1
        (b"\xc7\x01\x01\x00", "type byte 0xc7"),  # ext 8
        (b"\xc1", "type byte 0xc1"),  # never used
        (b"\x81\xc0\x01", "map key at offset 1 is a NoneType"),
        (b"\x82\x01\x01\x01\x02", "map key 1 at offset 3 repeats"),
        (b"\xa2\xff\xfe", "not UTF-8"),
        (b"\x91" * 9 + b"\xc0", "nested deeper than 8"),
    ],
)
def test_unpack_rejects_what_is_outside_the_subset(data: bytes, problem: str) -> None:
    with pytest.raises(satproto.ProtocolError, match=problem):
        satproto.unpack(data)


def test_eight_levels_of_nesting_pass() -> None:
    deep: Any = None
    for _ in range(8):
        deep = [deep]
    assert satproto.unpack(satproto.pack(deep)) == deep
    with pytest.raises(ValueError, match="nested deeper than 8"):
        satproto.pack([deep])


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1])
def test_pack_refuses_integers_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="integer"):
        satproto.pack(value)


def test_pack_refuses_other_types_and_keys() -> None:
    with pytest.raises(TypeError, match="cannot pack set"):
        satproto.pack({1})
    with pytest.raises(ValueError, match="keys are str or int"):
        satproto.pack({None: 1})
