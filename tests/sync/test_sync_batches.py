"""Batches: packed, compressed, and refused when anything about them is off."""

from __future__ import annotations

from pathlib import Path as FsPath

import msgpack
import pytest
import zstandard

from moat_log.event import MAX_EVENT_BYTES, Event, Op
from moat_log.idset import IdSet
from moat_log.journal.change import Change
from moat_log.path import Path
from moat_log.projections import open_journal
from moat_log.protocol import RemoteProtocolError
from moat_log.sync import MAX_BATCH_CONTENT, read_batch
from moat_log.sync.batches import BatchCodec, read_packed_batch
from moat_log.sync.messages import Batch

HLC = 1_763_712_000_000_000_000


def event(origin: str, seq: int, value: object = 1) -> Event:
    return Event(origin, seq, HLC + seq, {}, Path(("x", seq)), Op.SET, value)


EVENTS = [event("pi1", seq) for seq in range(1, 6)]
CONTENT = b"".join(e.pack() for e in EVENTS)


def zstd(data: bytes, *, write_content_size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=write_content_size).compress(data)


def unpack(batch: Batch) -> list[Event]:
    return BatchCodec().unpack(batch)


def test_a_batch_is_one_zstd_frame_of_the_packed_events() -> None:
    batch = BatchCodec().pack(9, EVENTS)
    assert (batch.id, batch.count, batch.size) == (9, 5, len(CONTENT))
    assert zstandard.ZstdDecompressor().decompress(batch.zstd) == CONTENT
    assert unpack(batch) == EVENTS


def test_events_too_large_for_one_batch_are_refused_when_packing() -> None:
    big = [event("pi1", seq, "x" * (MAX_EVENT_BYTES - 100)) for seq in (1, 2, 3)]
    with pytest.raises(ValueError, match="more than a batch holds"):
        BatchCodec().pack(1, big)


BAD_BATCHES: list[tuple[Batch, str]] = [
    (Batch(1, 6, len(CONTENT), zstd(CONTENT)), "holds 5 events, not the 6"),
    (Batch(1, 4, len(CONTENT), zstd(CONTENT)), "bytes after its 4 events"),
    (Batch(1, 5, len(CONTENT) - 1, zstd(CONTENT)), "declaring"),
    (Batch(1, 5, len(CONTENT), zstd(CONTENT, write_content_size=False)), "declaring no size"),
    (Batch(1, 5, len(CONTENT), b"not zstd at all"), "is not a zstd frame"),
    (Batch(1, 5, len(CONTENT), zstd(CONTENT) + zstd(b"x")), "does not decompress"),
    (Batch(1, 5, len(CONTENT), zstd(CONTENT)[:-3]), "does not decompress"),
    (Batch(1, 5, len(CONTENT) - 2, zstd(CONTENT[:-2])), "ends inside event 5"),
    (Batch(1, 1, 3, zstd(b"\xc1\xc1\xc1")), "is not msgpack"),
    (Batch(1, 1, 2, zstd(b"\x91\x02")), "format version"),
    (Batch(1, 1, 1, zstd(b"\x01")), "non-empty msgpack array"),
]


