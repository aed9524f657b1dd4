"""The one error hierarchy of moat-log.

Every error raised on purpose by moat-log derives from `MoatLogError`, and its
message says what was wrong and, where it helps, what to do about it.  Errors
caused by bad input also derive from `ValueError`, so generic code that guards
against bad arguments keeps working.

Driver errors (LMDB, msgpack, zstandard) are translated at the boundary where
they happen and chained (`raise ... from exc`), never leaked.
"""

from __future__ import annotations


class MoatLogError(Exception):
    """Base class of every error moat-log raises on purpose."""


class InvalidInputError(MoatLogError, ValueError):
    """Input from outside (a file, a peer, a command line) was malformed."""


class PathSyntaxError(InvalidInputError):
    """A path's text form or one of its segments is not valid."""


class TimeSyntaxError(InvalidInputError):
    """A time specification (ISO 8601, relative, NODE:SEQ) could not be parsed."""


class InvalidEventError(InvalidInputError):
    """An event (or its packed wire form) violates the event schema."""


class ExportFormatError(InvalidInputError):
    """A file is not a moat-log export, or it is truncated or corrupt."""


class JournalError(MoatLogError):
    """Something about the journal itself went wrong."""


class JournalNotFoundError(JournalError):
    """There is no journal in the given data directory."""


class JournalClosedError(JournalError):
    """The journal (or its writer) was closed while an operation needed it."""


class IntegrityError(JournalError):
    """An event conflicts with what the journal already holds.

    Raised when a different event arrives under an id ``(origin, seq)`` that is
    already stored.  The journal is unchanged.
    """


class ClockError(JournalError, ValueError):
    """A requested event time is not after the journal's clock."""


class StorageFullError(JournalError):
    """The disk (or the address space for the memory map) is full.

    The transaction that hit the limit was rolled back; nothing that was
    acknowledged before is affected.
    """


class JournalCorruptError(JournalError):
    """Stored data does not unpack or an index disagrees with the events."""


class ConfigError(InvalidInputError):
    """A configuration file or setting is invalid."""


class SyncLinkError(MoatLogError):
    """A one-shot sync link (``pull``, ``ship``) could not connect or ended before its end."""


class FeedOverflowError(JournalError):
    """A journal feed subscriber fell too far behind and its subscription ended.

    Everything up to `position` was delivered; subscribe again with
    ``after=position`` to go on from there (reading the rest from the journal).
    """

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (str(self), self.position)
