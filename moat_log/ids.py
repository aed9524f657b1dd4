"""Node names and event ids.

An event's global id is ``(origin, seq)``: the name of the node that created it
and its 1-based, gapless sequence number on that node.  Its text form, used on
the command line and in forensic output, is ``NODE:SEQ`` (``pi1:42``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import InvalidInputError

#: A node name: 1-64 characters, letters, digits, ``_``, ``.`` and ``-``,
#: starting with a letter or digit.  Host names fit; the name never needs
#: escaping in keys, file names or the ``NODE:SEQ`` form.
NODE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

#: The largest sequence number (and hlc) a journal stores: unsigned 64 bit.
MAX_U64 = 2**64 - 1


#: Names that passed the check.  An installation has a handful of nodes, and
#: every event names one or more of them; the cache is bounded so a flood of
#: invented names cannot grow it without limit.
_VALID_NAMES: set[str] = set()
_MAX_CACHED_NAMES = 4096


def is_node_name(name: object) -> bool:
    """True if *name* is a valid node name (fast for names seen before)."""
    if type(name) is not str:
        return False
    if name in _VALID_NAMES:
        return True
    if NODE_NAME_RE.fullmatch(name) is None:
        return False
    if len(_VALID_NAMES) < _MAX_CACHED_NAMES:
        _VALID_NAMES.add(name)
    return True


def check_node_name(name: object) -> str:
    """Return *name* if it is a valid node name, else raise `InvalidInputError`."""
    if not is_node_name(name):
        raise InvalidInputError(
            f"invalid node name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name  # type: ignore[return-value]


class EventId(NamedTuple):
    """The global id of an event: ``(origin, seq)``."""

    origin: str
    seq: int

    def __str__(self) -> str:
        return f"{self.origin}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> EventId:
        """Parse ``NODE:SEQ``; raise `InvalidInputError` if it is not one."""
        origin, sep, seq = text.rpartition(":")
        if not sep or not seq.isdigit() or seq != str(int(seq)):
            raise InvalidInputError(f"{text!r} is not an event id of the form NODE:SEQ")
        return cls.checked(origin, int(seq))

    @classmethod
    def checked(cls, origin: object, seq: object) -> EventId:
        """Build an id from untrusted parts, validating both."""
        check_node_name(origin)
        if type(seq) is not int or not 1 <= seq <= MAX_U64:
            raise InvalidInputError(f"invalid sequence number {seq!r}: must be 1 .. 2**64-1")
        return cls(origin, seq)  # type: ignore[arg-type]