@pytest.mark.parametrize(("batch", "complaint"), BAD_BATCHES, ids=[c for _, c in BAD_BATCHES])
def test_a_bad_batch_is_a_remote_protocol_error(batch: Batch, complaint: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        unpack(batch)
    assert complaint in str(caught.value)


def test_a_frame_that_lies_about_its_size_does_not_decompress() -> None:
    frame = bytearray(zstd(b"a" * 300))
    assert frame[4:8] == bytes.fromhex("602c004d")  # single segment, content size 300 - 256
    frame[5] = 0x20  # now it claims 288 bytes (little-endian, minus 256)
    with pytest.raises(RemoteProtocolError, match="does not decompress"):
        unpack(Batch(1, 1, 288, bytes(frame)))


def test_a_zip_bomb_is_refused_before_it_is_decompressed() -> None:
    bomb = zstd(b"\x00" * (64 << 20))  # 64 MiB of zeros: a few kilobytes compressed
    assert len(bomb) < 10_000
    with pytest.raises(RemoteProtocolError, match="declaring 67108864"):
        unpack(Batch(1, 1, MAX_BATCH_CONTENT, bomb))
    unsized = zstd(b"\x00" * (64 << 20), write_content_size=False)
    with pytest.raises(RemoteProtocolError, match="declaring no size"):
        unpack(Batch(1, 1, MAX_BATCH_CONTENT, unsized))


def test_an_event_over_the_size_limit_is_refused() -> None:
    huge = msgpack.packb([1, "pi1", 1, HLC, {}, ["x"], 0, b"\x00" * MAX_EVENT_BYTES, "", None])
    with pytest.raises(RemoteProtocolError, match="larger than"):
        unpack(Batch(1, 1, len(huge), zstd(huge)))


def test_an_extension_type_is_not_part_of_an_event() -> None:
    data = msgpack.packb([1, "pi1", 1, HLC, {}, ["x"], 0, msgpack.ExtType(5, b"x"), "", None])
    with pytest.raises(RemoteProtocolError, match="is not msgpack"):
        unpack(Batch(1, 1, len(data), zstd(data)))


# --- reading a want's events ---------------------------------------------------------


class FakeJournal:
    """by_origin over a fixed set of events."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.reads: list[tuple[str, int, int]] = []

    def by_origin(self, origin: str, first: int, last: int) -> list[Event]:
        self.reads.append((origin, first, last))
        return [e for e in self.events if e.origin == origin and first <= e.seq <= last]


def test_read_batch_reads_in_request_order() -> None:
    journal = FakeJournal([event(o, s) for o in ("b", "a") for s in range(1, 10)])
    wanted = IdSet.parse("b:2-3 a:1,5-6")
    found = read_batch(wanted, journal.by_origin)
    assert [str(e.id) for e in found] == ["a:1", "a:5", "a:6", "b:2", "b:3"]
    assert journal.reads == [("a", 1, 1), ("a", 5, 6), ("b", 2, 3)]


def test_read_batch_stops_before_the_size_limit_but_reads_at_least_one() -> None:
    journal = FakeJournal([event("a", s, "v" * 1000) for s in range(1, 10)])
    size = len(journal.events[0].pack())
    wanted = IdSet.parse("a:1-9")
    assert len(read_batch(wanted, journal.by_origin, 3 * size)) == 3
    assert len(read_batch(wanted, journal.by_origin, 3 * size - 1)) == 2
    assert len(read_batch(wanted, journal.by_origin, 1)) == 1


def test_read_batch_stops_at_the_first_missing_event() -> None:
    journal = FakeJournal([event("a", s) for s in (1, 2, 4, 5)] + [event("b", 1)])
    assert [e.seq for e in read_batch(IdSet.parse("a:1-5 b:1"), journal.by_origin)] == [1, 2]
    assert read_batch(IdSet.parse("a:3-5"), journal.by_origin) == []
    assert [str(e.id) for e in read_batch(IdSet.parse("a:4-6 b:1"), journal.by_origin)] == [
        "a:4",
        "a:5",
    ]


def test_a_journal_serves_a_want_with_the_bytes_it_stored(tmp_path: FsPath) -> None:
    journal = open_journal(tmp_path / "pi1", create_node="pi1")
    try:
        journal.write_batch([Change(Path(("x", i)), "v" * i) for i in range(1, 40)])
        wanted = IdSet.parse("pi1:3-7,20-39")
        events, packed = read_packed_batch(wanted, journal.by_origin_packed, 600)
        assert events == read_batch(wanted, journal.by_origin, 600)
        assert 1 < len(events) < 25  # the size limit counts the stored bytes
        assert packed == [e.pack() for e in events]
        codec = BatchCodec()
        assert codec.unpack(codec.pack(7, events, packed)) == events
    finally:
        journal.close()


def test_a_batch_refuses_packed_forms_that_do_not_match_its_events() -> None:
    with pytest.raises(ValueError, match="5 events but 4 packed forms"):
        BatchCodec().pack(1, EVENTS, [e.pack() for e in EVENTS[:4]])
