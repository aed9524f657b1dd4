"""Export files: a selection of events in one file, to move, back up or archive.

Theory of operation
-------------------
The format is specified byte by byte in docs/export-format.md::

    magic (8 bytes) | hlen (u32 BE) | header (msgpack map) | body

The body is a sequence of blocks, each a u32 BE length and one zstd frame
whose content is a run of packed events.  The header comes first, so a tool
learns what a file holds (ids, counts, checksum) without reading the body;
but those facts are known only once the body is written.  The writer
therefore streams the body into an anonymous temporary file, then writes
magic, header and a copy of the body into a second temporary file next to
the destination and renames it into place: a reader never sees a half-written
export, and neither the writer nor the reader ever holds more than one block
of events.

Reading trusts nothing: `read_header` checks the magic and the type of every
header field, and `iter_export` checks each block (length, zstd frame, content
size), each event (`decode_event`, its id listed in the header's ranges,
no id twice) and, at the end, the totals and the SHA-256 of the body against
the header.  `verify_export` is that same pass without keeping the events, and
`import_file` runs it before writing anything, so a corrupt, truncated or
foreign file leaves the journal untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import IO, Any, BinaryIO

import msgpack
import zstandard

from moat_log.errors import ExportFormatError, InvalidEventError, InvalidInputError, MoatLogError
from moat_log.event import MAX_EVENT_BYTES, Event
from moat_log.event_decoder import decode_event
from moat_log.ids import MAX_U64, NODE_NAME_RE, EventId, check_node_name
from moat_log.idset import IdSet, IdSetBuilder
from moat_log.rangeset import RangeSet

from .store import Journal

__all__ = [
    "FORMAT",
    "MAGIC",
    "ExportHeader",
    "ImportResult",
    "export_journal",
    "import_file",
    "iter_export",
    "read_header",
    "verify_export",
]

MAGIC = b"\x89MOATLG\n"
#: The export format this module writes and reads.
FORMAT = 1
#: zstd level of the blocks.  Measured on bus-like events (~78 bytes packed):
#: level 3 gives 0.29 of the raw size at ~2M events/s; level 9 gives 0.26 at a
#: seventh of the speed; a trained dictionary gains nothing on 1000-event blocks.
ZSTD_LEVEL = 3
#: A block is closed after this many events or raw bytes, whichever comes first.
BLOCK_EVENTS = 1000
BLOCK_RAW_BYTES = 256 << 10
#: Limits a reader enforces, so a hostile file cannot make it allocate much.
MAX_HEADER_BYTES = 16 << 20
MAX_BLOCK_BYTES = 64 << 20
#: Conflict messages kept in an `ImportResult` (all are counted).
MAX_CONFLICT_MESSAGES = 100
#: Events per import transaction: the commit dominates small transactions
#: (docs/decisions.md, "Bulk writes use large transactions").
IMPORT_BATCH = 10_000

_U32 = struct.Struct(">I")
_READ_CHUNK = 1 << 20

#: A file to read: a path, ``"-"`` for standard input, or a seekable binary file.
Source = str | os.PathLike[str] | BinaryIO
#: Where to write: a path, ``"-"`` for standard output, or a binary file.
Destination = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True)
class ExportHeader:
    """What an export file holds, as stated by its header."""

    format: int
    node: str  # the exporting node
    created: int  # ns since the epoch
    selection: dict[str, Any]  # {"since": int|None, "until": int|None, "origin": str|None}
    ranges: IdSet  # exactly the ids contained
    events: int
    raw_bytes: int  # total size of the packed events
    blocks: int
    body_bytes: int
    sha256: bytes  # of the whole body

    def to_msgpack(self) -> dict[str, Any]:
        """The header's wire form: a msgpack map with the documented keys."""
        return {
            "format": self.format,
            "node": self.node,
            "created": self.created,
            "selection": dict(self.selection),
            "ranges": self.ranges.to_wire(),
            "events": self.events,
            "raw_bytes": self.raw_bytes,
            "blocks": self.blocks,
            "body_bytes": self.body_bytes,
            "sha256": self.sha256,
        }


