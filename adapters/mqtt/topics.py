"""Paths and MQTT topics: escaping one segment, and routes between path patterns and topics.

Theory of operation
-------------------
**One segment, one topic level.**  `segment_to_level` writes a path segment
as a topic level that holds none of MQTT's special characters, and
`level_to_segment` reads it back (the escape follows MoaT's slashed paths,
docs/mqtt-mapping.md, "Escaping"):

=================  ===================================================
segment            level
=================  ===================================================
``"kitchen"``      ``kitchen`` (a string stands for itself, except:)
``:`` in a string  ``::``
``/``              ``:|``
``+``              ``:p``
``#``              ``:h``
NUL (U+0000)       ``:z``
a leading ``$``    ``:$`` (``$`` topics belong to the broker)
``""``             ``:e``
``3`` (an int)     ``:3`` (``:-12``)
=================  ===================================================

Every segment has exactly one level and every level read back gives the
segment it came from; a level that the writer would not produce (``:q``,
``:03``, a bare leading ``$``, an empty level) is refused.

**Routes.**  A `TopicRoute` pairs a path pattern with a topic template.
The pattern is a path in text form whose segments may be variables:
``+name`` is one segment, ``#name`` the rest of the path (zero or more
segments, last only).  The template is a topic whose levels may be
``{name}``: the segment(s) of that variable, escaped.  ``home.+room.light``
with ``home/{room}/light/state`` maps ``home.kitchen.light`` to
``home/kitchen/light/state`` and back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from moat_log.errors import BusDataError, PathSyntaxError
from moat_log.path import Path, Segment
from moat_log.records import FieldError

__all__ = [
    "MAX_TOPIC_BYTES",
    "TopicRoute",
    "is_valid_topic_filter",
    "is_valid_topic_name",
    "level_to_segment",
    "segment_to_level",
    "topic_matches",
]

#: The longest topic MQTT allows, in UTF-8 bytes (MQTT 3.1.1 §4.7.3).
MAX_TOPIC_BYTES: Final = 65535

_ESCAPE: Final = {":": "::", "/": ":|", "+": ":p", "#": ":h", "\x00": ":z"}
_UNESCAPE: Final = {"::": ":", ":|": "/", ":p": "+", ":h": "#", ":z": "\x00"}
_SPECIAL = re.compile(r"[:/+#\x00]")
_INT_LEVEL = re.compile(r":(0|-?[1-9][0-9]*)")
_ESCAPED = re.compile(r":.?")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def segment_to_level(segment: Segment) -> str:
    """The topic level that stands for one path segment (see the table above)."""
    if not isinstance(segment, str):
        return f":{segment}"
    if not segment:
        return ":e"
    level = _SPECIAL.sub(lambda match: _ESCAPE[match.group()], segment)
    return ":" + level if level.startswith("$") else level


def level_to_segment(level: str) -> Segment:
    """The path segment a topic level stands for; `BusDataError` for a level no segment has."""
    if not level:
        raise BusDataError("empty topic level: no path segment is written as one (':e' is '')")
    if level == ":e":
        return ""
    if level.startswith("$"):
        raise BusDataError(f"topic level {level!r} starts with '$': a segment's '$' is ':$'")
    if _INT_LEVEL.fullmatch(level):
        number = int(level[1:])
        if not _INT_MIN <= number <= _INT_MAX:
            raise BusDataError(f"topic level {level!r}: integer outside the signed 64-bit range")
        return number
    if "/" in level:
        raise BusDataError(f"topic level {level!r} holds '/', which separates levels")
    if "+" in level or "#" in level or "\x00" in level:
        raise BusDataError(f"topic level {level!r} holds '+', '#' or NUL, which no topic may")
    start = 0
    if level.startswith(":$"):
        start = 2
    out = ["$"] if start else []

    def unescape(match: re.Match[str]) -> str:
        token = match.group()
        if token not in _UNESCAPE:
            raise BusDataError(
                f"topic level {level!r}: unknown escape {token!r} "
                "(known: '::', ':|', ':p', ':h', ':z', a leading ':$', "
                "':e' and ':' with an integer)"
            )
        return _UNESCAPE[token]

    out.append(_ESCAPED.sub(unescape, level[start:]))
    return "".join(out)


def is_valid_topic_name(topic: str) -> bool:
    """True if *topic* may be published to: 1 .. 65535 UTF-8 bytes, no ``+``, ``#`` or NUL."""
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        return False
    return _utf8_size(topic) is not None


