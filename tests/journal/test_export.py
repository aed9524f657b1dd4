"""Export files: round trips, selections, and every way a file can be bad."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import struct
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path as FsPath
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moat_log.errors import ExportFormatError
from moat_log.event import Event, Op
from moat_log.ids import EventId
from moat_log.idset import IdSet
from moat_log.journal import export
from moat_log.journal.change import Change
from moat_log.journal.export import (
    MAGIC,
    ExportHeader,
    export_journal,
    import_file,
    iter_export,
    read_header,
    verify_export,
)
from moat_log.journal.store import Journal
from moat_log.path import Path
from moat_log.rangeset import RangeSet
from moat_log.vclock import VectorClock

DOCS = FsPath(__file__).parents[2] / "docs" / "export-format.md"


# ----------------------------------------------------------------- helpers


@pytest.fixture
def journals(tmp_path: FsPath) -> Iterator[Callable[[str], Journal]]:
    """Make journals in fresh data dirs under tmp_path; close them afterwards."""
    opened: list[Journal] = []

    def make(node: str) -> Journal:
        journal = Journal.create(tmp_path / f"data-{len(opened)}-{node}", node)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()


def foreign(origin: str, seq: int, hlc: int, value: Any = None) -> Event:
    return Event(
        origin,
        seq,
        hlc,
        VectorClock(),
        Path(("dev", origin, seq % 7)),
        Op.SET,
        seq if value is None else value,
        f"test:{origin}",
        None,
    )


def fill(journal: Journal) -> list[Event]:
    """Local changes of pi1 interleaved with pi2's events (with a gap); all stored."""
    items: list[Change | Event] = []
    for i in range(1, 41):
        items.append(Change(Path(("room", i % 5, "temp")), 20 + i / 10, at=1000 * i))
        if i not in (17, 18):
            items.append(foreign("pi2", i, 1000 * i + 500))
    events = []
    for item, result in zip(items, journal.write_batch(items), strict=True):
        if isinstance(result, Event):
            events.append(result)
        else:
            assert result is True and isinstance(item, Event), result
            events.append(item)
    return events


def raw_by_id(journal: Journal) -> dict[EventId, bytes]:
    return {Event.unpack(data).id: data for _pos, data in journal.scan_raw()}


def state(journal: Journal) -> tuple[Any, ...]:
    """Everything an import could change, minus sizes LMDB may round up."""
    stats = dataclasses.replace(journal.stats(), file_bytes=0, map_bytes=0)
    return stats, journal.summary(), raw_by_id(journal)


def split(data: bytes) -> tuple[dict[Any, Any], bytes]:
    """The unpacked header and the body of an export file's bytes."""
    (length,) = struct.unpack(">I", data[8:12])
    return msgpack.unpackb(data[12 : 12 + length]), data[12 + length :]


def assemble(header: Any, body: bytes) -> bytes:
    packed: bytes = msgpack.packb(header, use_bin_type=True)
    return MAGIC + struct.pack(">I", len(packed)) + packed + body


def craft(contents: list[bytes], frames: list[bytes] | None = None, **fields: Any) -> bytes:
    """An export file with these block contents, whose header fits them unless overridden.

    The header is computed from the contents as an honest writer would (ids
    from the events that unpack), so a test can make exactly one thing wrong.
    """
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=True)
    if frames is None:
        frames = [compressor.compress(c) for c in contents]
    body = b"".join(struct.pack(">I", len(f)) + f for f in frames)
    ranges: dict[str, RangeSet] = {}
    for content in contents:
        for origin, seq in ids_in(content):
            ranges.setdefault(origin, RangeSet()).add(seq)
    header = {
        "format": 1,
        "node": "crafter",
        "created": 1,
        "selection": {"since": None, "until": None, "origin": None},
        "ranges": {o: r.to_msgpack() for o, r in ranges.items()},
        "events": sum(r.count for r in ranges.values()),
        "raw_bytes": sum(map(len, contents)),
        "blocks": len(frames),
        "body_bytes": len(body),
        "sha256": hashlib.sha256(body).digest(),
    }
    header.update(fields)
    return assemble(header, body)


