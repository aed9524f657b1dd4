"""Batches: the events answering a want, as one zstd frame, checked before use.

Theory of operation
-------------------
A batch's content is the packed events (`Event.pack`) back to back, in the
want's request order (docs/sync-protocol.md, "Batches").  The message states
the number of events and the content's size; the content travels as one zstd
frame that must declare that same size in its header.

A receiver trusts none of it.  The declared size is bounded
(`MAX_BATCH_CONTENT`) and compared with the frame header *before*
decompressing, and decompression is capped at that size, so a small frame
that expands to gigabytes (a "zip bomb") is refused without allocating more
than the cap.  Then the content must split into exactly ``count`` valid
events with nothing left over.  Whether they are the events that were asked
for is the connection's check (`SyncConnection`), which knows the want.

`read_packed_batch` is the serving side's helper: it reads a want's events
from a journal in request order, as many as fit into one batch, with the
bytes the journal stored for each, which go into the batch as they are
(`read_batch` is the same for a reader of events alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final

import msgpack
import zstandard

from ..errors import InvalidEventError
from ..event import MAX_EVENT_BYTES, Event
from ..event_decoder import event_from_wire
from ..idset import IdSet
from ..protocol.errors import RemoteProtocolError
from .messages import MAX_BATCH_CONTENT, Batch

__all__ = [
    "ZSTD_LEVEL",
    "BatchCodec",
    "EventReader",
    "PackedEventReader",
    "read_batch",
    "read_packed_batch",
]

#: zstd level of batches: as for export files (docs/decisions.md), level 3
#: gives about 0.3 of the raw size at millions of events per second.
ZSTD_LEVEL: Final = 3

#: ``read(origin, first, last)``: that origin's stored events with seqs
#: ``first .. last``, ascending (`Journal.by_origin`).
EventReader = Callable[[str, int, int], Iterable[Event]]
#: The same, each event with its packed bytes (`Journal.by_origin_packed`).
PackedEventReader = Callable[[str, int, int], Iterable[tuple[Event, bytes]]]


def _refuse_extension(code: int, data: bytes) -> object:
    raise ValueError(f"msgpack extension type {code} is not part of an event")


class BatchCodec:
    """Packs and unpacks batches; one per connection (zstd contexts are not shared)."""

    __slots__ = ("_compressor", "_decompressor")

    def __init__(self) -> None:
        self._compressor = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, write_content_size=True, write_checksum=True
        )
        self._decompressor = zstandard.ZstdDecompressor()

    def pack(
        self, request_id: int, events: Sequence[Event], packed: Sequence[bytes] | None = None
    ) -> Batch:
        """The batch carrying *events*.  Raises `ValueError` if they do not fit.

        *packed* are their `Event.pack` forms if the caller has them (as the
        journal stored them); without it they are packed here.
        """
        if packed is None:
            packed = [event.pack() for event in events]
        elif len(packed) != len(events):
            raise ValueError(f"{len(events)} events but {len(packed)} packed forms")
        content = b"".join(packed)
        if len(content) > MAX_BATCH_CONTENT:
            raise ValueError(
                f"{len(events)} events are {len(content)} bytes packed, more than a batch "
                f"holds ({MAX_BATCH_CONTENT}); use read_batch to pick them"
            )
        return Batch(request_id, len(events), len(content), self._compressor.compress(content))

    def unpack(self, batch: Batch) -> list[Event]:
        """The events of a received batch, checked.  Raises `RemoteProtocolError`."""
        content = self._decompress(batch)
        unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=False,
            max_buffer_size=len(content),
            ext_hook=_refuse_extension,
        )
        unpacker.feed(content)
        events: list[Event] = []
        while unpacker.tell() < len(content):
            if len(events) == batch.count:
                raise _bad(batch, f"has bytes after its {batch.count} events")
            start = unpacker.tell()
            try:
                fields = unpacker.unpack()
            except msgpack.OutOfData:
                raise _bad(batch, f"ends inside event {len(events) + 1}") from None
            except Exception as exc:  # msgpack raises many unrelated types on garbage
                raise _bad(batch, f"event {len(events) + 1} is not msgpack: {exc}") from None
            if unpacker.tell() - start > MAX_EVENT_BYTES:
                raise _bad(batch, f"event {len(events) + 1} is larger than {MAX_EVENT_BYTES} bytes")
            try:
                events.append(event_from_wire(fields))  # msgspec types it in C
            except InvalidEventError as exc:
                raise _bad(batch, f"event {len(events) + 1} is invalid: {exc}") from None
        if len(events) != batch.count:
            raise _bad(batch, f"holds {len(events)} events, not the {batch.count} it announces")
        return events

    def _decompress(self, batch: Batch) -> bytes:
        try:
            declared = zstandard.get_frame_parameters(batch.zstd).content_size
        except zstandard.ZstdError as exc:
            raise _bad(batch, f"is not a zstd frame: {exc}") from None
        if declared != batch.size:
            shown = "no size" if declared == zstandard.CONTENTSIZE_UNKNOWN else declared
            raise _bad(batch, f"has a zstd frame declaring {shown}, not the size {batch.size}")
        try:
            content: bytes = self._decompressor.decompress(
                batch.zstd, max_output_size=batch.size, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            raise _bad(batch, f"does not decompress: {exc}") from None
        if len(content) != batch.size:  # zstd checks this itself; be sure
            raise _bad(batch, f"decompresses to {len(content)} bytes, not {batch.size}")
        return content


def _bad(batch: Batch, what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"the batch for want {batch.id} {what}")


def read_batch(wanted: IdSet, read: EventReader, max_bytes: int = MAX_BATCH_CONTENT) -> list[Event]:
    """The events of *wanted* in request order, as many as fit into one batch.

    Stops before the first event that would take the packed content over
    *max_bytes* (but always includes a first one), and at the first id that
    *read* does not return (so the result is always a prefix of the want).
    Runs *read* in the caller's thread: call it in a worker thread for a
    journal.
    """

    def read_packed(origin: str, first: int, last: int) -> Iterator[tuple[Event, bytes]]:
        return ((event, event.pack()) for event in read(origin, first, last))

    return read_packed_batch(wanted, read_packed, max_bytes)[0]


def read_packed_batch(
    wanted: IdSet, read: PackedEventReader, max_bytes: int = MAX_BATCH_CONTENT
) -> tuple[list[Event], list[bytes]]:
    """`read_batch` with a reader of packed events: the events and their bytes.

    The bytes are those *read* returned (`Journal.by_origin_packed`), for
    `BatchCodec.pack` to send without packing the events again.
    """
    events: list[Event] = []
    packed: list[bytes] = []
    size = 0
    for origin, first, last in wanted.ranges():
        expected = first
        for event, data in read(origin, first, last):
            if event.origin != origin or event.seq != expected:
                return events, packed
            size += len(data)
            if events and size > max_bytes:
                return events, packed
            events.append(event)
            packed.append(data)
            expected += 1
        if expected <= last:
            return events, packed
    return events, packed
