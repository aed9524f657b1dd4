"""The satellite protocol's sans-io core, shared by the host and the firmware.

docs/satellite-protocol.md is the contract; section numbers below cite it.
The host imports this file as ``moat_log.firmware.satproto``, a satellite as
``satproto``, so it is written in the Python that CPython 3.11 and
MicroPython 1.27 both run: no typing at run time (annotations naming typing
types are strings), no dataclasses, no ``__future__``, and nothing that
relies on dicts keeping their order or on ``bool`` being an ``int`` (neither
holds in MicroPython).  It never reads a clock: every call that depends on
time takes ``now_ms``, a non-wrapping millisecond count of the caller's.

Theory of operation:

* ``FrameReader`` splits the received byte stream into frames and console
  bytes (section 2); ``frame``, ``pack`` and ``unpack`` build and read the
  bytes (sections 2 and 3.1); ``message`` validates a payload (section 3.2).
* ``HostEnd`` and ``SatelliteEnd`` are the two ends of one line.  Each is
  fed what was read (``receive``), is asked what to write (``poll``) and
  says when it wants to be asked again (``next_deadline``).  Reports flow
  from the satellite with go-back-N: at most ``window`` unacknowledged on the
  line, resent after a RESEND or when no ACK came for ``keepalive_ms``.
  Commands flow from the host the same way, and the satellite carries out
  each command number once per session, repeating its answer to duplicates.
"""

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy only: MicroPython has no typing module
    from typing import Any

VERSION = 1
FRAME_START = 0xFA
MAX_PAYLOAD = 4095
MIN_MTU = 64
MAX_DEPTH = 8  # arrays/maps nested at most this deep (section 3.1)
UINT32 = 0xFFFFFFFF

# message kinds (section 3.2)
HELLO, HOST_HELLO, REPORT, ACK, RESEND, COMMAND, DONE, REFUSED, IDLE, LOG = range(1, 11)
KIND_NAMES = {
    HELLO: "HELLO",
    HOST_HELLO: "HOST_HELLO",
    REPORT: "REPORT",
    ACK: "ACK",
    RESEND: "RESEND",
    COMMAND: "COMMAND",
    DONE: "DONE",
    REFUSED: "REFUSED",
    IDLE: "IDLE",
    LOG: "LOG",
}

DEAD_AFTER_KEEPALIVES = 3  # no valid frame for 3 x keepalive: the line is dead (section 3.5)


class ProtocolError(ValueError):
    """The peer sent bytes that are not a valid message; the text says what was wrong."""


# ---------------------------------------------------------------- CRC and frames (section 2)

_CRC_TABLE = (
    0x0000, 0x64A8, 0xC950, 0xADF8, 0xE7FB, 0x8353, 0x2EAB, 0x4A03,
    0xBAAD, 0xDE05, 0x73FD, 0x1755, 0x5D56, 0x39FE, 0x9406, 0xF0AE,
)  # fmt: skip


def crc16(data: "bytes | bytearray", crc: int = 0) -> int:
    """CRC-16, polynomial 0xBAAD, initial 0, no reflection: continue a CRC with *crc*."""
    table = _CRC_TABLE
    for byte in data:
        crc = table[((byte >> 4) ^ crc) & 0xF] ^ (crc >> 4)
        crc = table[(byte ^ crc) & 0xF] ^ (crc >> 4)
    return crc


def frame(payload: "bytes | bytearray") -> bytes:
    """The frame carrying *payload*: ``FA LEN payload CRC``; ValueError if empty or too long."""
    size = len(payload)
    if size < 1 or size > MAX_PAYLOAD:
        raise ValueError(f"payload of {size} bytes: a frame carries 1..{MAX_PAYLOAD}")
    crc = crc16(payload)
    if size <= 127:
        head = bytes((FRAME_START, size))
    else:
        head = bytes((FRAME_START, 0x80 | (size & 0x7F), size >> 7))
    return head + bytes(payload) + bytes((crc >> 8, crc & 0xFF))


