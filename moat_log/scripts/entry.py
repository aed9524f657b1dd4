"""A stored script: its code, parameters and run entry, as kept at ``:.moat.script.NAME``.

Theory of operation
-------------------
One path holds the whole script, so that code and run entry change together
(no node ever runs new code with an old run entry) and the path's history is
the script's list of versions.  The value is a map (docs/scripting.md,
"Scripts in the node")::

    {"code": "async def main(script): ...",
     "params": {"light": "home.hall.light"},
     "run": {"where": "any", "on_change": ["home.hall.switch"], "every": 60,
             "on_start": true, "retry": 1, "retry_max": 300, "user": "alice"},
     "doc": "the hall light follows its switch"}

`ScriptEntry.from_value` checks it without running anything: the code must
compile and define ``async def main`` at its top level; the run entry must
say when the script runs.  The node checks every write of a script with it,
so a script a node stores is one it can start.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Final

from moat_log.errors import PathSyntaxError, ScriptEntryError
from moat_log.ids import is_node_name
from moat_log.path import Path
from moat_log.reserved import SCRIPTS

__all__ = ["RunEntry", "ScriptEntry", "Where", "script_name", "script_path", "script_value"]

#: A script's name: one path segment, without dots (its text form needs no escape).
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: The seconds of the first wait after an error, unless the run entry says.
DEFAULT_RETRY: Final = 1.0
#: The longest wait after errors, unless the run entry says.
DEFAULT_RETRY_MAX: Final = 300.0

_ENTRY_KEYS: Final = frozenset({"code", "params", "run", "doc"})
_RUN_KEYS: Final = frozenset(
    {"where", "on_start", "on_change", "every", "retry", "retry_max", "user", "enabled"}
)


def script_path(name: str) -> Path:
    """``:.moat.script.NAME``; `ScriptEntryError` for a name that is not allowed."""
    if type(name) is not str or NAME_RE.fullmatch(name) is None:
        raise ScriptEntryError(
            f"invalid script name {name!r}: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return SCRIPTS / name


def script_name(path: Path) -> str | None:
    """The name of the script stored at *path*, None if *path* is no script's path."""
    if len(path) != len(SCRIPTS) + 1 or not SCRIPTS.is_prefix_of(path):
        return None
    name = path[-1]
    return name if type(name) is str and NAME_RE.fullmatch(name) else None


@dataclass(frozen=True, slots=True)
class Where:
    """Where a script runs: on any one live node, on every node, or on one named node."""

    kind: str  # "any", "every" or "node"
    node: str | None = None

    @classmethod
    def parse(cls, text: object) -> Where:
        if text in ("any", "every"):
            return cls(text)
        if type(text) is str and text.startswith("node:") and is_node_name(text[5:]):
            return cls("node", text[5:])
        raise ScriptEntryError(f"run.where must be 'any', 'every' or 'node:NAME', not {text!r}")

    def __str__(self) -> str:
        return self.kind if self.node is None else f"node:{self.node}"


@dataclass(frozen=True, slots=True)
class RunEntry:
    """When and where a script runs, how it waits after an error, and as whom."""

    where: Where = Where("any")
    on_start: bool = False
    on_change: tuple[Path, ...] = ()
    every: float | None = None
    retry: float = DEFAULT_RETRY
    retry_max: float = DEFAULT_RETRY_MAX
    user: str | None = None
    enabled: bool = True

    @classmethod
    def from_value(cls, value: object) -> RunEntry:
        if not isinstance(value, dict):
            raise ScriptEntryError(f"run must be a map, not {value!r}")
        unknown = set(value) - _RUN_KEYS
        if unknown:
            raise ScriptEntryError(f"unknown key {', '.join(sorted(map(str, unknown)))} in run")
        entry = cls(
            where=Where.parse(value.get("where", "any")),
            on_start=_flag(value, "on_start", False),
            on_change=_paths(value.get("on_change", [])),
            every=_seconds(value, "every", None),
            retry=_seconds(value, "retry", DEFAULT_RETRY),  # type: ignore[arg-type]
            retry_max=_seconds(value, "retry_max", DEFAULT_RETRY_MAX),  # type: ignore[arg-type]
            user=_user(value.get("user")),
            enabled=_flag(value, "enabled", True),
        )
        if not (entry.on_start or entry.on_change or entry.every):
            raise ScriptEntryError(
                "run must say when the script runs: on_start, on_change (paths) or every (seconds)"
            )
        if entry.retry > entry.retry_max:
            raise ScriptEntryError("run.retry must not be more than run.retry_max")
        return entry

    def to_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {"where": str(self.where)}
        if self.on_start:
            value["on_start"] = True
        if self.on_change:
            value["on_change"] = [str(path) for path in self.on_change]
        if self.every is not None:
            value["every"] = self.every
        if self.retry != DEFAULT_RETRY:
            value["retry"] = self.retry
        if self.retry_max != DEFAULT_RETRY_MAX:
            value["retry_max"] = self.retry_max
        if self.user is not None:
            value["user"] = self.user
        if not self.enabled:
            value["enabled"] = False
        return value


