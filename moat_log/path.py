"""Paths: where a value lives, e.g. ``("home", "kitchen", "light")``.

Theory of operation
-------------------
A `Path` is a tuple of segments, each a `str` or an `int` (never a `bool`),
validated once in the constructor; slicing a valid path cannot make it invalid,
so slices skip validation.  A path has two external forms (docs/paths.md):

* text, for people: ``sensor:3.temp``.  Strings are joined by ``.``; ``:``
  introduces an escape (``::`` ``:.`` ``:_``), an int segment (``:3``), the
  empty string (``:e``) or, alone, the root.  Text without ``:`` is simply
  split on ``.`` (the fast path).  Output is canonical: ``parse(str(p)) == p``.
* key, for LMDB: each segment is a tag byte and a self-delimiting body (ints
  as 8-byte offset big-endian, strings as NUL-escaped UTF-8 with a ``00 00``
  terminator).  No segment encoding is a prefix of another, so byte order of
  keys is segment-wise order (ints before strings, ints numerically, strings
  by code point, a path before its extensions), and ``a.key`` is a byte prefix
  of ``b.key`` exactly when ``a`` is a prefix of ``b``.  Tags 0x00 and 0x01 are
  never used: the journal appends 0x00 to a path key to sort a path's own
  entries before its children's.

Nothing is cached: a path is a plain tuple (``__slots__ = ()``) and `key`
is recomputed on each access with one tight loop.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from typing import Self, SupportsIndex, TypeAlias, overload

from .errors import PathSyntaxError

__all__ = ["MAX_KEY_BYTES", "MAX_SEGMENTS", "Path", "Segment", "segment_end"]

#: One path segment.
Segment: TypeAlias = str | int

#: The most segments a path may have.
MAX_SEGMENTS = 64
#: The longest binary key (`Path.key`) a path may have.
MAX_KEY_BYTES = 400  # LMDB keys hold 511 bytes; the paths index adds up to 73 (hlc, origin)

_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_INT_OFFSET = 2**63

_TAG_INT = 0x02
_TAG_STR = 0x03
_INT_SEG = struct.Struct(">BQ")  # tag + (value + 2**63), 9 bytes
_STR_END = b"\x00\x00"

_ESCAPES = {":": ":", ".": ".", "_": " "}
_PLAIN_RUN = re.compile(r"[^.:]+")
_INT_TOKEN = re.compile(r"[^.:]*")
_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*")


def _segment_error(index: int, seg: object, why: str) -> PathSyntaxError:
    return PathSyntaxError(f"path segment {index} ({seg!r}) {why}")


def _checked(segs: tuple[object, ...]) -> None:
    """Raise `PathSyntaxError` unless *segs* are valid segments of one path."""
    if len(segs) > MAX_SEGMENTS:
        raise PathSyntaxError(f"path has {len(segs)} segments; at most {MAX_SEGMENTS} are allowed")
    size = 0
    for i, seg in enumerate(segs):
        if type(seg) is str:
            if seg.isascii():  # O(1) in CPython, and ASCII is always valid UTF-8
                size += len(seg) + seg.count("\x00") + 3
                continue
            try:
                raw = seg.encode()
            except UnicodeEncodeError as exc:
                why = f"is not valid Unicode: lone surrogate at index {exc.start}"
                raise _segment_error(i, seg, why) from None
            size += len(raw) + raw.count(0) + 3
        elif type(seg) is int:
            if not _INT_MIN <= seg <= _INT_MAX:
                raise _segment_error(i, seg, "does not fit in signed 64 bits (-2**63 .. 2**63-1)")
            size += 9
        elif isinstance(seg, bool):
            raise _segment_error(i, seg, "is a bool: segments must be str or int")
        else:
            why = f"has type {type(seg).__name__}: segments must be str or int"
            raise _segment_error(i, seg, why)
    if size > MAX_KEY_BYTES:
        raise PathSyntaxError(
            f"path key would be {size} bytes; at most {MAX_KEY_BYTES} are allowed "
            "(use fewer or shorter segments)"
        )


def _escape(seg: str) -> str:
    if ":" in seg or "." in seg or " " in seg:
        return seg.replace(":", "::").replace(".", ":.").replace(" ", ":_")
    return seg


class Path(tuple[Segment, ...]):
    """An immutable, validated sequence of `str` and `int` segments.

    Equality and hashing are those of the tuple.  Tuple ``<`` fails when str
    and int segments meet at the same position; sort with
    ``key=Path.sort_key``, which orders exactly like the LMDB index.
    """

    __slots__ = ()

    def __new__(cls, segments: Iterable[Segment] = ()) -> Self:
        if type(segments) is cls:
            return segments
        if isinstance(segments, str | bytes):
            raise TypeError(
                f"Path({segments!r}) would split a string into characters: "
                "use Path.parse(text) for the text form, or Path([text]) for one segment"
            )
        segs = tuple(segments)
        _checked(segs)
        return tuple.__new__(cls, segs)

    @classmethod
    def _trusted(cls, segs: Iterable[Segment]) -> Self:
        """Build a path from segments already known to be valid."""
        return tuple.__new__(cls, segs)

    # --- text form -------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse the text form (``home.kitchen``, ``sensor:3.temp``, ``:``).

        Raise `PathSyntaxError`, naming the position, if *text* is not a path.
        """
        if ":" not in text:
            if not text:
                raise PathSyntaxError("empty path text: use ':' for the root path")
            parts = text.split(".")
            if "" in parts:
                raise _empty_segment(text, _empty_segment_pos(text))
            return cls(parts)
        if text == ":":
            return tuple.__new__(cls)
        return cls(_Parser(text).segments())

    def __str__(self) -> str:
        if not self:
            return ":"
        out: list[str] = []
        for seg in self:
            if not isinstance(seg, str):
                out.append(f":{seg}")
            elif not seg:
                out.append(":e")
            else:
                if out:
                    out.append(".")
                out.append(_escape(seg))
        return "".join(out)

    def __repr__(self) -> str:
        return f"Path({str(self)!r})"

    # --- binary key ------------------------------------------------------

    @property
    def key(self) -> bytes:
        """The order-preserving binary encoding (docs/paths.md, "Binary key")."""
        out = bytearray()
        for seg in self:
            if isinstance(seg, str):
                out.append(_TAG_STR)
                out += seg.encode().replace(b"\x00", b"\x00\xff")
                out += _STR_END
            else:
                out += _INT_SEG.pack(_TAG_INT, seg + _INT_OFFSET)
        return bytes(out)

    @staticmethod
    def sort_key(path: Path) -> bytes:
        """Key function ordering paths like the journal index: ``sorted(ps, key=Path.sort_key)``."""
        return path.key

    @classmethod
    def from_key(cls, key: bytes | bytearray | memoryview) -> Self:
        """Decode `key`; raise `PathSyntaxError` if *key* is not one."""
        data = bytes(key)
        if len(data) > MAX_KEY_BYTES:
            raise PathSyntaxError(
                f"path key is {len(data)} bytes; at most {MAX_KEY_BYTES} are allowed"
            )
        segs: list[Segment] = []
        pos, end = 0, len(data)
        while pos < end:
            if len(segs) == MAX_SEGMENTS:
                raise PathSyntaxError(
                    f"path key has more than {MAX_SEGMENTS} segments at byte {pos}"
                )
            tag = data[pos]
            if tag == _TAG_INT:
                if pos + 9 > end:
                    raise PathSyntaxError(f"path key: truncated int segment at byte {pos}")
                segs.append(int.from_bytes(data[pos + 1 : pos + 9], "big") - _INT_OFFSET)
                pos += 9
            elif tag == _TAG_STR:
                seg, pos = _decode_str(data, pos)
                segs.append(seg)
            else:
                raise PathSyntaxError(
                    f"path key: unknown segment tag 0x{tag:02x} at byte {pos} "
                    "(expected 0x02 int or 0x03 str)"
                )
        return cls._trusted(segs)

    # --- structure -------------------------------------------------------

    def is_prefix_of(self, other: Path) -> bool:
        """True if *other* starts with all of this path's segments (or equals it)."""
        n = len(self)
        return n <= len(other) and tuple.__getitem__(other, slice(n)) == self

    @property
    def parent(self) -> Self:
        """This path without its last segment; `ValueError` for the root."""
        if not self:
            raise ValueError("the root path ':' has no parent")
        return self._trusted(tuple.__getitem__(self, slice(-1)))

    def __truediv__(self, seg: Segment) -> Self:
        return type(self)((*self, seg))

    def __add__(self, other: tuple[object, ...]) -> Self:
        if not isinstance(other, tuple):
            return NotImplemented
        return type(self)((*self, *other))  # type: ignore[arg-type]

    def __radd__(self, other: tuple[object, ...]) -> Self:
        if not isinstance(other, tuple):
            return NotImplemented
        return type(self)((*other, *self))  # type: ignore[arg-type]

    @overload
    def __getitem__(self, index: SupportsIndex) -> Segment: ...
    @overload
    def __getitem__(self, index: slice) -> Self: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Segment | Self:
        if isinstance(index, slice):
            return self._trusted(tuple.__getitem__(self, index))
        return tuple.__getitem__(self, index)


