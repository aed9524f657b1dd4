"""One strict way to read config tables and wire records into typed structs.

A record type is a `msgspec.Struct` declared with ``forbid_unknown_fields``;
`read` converts a parsed document (a TOML table, an unpacked msgpack map)
into it, in strict mode: no bool for an int, no string for a number, no
unknown key.  Every refusal is a `FieldError` that names the path of the bad
field and what was expected, e.g.::

    sync.peers[2]: 'pi2:99999': the port '99999' is not a number 0 .. 65535
    client.max_connections: expected an integer >= 1, got 0
    client.users.alice.password: unknown key; known keys are read, verifier, write

Types of our own (an address, a `Path`) are declared as their text form
(``str``) and parsed after `read` with `parse`, which names the field's path
when the parser raises `ValueError` or `TypeError`.  A field annotated with
``Meta(description=...)`` is named by that description in messages
("expected a number of seconds 0 .. 3600, got -1").

Why msgspec rather than a reader of our own: docs/decisions.md, "One typed,
strict reader for config and wire records".
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from typing import Any, Final, TypeVar

import msgspec

from .errors import InvalidInputError

__all__ = ["FieldError", "parse", "read"]

T = TypeVar("T")


class FieldError(InvalidInputError):
    """A field of a record is missing, unknown or invalid; *path* names it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


def read(kind: type[T], value: object, *, where: str = "") -> T:
    """*value* converted to the record type *kind*, strictly; raises `FieldError`.

    *where* is the path of *value* in its document (``"sync"``), put in
    front of every path in messages.
    """
    try:
        return msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise _field_error(kind, value, str(exc), where) from None


def parse(parser: Callable[[str], T], text: str, path: str, *, quote: bool = True) -> T:
    """``parser(text)``, its `ValueError` or `TypeError` a `FieldError` at *path*.

    The message quotes *text* (``client.listen[0]: '::1:80': write an IPv6
    ...``) unless *quote* is false, for text that should not reach a log.
    """
    try:
        return parser(text)
    except (ValueError, TypeError) as exc:
        raise FieldError(path, f"{text!r}: {exc}" if quote else str(exc)) from None


# --- messages --------------------------------------------------------------

_AT = re.compile(r"^(?P<problem>.*?)(?: - at `(?P<path>[^`]*)`(?: in `(?P<within>[^`]*)`)?)?$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_EXPECTED = re.compile(r"^Expected `(?P<type>[^`]*)`(?:, got `[^`]*`)?(?P<bound>.*)$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_TYPE_NAMES: Final = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "bytes": "bytes",
    "null": "nothing",
}


def _field_error(kind: type, value: object, message: str, where: str) -> FieldError:
    match = _AT.match(message)
    assert match is not None  # the pattern matches every string
    problem = match["problem"]
    if match["within"] is not None:  # a bad key of a map: "at `key` in `$.a`"
        segments = _segments(match["within"])
        return FieldError(_join(where, segments), f"has a key that is not a string: {problem}")
    path = match["path"] or "$"
    if "[...]" in path:  # msgspec does not say which key of a map was bad
        return _map_value_error(kind, value, path.partition("[...]")[0], where)
    segments = _segments(path)
    if unknown := _UNKNOWN.match(problem):
        known = _known_keys(_type_at(kind, segments))
        segments.append(unknown["name"])
        return FieldError(_join(where, segments), f"unknown key; known keys are {known}")
    if missing := _MISSING.match(problem):
        segments.append(missing["name"])
        return FieldError(_join(where, segments), "is missing")
    if expected := _EXPECTED.match(problem):
        what = _describe(_type_at(kind, segments), expected["type"], expected["bound"])
        got = _value_at(value, segments)
        return FieldError(_join(where, segments), f"expected {what}, got {got!r}")
    return FieldError(_join(where, segments), problem)


def _map_value_error(kind: type, value: object, map_path: str, where: str) -> FieldError:
    """The error of the first bad value in the map at *map_path*, named by its key."""
    segments = _segments(map_path)
    table = _value_at(value, segments)
    value_type = _type_at(kind, [*segments, ""])
    assert isinstance(table, dict)  # msgspec reached its values
    for key, item in table.items():
        try:
            msgspec.convert(item, value_type, strict=True)
        except msgspec.ValidationError as exc:
            return _field_error(value_type, item, str(exc), _join(where, [*segments, str(key)]))
    raise AssertionError(f"no bad value in the map at {map_path}")  # pragma: no cover


def _segments(path: str) -> list[str | int]:
    """``$.a.b[2]`` as ``["a", "b", 2]``."""
    return [
        name if name else int(index) for name, index in _SEGMENT.findall(path.removeprefix("$"))
    ]


def _join(where: str, segments: list[str | int]) -> str:
    text = where
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text += f".{segment}" if text else segment
    return text


def _value_at(value: object, segments: list[str | int]) -> object:
    for segment in segments:
        try:
            value = value[segment]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _unwrapped(kind: Any) -> Any:
    """*kind* without ``Annotated`` and without ``None`` in a union."""
    while typing.get_origin(kind) is typing.Annotated:
        kind = kind.__origin__
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return _unwrapped(args[0]) if len(args) == 1 else kind
    return kind


def _type_at(kind: Any, segments: list[str | int]) -> Any:
    """The declared type of the field at *segments* in a record of type *kind*."""
    for segment in segments:
        inner = _unwrapped(kind)
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            hints = typing.get_type_hints(inner, include_extras=True)
            names = {f.encode_name: f.name for f in msgspec.structs.fields(inner)}
            kind = hints.get(names.get(str(segment), ""), Any)
        else:
            args = typing.get_args(inner)
            kind = args[-1] if args else Any
    return kind


def _known_keys(kind: Any) -> str:
    inner = _unwrapped(kind)
    if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
        return ", ".join(sorted(f.encode_name for f in msgspec.structs.fields(inner)))
    return "none"


def _describe(kind: Any, type_name: str, bound: str) -> str:
    """What a field expects: its description, else its type and the bound it missed."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = args[0] if len(args) == 1 else kind
    if typing.get_origin(kind) is typing.Annotated:
        for meta in kind.__metadata__:
            if isinstance(meta, msgspec.Meta) and meta.description:
                return meta.description
    names = [_TYPE_NAMES.get(name, name) for name in type_name.split(" | ") if name != "null"]
    return " or ".join(names or ["nothing"]) + bound