class FrameReader:
    """Find frames in a byte stream that also carries console text (section 2, "Receiving").

    ``feed`` and ``expire`` return items ``(True, payload)`` for a frame and
    ``(False, data)`` for console bytes, in stream order.  A partial frame
    stays buffered (``pending``) until it completes or no byte arrived for
    ``idle_ms``; then its ``FA`` is noise and the bytes after it are scanned
    again, so a frame the false start seemed to swallow is still found.
    """

    def __init__(self, mtu: int = MAX_PAYLOAD, idle_ms: int = 100) -> None:
        self.mtu = mtu
        self.idle_ms = idle_ms
        self.pending = False
        self.noise = 0  # false starts: bad length, CRC mismatch or abandoned partial frame
        self.bad_crc = 0  # false starts whose CRC did not match
        self.last_byte_ms = 0
        self._buffer = b""

    def feed(self, data: "bytes | bytearray", now_ms: int) -> "list[tuple[bool, bytes]]":
        """Take *data* read at *now_ms*; return the frames and console bytes it completes."""
        items = self.expire(now_ms)
        if data:
            self._buffer += bytes(data)
            self.last_byte_ms = now_ms
            self._scan(items, False)
        return items

    def expire(self, now_ms: int) -> "list[tuple[bool, bytes]]":
        """Abandon a partial frame that got no byte for ``idle_ms`` (a reset mid-frame)."""
        items: list[tuple[bool, bytes]] = []
        if self.pending and now_ms - self.last_byte_ms >= self.idle_ms:
            self._scan(items, True)
        return items

    def expires_in(self, now_ms: int) -> "int | None":
        """Milliseconds until ``expire`` has work (0: now), None without a partial frame."""
        if not self.pending:
            return None
        return max(0, self.last_byte_ms + self.idle_ms - now_ms)

    def _scan(self, items: "list[tuple[bool, bytes]]", stale: bool) -> None:
        buffer = self._buffer
        end = len(buffer)
        console_from = 0
        position = 0
        while True:
            start = buffer.find(b"\xfa", position)
            if start < 0:
                position = end
                break
            size, payload = self._frame_at(buffer, start)
            if size > 0:
                if start > console_from:
                    items.append((False, buffer[console_from:start]))
                items.append((True, payload))
                position = console_from = start + size
            elif size == 0 and not stale:
                position = start  # wait for the rest
                break
            else:  # noise: the FA is a console byte, scanning resumes after it (rule 4)
                if size == 0:
                    self.noise += 1
                position = start + 1
        if position > console_from:
            items.append((False, buffer[console_from:position]))
        self._buffer = buffer[position:]
        self.pending = len(self._buffer) > 0

    def _frame_at(self, buffer: bytes, start: int) -> "tuple[int, bytes]":
        """(size, payload) of the frame at *start*; (0, b"") incomplete, (-1, b"") noise."""
        available = len(buffer) - start
        if available < 2:
            return 0, b""
        first = buffer[start + 1]
        if first & 0x80:
            if available < 3:
                return 0, b""
            size = (first & 0x7F) | (buffer[start + 2] << 7)
            head = 3
        else:
            size = first
            head = 2
        if size == 0 or size > self.mtu:
            self.noise += 1
            return -1, b""
        total = head + size + 2
        if available < total:
            return 0, b""
        payload = buffer[start + head : start + head + size]
        crc = (buffer[start + head + size] << 8) | buffer[start + head + size + 1]
        if crc16(payload) != crc:
            self.noise += 1
            self.bad_crc += 1
            return -1, b""
        return total, payload


# ---------------------------------------------------------------- the msgpack subset (section 3.1)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and value is not True and value is not False


def _pack_length(out: bytearray, size: int, fix_base: int, fix_limit: int, codes: bytes) -> None:
    """A str/bin/array/map header: fix form below *fix_limit*, else 8/16/32-bit length."""
    if size < fix_limit:
        out.append(fix_base | size)
    elif size < 0x100 and codes[0]:
        out.append(codes[0])
        out.append(size)
    elif size < 0x10000:
        out.append(codes[1])
        out += struct.pack(">H", size)
    elif size <= UINT32:
        out.append(codes[2])
        out += struct.pack(">I", size)
    else:
        raise ValueError(f"length {size} does not fit msgpack")


def _pack_int(out: bytearray, value: int) -> None:
    if 0 <= value < 0x80 or -32 <= value < 0:
        out.append(value & 0xFF)
    elif value >= 0:
        if value < 0x100:
            out.append(0xCC)
            out.append(value)
        elif value < 0x10000:
            out += b"\xcd" + struct.pack(">H", value)
        elif value <= UINT32:
            out += b"\xce" + struct.pack(">I", value)
        elif value < 1 << 64:
            out += b"\xcf" + struct.pack(">Q", value)
        else:
            raise ValueError(f"integer {value} is above 2**64-1")
    elif value >= -0x80:
        out += b"\xd0" + struct.pack(">b", value)
    elif value >= -0x8000:
        out += b"\xd1" + struct.pack(">h", value)
    elif value >= -0x80000000:
        out += b"\xd2" + struct.pack(">i", value)
    elif value >= -(1 << 63):
        out += b"\xd3" + struct.pack(">q", value)
    else:
        raise ValueError(f"integer {value} is below -2**63")


def _pack_into(out: bytearray, value: "Any", depth: int) -> None:  # noqa: PLR0912 (one per type)
    if value is None:
        out.append(0xC0)
    elif value is False:
        out.append(0xC2)
    elif value is True:
        out.append(0xC3)
    elif isinstance(value, int):
        _pack_int(out, value)
    elif isinstance(value, float):
        out += b"\xcb" + struct.pack(">d", value)
    elif isinstance(value, str):
        data = value.encode()
        _pack_length(out, len(data), 0xA0, 32, b"\xd9\xda\xdb")
        out += data
    elif isinstance(value, (bytes, bytearray)):
        _pack_length(out, len(value), 0, 0, b"\xc4\xc5\xc6")
        out += value
    elif isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH}")
        _pack_length(out, len(value), 0x90, 16, b"\x00\xdc\xdd")
        for item in value:
            _pack_into(out, item, depth + 1)
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH}")
        _pack_length(out, len(value), 0x80, 16, b"\x00\xde\xdf")
        for key in value:
            if not (isinstance(key, str) or _is_int(key)):
                raise ValueError(f"map key {key!r}: keys are str or int")
            _pack_into(out, key, depth + 1)
            _pack_into(out, value[key], depth + 1)
    else:
        kind = type(value).__name__
        raise TypeError(f"cannot pack {kind}: the subset is nil bool int float str bin array map")


def pack(value: "Any") -> bytes:
    """msgpack of *value*, byte-identical to ``msgpack.packb(value, use_bin_type=True)``."""
    out = bytearray()
    _pack_into(out, value, 0)
    return bytes(out)


def _need(data: bytes, position: int, size: int) -> None:
    if position + size > len(data):
        raise ProtocolError(f"truncated: {size} bytes needed at offset {position} of {len(data)}")


def _unpack_uint(data: bytes, position: int, size: int) -> "tuple[int, int]":
    _need(data, position, size)
    value = 0
    for byte in data[position : position + size]:
        value = (value << 8) | byte
    return value, position + size


