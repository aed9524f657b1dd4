"""Frames: a 4-byte big-endian length, then one msgpack value."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.protocol import (
    NEED_DATA,
    FrameDecoder,
    FrameTooLargeError,
    RemoteProtocolError,
    encode_frame,
)
from moat_log.protocol.framing import frame_bytes

# (value, frame bytes) — checked by hand against the msgpack specification.
FRAMES = [
    ({}, "00000001 80"),
    ({"id": 1}, "00000005 81 a26964 01"),
    ({"id": None}, "00000005 81 a26964 c0"),
    ({"id": 300}, "00000007 81 a26964 cd012c"),
    ({"id": 2**32}, "0000000d 81 a26964 cf0000000100000000"),
    ({"v": -1}, "00000004 81 a176 ff"),
    ({"v": 21.5}, "0000000c 81 a176 cb4035800000000000"),
    ({"v": b"\x00\xff"}, "00000007 81 a176 c40200ff"),
    ({"v": "ü"}, "00000006 81 a176 a2c3bc"),
    ({"v": [True, False]}, "00000006 81 a176 92c3c2"),
    ({"cancel": True, "id": 7}, "0000000d 82 a663616e63656c c3 a26964 07"),
]


@pytest.mark.parametrize(("value", "hex_frame"), FRAMES)
def test_frame_bytes_are_exact(value: object, hex_frame: str) -> None:
    frame = bytes.fromhex(hex_frame)
    assert encode_frame(value) == frame
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    assert decoder.next_frame() == value
    assert decoder.next_frame() is NEED_DATA


def test_a_frame_arrives_byte_by_byte() -> None:
    frame = encode_frame({"id": 1, "op": "status"})
    decoder = FrameDecoder()
    for byte in frame[:-1]:
        decoder.receive_data(bytes([byte]))
        assert decoder.next_frame() is NEED_DATA
    decoder.receive_data(frame[-1:])
    assert decoder.next_frame() == {"id": 1, "op": "status"}
    assert decoder.buffered == 0


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers(0, 10**6), max_size=3)), st.data())
def test_frames_split_anywhere_decode_in_order(
    values: list[dict[str, int]], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(value) for value in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoder.receive_data(stream[start:end])
        while (frame := decoder.next_frame()) is not NEED_DATA:
            decoded.append(frame)
    assert decoded == values


def test_an_oversized_frame_is_refused_from_its_length_alone() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    decoder.receive_data((101).to_bytes(4, "big"))  # no body at all yet
    with pytest.raises(RemoteProtocolError, match="101 bytes, more than the limit of 100"):
        decoder.next_frame()


def test_a_frame_at_the_limit_is_accepted() -> None:
    body = msgpack.packb("x" * 95)
    assert len(body) == 97
    decoder = FrameDecoder(max_frame_size=97)
    decoder.receive_data(frame_bytes(body))
    assert decoder.next_frame() == "x" * 95


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty frame"),
        (b"\x01\x02", "ExtraData"),
        (b"\x92\x01", "not one valid msgpack value"),
        (b"\xa1\xff", "UnicodeDecodeError"),
        (b"\xc1", "not one valid msgpack value"),
        (b"\xd6\x05\x00\x00\x00\x01", "extension type 5"),
        (b"\x81\x91\x01\x01", "unhashable"),
        (b"\x91" * 5000 + b"\xc0", "not one valid msgpack value"),
        (b"\xdd\xff\xff\xff\xff", "not one valid msgpack value"),
    ],
)
def test_garbage_bodies_are_remote_protocol_errors(body: bytes, problem: str) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(len(body).to_bytes(4, "big") + body)
    with pytest.raises(RemoteProtocolError, match=problem):
        decoder.next_frame()


def test_encoding_refuses_what_does_not_fit_or_cannot_be_packed() -> None:
    with pytest.raises(FrameTooLargeError, match="frame limit of 10"):
        encode_frame("x" * 20, max_size=10)
    with pytest.raises(ValueError, match="cannot pack"):
        encode_frame({"v": object()})
    with pytest.raises(ValueError, match="cannot pack"):
        encode_frame("\ud800")  # a lone surrogate is not UTF-8


def test_the_decoder_limit_must_fit_the_length_field() -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(max_frame_size=2**32)
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(max_frame_size=0)
