"""Key layouts of the journal's LMDB databases (see docs/journal-layout.md).

All integers are unsigned 64-bit big-endian, so byte order equals numeric
order and LMDB's default key comparison sorts them correctly.

=========  ==========================================  ===================
database   key                                         value
=========  ==========================================  ===================
events     position                                    packed event
ids        origin, 0x00, seq                           position
paths      path key, 0x00, hlc, origin                 position
times      hlc, origin                                 position
meta       b"format" / b"node" / b"hlc" /              see `MetaKey`
           b"ranges:" + origin / b"view:" + name /
           b"checkpoint:" + name / b"gone:" + origin /
           b"peer:" + name
=========  ==========================================  ===================

Origins are node names (ASCII without NUL, see `moat_log.ids`), so the NUL
after the origin in ``ids`` keys sorts one origin's entries together and in
seq order.  A path key never contains a segment tag below 0x02, so the 0x00
after it sorts a path's own entries before those of its children.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from moat_log.path import Path

_U64 = struct.Struct(">Q")
pack_u64 = _U64.pack


#: What LMDB returns: bytes (we never ask for buffers), typed as either.
BytesLike = bytes | memoryview


def unpack_u64(data: BytesLike | None) -> int:
    """Decode a u64; None (an absent key) is an error of the caller."""
    assert data is not None
    value: int = _U64.unpack(data)[0]
    return value


def id_key(origin: str, seq: int) -> bytes:
    return origin.encode() + b"\x00" + pack_u64(seq)


def id_prefix(origin: str) -> bytes:
    return origin.encode() + b"\x00"


def split_id_key(key: bytes) -> tuple[str, int]:
    return key[:-9].decode(), unpack_u64(key[-8:])


#: Most installations write the same few thousand paths over and over.
cached_path_key = lru_cache(maxsize=16384)(Path.sort_key)


def path_key(path: Path, hlc: int, origin: str) -> bytes:
    return cached_path_key(path) + b"\x00" + pack_u64(hlc) + origin.encode()


def path_prefix(path: Path, *, subtree: bool) -> bytes:
    """The key prefix of a path's own entries, or of its whole subtree."""
    return path.key if subtree else path.key + b"\x00"


def time_key(hlc: int, origin: str) -> bytes:
    return pack_u64(hlc) + origin.encode()


class MetaKey:
    FORMAT = b"format"  # u64 journal format version
    NODE = b"node"  # utf-8 node name of this journal's owner
    HLC = b"hlc"  # u64: the greatest hlc issued or seen
    RANGES = b"ranges:"  # + origin -> msgpack RangeSet of held seqs
    VIEW = b"view:"  # + view name -> msgpack [version, checkpoint position]
    CHECKPOINT = b"checkpoint:"  # + consumer name -> u64 position it has handled
    GONE = b"gone:"  # + origin -> msgpack RangeSet of seqs removed by compaction
    PEER = b"peer:"  # + node name -> msgpack map: what that peer stated holding, when


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with *prefix*.

    None means "no upper bound" (the prefix is empty or all 0xFF).
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
