"""The schema language of typed paths: what a value of a type may be.

Theory of operation
-------------------
A schema is a small msgpack map (docs/types.md has the reference)::

    {"type": "number", "min": 5, "max": 35, "unit": "°C"}
    {"type": "map", "keys": {"on": "bool", "dim": {"type": "int", "min": 0, "max": 100}},
     "optional": ["dim"]}

or just the name of a kind without options (``"bool"``).  `compile_schema`
checks it once and turns it into a tree of small checker objects; a
checker's `Schema.problem` answers None for a value that fits, else a short
English reason ("'warm' is not a number").  Nothing here does I/O, and a
check of a scalar is one type test and at most two comparisons, because
every local write of a typed path pays for it.

A **type definition** (`TypeDefinition`) is a schema with good and bad
examples, as MoaT-KV had them: every good example must fit and every bad one
must not, checked when the definition is parsed, so a type that does not
say what its author meant is refused before it is stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .errors import SchemaError

__all__ = ["KINDS", "Schema", "TypeDefinition", "compile_schema", "show_value"]

#: The kinds a schema's ``type`` may name.
KINDS: Final = ("any", "bool", "int", "number", "string", "bytes", "enum", "list", "map")

_COMMON_KEYS: Final = frozenset({"type", "nullable", "doc"})
_KIND_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "any": frozenset(),
    "bool": frozenset(),
    "int": frozenset({"min", "max", "unit"}),
    "number": frozenset({"min", "max", "unit"}),
    "string": frozenset({"regex", "min_length", "max_length"}),
    "bytes": frozenset({"min_length", "max_length"}),
    "enum": frozenset({"values"}),
    "list": frozenset({"items", "min_length", "max_length"}),
    "map": frozenset({"keys", "optional", "values"}),
}


def show_value(value: object, limit: int = 60) -> str:
    """*value* for a message, cut to *limit* characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Schema:
    """A compiled schema: `problem` says whether a value fits."""

    __slots__ = ("nullable", "source")

    def __init__(self, source: Any, nullable: bool) -> None:
        #: The schema as it was written (a str or a map).
        self.source = source
        self.nullable = nullable

    def problem(self, value: object) -> str | None:
        """None if *value* fits, else what is wrong with it."""
        if value is None and self.nullable:
            return None
        return self._problem(value)

    def _problem(self, value: Any) -> str | None:
        raise NotImplementedError

    def describe(self) -> str:
        """A short summary for messages: ``number 5..35 °C``."""
        return self._describe() + (" or null" if self.nullable else "")

    def _describe(self) -> str:
        raise NotImplementedError


class _Any(Schema):
    __slots__ = ()

    def _problem(self, value: Any) -> str | None:
        return None

    def _describe(self) -> str:
        return "any value"


class _Bool(Schema):
    __slots__ = ()

    def _problem(self, value: Any) -> str | None:
        return None if type(value) is bool else f"{show_value(value)} is not true or false"

    def _describe(self) -> str:
        return "bool"


class _Number(Schema):
    __slots__ = ("high", "kind", "low", "unit")

    def __init__(self, source: Any, nullable: bool, kind: str, options: Mapping[str, Any]) -> None:
        super().__init__(source, nullable)
        self.kind = kind
        self.low: float | None = _bound(options, "min", kind)
        self.high: float | None = _bound(options, "max", kind)
        if self.low is not None and self.high is not None and self.low > self.high:
            raise SchemaError(f"min {self.low} is greater than max {self.high}")
        unit = options.get("unit", "")
        if type(unit) is not str:
            raise SchemaError(f"unit must be a string, not {show_value(unit)}")
        self.unit: str = unit

    def _problem(self, value: Any) -> str | None:
        kind = type(value)
        if kind is int:
            pass
        elif kind is float and self.kind == "number":
            if math.isnan(value):
                return "NaN is not a number"
        else:
            name = "an integer" if self.kind == "int" else "a number"
            return f"{show_value(value)} is not {name}"
        if self.low is not None and value < self.low:
            return f"{value} is below the minimum {self.low}"
        if self.high is not None and value > self.high:
            return f"{value} is above the maximum {self.high}"
        return None

    def _describe(self) -> str:
        text = self.kind
        if self.low is not None or self.high is not None:
            low = "" if self.low is None else f"{self.low:g}"
            high = "" if self.high is None else f"{self.high:g}"
            text += f" {low}..{high}"
        return f"{text} {self.unit}" if self.unit else text