@dataclass(frozen=True, slots=True)
class ScriptEntry:
    """A checked script: its name, compiled code, parameters and run entry."""

    name: str
    source: str
    run: RunEntry
    params: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""
    code: CodeType | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_value(cls, name: str, value: object) -> ScriptEntry:
        """Check a stored script's value; `ScriptEntryError` says what is wrong."""
        script_path(name)
        if not isinstance(value, dict):
            raise ScriptEntryError(f"script {name}: a script is a map {{code, run, params, doc}}")
        unknown = set(value) - _ENTRY_KEYS
        if unknown:
            raise ScriptEntryError(
                f"script {name}: unknown key {', '.join(sorted(map(str, unknown)))}"
            )
        source = value.get("code")
        if type(source) is not str:
            raise ScriptEntryError(f"script {name}: 'code' must be the script's Python text")
        params = value.get("params", {})
        if not isinstance(params, dict) or not all(type(key) is str for key in params):
            raise ScriptEntryError(f"script {name}: 'params' must be a map with string keys")
        doc = value.get("doc", "")
        if type(doc) is not str:
            raise ScriptEntryError(f"script {name}: 'doc' must be a string")
        try:
            run = RunEntry.from_value(value.get("run"))
        except ScriptEntryError as exc:
            raise ScriptEntryError(f"script {name}: {exc}") from None
        return cls(name, source, run, params, doc, compile_script(name, source))

    def to_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {"code": self.source, "run": self.run.to_value()}
        if self.params:
            value["params"] = dict(self.params)
        if self.doc:
            value["doc"] = self.doc
        return value


def compile_script(name: str, source: str) -> CodeType:
    """Compile a script's code; it must define ``async def main`` at its top level."""
    filename = f"<script {name}>"
    try:
        tree = ast.parse(source, filename)
        code = compile(tree, filename, "exec")
    except (SyntaxError, ValueError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        raise ScriptEntryError(f"script {name}: the code does not compile{where}: {exc}") from None
    defined = (node.name for node in tree.body if isinstance(node, ast.AsyncFunctionDef))
    if "main" not in defined:
        raise ScriptEntryError(
            f"script {name}: the code must define 'async def main(script)' at its top level"
        )
    return code


def _flag(value: Mapping[str, Any], key: str, default: bool) -> bool:
    flag = value.get(key, default)
    if type(flag) is not bool:
        raise ScriptEntryError(f"run.{key} must be true or false, not {flag!r}")
    return flag


def _seconds(value: Mapping[str, Any], key: str, default: float | None) -> float | None:
    seconds = value.get(key, default)
    if seconds is None:
        return None
    if type(seconds) not in (int, float) or not 0 < seconds < math.inf:
        raise ScriptEntryError(f"run.{key} must be a number of seconds above 0, not {seconds!r}")
    return float(seconds)


def _paths(texts: object) -> tuple[Path, ...]:
    if not isinstance(texts, list):
        raise ScriptEntryError("run.on_change must be a list of paths")
    paths = []
    for text in texts:
        try:
            paths.append(Path.parse(text) if type(text) is str else Path(text))
        except (PathSyntaxError, TypeError) as exc:
            raise ScriptEntryError(f"run.on_change: {text!r} is not a path: {exc}") from None
    return tuple(paths)


def _user(user: object) -> str | None:
    if user is None or (type(user) is str and user):
        return user
    raise ScriptEntryError(f"run.user must be a user's name, not {user!r}")


def script_value(
    code: str,
    *,
    on_start: bool = False,
    on_change: Iterable[str | Path] = (),
    every: float | None = None,
    where: str = "any",
    user: str | None = None,
    params: Mapping[str, Any] | None = None,
    retry: float = DEFAULT_RETRY,
    retry_max: float = DEFAULT_RETRY_MAX,
    enabled: bool = True,
    doc: str = "",
) -> dict[str, Any]:
    """The value to store at ``:.moat.script.NAME`` for a script; checked as the node checks it.

    ``await client.set(":.moat.script.hall-light", script_value(CODE, on_change=[...]))``
    """
    run = RunEntry(
        Where.parse(where),
        on_start,
        tuple(Path.parse(p) if isinstance(p, str) else Path(p) for p in on_change),
        None if every is None else float(every),
        float(retry),
        float(retry_max),
        user,
        enabled,
    )
    value: dict[str, Any] = {"code": code, "run": run.to_value()}
    if params:
        value["params"] = dict(params)
    if doc:
        value["doc"] = doc
    ScriptEntry.from_value("checked", value)
    return value
