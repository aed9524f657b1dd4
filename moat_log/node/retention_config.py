"""The ``[retention]`` table of the node's config: what compaction may thin out, and when.

::

    [retention]
    every = "1h"          # run compaction this often in the node ("0s" or absent: never)
    away_limit = "30d"    # a peer not seen this long is named by 'peer ls' and 'compact'

    [[retention.rules]]
    name = "temperatures"
    paths = ["home.+.temp", "sensor.#"]   # '+' one segment, a final '#' any rest
    sources = ["knx:", "1wire:"]          # source classes; absent: every source
    keep_raw = "30d"
    rollup = "1h"                         # or "none": old raw events just go

Everything no rule matches is kept for ever (commands, configuration), and
so is every path's current value whatever the rules say.  The first rule
that matches a path applies.  See docs/operator-guide.md, "Retention".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from moat_log.errors import ConfigError, MoatLogError
from moat_log.journal.compaction import PathPattern, RetentionRule
from moat_log.records import FieldError, parse, read
from moat_log.timespec import parse_duration

__all__ = ["DEFAULT_AWAY_LIMIT", "RetentionConfig", "retention_from_table"]

NS: Final = 10**9
#: A peer not seen for this long is pointed out (it still holds compaction back).
DEFAULT_AWAY_LIMIT: Final = 30 * 86400 * NS


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """The rules, how often the node compacts (ns; 0: never by itself), the away limit (ns)."""

    rules: tuple[RetentionRule, ...] = ()
    every: int = 0
    away_limit: int = DEFAULT_AWAY_LIMIT


_DURATION = Meta(description='a duration like "30d", "1h" or "10s"')


class _RuleTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, Meta(min_length=1, description="a rule name")]
    paths: Annotated[list[str], Meta(min_length=1, description='a list like ["home.+.temp"]')]
    keep_raw: Annotated[str, _DURATION]
    rollup: Annotated[str, Meta(description='a duration like "1h", or "none"')]
    sources: Annotated[list[str], Meta(description='a list like ["knx:"]')] = []


class _RetentionTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    every: Annotated[str, _DURATION] | None = None
    away_limit: Annotated[str, _DURATION] | None = None
    rules: list[_RuleTable] = []


def _duration(text: str) -> int:
    return parse_duration(text) if text not in ("0", "0s") else 0


def _rule(index: int, table: _RuleTable) -> RetentionRule:
    where = f"retention.rules[{index}]"
    patterns = tuple(
        parse(PathPattern.parse, text, f"{where}.paths[{n}]") for n, text in enumerate(table.paths)
    )
    keep_raw = parse(parse_duration, table.keep_raw, f"{where}.keep_raw")
    rollup = (
        None if table.rollup == "none" else parse(parse_duration, table.rollup, f"{where}.rollup")
    )
    try:
        return RetentionRule(table.name, patterns, keep_raw, rollup, tuple(table.sources))
    except ValueError as exc:
        raise FieldError(where, str(exc)) from None


def _rules(tables: list[_RuleTable]) -> tuple[RetentionRule, ...]:
    rules = tuple(_rule(index, rule) for index, rule in enumerate(tables))
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise FieldError("retention.rules", f"two rules share a name: {sorted(names)}")
    return rules


def retention_from_table(source: str, table: Any) -> RetentionConfig:
    """The ``[retention]`` table of the config file *source*."""
    try:
        fields = read(_RetentionTable, table, where="retention")
        rules = _rules(fields.rules)
        every = 0 if fields.every is None else parse(_duration, fields.every, "retention.every")
        away = DEFAULT_AWAY_LIMIT
        if fields.away_limit is not None:
            away = parse(parse_duration, fields.away_limit, "retention.away_limit")
    except (FieldError, MoatLogError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return RetentionConfig(rules, every, away)