def _unpack_sized(data: bytes, position: int, code: int) -> "tuple[Any, int]":
    """The types with an explicit size after the type byte (0xc4..0xdf)."""
    if code in (0xCC, 0xCD, 0xCE, 0xCF):
        return _unpack_uint(data, position, 1 << (code - 0xCC))
    if code in (0xD0, 0xD1, 0xD2, 0xD3):
        size = 1 << (code - 0xD0)
        value, position = _unpack_uint(data, position, size)
        if value >= 1 << (8 * size - 1):
            value -= 1 << (8 * size)
        return value, position
    if code == 0xCA:
        _need(data, position, 4)
        return struct.unpack(">f", data[position : position + 4])[0], position + 4
    if code == 0xCB:
        _need(data, position, 8)
        return struct.unpack(">d", data[position : position + 8])[0], position + 8
    if code in (0xC4, 0xC5, 0xC6):
        size, position = _unpack_uint(data, position, 1 << (code - 0xC4))
        _need(data, position, size)
        return bytes(data[position : position + size]), position + size
    if code in (0xD9, 0xDA, 0xDB):
        size, position = _unpack_uint(data, position, 1 << (code - 0xD9))
        return _unpack_str(data, position, size)
    raise ProtocolError(f"type byte {code:#04x} at offset {position - 1} is not in the subset")


def _unpack_str(data: bytes, position: int, size: int) -> "tuple[str, int]":
    _need(data, position, size)
    try:
        text = str(data[position : position + size], "utf-8")
    except UnicodeError:
        raise ProtocolError(f"str at offset {position} is not UTF-8") from None
    return text, position + size


def _unpack_array(data: bytes, position: int, size: int, depth: int) -> "tuple[list[Any], int]":
    if depth >= MAX_DEPTH:
        raise ProtocolError(f"nested deeper than {MAX_DEPTH} at offset {position}")
    items = []
    for _ in range(size):
        item, position = _unpack_at(data, position, depth + 1)
        items.append(item)
    return items, position


def _unpack_map(data: bytes, position: int, size: int, depth: int) -> "tuple[dict[Any, Any], int]":
    if depth >= MAX_DEPTH:
        raise ProtocolError(f"nested deeper than {MAX_DEPTH} at offset {position}")
    result = {}
    for _ in range(size):
        at = position
        key, position = _unpack_at(data, position, depth + 1)
        if not (isinstance(key, str) or _is_int(key)):
            kind = type(key).__name__
            raise ProtocolError(f"map key at offset {at} is a {kind}, not str or int")
        if key in result:
            raise ProtocolError(f"map key {key!r} at offset {at} repeats")
        result[key], position = _unpack_at(data, position, depth + 1)
    return result, position


def _unpack_at(data: bytes, position: int, depth: int) -> "tuple[Any, int]":  # noqa: PLR0911
    _need(data, position, 1)
    code = data[position]
    position += 1
    if code < 0x80:
        return code, position
    if code >= 0xE0:
        return code - 0x100, position
    if code < 0x90:
        return _unpack_map(data, position, code & 0x0F, depth)
    if code < 0xA0:
        return _unpack_array(data, position, code & 0x0F, depth)
    if code < 0xC0:
        return _unpack_str(data, position, code & 0x1F)
    if code == 0xC0:
        return None, position
    if code == 0xC2:
        return False, position
    if code == 0xC3:
        return True, position
    if code in (0xDC, 0xDD, 0xDE, 0xDF):
        size, position = _unpack_uint(data, position, 2 if code in (0xDC, 0xDE) else 4)
        if code < 0xDE:
            return _unpack_array(data, position, size, depth)
        return _unpack_map(data, position, size, depth)
    return _unpack_sized(data, position, code)


def unpack(data: "bytes | bytearray") -> "Any":
    """The value msgpack *data* holds; ProtocolError outside the subset or with bytes after it."""
    data = bytes(data)
    value, position = _unpack_at(data, 0, 0)
    if position != len(data):
        raise ProtocolError(f"{len(data) - position} bytes after the value")
    return value


# ---------------------------------------------------------------- messages (section 3.2)


def _check_uint(value: object) -> "str | None":
    if not _is_int(value) or value < 0:  # type: ignore[operator]
        return f"is not an unsigned integer: {value!r}"
    return None


def _check_uint32(value: object) -> "str | None":
    if not _is_int(value) or not 0 <= value <= UINT32:  # type: ignore[operator]
        return f"is not a uint32: {value!r}"
    return None


def _check_int(value: object) -> "str | None":
    return None if _is_int(value) else f"is not an integer: {value!r}"


def _check_str(value: object) -> "str | None":
    return None if isinstance(value, str) else f"is not a str: {value!r}"


def _check_any(value: object) -> "str | None":
    return None


def _check_mtu(value: object) -> "str | None":
    if not _is_int(value) or not MIN_MTU <= value <= MAX_PAYLOAD:  # type: ignore[operator]
        return f"is not in {MIN_MTU}..{MAX_PAYLOAD}: {value!r}"
    return None


def _check_parts(value: object) -> "str | None":
    if not isinstance(value, dict):
        return f"is not a map: {value!r}"
    for name in value:
        if not isinstance(name, str) or not isinstance(value[name], str):
            return f"entry {name!r}: {value[name]!r} is not str -> str"
    return None


def _check_session(value: object) -> "str | None":
    return None if value is None else _check_uint32(value)


