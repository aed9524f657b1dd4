"""Typed paths: which type a path has, and whether a value fits it.

Theory of operation
-------------------
A type is stored at ``:.moat.type`` followed by a path pattern
(``:.moat.type.home.+.temp``); its value is a `TypeDefinition`.  In a
pattern, the segment ``+`` stands for any one segment and ``#`` for one or
more; every other segment stands for itself.  When several patterns match a
path, the most specific wins, segment by segment from the left: a literal
segment before ``+``, ``+`` before ``#`` (and a ``#`` that takes fewer
segments before one that takes more).  So ``home.kitchen.temp`` beats
``home.+.temp``, which beats ``home.#``; the answer does not depend on the
order the types were stored in.

`TypeRegistry` is the sans-io index of the types a node knows: the node
feeds it every event of ``:.moat.type`` (`apply`, which keeps the winner by
``(hlc, origin)`` like the KV view, so feeding the same event twice or out
of order changes nothing), and asks it on every local write (`check`).  The
patterns live in a trie; the answer per path is cached until a type
changes, so a write of a typed path costs one dict look-up and the schema's
check, and a write when no type exists costs one truth test.

Paths under ``:.moat`` are never typed by these patterns (``#`` would
otherwise type the types themselves; their checks are
`moat_log.write_check`'s), nor the journal's own roll-ups under ``moat-log``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from .errors import SchemaError, TypeCheckError
from .event import Event, Op
from .path import Path, Segment
from .reserved import TYPES, is_moat_logs_own
from .schema import TypeDefinition

__all__ = ["ANY_SEGMENT", "ANY_SEGMENTS", "PathType", "TypeRegistry", "pattern_of"]

log = logging.getLogger("moat_log.types")

#: The pattern segment that matches any one segment.
ANY_SEGMENT: Final = "+"
#: The pattern segment that matches one or more segments.
ANY_SEGMENTS: Final = "#"
#: Answers the registry caches before it starts its cache afresh.
CACHE_SIZE: Final = 65536

_TYPES_DEPTH: Final = len(TYPES)


@dataclass(frozen=True, slots=True)
class PathType:
    """One known type: its pattern, its definition and the event that stored it."""

    pattern: Path
    definition: TypeDefinition
    event: Event

    def problem(self, value: object) -> str | None:
        return self.definition.schema.problem(value)

    def describe(self) -> str:
        return self.definition.schema.describe()


def pattern_of(path: Path) -> Path | None:
    """The pattern of a type stored at *path*, None if *path* is no type's path."""
    if len(path) <= _TYPES_DEPTH or not TYPES.is_prefix_of(path):
        return None
    return path[_TYPES_DEPTH:]


@dataclass
class _Node:
    children: dict[Segment, _Node] = field(default_factory=dict)
    type: PathType | None = None


@dataclass
class _Stored:
    """What the registry holds for one pattern: the winning event, and its type if it has one."""

    key: tuple[int, str]
    type: PathType | None


class TypeRegistry:
    """The types a node knows; `check` says whether a write fits."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._stored: dict[Path, _Stored] = {}
        self._root = _Node()
        self._cache: dict[Path, PathType | None] = {}
        #: Changes each time the known types change.
        self.version = 0
        #: Called (without arguments) each time the known types change.
        self.on_change: list[Callable[[], None]] = []
        for event in events:
            self.apply(event)

    def __len__(self) -> int:
        return sum(1 for stored in self._stored.values() if stored.type is not None)

    def types(self) -> Iterator[PathType]:
        """Every known type, in pattern order."""
        for pattern in sorted(self._stored, key=Path.sort_key):
            found = self._stored[pattern].type
            if found is not None:
                yield found

    def apply(self, event: Event) -> bool:
        """Take note of an event of ``:.moat.type``; whether the known types changed.

        An event that loses to the one already known for its pattern
        changes nothing.  A stored definition that does not parse (a peer
        with another version stored it, see docs/types.md) counts as no
        type, and is logged.
        """
        pattern = pattern_of(event.path)
        if pattern is None:
            return False
        key = (event.hlc, event.origin)
        known = self._stored.get(pattern)
        if known is not None and known.key >= key:
            return False
        self._stored[pattern] = _Stored(key, self._type(pattern, event))
        self._rebuild()
        return True

    @staticmethod
    def _type(pattern: Path, event: Event) -> PathType | None:
        if event.op is Op.DELETE:
            return None
        try:
            return PathType(pattern, TypeDefinition.from_value(event.value), event)
        except SchemaError as exc:
            log.warning("type %s (event %s) is not used: %s", pattern, event.id, exc)
            return None

    def _rebuild(self) -> None:
        root = _Node()
        for pattern, stored in self._stored.items():
            if stored.type is None:
                continue
            node = root
            for segment in pattern:
                node = node.children.setdefault(segment, _Node())
            node.type = stored.type
        self._root = root
        self._cache = {}
        self.version += 1
        for observer in list(self.on_change):
            observer()

    def type_of(self, path: Path) -> PathType | None:
        """The type of *path* (the most specific match), None if it has none."""
        try:
            return self._cache[path]
        except KeyError:
            pass
        found = None if is_moat_logs_own(path) else _match(self._root, path, 0)
        if len(self._cache) >= CACHE_SIZE:
            self._cache = {}
        self._cache[path] = found
        return found

    def check(self, path: Path, value: object) -> None:
        """Raise `TypeCheckError` unless *value* fits the type of *path* (if it has one)."""
        if not self._stored:
            return
        found = self.type_of(path)
        if found is None:
            return
        problem = found.definition.schema.problem(value)
        if problem is not None:
            raise TypeCheckError(path, found.pattern, found.describe(), problem)


def _match(node: _Node, path: Path, index: int) -> PathType | None:
    """The most specific type below *node* for ``path[index:]`` (see the module)."""
    if index == len(path):
        return node.type
    children = node.children
    if not children:
        return None
    segment = path[index]
    literal = children.get(segment)
    if literal is not None:
        found = _match(literal, path, index + 1)
        if found is not None:
            return found
    if segment != ANY_SEGMENT:
        one = children.get(ANY_SEGMENT)
        if one is not None:
            found = _match(one, path, index + 1)
            if found is not None:
                return found
    if segment != ANY_SEGMENTS:
        many = children.get(ANY_SEGMENTS)
        if many is not None:
            for end in range(index + 1, len(path) + 1):
                found = _match(many, path, end)
                if found is not None:
                    return found
    return None