class _Sized(Schema):
    __slots__ = ("kinds", "longest", "name", "shortest")

    def __init__(
        self, source: Any, nullable: bool, name: str, kinds: tuple[type, ...], options: Any
    ) -> None:
        super().__init__(source, nullable)
        self.name = name
        self.kinds = kinds
        self.shortest = _length(options, "min_length")
        self.longest = _length(options, "max_length")
        if self.longest is not None and self.shortest > self.longest:
            raise SchemaError(
                f"min_length {self.shortest} is greater than max_length {self.longest}"
            )

    def _size_problem(self, value: Any) -> str | None:
        if type(value) not in self.kinds:
            return f"{show_value(value)} is not {_article(self.name)}"
        size = len(value)
        if size < self.shortest:
            return f"{show_value(value)} is shorter than {self.shortest}"
        if self.longest is not None and size > self.longest:
            return f"{show_value(value)} is longer than {self.longest}"
        return None

    def _size_text(self) -> str:
        if self.shortest == 0 and self.longest is None:
            return ""
        return f" of length {self.shortest}..{'' if self.longest is None else self.longest}"

    def _problem(self, value: Any) -> str | None:
        return self._size_problem(value)

    def _describe(self) -> str:
        return self.name + self._size_text()


class _String(_Sized):
    __slots__ = ("regex",)

    def __init__(self, source: Any, nullable: bool, options: Mapping[str, Any]) -> None:
        super().__init__(source, nullable, "string", (str,), options)
        pattern = options.get("regex")
        self.regex: re.Pattern[str] | None = None
        if pattern is not None:
            if type(pattern) is not str:
                raise SchemaError(f"regex must be a string, not {show_value(pattern)}")
            try:
                self.regex = re.compile(pattern)
            except re.error as exc:
                raise SchemaError(f"regex {pattern!r} does not compile: {exc}") from None

    def _problem(self, value: Any) -> str | None:
        problem = self._size_problem(value)
        if problem is None and self.regex is not None and not self.regex.fullmatch(value):
            return f"{show_value(value)} does not match the regex {self.regex.pattern!r}"
        return problem

    def _describe(self) -> str:
        regex = f" matching {self.regex.pattern!r}" if self.regex is not None else ""
        return "string" + self._size_text() + regex


class _Enum(Schema):
    __slots__ = ("_keys", "values")

    def __init__(self, source: Any, nullable: bool, options: Mapping[str, Any]) -> None:
        super().__init__(source, nullable)
        values = options.get("values")
        if not isinstance(values, list) or not values:
            raise SchemaError("an enum needs 'values': a non-empty list")
        # (type, value) so that True and 1, 1 and 1.0 are different values
        self._keys = frozenset(_enum_key(value) for value in values)
        self.values = list(values)

    def _problem(self, value: Any) -> str | None:
        try:
            if _enum_key(value) in self._keys:
                return None
        except SchemaError:
            pass
        return f"{show_value(value)} is not one of {show_value(self.values)}"

    def _describe(self) -> str:
        return "one of " + show_value(self.values)


class _List(_Sized):
    __slots__ = ("items",)

    def __init__(self, source: Any, nullable: bool, options: Mapping[str, Any]) -> None:
        super().__init__(source, nullable, "list", (list, tuple), options)
        items = options.get("items")
        self.items: Schema | None = None if items is None else _nested(items, "items")

    def _problem(self, value: Any) -> str | None:
        problem = self._size_problem(value)
        if problem is not None or self.items is None:
            return problem
        for index, item in enumerate(value):
            problem = self.items.problem(item)
            if problem is not None:
                return f"item {index}: {problem}"
        return None

    def _describe(self) -> str:
        of = "" if self.items is None else f" of {self.items.describe()}"
        return "list" + self._size_text() + of


class _Map(Schema):
    __slots__ = ("keys", "required", "values")

    def __init__(self, source: Any, nullable: bool, options: Mapping[str, Any]) -> None:
        super().__init__(source, nullable)
        keys = options.get("keys", {})
        if not isinstance(keys, dict) or not all(type(key) is str for key in keys):
            raise SchemaError("a map's 'keys' must be a map from key names to schemas")
        self.keys = {key: _nested(schema, f"keys.{key}") for key, schema in keys.items()}
        optional = options.get("optional", [])
        if not isinstance(optional, list) or not set(optional) <= set(keys):
            raise SchemaError("a map's 'optional' must be a list of names from its 'keys'")
        self.required = [key for key in keys if key not in optional]
        other = options.get("values")
        self.values: Schema | None = None if other is None else _nested(other, "values")
        if not keys and other is None:
            raise SchemaError("a map needs 'keys', 'values' or both")

    def _problem(self, value: Any) -> str | None:
        if type(value) is not dict:
            return f"{show_value(value)} is not a map"
        for key in self.required:
            if key not in value:
                return f"the key {key!r} is missing"
        for key, item in value.items():
            schema = self.keys.get(key, self.values)
            if schema is None:
                return f"the key {show_value(key)} is not allowed (allowed: {', '.join(self.keys)})"
            problem = schema.problem(item)
            if problem is not None:
                return f"key {show_value(key)}: {problem}"
        return None

    def _describe(self) -> str:
        parts = [f"{key}: {schema.describe()}" for key, schema in self.keys.items()]
        if self.values is not None:
            parts.append(f"*: {self.values.describe()}")
        return "map {" + ", ".join(parts) + "}"