@dataclass
class ImportResult:
    """What `import_file` did with the events of a file.

    ``conflicts`` lists the first `MAX_CONFLICT_MESSAGES` events the journal
    refused, with its reason (in practice: a different event is stored under
    the same id, or the event reuses another event's hlc); ``conflict_count``
    counts all of them.
    """

    events: int = 0
    inserted: int = 0
    already_held: int = 0
    conflict_count: int = 0
    conflicts: list[tuple[EventId, str]] = field(default_factory=list)


# ---------------------------------------------------------------------- writing


def export_journal(
    journal: Journal,
    destination: Destination,
    *,
    since: int | None = None,
    until: int | None = None,
    origin: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportHeader:
    """Write the selected events of *journal* to an export file; return its header.

    *since* and *until* are inclusive hlc bounds, *origin* keeps one origin's
    events; without any of them the whole journal is exported in arrival
    order.  *destination* is a path (written atomically: a temporary file in
    the same directory renamed into place, mode 0600), ``"-"`` for standard
    output, or a binary file.  *progress* is called after each block with the
    number of events written so far.
    """
    selection = _selection(since, until, origin)
    spool_dir = _spool_dir(destination)
    with tempfile.TemporaryFile(dir=spool_dir) as body:
        writer = _BodyWriter(body, progress)
        for event_origin, seq, data in _selected(journal, selection):
            writer.add(event_origin, seq, data)
        writer.close()
        header = writer.header(journal.node, time.time_ns(), selection)
        prefix = _encode_prefix(header)
        body.seek(0)
        _publish(destination, prefix, body)
    return header


def _selection(since: int | None, until: int | None, origin: str | None) -> dict[str, Any]:
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and (type(bound) is not int or not 0 <= bound <= MAX_U64):
            raise InvalidInputError(f"{name} must be an hlc (int 0 .. 2**64-1), not {bound!r}")
    if since is not None and until is not None and since > until:
        raise InvalidInputError(f"since ({since}) is after until ({until}): nothing to export")
    if origin is not None:
        check_node_name(origin)
    return {"since": since, "until": until, "origin": origin}


def _selected(journal: Journal, selection: dict[str, Any]) -> Iterator[tuple[str, int, bytes]]:
    """``(origin, seq, packed event)`` of the selected events."""
    since, until, origin = selection["since"], selection["until"], selection["origin"]
    if since is None and until is None:
        if origin is not None:
            return ((e.origin, e.seq, e.pack()) for e in journal.by_origin(origin))
        # The fast path: packed events as stored, read in arrival order.
        return ((*_origin_seq(data), bytes(data)) for _pos, data in journal.scan_raw())
    if until == MAX_U64:
        until = None  # by_time's exclusive bound would overflow 64 bits
    events = journal.by_time(since, until)
    return ((e.origin, e.seq, e.pack()) for e in events if origin in (None, e.origin))


_UINT_WIDTH = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def _origin_seq(data: bytes) -> tuple[str, int]:
    """The origin and seq of a stored event.

    Stored events are packed canonically by `Event.pack`, so the id is read
    straight from the first bytes, three times faster than unpacking the
    event; any other layout falls back to a full unpack.
    """
    parsed = _canonical_origin_seq(data)
    if parsed is None:
        event = Event.unpack(bytes(data))
        return event.origin, event.seq
    return parsed


def _canonical_origin_seq(data: bytes) -> tuple[str, int] | None:
    """Read ``fixarray(10), 1, origin (fixstr or str8), seq (uint)``, or None."""
    if len(data) < 4 or data[0] != 0x9A or data[1] != 0x01:
        return None
    tag = data[2]
    if 0xA0 <= tag <= 0xBF:
        start, end = 3, 3 + tag - 0xA0
    elif tag == 0xD9:
        start, end = 4, 4 + data[3]
    else:
        return None
    if end >= len(data):
        return None
    tag = data[end]
    if tag < 0x80:
        return data[start:end].decode(), tag
    width = _UINT_WIDTH.get(tag)
    if width is None:
        return None
    return data[start:end].decode(), int.from_bytes(data[end + 1 : end + 1 + width])


class _BodyWriter:
    """Packs events into compressed blocks and tallies what the header states."""

    def __init__(self, out: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._out = out
        self._progress = progress
        self._compressor = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, write_checksum=True, write_content_size=True
        )
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._sha = hashlib.sha256()
        self.ranges = IdSetBuilder()
        self.events = self.raw_bytes = self.blocks = self.body_bytes = 0

    def add(self, origin: str, seq: int, data: bytes) -> None:
        self.ranges.add(origin, seq)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if len(self._pending) >= BLOCK_EVENTS or self._pending_bytes >= BLOCK_RAW_BYTES:
            self._flush()

    def close(self) -> None:
        if self._pending:
            self._flush()
        self._out.flush()

    def _flush(self) -> None:
        frame = self._compressor.compress(b"".join(self._pending))
        for chunk in (_U32.pack(len(frame)), frame):
            self._out.write(chunk)
            self._sha.update(chunk)
        self.events += len(self._pending)
        self.raw_bytes += self._pending_bytes
        self.blocks += 1
        self.body_bytes += 4 + len(frame)
        self._pending = []
        self._pending_bytes = 0
        if self._progress is not None:
            self._progress(self.events)

    def header(self, node: str, created: int, selection: dict[str, Any]) -> ExportHeader:
        return ExportHeader(
            format=FORMAT,
            node=node,
            created=created,
            selection=selection,
            ranges=self.ranges.build(),
            events=self.events,
            raw_bytes=self.raw_bytes,
            blocks=self.blocks,
            body_bytes=self.body_bytes,
            sha256=self._sha.digest(),
        )


def _encode_prefix(header: ExportHeader) -> bytes:
    """Magic, header length and header: everything in front of the body."""
    data: bytes = msgpack.packb(header.to_msgpack(), use_bin_type=True)
    if len(data) > MAX_HEADER_BYTES:
        raise ExportFormatError(
            f"the export's header would be {len(data)} bytes, more than the limit of "
            f"{MAX_HEADER_BYTES} (its id ranges are too fragmented); export smaller selections"
        )
    return MAGIC + _U32.pack(len(data)) + data


def _spool_dir(destination: Destination) -> str | None:
    """Where the body is spooled: next to a destination file, else the temp dir."""
    if isinstance(destination, str | os.PathLike) and os.fspath(destination) != "-":
        return os.fspath(FsPath(os.fspath(destination)).absolute().parent)
    return None


def _publish(destination: Destination, prefix: bytes, body: IO[bytes]) -> None:
    if not isinstance(destination, str | os.PathLike):
        _write_stream(destination, prefix, body)
    elif os.fspath(destination) == "-":
        _write_stream(sys.stdout.buffer, prefix, body)
    else:
        _write_file_atomically(FsPath(os.fspath(destination)), prefix, body)


def _write_stream(out: IO[bytes], prefix: bytes, body: IO[bytes]) -> None:
    out.write(prefix)
    shutil.copyfileobj(body, out, _READ_CHUNK)
    out.flush()


def _write_file_atomically(path: FsPath, prefix: bytes, body: IO[bytes]) -> None:
    """Write to a temporary file beside *path*, fsync it and rename it into place."""
    directory = path.absolute().parent
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            _write_stream(out, prefix, body)
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: FsPath) -> None:
    """Make the rename durable (where the platform can open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- reading


def read_header(source: Source) -> ExportHeader:
    """Read and validate the header of an export file (the body is not read).

    Raises `ExportFormatError` if the file is not an export, is truncated in
    its header, has an unsupported format version or a malformed header.
    """
    with _opened(source) as (stream, name):
        return _read_prefix(stream, name)


def verify_export(source: Source) -> ExportHeader:
    """Check an export file completely; return its header.

    Checks the body length and SHA-256, that every block decompresses and
    every event is valid, and that the events are exactly those the header
    states (count, raw size, ranges).  Memory stays bounded by one block.
    Raises `ExportFormatError` naming the first problem found.
    """
    with _opened(source) as (stream, name):
        return _verify(stream, name)


def iter_export(source: Source) -> Iterator[Event]:
    """Yield the events of an export file in file order, checking as it goes.

    Each block and event is checked before it is yielded; the totals and the
    checksum are checked after the last event, so a corrupt file may yield
    events before `ExportFormatError` is raised.  Call `verify_export` first
    to know the whole file is sound before acting on any event.
    """
    with _opened(source) as (stream, name):
        header = _read_prefix(stream, name)
        yield from _BodyReader(stream, name, header).events()


def _verify(stream: IO[bytes], name: str) -> ExportHeader:
    header = _read_prefix(stream, name)
    for _event in _BodyReader(stream, name, header).events():
        pass
    return header


@contextmanager
def _opened(source: Source) -> Iterator[tuple[IO[bytes], str]]:
    """The source as a seekable binary stream, and its name for messages."""
    if not isinstance(source, str | os.PathLike):
        yield source, str(getattr(source, "name", "<stream>"))
    elif os.fspath(source) == "-":
        # Standard input may be a pipe: spool it, since import reads twice.
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool, _READ_CHUNK)
            spool.seek(0)
            yield spool, "<stdin>"
    else:
        with open(source, "rb") as stream:
            yield stream, os.fsdecode(source)


def _read_prefix(stream: IO[bytes], name: str) -> ExportHeader:
    """Read magic, header length and header; leave *stream* at the body."""
    _check_magic(stream.read(len(MAGIC)), name)
    length_field = stream.read(4)
    if len(length_field) < 4:
        raise ExportFormatError(
            f"{name}: header is truncated (its length field has {len(length_field)} of 4 bytes)"
        )
    (length,) = _U32.unpack(length_field)
    if length > MAX_HEADER_BYTES:
        raise ExportFormatError(
            f"{name}: header length {length} exceeds the limit of {MAX_HEADER_BYTES} bytes; "
            "the file is corrupt"
        )
    data = stream.read(length)
    if len(data) < length:
        raise ExportFormatError(f"{name}: header is truncated ({len(data)} of {length} bytes)")
    return _parse_header(data, name)


_FOREIGN_MAGICS = {
    b"PK\x03\x04": "a zip archive",
    b"\x1f\x8b": "a gzip file",
    b"\x28\xb5\x2f\xfd": "a zstd file",
    b"{": "a JSON object",
    b"[": "a JSON array",
    b"\x89PNG": "a PNG image",
}


def _check_magic(magic: bytes, name: str) -> None:
    if magic == MAGIC:
        return
    if not magic:
        raise ExportFormatError(f"{name} is empty, not a moat-log export")
    if MAGIC.startswith(magic):
        raise ExportFormatError(f"{name}: truncated inside the magic number ({len(magic)} of 8)")
    hint = next(
        (f"; it looks like {k}" for m, k in _FOREIGN_MAGICS.items() if magic.startswith(m)), ""
    )
    raise ExportFormatError(f"{name} is not a moat-log export (bad magic{hint})")


def _parse_header(data: bytes, name: str) -> ExportHeader:
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except msgpack.ExtraData as exc:
        raise ExportFormatError(f"{name}: header has trailing bytes after its map") from exc
    except Exception as exc:  # msgpack raises many unrelated types on garbage
        raise ExportFormatError(f"{name}: header is not valid msgpack: {exc}") from exc
    if type(fields) is not dict:
        raise ExportFormatError(f"{name}: header is a msgpack {_kind(fields)}, not a map")
    return _HeaderFields(fields, name).header()


class _HeaderFields:
    """Validates the fields of an unpacked header, each with a one-line message."""

    def __init__(self, fields: dict[Any, Any], name: str) -> None:
        self._fields = fields
        self._name = name

    def header(self) -> ExportHeader:
        fmt = self._uint("format")
        if fmt != FORMAT:
            raise ExportFormatError(
                f"{self._name}: unsupported export format {fmt} (this moat-log reads {FORMAT})"
            )
        header = ExportHeader(
            format=fmt,
            node=self._node_name("node", self._get("node")),
            created=self._uint("created"),
            selection=self._selection(),
            ranges=self._ranges(),
            events=self._uint("events"),
            raw_bytes=self._uint("raw_bytes"),
            blocks=self._uint("blocks"),
            body_bytes=self._uint("body_bytes"),
            sha256=self._sha256(),
        )
        held = header.ranges.count
        if held != header.events:
            raise ExportFormatError(
                f"{self._name}: header says {header.events} events but its ranges hold {held} ids"
            )
        return header

    def _error(self, key: str, expected: str, value: object) -> ExportFormatError:
        return ExportFormatError(
            f"{self._name}: header field {key!r} must be {expected}, not {_describe(value)}"
        )

    def _get(self, key: str, within: dict[Any, Any] | None = None, where: str = "") -> Any:
        fields = self._fields if within is None else within
        if key not in fields:
            raise ExportFormatError(f"{self._name}: header has no {where + key!r} field")
        return fields[key]

    def _uint(self, key: str) -> int:
        value = self._get(key)
        if type(value) is not int or value < 0:
            raise self._error(key, "a non-negative int", value)
        return value

    def _node_name(self, key: str, value: object) -> str:
        if type(value) is not str or NODE_NAME_RE.fullmatch(value) is None:
            raise self._error(key, "a node name", value)
        return value

    def _selection(self) -> dict[str, Any]:
        selection = self._get("selection")
        if type(selection) is not dict:
            raise self._error("selection", "a map", selection)
        result: dict[str, Any] = {}
        for key in ("since", "until"):
            bound = result[key] = self._get(key, selection, "selection.")
            if bound is not None and (type(bound) is not int or bound < 0):
                raise self._error(f"selection.{key}", "nil or a non-negative int", bound)
        origin = result["origin"] = self._get("origin", selection, "selection.")
        if origin is not None:
            self._node_name("selection.origin", origin)
        return result

    def _ranges(self) -> IdSet:
        ranges = self._get("ranges")
        if type(ranges) is not dict:
            raise self._error("ranges", "a map of origin to range list", ranges)
        result: dict[str, RangeSet] = {}
        for origin, packed in ranges.items():
            if type(origin) is not str or NODE_NAME_RE.fullmatch(origin) is None:
                raise ExportFormatError(
                    f"{self._name}: header field 'ranges' has a key that is not a node name: "
                    f"{_describe(origin)}"
                )
            key = f"ranges.{origin}"
            try:
                held = RangeSet.from_msgpack(packed)
            except InvalidInputError as exc:
                raise ExportFormatError(f"{self._name}: header field {key!r}: {exc}") from exc
            if not held:
                raise self._error(key, "a non-empty range list", packed)
            result[origin] = held
        return IdSet(result)

    def _sha256(self) -> bytes:
        digest = self._get("sha256")
        if type(digest) is not bytes or len(digest) != 32:
            raise self._error("sha256", "a 32-byte bin", digest)
        return digest


def _kind(value: object) -> str:
    """The msgpack name of a value's type, for messages."""
    kinds = {type(None): "nil", bool: "bool", int: "int", float: "float", str: "str"}
    kinds |= {bytes: "bin", list: "array", dict: "map"}
    return kinds.get(type(value), type(value).__name__)