# kind -> (required fields, optional trailing fields); later elements are ignored (section 3)
_FORMS = {
    HELLO: (
        (
            ("version", _check_uint),
            ("sat_id", _check_str),
            ("firmware", _check_str),
            ("boot", _check_uint32),
            ("first", _check_uint),
            ("last", _check_uint),
            ("mtu", _check_mtu),
            ("parts", _check_parts),
        ),
        (("session", _check_session),),
    ),
    HOST_HELLO: ((("version", _check_uint), ("host", _check_str), ("session", _check_uint32)), ()),
    REPORT: (
        (
            ("seq", _check_uint),
            ("part", _check_str),
            ("value", _check_any),
            ("age_ms", _check_uint),
        ),
        (),
    ),
    ACK: ((("seq", _check_uint),), (("boot", _check_uint32),)),
    RESEND: ((("seq", _check_uint),), (("boot", _check_uint32),)),
    COMMAND: ((("cseq", _check_uint), ("verb", _check_str)), ()),  # args: the rest
    DONE: ((("cseq", _check_uint),), (("result", _check_any),)),
    REFUSED: ((("cseq", _check_uint), ("reason", _check_str)), ()),
    IDLE: ((), ()),
    LOG: ((("level", _check_int), ("text", _check_str)), ()),
}


def message(payload: "bytes | bytearray") -> "list[Any]":
    """The message in *payload*, ``[kind, field, ...]``, its fields checked (section 3.2).

    A known kind's list is cut to its fields (COMMAND keeps its args, DONE
    its result, HELLO its session, when present); an unknown kind comes back
    as it is, for the caller to count and ignore.  ProtocolError names the
    kind and the field that is wrong.
    """
    value = unpack(payload)
    if not isinstance(value, list) or not value:
        raise ProtocolError(f"payload is not a non-empty array: {value!r}")
    kind = value[0]
    if not _is_int(kind):
        raise ProtocolError(f"message kind is not an integer: {kind!r}")
    form = _FORMS.get(kind)
    if form is None:
        return value
    required, optional = form
    name = KIND_NAMES[kind]
    if len(value) < 1 + len(required):
        raise ProtocolError(f"{name} has {len(value) - 1} fields, needs {len(required)}")
    fields = required + optional
    for index in range(min(len(fields), len(value) - 1)):
        field, check = fields[index]
        problem = check(value[index + 1])
        if problem is not None:
            raise ProtocolError(f"{name} {field} {problem}")
    if kind == COMMAND:
        return value
    return value[: 1 + len(fields)]


def _payload(fields: "list[Any]") -> bytes:
    return frame(pack(fields))


# ---------------------------------------------------------------- events a HostEnd returns


class _Event:
    """A small value object: fields in ``__slots__``, equal when of one class with equal fields."""

    __slots__: "tuple[str, ...]" = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        fields = ", ".join(name + "=" + repr(getattr(self, name)) for name in self.__slots__)
        return type(self).__name__ + "(" + fields + ")"

    __hash__ = None  # type: ignore[assignment]


class Hello(_Event):
    """A satellite's HELLO: who it is, which boot, which reports it holds, its parts.

    ``session`` is the session of the last HOST_HELLO it answered (None
    before any): the host takes a HELLO as the answer to its HOST_HELLO only
    when the session matches.
    """

    __slots__ = (  # noqa: RUF023 (the order of the message's fields)
        "version", "sat_id", "firmware", "boot", "first", "last", "mtu", "parts", "session",
    )  # fmt: skip

    def __init__(  # noqa: PLR0917 (the message's fields, in order)
        self,
        version: int,
        sat_id: str,
        firmware: str,
        boot: int,
        first: int,
        last: int,
        mtu: int,
        parts: "dict[str, str]",
        session: "int | None" = None,
    ) -> None:
        self.version = version
        self.sat_id = sat_id
        self.firmware = firmware
        self.boot = boot
        self.first = first
        self.last = last
        self.mtu = mtu
        self.parts = parts
        self.session = session


class Report(_Event):
    """A report from boot ``boot``, numbered ``seq``, made ``age_ms`` before it was sent."""

    __slots__ = ("seq", "part", "value", "age_ms", "boot")  # noqa: RUF023 (message order)

    def __init__(
        self, seq: int, part: str, value: "Any", age_ms: int, boot: "int | None" = None
    ) -> None:
        self.seq = seq
        self.part = part
        self.value = value
        self.age_ms = age_ms
        self.boot = boot


class Done(_Event):
    """Command ``cseq`` (as ``HostEnd.command`` returned it) was carried out."""

    __slots__ = ("cseq", "result")

    def __init__(self, cseq: int, result: "Any" = None) -> None:
        self.cseq = cseq
        self.result = result


class Refused(_Event):
    """Command ``cseq`` was not carried out (or, after a satellite restart, is in doubt)."""

    __slots__ = ("cseq", "reason")

    def __init__(self, cseq: int, reason: str) -> None:
        self.cseq = cseq
        self.reason = reason


class Log(_Event):
    """A log line from the satellite (level as in Python's logging)."""

    __slots__ = ("level", "text")

    def __init__(self, level: int, text: str) -> None:
        self.level = level
        self.text = text


class Console(_Event):
    """Bytes on the line that are not part of a frame: console output or noise."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class BadFrame(_Event):
    """A frame with a valid CRC whose payload is not a valid message."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


# ---------------------------------------------------------------- the host's end