def is_valid_topic_filter(topic_filter: str) -> bool:
    """True if *topic_filter* may be subscribed to (MQTT 3.1.1 §4.7.1).

    ``+`` must fill a whole level, ``#`` must be a whole level and the last.
    """
    if not topic_filter or "\x00" in topic_filter or _utf8_size(topic_filter) is None:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def _utf8_size(text: str) -> int | None:
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        return None
    return size if size <= MAX_TOPIC_BYTES else None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True if a message published to *topic* reaches a subscription to *topic_filter*.

    MQTT 3.1.1 §4.7: ``+`` matches one level, ``#`` the parent level and any
    number of levels below it; a filter starting with a wildcard does not
    match a topic starting with ``$``.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    want = topic_filter.split("/")
    have = topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have):
            return False
        if level not in ("+", have[index]):
            return False
    return len(want) == len(have)


# --- routes ------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    rest: bool  # a '#' variable: the rest of the path


_PathPart = Segment | _Variable
_TopicPart = str | _Variable  # a literal level, or a variable's level(s)


@dataclass(frozen=True, slots=True)
class TopicRoute:
    """A compiled pair of a path pattern and a topic template; build it with `compile`.

    *path_prefix* is the longest literal leading part of the pattern (a scan
    or a subscription by prefix finds every path the route maps);
    *subscription_filter* the MQTT filter that every topic of the route
    matches (``home/+/light/state``).
    """

    pattern: str
    template: str
    path_parts: tuple[_PathPart, ...]
    topic_parts: tuple[_TopicPart, ...]
    path_prefix: Path
    subscription_filter: str

    @classmethod
    def compile(
        cls, pattern: str, template: str, *, where: str = "", template_key: str = "topic"
    ) -> TopicRoute:
        """The route from path *pattern* to topic *template*.

        Raises `FieldError` (naming *where*, the config field of the pair)
        for a pattern or template that is not valid, a variable used on one
        side only or twice, a ``#`` variable that is not last, a literal
        ``+`` or ``#`` or an empty level in the template, or a template that
        starts with ``$``.  *template_key* is the template's key in the
        config table (``topic``, ``command_topic``).
        """
        path_field = f"{where}.path" if where else "path"
        topic_field = f"{where}.{template_key}" if where else template_key
        path_parts = _compile_pattern(pattern, path_field)
        topic_parts = _compile_template(template, topic_field)
        topic_parts = _check_variables(
            path_parts, topic_parts, pattern, template, (path_field, topic_field)
        )
        prefix: list[Segment] = []
        for part in path_parts:
            if isinstance(part, _Variable):
                break
            prefix.append(part)
        topic_filter = "/".join(
            ("#" if part.rest else "+") if isinstance(part, _Variable) else part
            for part in topic_parts
        )
        return cls(pattern, template, path_parts, topic_parts, Path(prefix), topic_filter)

    @property
    def variables(self) -> tuple[str, ...]:
        """The names of the pattern's variables, in path order."""
        return tuple(part.name for part in self.path_parts if isinstance(part, _Variable))

    def bindings(self, path: Path) -> dict[str, tuple[Segment, ...]] | None:
        """The segments each variable takes in *path*, or None if it does not match."""
        parts = self.path_parts
        has_rest = bool(parts) and isinstance(parts[-1], _Variable) and parts[-1].rest
        fixed = len(parts) - 1 if has_rest else len(parts)
        if len(path) < fixed or (not has_rest and len(path) != fixed):
            return None
        bound: dict[str, tuple[Segment, ...]] = {}
        for index in range(fixed):
            part, segment = parts[index], path[index]
            if isinstance(part, _Variable):
                bound[part.name] = (segment,)
            elif type(part) is not type(segment) or part != segment:
                return None
        if has_rest:
            rest = parts[-1]
            assert isinstance(rest, _Variable)
            bound[rest.name] = tuple(path[fixed:])
        return bound

    def topic_for(self, path: Path) -> str | None:
        """The topic of *path*, or None if *path* does not match the pattern."""
        bound = self.bindings(path)
        if bound is None:
            return None
        levels: list[str] = []
        for part in self.topic_parts:
            if isinstance(part, _Variable):
                levels.extend(segment_to_level(segment) for segment in bound[part.name])
            else:
                levels.append(part)
        topic = "/".join(levels)
        if not topic:
            raise BusDataError(f"the path {path} would have an empty topic")
        if len(topic.encode()) > MAX_TOPIC_BYTES:
            raise BusDataError(f"the topic of {path} would exceed {MAX_TOPIC_BYTES} bytes")
        return topic

    def path_for(self, topic: str) -> Path | None:
        """The path *topic* stands for, or None if *topic* does not fit the template.

        A topic that fits but whose variable levels are not escaped segments
        (``:q``), or that would make an invalid path, raises `BusDataError`.
        """
        if not topic_matches(self.subscription_filter, topic):
            return None
        levels = topic.split("/")
        parts = self.topic_parts
        bound: dict[str, tuple[Segment, ...]] = {}
        for index, part in enumerate(parts):
            if not isinstance(part, _Variable):
                continue
            chosen = levels[index:] if part.rest else levels[index : index + 1]
            bound[part.name] = tuple(level_to_segment(level) for level in chosen)
        segments: list[Segment] = []
        for path_part in self.path_parts:
            if isinstance(path_part, _Variable):
                segments.extend(bound[path_part.name])
            else:
                segments.append(path_part)
        try:
            return Path(segments)
        except PathSyntaxError as exc:
            raise BusDataError(f"topic {topic!r} does not make a valid path: {exc}") from None