def _describe(value: object) -> str:
    text = repr(value)
    return f"{_kind(value)} {text if len(text) <= 40 else text[:37] + '...'}"


class _BodyReader:
    """One pass over the body: yields validated events, then checks the totals."""

    def __init__(self, stream: IO[bytes], name: str, header: ExportHeader) -> None:
        self._stream = stream
        self._name = name
        self._header = header
        self._sha = hashlib.sha256()
        self._remaining = header.body_bytes
        self._seen = IdSetBuilder()
        self._events = self._raw_bytes = self._blocks = 0

    def events(self) -> Iterator[Event]:
        self._check_length()
        decompressor = zstandard.ZstdDecompressor()
        while self._remaining:
            self._blocks += 1
            try:
                content = self._block(decompressor)
                events = self._unpack(content)
            except ExportFormatError as exc:
                raise self._corrupt_or(exc) from exc
            yield from events
        self._check_totals()

    def check_integrity(self) -> None:
        """Length and SHA-256 of the whole body: cheap, and enough to catch a
        truncated, damaged or swapped file before anything is stored."""
        self._check_length()
        while self._remaining:
            self._read(min(self._remaining, _READ_CHUNK))
        if self._sha.digest() != self._header.sha256:
            raise ExportFormatError(f"{self._name}: checksum mismatch: the body is corrupt")

    def _check_length(self) -> None:
        start = self._stream.tell()
        end = self._stream.seek(0, os.SEEK_END)
        self._stream.seek(start)
        size, expected = end - start, self._header.body_bytes
        if size < expected:
            raise ExportFormatError(f"{self._name}: truncated: body has {size} of {expected} bytes")
        if size > expected:
            raise ExportFormatError(
                f"{self._name}: {size - expected} bytes of unexpected data after the body"
            )

    def _read(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) < size:  # the file shrank since _check_length
            raise ExportFormatError(f"{self._name}: truncated in block {self._blocks}")
        self._sha.update(data)
        self._remaining -= size
        return data

    def _block(self, decompressor: zstandard.ZstdDecompressor) -> bytes:
        """Read, check and decompress the next block."""
        where = f"{self._name}: block {self._blocks}"
        if self._remaining < 4:
            raise ExportFormatError(f"{where}: its length field runs past the end of the body")
        (length,) = _U32.unpack(self._read(4))
        if not 0 < length <= min(self._remaining, MAX_BLOCK_BYTES):
            raise ExportFormatError(f"{where}: length {length} does not fit in the body")
        frame = self._read(length)
        try:
            params = zstandard.get_frame_parameters(frame)
            size = params.content_size
            if not params.has_checksum or size == zstandard.CONTENTSIZE_UNKNOWN:
                raise ExportFormatError(f"{where}: zstd frame lacks its checksum or content size")
            if size > MAX_BLOCK_BYTES:
                raise ExportFormatError(f"{where}: content of {size} bytes exceeds the limit")
            content: bytes = decompressor.decompress(frame, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise ExportFormatError(f"{where} does not decompress: {exc}") from exc
        if not content:
            raise ExportFormatError(f"{where} is empty")
        return content

    def _unpack(self, content: bytes) -> list[Event]:
        """The events of one block's content, validated.

        The msgpack unpacker only finds where each event ends (``skip``
        builds no objects); `decode_event` decodes and checks each one.
        """
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(content))
        unpacker.feed(content)
        view = memoryview(content)
        events: list[Event] = []
        offset = 0
        while offset < len(content):
            try:
                unpacker.skip()
            except msgpack.OutOfData:
                raise self._event_error(
                    len(events) + 1, "cut off at the end of the block"
                ) from None
            except Exception as exc:  # msgpack raises many unrelated types on garbage
                raise self._event_error(len(events) + 1, f"not msgpack: {exc}") from exc
            end = unpacker.tell()
            events.append(self._event(view[offset:end], len(events) + 1))
            offset = end
        self._raw_bytes += len(content)
        return events

    def _event(self, data: memoryview, index: int) -> Event:
        if len(data) > MAX_EVENT_BYTES:
            raise self._event_error(
                index, f"{len(data)} bytes exceed the limit of {MAX_EVENT_BYTES}"
            )
        try:
            event = decode_event(data)
        except InvalidEventError as exc:
            raise self._event_error(index, str(exc)) from exc
        origin, seq = event.origin, event.seq
        if not self._header.ranges.holds(origin, seq):
            raise self._event_error(index, f"its id {event.id} is not in the header's ranges")
        if self._seen.holds(origin, seq):
            raise self._event_error(index, f"its id {event.id} occurs twice")
        self._seen.add(origin, seq)
        self._events += 1
        return event

    def _event_error(self, index: int, why: str) -> ExportFormatError:
        return ExportFormatError(
            f"{self._name}: event {index} in block {self._blocks} is invalid: {why}"
        )

    def _corrupt_or(self, error: ExportFormatError) -> ExportFormatError:
        """A checksum mismatch explains a bad block better than the block's own error."""
        while self._remaining:
            self._read(min(self._remaining, _READ_CHUNK))
        if self._sha.digest() != self._header.sha256:
            return ExportFormatError(
                f"{self._name}: checksum mismatch: the body is corrupt ({error})"
            )
        return error

    def _check_totals(self) -> None:
        name, header = self._name, self._header
        if self._sha.digest() != header.sha256:
            raise ExportFormatError(f"{name}: checksum mismatch: the body is corrupt")
        for what, stated, found in (
            ("blocks", header.blocks, self._blocks),
            ("events", header.events, self._events),
            ("raw bytes", header.raw_bytes, self._raw_bytes),
        ):
            if stated != found:
                raise ExportFormatError(f"{name}: header says {stated} {what}, body holds {found}")
        # Every event was in the ranges, none twice, and the counts agree:
        # the ids are exactly the header's ranges.


