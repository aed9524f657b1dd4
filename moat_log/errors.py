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


class CausalityError(JournalError):
    """A new local event would claim to have seen less than its origin's previous event.

    An origin's ``deps`` never decrease from one of its events to the next
    (docs/event-format.md).  The journal refuses a local event that would
    break this; the journal is unchanged.
    """


class StorageFullError(JournalError):
    """The disk (or the address space for the memory map) is full.

    The transaction that hit the limit was rolled back; nothing that was
    acknowledged before is affected.
    """


class CompactionRunningError(JournalError):
    """Another compaction of the same journal runs now (the node's, or another command's)."""


class JournalCorruptError(JournalError):
    """Stored data does not unpack or an index disagrees with the events."""


class ConfigError(InvalidInputError):
    """A configuration file or setting is invalid."""


class SyncLinkError(MoatLogError):
    """A one-shot sync link (``pull``, ``ship``) could not connect or ended before its end."""


class NodeError(MoatLogError):
    """An error a node reports for one request; the connection goes on.

    *error_type* is the reply's wire type (``ErrorType`` in
    `moat_log.protocol`), *message* its English text.  The subclasses are the
    kinds a script catches; the other types (``cancelled``, ``internal``, a
    type this version does not know) raise `NodeError` itself.  Only
    `BadRequestError` is also a `ValueError`: "the node is stopping" or
    "permission denied" is no bad value.
    """

    def __init__(self, error_type: str, message: str, *, request_id: int | None = None) -> None:
        super().__init__(message)
        #: The wire error type, e.g. ``"permission-denied"``.
        self.error_type = error_type
        #: The message as sent on the wire.
        self.message = message
        #: The id of the request, or None if unknown.
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


class AuthenticationError(NodeError):
    """The node wants a login (``auth-required``) or refused one (``auth-failed``)."""


class PermissionDeniedError(NodeError):
    """The logged-in user may not read or write a path it named (``permission-denied``)."""


class NotFoundError(NodeError):
    """The node does not hold what the request named (``not-found``)."""


class StreamOverflowError(NodeError):
    """A watch or followed log fell too far behind and was ended (``overflow``).

    Read faster (or buffer less), then start it again.
    """


class NodeStoppingError(NodeError):
    """The node is shutting down (``shutdown``); try again once it is back."""


class NodeBusyError(NodeError):
    """The node serves as much as it may (``busy``); try again later."""


class BadRequestError(NodeError, ValueError):
    """The node refused the request's arguments.

    ``bad-request``, ``unknown-op``, ``duplicate-id``, ``invalid-value`` or
    ``too-large``: the request itself was wrong.
    """


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


class AdapterError(MoatLogError):
    """A bus adapter (`moat_log.adapters`) cannot do its work."""


class BusUnavailableError(AdapterError):
    """The bus (a broker, a gateway, a serial line) cannot be reached or went away.

    The adapter's supervisor reconnects after a back-off; the node goes on.
    """


class ModbusProtocolError(BusUnavailableError):
    """A Modbus TCP peer sent bytes no Modbus peer sends (a bad MBAP header, a garbled PDU).

    The connection is dropped: nothing after such bytes can be trusted to
    be in step.  A device that sends them is treated as gone (the client
    reconnects); a client that sends them to the server loses only its own
    connection.
    """


class BusDataError(AdapterError, InvalidInputError):
    """Data from a bus (or a value for it) does not decode, or is out of range.

    It is counted and logged by the adapter, never stored as a valid value.
    """


class SatelliteMismatchError(AdapterError):
    """The serial satellite on a port is not the one configured, or refused its config.

    The connection ends (status shows why) and is tried again after a
    back-off: someone may plug in the right board or fix the config.
    """
