"""The checks of a local write before it reaches the journal: reserved paths and types.

Every local writer (a client's ``set``, an adapter's reading, a script's
write, ``moat-log ingest``, an offline ``moat-log set``) asks `WriteCheck`
before the change is queued; the refusal is a `MoatLogError` whose message
says what was wrong:

* a value that does not fit its path's type: `TypeCheckError`
  (`moat_log.path_types`);
* below ``:.moat`` (`moat_log.reserved`): a type whose definition is
  wrong (`SchemaError`), a script that does not compile or whose run entry
  is wrong (`ScriptEntryError`), or any other path (`ReservedPathError`).

Events from peers (sync, ``moat-log import``) are not checked here: their
origin accepted them, and a partition may have had other types; ``moat-log
type check`` reports those that do not fit (docs/types.md, "Events from
peers").  Deletes are never refused by a type: a tombstone is no value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .errors import ReservedPathError, ScriptEntryError, TypeCheckError
from .event import Event, Op, Value
from .path import Path
from .path_types import CACHE_SIZE, PathType, TypeRegistry, pattern_of
from .reserved import ERRORS, SCRIPTS, is_reserved
from .schema import TypeDefinition
from .scripts.entry import ScriptEntry, script_name

__all__ = ["WriteCheck"]

#: What `WriteCheck` caches for a path below ``:.moat``.
_RESERVED: Final = object()
_UNKNOWN: Final = object()


class WriteCheck:
    """The types a writer knows, and the rules of the reserved paths.

    What a path is (untyped, typed, reserved) is cached per path until the
    types change: the check of a write is one dict look-up, and for a typed
    path the schema's check.  (A `Path` is a tuple subclass whose indexing
    runs Python code; the look-up avoids even that.)
    """

    def __init__(self, types: TypeRegistry | None = None) -> None:
        self.types = types if types is not None else TypeRegistry()
        self._kinds: dict[Path, object] = {}
        self._version = self.types.version

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> WriteCheck:
        """A check that knows the types among *events* (a KV view's ``:.moat.type`` subtree)."""
        return cls(TypeRegistry(events))

    def check(self, path: Path, op: Op, value: Value, user: str | None = None) -> None:
        """Raise unless a local write of *value* (or a delete) to *path* may be stored.

        *user* is the logged-in user who writes (None: a local writer).
        """
        types = self.types
        if types.version != self._version:
            self._kinds = {}
            self._version = types.version
        kind = self._kinds.get(path, _UNKNOWN)
        if kind is _UNKNOWN:
            kind = _RESERVED if is_reserved(path) else types.type_of(path)
            if len(self._kinds) >= CACHE_SIZE:
                self._kinds = {}
            self._kinds[path] = kind
        if kind is None:
            return
        if kind is _RESERVED:
            self._check_reserved(path, op, value, user)
        elif op is Op.SET:
            assert isinstance(kind, PathType)
            problem = kind.definition.schema.problem(value)
            if problem is not None:
                raise TypeCheckError(path, kind.pattern, kind.describe(), problem)

    def _check_reserved(self, path: Path, op: Op, value: Value, user: str | None) -> None:
        if pattern_of(path) is not None:
            if op is Op.SET:
                TypeDefinition.from_value(value)
            return
        name = script_name(path)
        if name is not None:
            if op is Op.SET:
                _check_script(ScriptEntry.from_value(name, value), user)
            return
        if ERRORS.is_prefix_of(path) and len(path) > len(ERRORS):
            return  # error records: written by nodes, cleared by people
        if SCRIPTS.is_prefix_of(path) and len(path) > len(SCRIPTS):
            raise ScriptEntryError(
                f"{path}: a script lives at {SCRIPTS}.NAME, NAME one segment of 1-64 letters, "
                "digits, '_' or '-'"
            )
        raise ReservedPathError(
            f"{path}: paths below :.moat are moat-log's own; use :.moat.type.PATTERN for a "
            f"type, {SCRIPTS}.NAME for a script (docs/types.md, docs/scripting.md)"
        )


def _check_script(entry: ScriptEntry, user: str | None) -> None:
    """A logged-in user may store only scripts that run with that user's own rights."""
    if user is None or entry.run.user == user:
        return
    raise ScriptEntryError(
        f"script {entry.name}: a script stored by {user} runs as {user}: "
        f"set run.user to {user!r}"
        + ("" if entry.run.user is None else f", not {entry.run.user!r}")
    )
