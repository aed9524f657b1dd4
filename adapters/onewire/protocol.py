"""The owserver protocol, sans-io: requests to bytes, bytes to replies (and the server's side).

Theory of operation
-------------------
owserver (owfs 3.x) speaks a request/reply protocol over TCP, port 4304.
Every message is a 24-byte header of six big-endian signed 32-bit words
and a payload:

==========  ===========================  ===================================
word        request (client -> server)   reply (server -> client)
==========  ===========================  ===================================
0           version (0)                  version (0)
1           payload length               payload length (-1: "still working")
2           message type (`MessageType`) return code (< 0: minus an errno)
3           flags (`Flag`)               flags (persistence granted or not)
4           size: bytes wanted / written size: bytes of data in the payload
5           offset                       offset
==========  ===========================  ===================================

A request's payload is the path, NUL-terminated; a write appends the data
after the NUL (``size`` says how many bytes).  A reply whose payload length
is negative is a keep-alive the server sends during a slow bus operation:
it carries nothing, and the real reply follows.  A directory listing
(``DIRALLSLASH``) is one reply, the entries separated by commas.  With
`Flag.PERSISTENCE` the server keeps the connection open for the next
request if its reply has the flag too; otherwise it closes it.

`encode_request` and `ReplyReader` are the client's side; `RequestReader`
and `encode_reply` the server's (the tests' fake owserver uses them).  A
peer that sends something no owserver sends (a version other than 0, a
payload over `MAX_PAYLOAD`) raises `OwProtocolError`, and the reader stays
broken: the connection must be dropped.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from moat_log.errors import BusUnavailableError

__all__ = [
    "HEADER",
    "MAX_PAYLOAD",
    "Flag",
    "Header",
    "MessageType",
    "OwProtocolError",
    "Reply",
    "ReplyReader",
    "Request",
    "RequestReader",
    "encode_reply",
    "encode_request",
    "parse_directory",
]

#: The header: six big-endian signed 32-bit words.
HEADER: Final = struct.Struct(">6i")
#: The largest payload either side accepts (owserver's and pyownet's limit).
MAX_PAYLOAD: Final = 65536
#: A reply's payload length that means "still working, wait" (a keep-alive).
KEEPALIVE: Final = -1


class MessageType(enum.IntEnum):
    """Request types (owfs ``enum msg_classification``)."""

    ERROR = 0
    NOP = 1
    READ = 2
    WRITE = 3
    DIR = 4
    PRESENCE = 6
    DIRALL = 7
    GET = 8
    DIRALLSLASH = 9
    GETSLASH = 10


class Flag(enum.IntFlag):
    """Request flags; the temperature scale and device format bits stay 0.

    That is °C, and device ids written ``10.67C6697351FF``.
    """

    BUS_RET = 0x2
    PERSISTENCE = 0x4
    ALIAS = 0x8
    SAFEMODE = 0x10
    UNCACHED = 0x20
    OWNET = 0x100


class OwProtocolError(BusUnavailableError):
    """The peer sent bytes no owserver (or client) sends; drop the connection."""


@dataclass(frozen=True, slots=True)
class Header:
    """The six words of a header (in a reply, *kind* is the return code)."""

    version: int
    payload: int
    kind: int
    flags: int
    size: int
    offset: int

    def __post_init__(self) -> None:
        for name in ("version", "payload", "kind", "flags", "size", "offset"):
            value = getattr(self, name)
            if not -(2**31) <= value < 2**31:
                raise ValueError(f"header word {name} = {value} does not fit in 32 bits")

    def pack(self) -> bytes:
        return HEADER.pack(
            self.version, self.payload, self.kind, self.flags, self.size, self.offset
        )

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        return cls(*HEADER.unpack(data))


@dataclass(frozen=True, slots=True)
class Request:
    """A request as the server reads it: its type, path, data (a write's) and flags."""

    type: int
    path: str
    data: bytes = b""
    flags: int = Flag.OWNET
    size: int = MAX_PAYLOAD
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply: *ret* (< 0: minus an errno), the data, and whether the connection stays."""

    ret: int
    data: bytes = b""
    flags: int = 0

    @property
    def persistent(self) -> bool:
        return bool(self.flags & Flag.PERSISTENCE)


def _path_payload(path: str) -> bytes:
    try:
        encoded = path.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"owserver paths are ASCII, not {path!r}") from None
    if b"\x00" in encoded:
        raise ValueError(f"an owserver path cannot hold NUL: {path!r}")
    return encoded + b"\x00"


def encode_request(request: Request) -> bytes:
    """The bytes of *request*: header and payload (path NUL-terminated, then a write's data)."""
    payload = _path_payload(request.path)
    size = request.size
    if request.type == MessageType.WRITE:
        payload += request.data
        size = len(request.data)
    elif request.data:
        raise ValueError("only a write carries data")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"request payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    header = Header(0, len(payload), request.type, request.flags, size, request.offset)
    return header.pack() + payload


def encode_reply(reply: Reply) -> bytes:
    """The bytes of *reply* as owserver sends it (the server's side)."""
    if len(reply.data) > MAX_PAYLOAD:
        raise ValueError(f"reply payload of {len(reply.data)} bytes exceeds {MAX_PAYLOAD}")
    header = Header(0, len(reply.data), reply.ret, reply.flags, len(reply.data), 0)
    return header.pack() + reply.data


def encode_keepalive() -> bytes:
    """A "still working" reply header (payload length -1)."""
    return Header(0, KEEPALIVE, 0, 0, 0, 0).pack()


class _Reader:
    """Collects bytes and cuts them into header + payload messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken: OwProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def _next(self) -> tuple[Header, bytes] | None:
        if self._broken is not None:
            raise self._broken
        if len(self._buffer) < HEADER.size:
            return None
        header = Header.unpack(bytes(self._buffer[: HEADER.size]))
        if header.version != 0 or header.payload > MAX_PAYLOAD:
            self._broken = OwProtocolError(
                f"owserver protocol: unexpected header {header} (version 0 and a payload "
                f"of at most {MAX_PAYLOAD} bytes expected)"
            )
            raise self._broken
        length = max(header.payload, 0)
        if len(self._buffer) < HEADER.size + length:
            return None
        payload = bytes(self._buffer[HEADER.size : HEADER.size + length])
        del self._buffer[: HEADER.size + length]
        return header, payload


class ReplyReader(_Reader):
    """The client's reader: `next_reply` gives a `Reply` or None (more bytes needed).

    Keep-alive headers are skipped.  The data is the payload's first
    ``size`` bytes (owserver may pad the payload).
    """

    def next_reply(self) -> Reply | None:
        while True:
            message = self._next()
            if message is None:
                return None
            header, payload = message
            if header.payload < 0:
                continue  # a keep-alive: the server is still at the bus
            size = max(0, min(header.size, len(payload)))
            return Reply(header.kind, payload[:size], header.flags)


class RequestReader(_Reader):
    """The server's reader: `next_request` gives a `Request` or None (more bytes needed)."""

    def next_request(self) -> Request | None:
        message = self._next()
        if message is None:
            return None
        header, payload = message
        path, nul, rest = payload.partition(b"\x00")
        if not nul and header.kind != MessageType.NOP:
            self._broken = OwProtocolError("owserver protocol: a request path without NUL")
            raise self._broken
        data = rest[: max(header.size, 0)] if header.kind == MessageType.WRITE else b""
        return Request(
            header.kind,
            path.decode("ascii", "replace"),
            data,
            header.flags,
            header.size,
            header.offset,
        )


def parse_directory(data: bytes) -> list[str]:
    """The entries of a ``DIRALL``/``DIRALLSLASH`` reply (``b"/10.67C6697351FF/,/bus.0/"``)."""
    text = data.rstrip(b"\x00").decode("ascii", "replace")
    return [entry for entry in text.split(",") if entry]
