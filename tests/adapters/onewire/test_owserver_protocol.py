"""The owserver protocol codec (moat_log.adapters.onewire.protocol): byte-exact, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.adapters.onewire.protocol import (
    Flag,
    Header,
    MessageType,
    OwProtocolError,
    Reply,
    ReplyReader,
    Request,
    RequestReader,
    encode_keepalive,
    encode_reply,
    encode_request,
    parse_directory,
)

# A read of /28.000028D70100/temperature with the flags OWNET and PERSISTENCE (0x104)
READ_TEMPERATURE = (
    bytes.fromhex("00000000 0000001d 00000002 00000104 00010000 00000000")
    + b"/28.000028D70100/temperature\x00"
)


def test_a_read_request_is_byte_exact() -> None:
    request = Request(
        MessageType.READ, "/28.000028D70100/temperature", flags=Flag.OWNET | Flag.PERSISTENCE
    )
    assert encode_request(request) == READ_TEMPERATURE


def test_a_write_carries_its_data_after_the_path_and_says_its_size() -> None:
    data = encode_request(Request(MessageType.WRITE, "/29.000029D60200/PIO.0", b"1"))
    header = Header.unpack(data[:24])
    assert (header.payload, header.kind, header.size) == (24, 3, 1)
    assert data[24:] == b"/29.000029D60200/PIO.0\x001"


def test_a_reply_is_cut_to_its_size_and_keepalives_are_skipped() -> None:
    reader = ReplyReader()
    padded = Header(0, 16, 12, Flag.PERSISTENCE, 12, 0).pack() + b"         4.1\x00\x00\x00\x00"
    wire = encode_keepalive() + padded
    for index in range(len(wire)):  # one byte at a time: nothing before the whole reply
        assert reader.next_reply() is None
        reader.receive_data(wire[index : index + 1])
    reply = reader.next_reply()
    assert reply == Reply(12, b"         4.1", Flag.PERSISTENCE)
    assert reply.persistent


def test_an_error_reply_has_a_negative_return_code() -> None:
    reader = ReplyReader()
    reader.receive_data(bytes.fromhex("00000000 00000000 fffffffe 00000000 00000000 00000000"))
    assert reader.next_reply() == Reply(-2)


@pytest.mark.parametrize(
    "header",
    [Header(1, 0, 0, 0, 0, 0), Header(0, 65537, 0, 0, 0, 0)],
    ids=["version 1", "payload over 64 KiB"],
)
def test_a_header_no_owserver_sends_breaks_the_reader_for_good(header: Header) -> None:
    reader = ReplyReader()
    reader.receive_data(header.pack())
    with pytest.raises(OwProtocolError, match="unexpected header"):
        reader.next_reply()
    reader.receive_data(encode_reply(Reply(0)))
    with pytest.raises(OwProtocolError):  # sticky: the connection must go
        reader.next_reply()


def test_a_directory_listing_is_split_at_commas() -> None:
    listing = b"/10.000010EF0000/,/28.000028D70100/,/bus.0/\x00"
    assert parse_directory(listing) == ["/10.000010EF0000/", "/28.000028D70100/", "/bus.0/"]
    assert parse_directory(b"") == []


def test_paths_that_owserver_cannot_take_are_refused() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        encode_request(Request(MessageType.READ, "/28.00/temp°"))
    with pytest.raises(ValueError, match="NUL"):
        encode_request(Request(MessageType.READ, "/a\x00b"))


words = st.integers(-(2**31), 2**31 - 1)


@given(st.builds(Header, words, words, words, words, words, words))
def test_header_round_trip(header: Header) -> None:
    packed = header.pack()
    assert len(packed) == 24
    assert Header.unpack(packed) == header


paths = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=200)


@given(
    st.sampled_from([MessageType.READ, MessageType.WRITE, MessageType.DIRALLSLASH]),
    paths,
    st.binary(max_size=300),
    st.integers(0, 2**20),
    st.integers(1, 50),
)
def test_request_round_trip_through_the_servers_reader(
    kind: MessageType, path: str, data: bytes, flags: int, chunk: int
) -> None:
    request = Request(kind, path, data if kind == MessageType.WRITE else b"", flags)
    wire = encode_request(request)
    reader = RequestReader()
    got = []
    for start in range(0, len(wire), chunk):
        reader.receive_data(wire[start : start + chunk])
        while (item := reader.next_request()) is not None:
            got.append(item)
    expected_size = len(request.data) if kind == MessageType.WRITE else request.size
    assert got == [Request(kind, path, request.data, flags, expected_size, 0)]


@given(
    st.lists(st.tuples(st.integers(-200, 200), st.binary(max_size=100), st.booleans()), max_size=5),
    st.integers(1, 40),
)
def test_replies_round_trip_in_any_chunks(
    replies: list[tuple[int, bytes, bool]], chunk: int
) -> None:
    sent = [Reply(ret, data, Flag.PERSISTENCE if keep else 0) for ret, data, keep in replies]
    wire = b"".join(encode_keepalive() + encode_reply(reply) for reply in sent)
    reader = ReplyReader()
    got = []
    for start in range(0, len(wire), chunk):
        reader.receive_data(wire[start : start + chunk])
        while (reply := reader.next_reply()) is not None:
            got.append(reply)
    assert got == sent