class HostEnd:
    """The host's end of one connection to a satellite (sections 3.3 to 3.5).

    The caller stores each ``Report`` and calls ``ack(seq, boot)`` once it is
    durable, and ``resend(stored)`` after every ``Hello`` with the last seq
    it stored of that boot.  Commands are numbered by ``command``; each gets
    exactly one ``Done`` or ``Refused``.  A HELLO with a new boot refuses the
    commands that were on the line (the restart may or may not have come
    after they were carried out, and it reset the satellite's outputs), and
    starts a new session (``session`` + 1) in which the satellite's numbering
    starts again at 1; ``command``'s numbers stay as returned.

    Call ``receive(b"", now)`` and ``poll(now)`` at least when
    ``next_deadline`` says: ``receive`` also expires a partial frame.
    """

    def __init__(
        self,
        host: str,
        session: int,
        keepalive_ms: int = 1000,
        window: int = 8,
        mtu: int = MAX_PAYLOAD,
    ) -> None:
        self.host = host
        self.session = session & UINT32
        self.keepalive_ms = keepalive_ms
        self.window = window
        self.mtu = mtu
        self.hello: Hello | None = None  # the last HELLO
        self.console_bytes = 0
        self.bad_frames = 0
        self.ignored = 0  # valid frames of unknown kinds, or of kinds a host does not take
        self.lost = 0  # reports the satellite dropped before the host stored them
        self._reader = FrameReader(mtu)
        self._awaiting_hello = True  # HOST_HELLO sent (or due), its HELLO not yet seen
        self._host_hello_due = True
        self._host_hello_ms: int | None = None
        self._last_rx_ms: int | None = None
        self._last_tx_ms: int | None = None
        self._control: list[list[Any]] = []  # ACK/RESEND messages to send, in order
        self._acked = 0  # reports stored up to here (this boot)
        self._expect: int | None = None  # the next report to hand up; None until resend()
        self._expect_boot: int | None = None
        self._gap_resend_ms: int | None = None
        self._next_cseq = 1
        self._wire_base = 0  # cseq on the wire = cseq - _wire_base (renumbered after a restart)
        self._commands: dict[int, list[Any]] = {}  # cseq -> [verb, args], unanswered
        self._order: list[int] = []  # unanswered cseqs, ascending
        self._sent_upto = 0  # highest cseq put on the line
        self._next_send = 1  # the next cseq to put on the line (rewinds to resend)
        self._command_timer_ms: int | None = None  # since when the line's oldest waits

    # -- state the caller reads

    @property
    def noise(self) -> int:
        return self._reader.noise

    @property
    def boot(self) -> "int | None":
        """The boot of the last HELLO (None before one)."""
        return None if self.hello is None else self.hello.boot

    @property
    def unanswered(self) -> int:
        return len(self._order)

    @property
    def ready(self) -> bool:
        """The satellite answered this session's HOST_HELLO: commands go out."""
        return not self._awaiting_hello

    def line_dead(self, now_ms: int) -> bool:
        """No valid frame came for 3 keepalives."""
        if self._last_rx_ms is None:
            self._last_rx_ms = now_ms
        return now_ms - self._last_rx_ms >= DEAD_AFTER_KEEPALIVES * self.keepalive_ms

    # -- what the caller does

    def resend(self, seq: int) -> None:
        """Ask for every report after *seq* (the last one stored of the HELLO's boot)."""
        boot = self.boot
        if boot != self._expect_boot or self._expect is None:
            self._expect = seq + 1
            self._expect_boot = boot
            self._acked = seq
        else:  # the same boot: what was handed up already is not handed up again
            self._acked = max(self._acked, seq)
            self._expect = max(self._expect, seq + 1)
        if self.hello is not None and self.hello.first > self._expect:
            self.lost += self.hello.first - self._expect  # the ring dropped them (section 3.3)
            self._expect = self.hello.first
        self._gap_resend_ms = None
        self._control.append(self._about_boot([RESEND, self._acked]))

    def ack(self, seq: int, boot: "int | None" = None) -> None:
        """Reports up to *seq* are stored; with *boot*, only if that is still the satellite's."""
        if boot is not None and boot != self.boot:
            return
        if self._expect is not None:
            seq = min(seq, self._expect - 1)
        if seq <= self._acked:
            return
        self._acked = seq
        self._queue_ack()

    def command(self, verb: str, *args: "Any") -> int:
        """Queue COMMAND *verb* *args*; return its number for the Done/Refused that answers it."""
        limit = self.hello.mtu if self.hello is not None else MAX_PAYLOAD
        size = len(pack([COMMAND, UINT32, verb] + list(args)))  # noqa: RUF005 (MicroPython)
        if size > limit:
            raise ValueError(f"command {verb!r} is {size} bytes; the satellite takes {limit}")
        cseq = self._next_cseq
        self._next_cseq += 1
        self._commands[cseq] = [verb, list(args)]
        self._order.append(cseq)
        return cseq

    def receive(self, data: "bytes | bytearray", now_ms: int) -> "list[Any]":
        """Take bytes read at *now_ms*; return the events they complete, in order."""
        events: list[Any] = []
        for is_frame, chunk in self._reader.feed(data, now_ms):
            if not is_frame:
                self.console_bytes += len(chunk)
                events.append(Console(chunk))
                continue
            self._last_rx_ms = now_ms
            try:
                fields = message(chunk)
            except ProtocolError as error:
                self.bad_frames += 1
                events.append(BadFrame(str(error)))
                continue
            self._dispatch(fields, now_ms, events)
        return events

    def poll(self, now_ms: int) -> bytes:
        """The bytes to write now (possibly none)."""
        if self.line_dead(now_ms) and not self._awaiting_hello:
            self._awaiting_hello = True  # start again (section 3.5)
            self._host_hello_due = True
        out = []
        if self._awaiting_hello and (
            self._host_hello_due or now_ms - self._host_hello_ms >= self.keepalive_ms  # type: ignore[operator]
        ):
            out.append(_payload([HOST_HELLO, VERSION, self.host, self.session]))
            self._host_hello_due = False
            self._host_hello_ms = now_ms
        for fields in self._control:
            out.append(_payload(fields))
        self._control = []
        if not self._awaiting_hello:
            self._send_commands(now_ms, out)
        if not out and (self._last_tx_ms is None or now_ms - self._last_tx_ms >= self.keepalive_ms):
            out.append(_payload([IDLE]))
        if out:
            self._last_tx_ms = now_ms
        return b"".join(out)

    def next_deadline(self, now_ms: int) -> int:
        """Milliseconds until ``poll`` (and ``receive(b"", now)``) should be called again."""
        if self._control or (self._awaiting_hello and self._host_hello_due):
            return 0
        if self.line_dead(now_ms) and not self._awaiting_hello:
            return 0
        times = [DEAD_AFTER_KEEPALIVES * self.keepalive_ms + self._last_rx_ms - now_ms]  # type: ignore[operator]
        if self._last_tx_ms is not None:
            times.append(self._last_tx_ms + self.keepalive_ms - now_ms)
        if self._awaiting_hello and self._host_hello_ms is not None:
            times.append(self._host_hello_ms + self.keepalive_ms - now_ms)
        if not self._awaiting_hello:
            if self._sendable_command():
                return 0
            if self._command_timer_ms is not None:
                times.append(self._command_timer_ms + self.keepalive_ms - now_ms)
        expiry = self._reader.expires_in(now_ms)
        if expiry is not None:
            times.append(expiry)
        return max(0, min(times))

    # -- inside

    def _queue_ack(self) -> None:
        for fields in self._control:
            if fields[0] == ACK:
                fields[1] = self._acked
                return
        self._control.append(self._about_boot([ACK, self._acked]))

    def _about_boot(self, fields: "list[Any]") -> "list[Any]":
        """ACK and RESEND name the boot whose reports they mean: a satellite that restarted
        since ignores them (they would drop its new boot's reports unstored)."""
        if self.hello is not None:
            fields.append(self.hello.boot)
        return fields

    def _dispatch(self, fields: "list[Any]", now_ms: int, events: "list[Any]") -> None:
        kind = fields[0]
        if kind == REPORT:
            self._on_report(fields, now_ms, events)
        elif kind in (DONE, REFUSED):
            cseq = fields[1] + self._wire_base
            if cseq > self._sent_upto or cseq not in self._commands:
                return  # a repeated answer, or one of before a restart
            del self._commands[cseq]
            self._order.remove(cseq)
            self._command_timer_ms = now_ms if self._on_line() else None
            if kind == DONE:
                events.append(Done(cseq, fields[2] if len(fields) > 2 else None))
            else:
                events.append(Refused(cseq, fields[2]))
        elif kind == HELLO:
            self._on_hello(Hello(*fields[1:]), events)
        elif kind == LOG:
            events.append(Log(fields[1], fields[2]))
        elif kind != IDLE:
            self.ignored += 1

    def _on_hello(self, hello: Hello, events: "list[Any]") -> None:
        restarted = self.hello is not None and hello.boot != self.hello.boot
        self.hello = hello
        if hello.boot != self._expect_boot:
            self._expect = None  # a boot's reports are handed up after the caller's resend()
        if restarted:
            self._refuse_on_line(hello.boot, events)
            self._control = []  # ACKs of the old boot must not reach the new one
            self._acked = 0
            self.session = (self.session + 1) & UINT32
            self._awaiting_hello = True
            self._host_hello_due = True
        elif self._awaiting_hello:
            if hello.session == self.session:  # the answer to this session's HOST_HELLO
                self._awaiting_hello = False
                self._next_send = self._order[0] if self._order else self._next_cseq
                self._command_timer_ms = None
            # else: sent before our HOST_HELLO arrived; that one (or its retry) is answered soon
        else:  # unasked: it restarted its line (or its parts changed) and wants a HOST_HELLO
            self._awaiting_hello = True
            self._host_hello_due = True
        events.append(hello)

    def _refuse_on_line(self, boot: int, events: "list[Any]") -> None:
        reason = f"satellite restarted (boot {boot:08x}) before answering"
        while self._order and self._order[0] <= self._sent_upto:
            cseq = self._order.pop(0)
            del self._commands[cseq]
            events.append(Refused(cseq, reason))
        self._wire_base = self._sent_upto
        self._next_send = self._sent_upto + 1
        self._command_timer_ms = None

    def _on_report(self, fields: "list[Any]", now_ms: int, events: "list[Any]") -> None:
        if self._expect is None:
            self.ignored += 1  # before resend(): it is sent again after the RESEND
            return
        seq = fields[1]
        if seq == self._expect:
            self._expect += 1
            self._gap_resend_ms = None
            events.append(Report(seq, fields[2], fields[3], fields[4], self.boot))
        elif seq < self._expect:
            if seq <= self._acked:
                self._queue_ack()  # stored already: acknowledge again (section 3.3)
        elif self._gap_resend_ms is None or now_ms - self._gap_resend_ms >= self.keepalive_ms:
            self._gap_resend_ms = now_ms  # one went missing: everything after the stored again
            self._control.append(self._about_boot([RESEND, self._acked]))

    def _on_line(self) -> int:
        count = 0
        for cseq in self._order:
            if cseq > self._sent_upto:
                break
            count += 1
        return count

    def _sendable_command(self) -> bool:
        for cseq in self._order:
            if cseq >= self._next_send:
                return cseq <= self._sent_upto or cseq < self._order[0] + self.window
        return False

    def _send_commands(self, now_ms: int, out: "list[bytes]") -> None:
        """Go-back-N within a span of ``window`` numbers from the oldest unanswered, so a
        duplicate the satellite gets is always among the answers it remembers."""
        on_line = self._on_line()
        timer = self._command_timer_ms
        if on_line and timer is not None and now_ms - timer >= self.keepalive_ms:
            self._next_send = self._order[0]  # no answer: go back and send them again
            self._command_timer_ms = now_ms
        for cseq in self._order:
            if cseq < self._next_send:
                continue
            if cseq > self._sent_upto:
                if cseq >= self._order[0] + self.window:
                    break
                self._sent_upto = cseq
            verb, args = self._commands[cseq]
            out.append(_payload([COMMAND, cseq - self._wire_base, verb] + args))  # noqa: RUF005
            self._next_send = cseq + 1
            if self._command_timer_ms is None:
                self._command_timer_ms = now_ms