def _article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _enum_key(value: object) -> tuple[type, object]:
    kind = type(value)
    if kind is list or kind is dict:
        raise SchemaError(f"an enum value must be a scalar, not {show_value(value)}")
    return kind, value


def _bound(options: Mapping[str, Any], key: str, kind: str) -> float | None:
    value = options.get(key)
    if value is None:
        return None
    if type(value) is not int and (kind == "int" or type(value) is not float or math.isnan(value)):
        raise SchemaError(f"{key} must be {'an integer' if kind == 'int' else 'a number'}")
    bound: float = value  # as written: 60 stays 60 in messages, not 60.0
    return bound


def _length(options: Mapping[str, Any], key: str) -> Any:
    value = options.get(key, 0 if key == "min_length" else None)
    if value is not None and (type(value) is not int or value < 0):
        raise SchemaError(f"{key} must be an integer 0 or more, not {show_value(value)}")
    return value


def _nested(source: object, where: str) -> Schema:
    try:
        return compile_schema(source)
    except SchemaError as exc:
        raise SchemaError(f"{where}: {exc}") from None


def compile_schema(source: object) -> Schema:
    """Check a schema (a kind's name, or a map) and compile it; `SchemaError` if it is wrong."""
    if type(source) is str:
        source_map: Mapping[str, Any] = {"type": source}
    elif isinstance(source, dict):
        source_map = source
    else:
        raise SchemaError(f"a schema is a kind's name or a map, not {show_value(source)}")
    kind = source_map.get("type")
    if type(kind) is not str or kind not in _KIND_KEYS:
        raise SchemaError(f"unknown kind {show_value(kind)} (use one of {', '.join(KINDS)})")
    unknown = set(source_map) - _COMMON_KEYS - _KIND_KEYS[kind]
    if unknown:
        raise SchemaError(f"{kind}: unknown option {', '.join(sorted(map(str, unknown)))}")
    nullable = source_map.get("nullable", False)
    if type(nullable) is not bool:
        raise SchemaError("nullable must be true or false")
    return _BUILDERS[kind](source, nullable, source_map)


_BUILDERS: Final[Mapping[str, Callable[[Any, bool, Mapping[str, Any]], Schema]]] = {
    "any": lambda source, nullable, _: _Any(source, nullable),
    "bool": lambda source, nullable, _: _Bool(source, nullable),
    "int": lambda source, nullable, options: _Number(source, nullable, "int", options),
    "number": lambda source, nullable, options: _Number(source, nullable, "number", options),
    "string": _String,
    "bytes": lambda source, nullable, options: _Sized(source, nullable, "bytes", (bytes,), options),
    "enum": _Enum,
    "list": _List,
    "map": _Map,
}


#: The keys of a type definition's stored value.
DEFINITION_KEYS: Final = frozenset({"schema", "good", "bad", "doc"})


@dataclass(frozen=True, slots=True)
class TypeDefinition:
    """A schema with its good and bad examples, as stored under ``:.moat.type``."""

    schema: Schema
    good: tuple[Any, ...]
    bad: tuple[Any, ...]
    doc: str = ""

    @classmethod
    def from_value(cls, value: object) -> TypeDefinition:
        """Parse and check a stored definition; `SchemaError` says what is wrong.

        Needs at least one good and one bad example; each good example must
        fit the schema and each bad one must not.
        """
        if not isinstance(value, dict):
            raise SchemaError("a type is a map {schema, good, bad, doc}, not " + show_value(value))
        unknown = set(value) - DEFINITION_KEYS
        if unknown:
            raise SchemaError(f"unknown key {', '.join(sorted(map(str, unknown)))} in a type")
        if "schema" not in value:
            raise SchemaError("a type needs a 'schema'")
        schema = compile_schema(value["schema"])
        good, bad = _examples(value, "good"), _examples(value, "bad")
        for example in good:
            problem = schema.problem(example)
            if problem is not None:
                raise SchemaError(f"the good example {show_value(example)} fails: {problem}")
        for example in bad:
            if schema.problem(example) is None:
                raise SchemaError(f"the bad example {show_value(example)} fits the schema")
        doc = value.get("doc", "")
        if type(doc) is not str:
            raise SchemaError("a type's 'doc' must be a string")
        return cls(schema, good, bad, doc)

    def to_value(self) -> dict[str, Any]:
        """The stored form (`from_value` reads it back)."""
        value: dict[str, Any] = {
            "schema": self.schema.source,
            "good": list(self.good),
            "bad": list(self.bad),
        }
        if self.doc:
            value["doc"] = self.doc
        return value


def _examples(value: Mapping[str, Any], key: str) -> tuple[Any, ...]:
    examples = value.get(key)
    if not isinstance(examples, Sequence) or isinstance(examples, str | bytes) or not examples:
        raise SchemaError(
            f"a type needs '{key}': a non-empty list of values that "
            f"{'fit' if key == 'good' else 'do not fit'} it"
        )
    return tuple(examples)
