"""A local state change on its way into the journal."""

from __future__ import annotations

from dataclasses import dataclass

from moat_log.errors import InvalidEventError
from moat_log.event import MAX_SOURCE_CHARS, Op, Value, normalize_value
from moat_log.ids import MAX_U64, EventId
from moat_log.path import Path


@dataclass(frozen=True, slots=True)
class Change:
    """What a local writer wants recorded; the journal adds origin, seq, hlc and deps.

    *at* asks for a specific event time (ns since the epoch), e.g. when
    ingesting recorded history.  It must be later than everything the journal
    has issued or seen, or the append fails with `ClockError`: an origin's
    clock never runs backwards.  Without it the journal uses the current time.
    """

    path: Path
    value: Value = None
    op: Op = Op.SET
    source: str = ""
    cause: EventId | None = None
    at: int | None = None

    def __post_init__(self) -> None:
        if type(self.path) is not Path:
            object.__setattr__(self, "path", Path(self.path))
        if type(self.op) is not Op:
            object.__setattr__(self, "op", Op(self.op))
        if self.op is Op.DELETE and self.value is not None:
            raise InvalidEventError("a delete carries no value")
        value = normalize_value(self.value)
        if value is not self.value:
            object.__setattr__(self, "value", value)
        check_source(self.source)
        if self.cause is not None and type(self.cause) is not EventId:
            raise InvalidEventError(f"cause must be an EventId, not {self.cause!r}")
        if self.at is not None and (type(self.at) is not int or not 0 < self.at <= MAX_U64):
            raise InvalidEventError(f"invalid event time {self.at!r}: ns since the epoch")

    @classmethod
    def delete(cls, path: Path, *, source: str = "", cause: EventId | None = None) -> Change:
        return cls(path, None, Op.DELETE, source, cause)

    @classmethod
    def trusted(
        cls, path: Path, value: Value, op: Op, source: str, cause: EventId | None
    ) -> Change:
        """Build a change from fields that are already valid, skipping the checks.

        For a value read back from the journal (validated when it was
        written, see `Event.unpack_trusted`); the caller checks anything else
        that came from outside, e.g. the source with `check_source`.
        """
        change = object.__new__(cls)
        _set(change, "path", path)
        _set(change, "value", value)
        _set(change, "op", op)
        _set(change, "source", source)
        _set(change, "cause", cause)
        _set(change, "at", None)
        return change


_set = object.__setattr__  # Change is frozen


def check_source(source: object) -> None:
    """Raise `InvalidEventError` unless *source* is a valid event source."""
    if type(source) is not str or len(source) > MAX_SOURCE_CHARS:
        raise InvalidEventError(f"source must be a str of at most {MAX_SOURCE_CHARS} chars")