def segment_end(key: bytes, pos: int) -> int:
    """The end of the encoded segment whose tag is at *pos* of a path key.

    ``key[:segment_end(key, pos)]`` is the key of the path up to and including
    that segment, and every key of that path's subtree starts with it (no
    segment's encoding is a prefix of another's).  Raise `PathSyntaxError` if
    no well-formed segment starts at *pos*.
    """
    tag = key[pos] if pos < len(key) else None
    if tag == _TAG_INT and pos + 9 <= len(key):
        return pos + 9
    if tag == _TAG_STR:
        stop = key.find(_STR_END, pos + 1)  # the escaped body has no 00 00
        if stop >= 0:
            return stop + 2
    raise PathSyntaxError(f"path key: no complete segment at byte {pos} of {key[:40].hex()}")


def _decode_str(data: bytes, pos: int) -> tuple[str, int]:
    """Decode the str segment whose tag is at *pos*; return it and the next position."""
    # An escaped body never contains 00 00 (every 00 is followed by FF), so the
    # first 00 00 after the tag is the terminator.
    stop = data.find(_STR_END, pos + 1)
    if stop < 0:
        raise PathSyntaxError(f"path key: str segment at byte {pos} has no 00 00 terminator")
    body = data[pos + 1 : stop]
    if 0 in body:
        if 0 in body.replace(b"\x00\xff", b""):
            raise PathSyntaxError(
                f"path key: bad escape in str segment at byte {pos} (0x00 must be followed by 0xff)"
            )
        body = body.replace(b"\x00\xff", b"\x00")
    try:
        return body.decode(), stop + 2
    except UnicodeDecodeError as exc:
        raise PathSyntaxError(
            f"path key: str segment at byte {pos} is not valid UTF-8 ({exc.reason})"
        ) from None