# ---------------------------------------------------------------- the satellite's end


class SatelliteEnd:
    """The satellite's end of the line (sections 3.3 to 3.5).

    ``receive`` returns the commands to carry out as ``(cseq, verb, args)``;
    the app answers each with ``done`` or ``refuse`` (before it feeds more
    bytes).  ``report`` numbers a report and keeps it in the ring until the
    host acknowledges it.
    """

    def __init__(  # noqa: PLR0917 (as SAT_API.md has it)
        self,
        sat_id: str,
        firmware: str,
        boot: int,
        parts: "dict[str, str]",
        ring: int = 64,
        window: int = 8,
        keepalive_ms: int = 1000,
        mtu: int = 512,
    ) -> None:
        self.sat_id = sat_id
        self.firmware = firmware
        self.boot = boot & UINT32
        self.parts = parts
        self.ring = ring
        self.window = window
        self.keepalive_ms = keepalive_ms
        self.mtu = mtu
        self.session: int | None = None
        self.line_up = False
        self.lost = 0  # reports dropped from a full ring
        self.sent = 0  # reports sent the first time
        self.resent = 0  # reports sent again
        self.bad_frames = 0
        self.ignored = 0
        self._reader = FrameReader(mtu)
        self._ring: list[list[Any]] = []  # [seq, packed fields but age, made_ms], oldest first
        self._next_seq = 1
        self._next_send = 1  # the next report to put on the line (rewinds to resend)
        self._sent_upto = 0
        self._acked = 0
        self._report_timer_ms: int | None = None
        self._hello_due = True
        self._hello_ms: int | None = None
        self._told_first: int | None = None  # `first` of the last HELLO
        self._waiting_resend = True
        self._taken = 0  # the last cseq handed to the app in this session
        self._answers: dict[int, bytes] = {}  # cseq -> its answer's frame, the last few
        self._outbox: list[bytes] = []  # answers and logs to send, in order
        self._last_rx_ms: int | None = None
        self._last_tx_ms: int | None = None

    @property
    def noise(self) -> int:
        return self._reader.noise

    @property
    def first(self) -> int:
        """The oldest report held (``last + 1`` when none)."""
        return self._ring[0][0] if self._ring else self._next_seq

    @property
    def last(self) -> int:
        return self._next_seq - 1

    def report(self, part: str, value: "Any", now_ms: int) -> int:
        """Number a report and keep it until it is acknowledged; return its seq."""
        seq = self._next_seq
        body = pack(REPORT) + pack(seq) + pack(part) + pack(value)
        if len(body) + 10 > MAX_PAYLOAD:
            size = len(body) + 10
            raise ValueError(f"report of {part!r} is {size} bytes, a frame carries {MAX_PAYLOAD}")
        self._next_seq += 1
        self._ring.append([seq, body, now_ms])
        if len(self._ring) > self.ring:
            self._ring.pop(0)
            self.lost += 1
            self._next_send = max(self._next_send, self.first)
        return seq

    def done(self, cseq: int, result: "Any" = None) -> None:
        self._answer(cseq, [DONE, cseq] if result is None else [DONE, cseq, result])

    def refuse(self, cseq: int, reason: str) -> None:
        self._answer(cseq, [REFUSED, cseq, reason])

    def log(self, level: int, text: str) -> None:
        """Send a LOG line (not numbered, not resent: lost with the line)."""
        self._outbox.append(_payload([LOG, level, text]))
        if len(self._outbox) > 2 * self.window:
            self._outbox.pop(0)

    def set_parts(self, parts: "dict[str, str]") -> None:
        """The parts changed (after a cfg): the next HELLO carries them, and one is sent."""
        self.parts = parts
        self._hello_due = True

    def receive(self, data: "bytes | bytearray", now_ms: int) -> "list[tuple[int, str, list[Any]]]":
        """Take bytes read at *now_ms*; return the commands to carry out, in order."""
        commands: list[tuple[int, str, list[Any]]] = []
        for is_frame, chunk in self._reader.feed(data, now_ms):
            if not is_frame:
                continue  # a host's console bytes mean nothing to us
            self._last_rx_ms = now_ms
            try:
                fields = message(chunk)
            except ProtocolError:
                self.bad_frames += 1
                continue
            self._dispatch(fields, now_ms, commands)
        return commands

    def poll(self, now_ms: int) -> bytes:
        """The bytes to write now (possibly none)."""
        self._check_line(now_ms)
        out = []
        if self._hello_due or self._hello_retry_in(now_ms) == 0:
            out.append(self._hello())
            self._hello_due = False
            self._hello_ms = now_ms
        out.extend(self._outbox)
        self._outbox = []
        if self.line_up and not self._waiting_resend:
            self._send_reports(now_ms, out)
        if not out and self.line_up and now_ms - self._last_tx_ms >= self.keepalive_ms:  # type: ignore[operator]
            out.append(_payload([IDLE]))
        if out:
            self._last_tx_ms = now_ms
        return b"".join(out)

    def next_deadline(self, now_ms: int) -> int:
        """Milliseconds until ``poll`` (and ``receive(b"", now)``) should be called again."""
        self._check_line(now_ms)
        if self._hello_due or self._outbox:
            return 0
        times = []
        if not self.line_up or self._waiting_resend:
            times.append(self._hello_retry_in(now_ms))
        if self.line_up:
            times.append(self._last_rx_ms + DEAD_AFTER_KEEPALIVES * self.keepalive_ms - now_ms)  # type: ignore[operator]
            times.append(self._last_tx_ms + self.keepalive_ms - now_ms)  # type: ignore[operator]
            if not self._waiting_resend:
                if self._sendable_report():
                    return 0
                if self._report_timer_ms is not None:
                    times.append(self._report_timer_ms + self.keepalive_ms - now_ms)
        expiry = self._reader.expires_in(now_ms)
        if expiry is not None:
            times.append(expiry)
        return max(0, min(times))

    # -- inside

    def _check_line(self, now_ms: int) -> None:
        if self._last_tx_ms is None:
            self._last_tx_ms = now_ms
        if self.line_up and now_ms - self._last_rx_ms >= DEAD_AFTER_KEEPALIVES * self.keepalive_ms:  # type: ignore[operator]
            self.line_up = False  # stop reporting, HELLO every keepalive (section 3.5)

    def _hello_retry_in(self, now_ms: int) -> int:
        """Milliseconds until HELLO is sent again: every keepalive while the line is not up
        (no HOST_HELLO answered) or its RESEND has not come (it was lost)."""
        if self._hello_ms is None:
            return 0
        if self.line_up and not self._waiting_resend:
            return self.keepalive_ms
        return max(0, self._hello_ms + self.keepalive_ms - now_ms)

    def _hello(self) -> bytes:
        self._told_first = self.first
        self._waiting_resend = True
        return _payload([HELLO, VERSION, self.sat_id, self.firmware, self.boot, self.first,
                         self.last, self.mtu, self.parts, self.session])  # fmt: skip

    def _answer(self, cseq: int, fields: "list[Any]") -> None:
        if cseq > self._taken or cseq in self._answers:
            return  # not a command of this session that waits for its answer
        answer = _payload(fields)
        self._answers[cseq] = answer
        self._answers.pop(cseq - 2 * self.window, None)
        self._outbox.append(answer)

    def _dispatch(
        self, fields: "list[Any]", now_ms: int, commands: "list[tuple[int, str, list[Any]]]"
    ) -> None:
        kind = fields[0]
        if kind == HOST_HELLO:
            if fields[3] != self.session:  # a new session: its numbering starts again
                self.session = fields[3]
                self._taken = 0
                self._answers = {}
                self._outbox = []
            self.line_up = True
            self._hello_due = True
        elif kind in (ACK, RESEND) and len(fields) > 2 and fields[2] != self.boot:
            self.ignored += 1  # about the reports of a boot before this one
        elif kind == ACK:
            self._take_ack(fields[1], now_ms)
        elif kind == RESEND:
            self._take_ack(fields[1], now_ms)
            self._next_send = max(self._acked + 1, self.first)
            self._waiting_resend = False
            if self._acked + 1 < self.first and self.first != self._told_first:
                self._hello_due = True  # reports the host has not got are gone: tell it
        elif kind == COMMAND:
            self._on_command(fields, commands)
        elif kind != IDLE:
            self.ignored += 1

    def _take_ack(self, seq: int, now_ms: int) -> None:
        seq = min(seq, self._next_seq - 1)
        if seq <= self._acked:
            return
        self._acked = seq
        while self._ring and self._ring[0][0] <= seq:
            self._ring.pop(0)
        self._next_send = max(self._next_send, seq + 1)
        self._report_timer_ms = now_ms if self._on_line() else None

    def _on_command(self, fields: "list[Any]", commands: "list[Any]") -> None:
        if self.session is None:
            self.ignored += 1  # no HOST_HELLO yet in this boot: its host will resend
            return
        cseq = fields[1]
        if cseq == self._taken + 1:
            self._taken = cseq
            commands.append((cseq, fields[2], fields[3:]))
        elif cseq <= self._taken:  # a duplicate: its answer again, never the command
            answer = self._answers.get(cseq)
            if answer is not None:
                self._outbox.append(answer)
            elif cseq <= self._taken - 2 * self.window:
                self._outbox.append(_payload([DONE, cseq]))
            # else: still being carried out; its answer is on its way
        # else: one before it went missing; the host sends them again in order

    def _on_line(self) -> int:
        count = 0
        for entry in self._ring:
            if entry[0] > self._sent_upto:
                break
            count += 1
        return count

    def _sendable_report(self) -> bool:
        if not self._ring or self._ring[-1][0] < self._next_send:
            return False
        return self._next_send <= self._sent_upto or self._on_line() < self.window

    def _send_reports(self, now_ms: int, out: "list[bytes]") -> None:
        on_line = self._on_line()
        timer = self._report_timer_ms
        if on_line and timer is not None and now_ms - timer >= self.keepalive_ms:
            self._next_send = self._ring[0][0]  # no ACK: go back and send them again
            self._report_timer_ms = now_ms
        for seq, body, made_ms in self._ring:
            if seq < self._next_send:
                continue
            if seq > self._sent_upto:
                if on_line >= self.window:
                    break
                on_line += 1
                self._sent_upto = seq
                self.sent += 1
            else:
                self.resent += 1
            out.append(frame(b"\x95" + body + pack(max(0, now_ms - made_ms))))
            self._next_send = seq + 1
            if self._report_timer_ms is None:
                self._report_timer_ms = now_ms