# ---------------------------------------------------------------------- importing


def import_file(
    journal: Journal,
    source: Source,
    *,
    progress: Callable[[int], None] | None = None,
    batch_size: int = IMPORT_BATCH,
) -> ImportResult:
    """Insert the events of an export file into *journal*; say what happened.

    First the header and the body's length and SHA-256 are checked: a
    truncated, damaged or foreign file raises `ExportFormatError` and stores
    nothing.  Then every event is validated as it is read and written in
    batches of *batch_size*, one transaction each.  (A file with a correct
    checksum but an invalid event can only come from a broken exporter; the
    import stops at that event, and the valid events before it stay stored.)
    Inserting is idempotent: events already held are counted, not stored
    again, so importing a file twice changes nothing.  *progress* is called
    after each batch with the number of events processed so far.
    """
    if type(batch_size) is not int or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, not {batch_size!r}")
    result = ImportResult()
    with _opened(source) as (stream, name):
        start = stream.tell()
        header = _read_prefix(stream, name)
        _BodyReader(stream, name, header).check_integrity()
        stream.seek(start)
        header = _read_prefix(stream, name)
        for batch in _batches(_BodyReader(stream, name, header).events(), batch_size):
            _tally(result, batch, journal.write_batch(batch))
            if progress is not None:
                progress(result.events)
    return result


def _batches(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _tally(result: ImportResult, batch: list[Event], outcomes: list[Any]) -> None:
    result.events += len(batch)
    for event, outcome in zip(batch, outcomes, strict=True):
        if outcome is True:
            result.inserted += 1
        elif outcome is False:
            result.already_held += 1
        elif isinstance(outcome, MoatLogError):
            result.conflict_count += 1
            if len(result.conflicts) < MAX_CONFLICT_MESSAGES:
                result.conflicts.append((event.id, str(outcome)))
        else:
            raise TypeError(f"unexpected write result {outcome!r} for {event.id}")