def _variable(text: str, field: str, side: str) -> _Variable:
    name = text[1:]
    if _NAME.fullmatch(name) is None:
        raise FieldError(
            field,
            f"{side} variable {text!r} needs a name of letters, digits and '_' "
            f"(e.g. {text[0]}room)",
        )
    return _Variable(name, rest=text[0] == "#")


def _compile_pattern(pattern: str, field: str) -> tuple[_PathPart, ...]:
    try:
        path = Path.parse(pattern)
    except PathSyntaxError as exc:
        raise FieldError(field, f"{pattern!r} is not a path pattern: {exc}") from None
    parts: list[_PathPart] = []
    for index, segment in enumerate(path):
        if isinstance(segment, str) and segment[:1] in ("+", "#"):
            variable = _variable(segment, field, "path")
            if variable.rest and index != len(path) - 1:
                raise FieldError(field, f"{pattern!r}: '#{variable.name}' must be the last segment")
            parts.append(variable)
        else:
            parts.append(segment)
    return tuple(parts)


def _compile_template(template: str, field: str) -> tuple[_TopicPart, ...]:
    if not template:
        raise FieldError(field, "the topic template is empty")
    if template.startswith("$"):
        raise FieldError(field, f"{template!r} starts with '$': such topics belong to the broker")
    if _utf8_size(template) is None or "\x00" in template:
        raise FieldError(field, f"{template[:40]!r}... is not a valid topic (too long, or NUL)")
    parts: list[_TopicPart] = []
    for level in template.split("/"):
        if not level:
            raise FieldError(
                field, f"{template!r} has an empty level (a leading, trailing or double '/')"
            )
        if level.startswith("{") and level.endswith("}"):
            parts.append(_variable("+" + level[1:-1], field, "topic"))
        elif "{" in level or "}" in level:
            raise FieldError(
                field, f"{template!r}: level {level!r}: a variable '{{name}}' must fill a level"
            )
        elif "+" in level or "#" in level:
            raise FieldError(
                field, f"{template!r}: level {level!r}: '+' and '#' cannot be in a topic"
            )
        else:
            parts.append(level)
    return tuple(parts)


def _check_variables(
    path_parts: tuple[_PathPart, ...],
    topic_parts: tuple[_TopicPart, ...],
    pattern: str,
    template: str,
    fields: tuple[str, str],
) -> tuple[_TopicPart, ...]:
    path_field, topic_field = fields
    in_path: dict[str, _Variable] = {}
    for part in path_parts:
        if isinstance(part, _Variable):
            if part.name in in_path:
                raise FieldError(path_field, f"{pattern!r} uses the variable {part.name!r} twice")
            in_path[part.name] = part
    seen: set[str] = set()
    resolved: list[_TopicPart] = []
    for index, part in enumerate(topic_parts):
        if not isinstance(part, _Variable):
            resolved.append(part)
            continue
        if part.name not in in_path:
            raise FieldError(
                topic_field,
                f"{template!r}: {{{part.name}}} is not a variable of the path {pattern!r}",
            )
        if part.name in seen:
            raise FieldError(topic_field, f"{template!r} uses {{{part.name}}} twice")
        seen.add(part.name)
        if in_path[part.name].rest and index != len(topic_parts) - 1:
            raise FieldError(
                topic_field,
                f"{template!r}: {{{part.name}}} takes the rest of the path ('#{part.name}'), "
                "so it must be the last level",
            )
        resolved.append(in_path[part.name])
    if missing := [name for name in in_path if name not in seen]:
        raise FieldError(
            topic_field,
            f"{template!r} does not use the path's variable(s) "
            + ", ".join(f"{{{name}}}" for name in missing),
        )
    return tuple(resolved)
