"""Frames: a 4-byte big-endian length, then exactly one msgpack value.

Theory of operation
-------------------
The length comes first so that a reader never needs a streaming msgpack
parser and can refuse an oversized frame as soon as its four length bytes are
in, before buffering any of it (docs/client-protocol.md, "Framing").

`FrameDecoder` buffers received bytes and hands out decoded values one at a
time; it knows nothing about what the values mean.  Any problem with the
bytes (a length over the limit, an empty frame, bytes that are not exactly one
msgpack value, invalid UTF-8 in a string, an extension type) raises
`RemoteProtocolError`.  msgpack-python raises a zoo of exception types on
garbage, so decoding catches them all and translates.

Decoding uses the "new" msgpack spec: ``str`` is UTF-8 text, ``bin`` is bytes.
Map keys may be of any scalar type (values may use int keys); arrays become
lists.  Extension types are refused, except that msgpack-python turns the
timestamp extension (-1) into a `msgpack.Timestamp` before any hook sees it:
such a value then fails the type checks of whatever field holds it.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import msgpack

from .errors import FrameTooLargeError, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER_SIZE",
    "NEED_DATA",
    "FrameDecoder",
    "NeedData",
    "encode_frame",
    "frame_bytes",
    "pack_value",
]

#: The largest frame body a connection accepts unless configured otherwise.
DEFAULT_MAX_FRAME_SIZE: Final = 4 * 1024 * 1024
#: Bytes of the length prefix.
HEADER_SIZE: Final = 4
_MAX_LENGTH = 2**32 - 1


class NeedData(enum.Enum):
    """The type of `NEED_DATA`."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``next_frame``/``next_event`` when more bytes must be received first.
NEED_DATA: Final = NeedData.NEED_DATA

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def pack_value(obj: object) -> bytes:
    """Pack *obj* as msgpack (``bin`` for bytes, smallest integer encodings)."""
    try:
        data: bytes = _packer.pack(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"cannot pack {type(obj).__name__} as msgpack: {exc}") from exc
    return data


def frame_bytes(body: bytes, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Put the length prefix in front of an already packed *body*."""
    if len(body) > max_size:
        raise FrameTooLargeError(
            f"message is {len(body)} bytes packed, more than the frame limit of {max_size}"
        )
    return len(body).to_bytes(HEADER_SIZE, "big") + body


def encode_frame(obj: object, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """One frame holding *obj*.

    Raises `ValueError` if *obj* cannot be packed and `FrameTooLargeError`
    if it packs to more than *max_size* bytes.
    """
    return frame_bytes(pack_value(obj), max_size)


def _refuse_extension(code: int, data: bytes) -> object:
    raise ValueError(f"msgpack extension type {code} is not used by this protocol")


def decode_body(body: bytes) -> Any:
    """Unpack one frame body; raise `RemoteProtocolError` unless it is one msgpack value."""
    if not body:
        raise RemoteProtocolError("empty frame: a frame holds exactly one msgpack value")
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=False,
            use_list=True,
            ext_hook=_refuse_extension,
        )
    except Exception as exc:  # msgpack raises many unrelated types on garbage
        raise RemoteProtocolError(
            f"frame of {len(body)} bytes is not one valid msgpack value: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


class FrameDecoder:
    """Split received bytes into frames and decode them.

    ``receive_data(data)`` buffers; ``next_frame()`` returns the next decoded
    value or `NEED_DATA`.  Errors are the caller's to make sticky.
    """

    __slots__ = ("_buffer", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not 1 <= max_frame_size <= _MAX_LENGTH:
            raise ValueError(f"max_frame_size must be 1 .. 2**32-1, not {max_frame_size}")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes to the buffer."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned frame."""
        return len(self._buffer)

    def next_frame(self) -> Any:
        """The next decoded value, or `NEED_DATA`.  Raises `RemoteProtocolError`."""
        buffer = self._buffer
        if len(buffer) < HEADER_SIZE:
            return NEED_DATA
        length = int.from_bytes(buffer[:HEADER_SIZE], "big")
        if length > self.max_frame_size:
            raise RemoteProtocolError(
                f"frame announces {length} bytes, more than the limit of {self.max_frame_size}"
            )
        end = HEADER_SIZE + length
        if len(buffer) < end:
            return NEED_DATA
        body = bytes(buffer[HEADER_SIZE:end])
        del buffer[:end]  # cheap: bytearray deletes at the front by moving its start
        return decode_body(body)