def _empty_segment_pos(text: str) -> int:
    if text.startswith("."):
        return 0
    pos = text.find("..")
    return pos + 1 if pos >= 0 else len(text) - 1


def _empty_segment(text: str, pos: int) -> PathSyntaxError:
    doubled = pos == 0 or text[pos - 1] == "."
    where = "empty segment" if doubled or pos < len(text) - 1 else "trailing '.'"
    return PathSyntaxError(
        f"path {text!r}, position {pos}: {where} (write ':e' for an empty string segment)"
    )


class _Parser:
    """Scanner for text containing ``:`` (the general case of `Path.parse`).

    State: ``need`` is True where a segment must start (at the beginning and
    after ``.``); ``buf`` collects the pieces of the string segment being read;
    ``closed`` is True right after an int or ``:e``, where only ``.``, another
    ``:``-segment or the end may follow.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.segs: list[Segment] = []
        self.buf: list[str] | None = None
        self.need = True
        self.closed = False

    def error(self, pos: int, why: str) -> PathSyntaxError:
        return PathSyntaxError(f"path {self.text!r}, position {pos}: {why}")

    def segments(self) -> list[Segment]:
        text, pos, end = self.text, 0, len(self.text)
        while pos < end:
            char = text[pos]
            if char == ".":
                if self.need:
                    raise _empty_segment(text, pos)
                self.end_string()
                self.need, self.closed = True, False
                pos += 1
            elif char == ":":
                pos = self.colon(pos)
            else:
                match = _PLAIN_RUN.match(text, pos)
                assert match is not None
                self.add_string(pos, match.group())
                pos = match.end()
        if self.need:
            raise _empty_segment(text, end - 1)
        self.end_string()
        return self.segs

    def colon(self, pos: int) -> int:
        """Handle the ``:`` at *pos*; return the position after its token."""
        text = self.text
        if pos + 1 == len(text):
            raise self.error(pos, "dangling ':'")
        char = text[pos + 1]
        if char in _ESCAPES:
            self.add_string(pos, _ESCAPES[char])
            return pos + 2
        if char == "e":
            self.add_closed("")
            return pos + 2
        if char == "-" or "0" <= char <= "9":
            return self.integer(pos)
        raise self.error(
            pos,
            f"unknown escape ':{char}' (use '::', ':.', ':_', ':e' or ':' with an integer)",
        )

    def integer(self, pos: int) -> int:
        match = _INT_TOKEN.match(self.text, pos + 1)
        assert match is not None
        token = match.group()
        if _CANONICAL_INT.fullmatch(token) is None:
            if token.removeprefix("-").isdecimal() and token.isascii():
                why = f"integer ':{token}' is not canonical (no leading zeros, no '-0')"
            else:
                why = f"malformed integer ':{token}'"
            raise self.error(pos, why)
        value = int(token)
        if not _INT_MIN <= value <= _INT_MAX:
            raise self.error(pos, f"integer ':{token}' does not fit in signed 64 bits")
        self.add_closed(value)
        return match.end()

    def add_string(self, pos: int, piece: str) -> None:
        if self.closed:
            raise self.error(pos, "a string segment after an int or ':e' must start with '.'")
        if self.buf is None:
            self.buf = []
        self.buf.append(piece)
        self.need = False

    def add_closed(self, seg: Segment) -> None:
        self.end_string()
        self.segs.append(seg)
        self.need, self.closed = False, True

    def end_string(self) -> None:
        if self.buf is not None:
            self.segs.append("".join(self.buf))
            self.buf = None


#: The root path: no segments.  Written ``:`` in the text form.
ROOT = Path()