def ids_in(content: bytes) -> Iterator[tuple[str, int]]:
    """The ids of the well-formed events at the start of a block's content."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(content)
    try:
        for fields in unpacker:
            if type(fields) is list and len(fields) > 2 and type(fields[2]) is int:
                yield fields[1], fields[2]
    except ValueError:  # msgpack's errors on garbage
        return


def packed(*events: Event) -> bytes:
    return b"".join(e.pack() for e in events)


# ------------------------------------------------------------- round trips


def test_round_trip_between_nodes(journals: Callable[[str], Journal], tmp_path: FsPath) -> None:
    source = journals("pi1")
    fill(source)
    target = journals("pi7")
    before = time.time_ns()
    header = export_journal(source, tmp_path / "all.mlx")

    assert header.node == "pi1" and header.format == 1
    assert before <= header.created <= time.time_ns()
    assert header.selection == {"since": None, "until": None, "origin": None}
    assert header.ranges == source.summary() == IdSet.parse("pi1:1-40 pi2:1-16,19-40")
    assert header.events == 78 and header.blocks == 1
    data = (tmp_path / "all.mlx").read_bytes()
    assert data.startswith(MAGIC)
    stated, body = split(data)
    assert header.body_bytes == len(body)
    assert header.sha256 == hashlib.sha256(body).digest() == stated["sha256"]
    assert header.raw_bytes == sum(map(len, raw_by_id(source).values()))
    assert read_header(tmp_path / "all.mlx") == header == verify_export(tmp_path / "all.mlx")

    result = import_file(target, tmp_path / "all.mlx")
    assert (result.events, result.inserted, result.already_held) == (78, 78, 0)
    assert result.conflicts == [] and result.conflict_count == 0
    assert raw_by_id(target) == raw_by_id(source)
    assert target.summary() == source.summary()

    imported = state(target)
    again = import_file(target, str(tmp_path / "all.mlx"))
    assert (again.events, again.inserted, again.already_held) == (78, 0, 78)
    assert state(target) == imported


def test_blocks_and_progress(journals: Callable[[str], Journal], tmp_path: FsPath) -> None:
    source = journals("pi1")
    source.write_batch([foreign("pi2", seq, seq) for seq in range(1, 2501)])
    exported: list[int] = []
    header = export_journal(source, tmp_path / "x.mlx", progress=exported.append)
    assert header.blocks == 3 and header.events == 2500
    assert exported == [1000, 2000, 2500]
    imported: list[int] = []
    result = import_file(
        journals("pi3"), tmp_path / "x.mlx", progress=imported.append, batch_size=700
    )
    assert imported == [700, 1400, 2100, 2500]
    assert result.inserted == 2500
    assert [e.seq for e in iter_export(tmp_path / "x.mlx")] == list(range(1, 2501))


def test_block_closes_at_raw_byte_limit(
    journals: Callable[[str], Journal], tmp_path: FsPath
) -> None:
    source = journals("pi1")
    big = "x" * 10_000  # 26 events make a block of about 256 KiB
    source.write_batch([foreign("pi2", seq, seq, big) for seq in range(1, 61)])
    header = export_journal(source, tmp_path / "x.mlx")
    assert header.blocks == 3
    assert verify_export(tmp_path / "x.mlx") == header


def test_empty_export(journals: Callable[[str], Journal], tmp_path: FsPath) -> None:
    header = export_journal(journals("pi1"), tmp_path / "empty.mlx")
    assert (header.events, header.blocks, header.body_bytes, header.ranges) == (0, 0, 0, IdSet())
    assert header.sha256 == hashlib.sha256(b"").digest()
    assert verify_export(tmp_path / "empty.mlx") == header
    assert import_file(journals("pi2"), tmp_path / "empty.mlx").events == 0


def test_streams_stdout_and_stdin(
    journals: Callable[[str], Journal], tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = journals("pi1")
    fill(source)
    export_journal(source, tmp_path / "file.mlx")
    stdout = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(stdout))
    header = export_journal(source, "-")
    data = stdout.getvalue()
    assert split(data)[1] == split((tmp_path / "file.mlx").read_bytes())[1]

    stream = io.BytesIO()
    streamed = export_journal(source, stream)
    assert split(stream.getvalue())[1] == split(data)[1]
    stream.seek(0)
    assert verify_export(stream) == streamed
    assert dataclasses.replace(streamed, created=header.created) == header

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    target = journals("pi2")
    assert import_file(target, "-").inserted == header.events
    assert raw_by_id(target) == raw_by_id(source)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_failed_export_leaves_nothing_behind(
    journals: Callable[[str], Journal], tmp_path: FsPath
) -> None:
    source = journals("pi1")
    source.write_batch([foreign("pi2", seq, seq) for seq in range(1, 1500)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.mlx").write_bytes(b"previous export")

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_journal(source, out / "old.mlx", progress=interrupt)
    assert [p.name for p in out.iterdir()] == ["old.mlx"]
    assert (out / "old.mlx").read_bytes() == b"previous export"

    def fail(*args: object) -> None:
        raise OSError("disk on fire")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", fail)
        with pytest.raises(OSError, match="disk on fire"):
            export_journal(source, out / "old.mlx")
    assert [p.name for p in out.iterdir()] == ["old.mlx"]
    assert (out / "old.mlx").read_bytes() == b"previous export"

    export_journal(source, out / "old.mlx")
    assert [p.name for p in out.iterdir()] == ["old.mlx"]
    assert (out / "old.mlx").stat().st_mode & 0o777 == 0o600


def test_bad_arguments(journals: Callable[[str], Journal], tmp_path: FsPath) -> None:
    source = journals("pi1")
    for kwargs in ({"since": -1}, {"until": "5"}, {"since": 9, "until": 3}, {"origin": "no/de"}):
        with pytest.raises(ValueError):
            export_journal(source, tmp_path / "x.mlx", **kwargs)
    assert not list(tmp_path.glob("*.mlx"))
    with pytest.raises(ValueError, match="batch_size"):
        import_file(source, tmp_path / "x.mlx", batch_size=0)


# -------------------------------------------------------------- selections


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({"since": 10_000, "until": 20_000}, lambda e: 10_000 <= e.hlc <= 20_000),
        ({"since": 30_500}, lambda e: e.hlc >= 30_500),
        ({"until": 3_000}, lambda e: e.hlc <= 3_000),
        ({"origin": "pi2"}, lambda e: e.origin == "pi2"),
        ({"origin": "pi1"}, lambda e: e.origin == "pi1"),
        ({"origin": "pi9"}, lambda e: False),
        ({"origin": "pi2", "since": 15_000}, lambda e: e.origin == "pi2" and e.hlc >= 15_000),
        ({"since": 0, "until": 2**64 - 1}, lambda e: True),
    ],
)
def test_selection(
    journals: Callable[[str], Journal],
    tmp_path: FsPath,
    selection: dict[str, Any],
    expected: Callable[[Event], bool],
) -> None:
    source = journals("pi1")
    events = fill(source)
    header = export_journal(source, tmp_path / "sel.mlx", **selection)
    wanted = {e.id for e in events if expected(e)}
    assert {e.id for e in iter_export(tmp_path / "sel.mlx")} == wanted
    assert header.selection == {"since": None, "until": None, "origin": None} | selection
    assert set(header.ranges) == wanted and header.events == len(wanted)
    assert read_header(tmp_path / "sel.mlx") == header


# ------------------------------------------------------------ bad files


@pytest.fixture
def good_file(journals: Callable[[str], Journal], tmp_path: FsPath) -> FsPath:
    """An export of 2500 events in three blocks."""
    source = journals("pi1")
    source.write_batch([foreign("pi2", seq, seq) for seq in range(1, 2501)])
    export_journal(source, tmp_path / "good.mlx")
    return tmp_path / "good.mlx"


def block_offsets(data: bytes) -> list[int]:
    """Where each block (its length field) starts in an export file."""
    (length,) = struct.unpack(">I", data[8:12])
    offsets, pos = [], 12 + length
    while pos < len(data):
        offsets.append(pos)
        pos += 4 + struct.unpack(">I", data[pos : pos + 4])[0]
    return offsets


def header_with(data: bytes, **changes: Any) -> bytes:
    header, body = split(data)
    header.update(changes)
    return assemble({k: v for k, v in header.items() if v is not DROP}, body)


DROP = object()


def corruptions(data: bytes) -> Iterator[tuple[str, bytes, str]]:
    """(case, file bytes, expected message) for damage done to a good file."""
    hlen = struct.unpack(">I", data[8:12])[0]
    blocks = block_offsets(data)
    yield "empty", b"", "is empty, not a moat-log export"
    yield "garbage", b"garbage " * 50, "not a moat-log export (bad magic)"
    yield "in magic", data[:5], "truncated inside the magic number (5 of 8)"
    yield "in hlen", data[:10], "header is truncated (its length field has 2 of 4 bytes)"
    yield "in header", data[: 12 + hlen // 2], f"header is truncated ({hlen // 2} of {hlen} bytes)"
    body_bytes = len(data) - 12 - hlen
    for cut in (12 + hlen, blocks[1], blocks[1] + 2, blocks[2] + 100, len(data) - 1):
        yield f"cut at {cut}", data[:cut], f"truncated: body has {cut - 12 - hlen} of {body_bytes}"
    yield "trailing", data + b"\0", "1 bytes of unexpected data after the body"
    for pos in (blocks[0] + 50, blocks[1] + 1, len(data) - 1):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        yield f"flip at {pos}", bytes(flipped), "checksum mismatch: the body is corrupt"
    huge = data[:8] + struct.pack(">I", 2**31) + data[12:]
    yield "huge hlen", huge, "header length 2147483648 exceeds the limit"
    yield "hlen too long", data[:8] + struct.pack(">I", hlen + 1) + data[12:], "header has trailing"
    yield "hlen too short", data[:8] + struct.pack(">I", hlen - 1) + data[12:], "not valid msgpack"


def schema_violations(data: bytes) -> Iterator[tuple[str, bytes, str]]:
    field = "header field"
    yield (
        "version 2",
        header_with(data, format=2),
        "unsupported export format 2 (this moat-log reads 1)",
    )
    yield (
        "format str",
        header_with(data, format="1"),
        f"{field} 'format' must be a non-negative int, not str",
    )
    yield "no format", header_with(data, format=DROP), "header has no 'format' field"
    yield "no sha", header_with(data, sha256=DROP), "header has no 'sha256' field"
    yield (
        "events str",
        header_with(data, events="2500"),
        f"{field} 'events' must be a non-negative int",
    )
    yield (
        "events bool",
        header_with(data, events=True),
        f"{field} 'events' must be a non-negative int, not bool",
    )
    yield (
        "negative",
        header_with(data, blocks=-3),
        f"{field} 'blocks' must be a non-negative int, not int -3",
    )
    yield (
        "created float",
        header_with(data, created=1.5),
        f"{field} 'created' must be a non-negative int, not float",
    )
    yield (
        "sha short",
        header_with(data, sha256=b"x" * 31),
        f"{field} 'sha256' must be a 32-byte bin",
    )
    yield (
        "sha str",
        header_with(data, sha256="x" * 32),
        f"{field} 'sha256' must be a 32-byte bin, not str",
    )
    yield (
        "node",
        header_with(data, node="a b"),
        f"{field} 'node' must be a node name, not str 'a b'",
    )
    yield "node nil", header_with(data, node=None), f"{field} 'node' must be a node name, not nil"
    yield (
        "selection",
        header_with(data, selection=[]),
        f"{field} 'selection' must be a map, not array",
    )
    yield (
        "no since",
        header_with(data, selection={"until": None, "origin": None}),
        "no 'selection.since'",
    )
    yield (
        "since str",
        header_with(data, selection={"since": "1", "until": None, "origin": None}),
        f"{field} 'selection.since' must be nil or a non-negative int",
    )
    yield (
        "origin int",
        header_with(data, selection={"since": None, "until": None, "origin": 5}),
        f"{field} 'selection.origin' must be a node name, not int 5",
    )
    yield "ranges list", header_with(data, ranges=[1, 2500]), f"{field} 'ranges' must be a map"
    yield (
        "ranges key",
        header_with(data, ranges={7: [1, 2500]}),
        f"{field} 'ranges' has a key that is not a node name: int 7",
    )
    yield (
        "ranges odd",
        header_with(data, ranges={"pi2": [1, 2500, 7]}),
        "'ranges.pi2': packed range set must have an even number of items",
    )
    yield (
        "ranges not canonical",
        header_with(data, ranges={"pi2": [1, 1000, 1001, 2500]}),
        "'ranges.pi2': packed range set is not canonical",
    )
    yield (
        "ranges empty",
        header_with(data, ranges={"pi2": []}),
        "'ranges.pi2' must be a non-empty range list",
    )
    yield (
        "ranges vs events",
        header_with(data, ranges={"pi2": [1, 2499]}),
        "header says 2500 events but its ranges hold 2499 ids",
    )
    yield "not a map", assemble([1, 2], b""), "header is a msgpack array, not a map"
    yield "zip", _zip_bytes(), "bad magic; it looks like a zip archive"
    yield (
        "json",
        json.dumps({"format": 1, "events": []}).encode(),
        "bad magic; it looks like a JSON object",
    )


def _zip_bytes() -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("events.mlx", b"\x89MOATLG\n")
    return stream.getvalue()


def test_every_bad_file_is_refused_and_touches_nothing(
    journals: Callable[[str], Journal], good_file: FsPath, tmp_path: FsPath
) -> None:
    data = good_file.read_bytes()
    target = journals("pi3")
    target.write_batch(
        [foreign("pi2", seq, seq) for seq in range(1, 10)] + [Change(Path(("a",)), 1)]
    )
    before = state(target)
    cases = list(corruptions(data)) + list(schema_violations(data))
    assert len({case for case, _, _ in cases}) == len(cases)
    for case, content, message in cases:
        bad = tmp_path / f"bad-{case.replace(' ', '-')}.mlx"
        bad.write_bytes(content)
        for check in (verify_export, lambda f: import_file(target, f)):
            with pytest.raises(ExportFormatError) as info:
                check(bad)
            text = str(info.value)
            assert message in text, f"{case}: {text}"
            assert text.startswith(str(bad)), f"{case}: {text}"
            assert "\n" not in text
        assert state(target) == before, case


def test_header_errors_surface_in_read_header(good_file: FsPath, tmp_path: FsPath) -> None:
    bad = tmp_path / "v2.mlx"
    bad.write_bytes(header_with(good_file.read_bytes(), format=2))
    with pytest.raises(ExportFormatError, match=r"v2\.mlx: unsupported export format 2 \(this"):
        read_header(bad)
    # read_header reads only the front: a damaged body goes unnoticed until verify.
    damaged = bytearray(good_file.read_bytes())
    damaged[-10] ^= 1
    bad.write_bytes(damaged)
    assert read_header(bad).events == 2500
    with pytest.raises(ExportFormatError, match="checksum mismatch"):
        verify_export(bad)


def test_unknown_header_fields_are_ignored(good_file: FsPath, tmp_path: FsPath) -> None:
    data = good_file.read_bytes()
    header, body = split(data)
    header["comment"] = "from the future"
    header[7] = [1, 2, 3]
    header["selection"]["tz"] = "UTC"
    (tmp_path / "newer.mlx").write_bytes(assemble(header, body))
    assert verify_export(tmp_path / "newer.mlx") == verify_export(good_file)


E1, E2, E3 = (foreign("pi2", seq, 100 + seq) for seq in (1, 2, 3))


def frame(
    content: bytes, *, write_checksum: bool = False, write_content_size: bool = True
) -> bytes:
    compressor = zstandard.ZstdCompressor(
        write_checksum=write_checksum, write_content_size=write_content_size
    )
    return compressor.compress(content)


def wrong_bodies() -> Iterator[tuple[str, bytes, str]]:
    """(case, file, message) for files whose checksum fits a body a writer never makes."""
    invalid = "event 2 in block 1 is invalid"
    yield (
        "count",
        craft([packed(E1, E2)], events=3, ranges={"pi2": [1, 3]}),
        "header says 3 events, body holds 2",
    )
    yield "blocks", craft([packed(E1), packed(E2)], blocks=1), "header says 1 blocks, body holds 2"
    yield "raw", craft([packed(E1, E2)], raw_bytes=5), "header says 5 raw bytes, body holds"
    yield (
        "not listed",
        craft([packed(E1, E2)], ranges={"pi2": [1, 1, 3, 3]}),
        f"{invalid}: its id pi2:2 is not in the header's ranges",
    )
    yield (
        "twice",
        craft([packed(E1, E2), packed(E3, E2)], events=4, ranges={"pi2": [1, 4]}),
        "event 2 in block 2 is invalid: its id pi2:2 occurs twice",
    )
    bad_op = msgpack.packb([1, "pi2", 3, 103, {}, ["x"], 7, 1, "", None])
    yield (
        "bad op",
        craft([packed(E1), packed(E2) + bad_op]),
        "event 2 in block 2 is invalid: invalid op 7",
    )
    # Shaped like a canonical event (a fixarray of ten), typed wrong: the fast
    # decoder hands it to the reference, which names the field.
    bool_seq = msgpack.packb([1, "pi2", True, 102, {}, ["x"], 0, 1, "", None])
    yield "bool seq", craft([packed(E1) + bool_seq]), f"{invalid}: invalid seq True"
    eleven = msgpack.packb([1, "pi2", 2, 102, {}, ["x"], 0, 1, "", None, 0])
    yield "eleven fields", craft([packed(E1) + eleven]), f"{invalid}: a version-1 event has 10"
    yield (
        "version",
        craft([packed(E1) + msgpack.packb([2, "pi2", 2])]),
        f"{invalid}: unsupported event format version 2",
    )
    yield (
        "not array",
        craft([packed(E1) + msgpack.packb({"a": 1})]),
        f"{invalid}: a packed event must be a non-empty msgpack array",
    )
    yield (
        "cut event",
        craft([packed(E1) + packed(E2)[:-3]]),
        f"{invalid}: cut off at the end of the block",
    )
    yield "garbage", craft([packed(E1) + b"\xc1\xc1"]), f"{invalid}: not msgpack"
    yield "empty block", craft([b""]), "block 1 is empty"
    yield "not zstd", craft([packed(E1)], frames=[b"not zstd"]), "block 1 does not decompress"
    lacks = "block 1: zstd frame lacks its checksum or content size"
    unsized = frame(packed(E1), write_checksum=True, write_content_size=False)
    yield "no size", craft([packed(E1)], frames=[unsized]), lacks
    yield "no checksum", craft([packed(E1)], frames=[frame(packed(E1))]), lacks
    two = frame(packed(E1), write_checksum=True) * 2
    yield "two frames", craft([packed(E1, E1)], frames=[two]), "block 1 does not decompress"
    yield "zero length", craft([], frames=[b""]), "block 1: length 0 does not fit in the body"


@pytest.mark.parametrize(("case", "content", "message"), list(wrong_bodies()))
def test_consistent_but_wrong_bodies(
    journals: Callable[[str], Journal], tmp_path: FsPath, case: str, content: bytes, message: str
) -> None:
    """Bodies whose checksum is right but whose content is not what a writer makes."""
    target = journals("pi3")
    before = state(target)
    (tmp_path / "bad.mlx").write_bytes(content)
    with pytest.raises(ExportFormatError) as info:
        import_file(target, tmp_path / "bad.mlx")
    assert message in str(info.value), f"{case}: {info.value}"
    assert state(target) == before


def test_oversized_blocks_are_refused(tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch) -> None:
    content = packed(foreign("pi2", 1, 1, "x" * 1000))  # compresses to a few dozen bytes
    (tmp_path / "big.mlx").write_bytes(craft([content]))
    monkeypatch.setattr(export, "MAX_BLOCK_BYTES", 500)
    with pytest.raises(ExportFormatError, match=r"block 1: content of \d+ bytes exceeds the limit"):
        verify_export(tmp_path / "big.mlx")
    monkeypatch.setattr(export, "MAX_BLOCK_BYTES", 10)
    with pytest.raises(ExportFormatError, match=r"block 1: length \d+ does not fit in the body"):
        verify_export(tmp_path / "big.mlx")


def test_iter_export_checks_as_it_goes(good_file: FsPath, tmp_path: FsPath) -> None:
    data = bytearray(good_file.read_bytes())
    data[block_offsets(bytes(data))[2] + 20] ^= 0x01
    (tmp_path / "bad.mlx").write_bytes(data)
    seen: list[int] = []
    with pytest.raises(ExportFormatError, match="checksum mismatch"):
        seen.extend(e.seq for e in iter_export(tmp_path / "bad.mlx"))
    assert seen == list(range(1, 2001))  # the first two blocks were sound


# --------------------------------------------------------------- conflicts


def test_conflicting_events_are_reported(
    journals: Callable[[str], Journal], good_file: FsPath
) -> None:
    target = journals("pi3")
    clashing = [foreign("pi2", seq, seq, "other") for seq in range(5, 156)]
    target.write_batch(clashing)
    result = import_file(target, good_file)
    assert (result.events, result.inserted, result.already_held) == (2500, 2349, 0)
    assert result.conflict_count == 151
    assert len(result.conflicts) == 100
    assert result.conflicts[0][0] == EventId("pi2", 5)
    assert "differs from the stored event" in result.conflicts[0][1]
    assert raw_by_id(target)[EventId("pi2", 5)] == clashing[0].pack()
    assert target.summary() == IdSet.parse("pi2:1-2500")


# -------------------------------------------------------------- hypothesis

names = st.sampled_from(["pi2", "pi3", "box-4"])
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
segments = st.text(max_size=6) | st.integers(-(2**63), 2**63 - 1)


@st.composite
def event_sets(draw: st.DrawFn) -> list[Event]:
    events = []
    for index, origin in enumerate(draw(st.sets(names, max_size=3))):
        for seq in sorted(draw(st.sets(st.integers(1, 40), min_size=1, max_size=12))):
            op = draw(st.sampled_from(Op))
            events.append(
                Event(
                    origin,
                    seq,
                    draw(st.integers(0, 2**40)) * 64 + seq * 3 + index,
                    VectorClock(draw(st.dictionaries(names, st.integers(0, 50))) | {origin: 0}),
                    Path(draw(st.lists(segments, max_size=4))),
                    op,
                    None if op is Op.DELETE else draw(values),
                    draw(st.text(max_size=10)),
                    draw(st.none() | st.builds(EventId, names, st.integers(1, 99))),
                )
            )
    return events


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=event_sets(),
    since=st.none() | st.integers(0, 2**46),
    until=st.none() | st.integers(0, 2**46),
    origin=st.none() | names,
)
def test_round_trip_property(
    events: list[Event], since: int | None, until: int | None, origin: str | None
) -> None:
    if since is not None and until is not None and since > until:
        since, until = until, since
    with tempfile.TemporaryDirectory() as scratch:
        with Journal.create(FsPath(scratch) / "a", "src") as source:
            # Drop the rare events whose hlc repeats within an origin.
            distinct = list({(e.origin, e.hlc): e for e in events}.values())
            assert all(r is True for r in source.write_batch(distinct))
            header = export_journal(
                source, FsPath(scratch) / "x.mlx", since=since, until=until, origin=origin
            )
        wanted = {
            e.id: e.pack()
            for e in distinct
            if (since is None or e.hlc >= since)
            and (until is None or e.hlc <= until)
            and origin in (None, e.origin)
        }
        assert header.events == len(wanted)
        with Journal.create(FsPath(scratch) / "b", "dst") as target:
            result = import_file(target, FsPath(scratch) / "x.mlx")
            assert result.inserted == len(wanted)
            assert raw_by_id(target) == wanted
            assert target.summary() == header.ranges


# ----------------------------------------------------------- bounded memory


@pytest.mark.slow
def test_export_and_import_run_in_bounded_memory(
    journals: Callable[[str], Journal], tmp_path: FsPath
) -> None:
    """100k events (~11 MB packed, ~150 MB as objects) pass through a few MB.

    The export peak is about 2 MB whatever the number of events; the import
    peak is one transaction's batch (IMPORT_BATCH events, about 20 MB).
    Holding all the events (about 150 MB) would exceed either limit.
    tracemalloc sees Python's allocations, not LMDB's map or zstd's buffers.
    """
    total, limit, import_limit = 100_000, 4 << 20, 32 << 20
    source = journals("pi1")
    for start in range(1, total, 20_000):
        source.write_batch([bus_event(seq) for seq in range(start, start + 20_000)])
    target = journals("pi3")
    tracemalloc.start()
    try:
        header = export_journal(source, tmp_path / "big.mlx")
        _, export_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = import_file(target, tmp_path / "big.mlx")
        _, import_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header.events == result.inserted == total
    assert header.raw_bytes > 2 * limit
    assert export_peak < limit, f"export peak {export_peak} bytes"
    assert import_peak < import_limit, f"import peak {import_peak} bytes"


def bus_event(seq: int) -> Event:
    path = Path(("home", "floor1", f"room{seq % 13}", f"sensor{seq % 97}", "temperature"))
    source = "onewire:28.4AEC29CDBAAB/temperature"
    return Event(
        "pi2", seq, 10 * seq, VectorClock({"pi1": seq // 3}), path, Op.SET, seq / 7, source, None
    )


# ------------------------------------------------------------------- docs


def test_example_in_the_docs_is_a_valid_export(tmp_path: FsPath) -> None:
    """The hex dump in docs/export-format.md is a real export of one event."""
    text = DOCS.read_text()
    dump = re.search(r"<!-- example:begin -->\n```\n(.*?)```", text, re.DOTALL)
    assert dump is not None
    data = bytes.fromhex(
        "".join(line.split("  ")[0].split(":", 1)[1] for line in dump[1].splitlines())
    )
    (tmp_path / "example.mlx").write_bytes(data)
    header = verify_export(tmp_path / "example.mlx")
    assert isinstance(header, ExportHeader)
    assert (header.node, header.events, header.blocks) == ("pi1", 1, 1)
    (event,) = iter_export(tmp_path / "example.mlx")
    path = Path(("home", "kitchen", "light"))
    assert event == Event(
        "pi1", 1, 1700000000000000000, VectorClock(), path, Op.SET, True, "knx:1/2/3", None
    )
