"""Which type a path has (moat_log.path_types) and what a local write may be (write_check)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.errors import ReservedPathError, SchemaError, ScriptEntryError, TypeCheckError
from moat_log.event import Event, Op
from moat_log.path import Path
from moat_log.path_types import TypeRegistry
from moat_log.reserved import TYPES
from moat_log.vclock import VectorClock
from moat_log.write_check import WriteCheck

BOOL = {"schema": "bool", "good": [True], "bad": ["on"]}
TEMP = {"schema": {"type": "number", "min": 5, "max": 35, "unit": "°C"}, "good": [20], "bad": [40]}
STRING = {"schema": "string", "good": ["x"], "bad": [1]}
INT = {"schema": "int", "good": [1], "bad": ["1"]}

_seq = iter(range(1, 10**6))


def type_event(
    pattern: str, value: Any, *, hlc: int | None = None, origin: str = "pi1", op: Op = Op.SET
) -> Event:
    seq = next(_seq)
    return Event.trusted(
        origin, seq, hlc or seq, VectorClock(), TYPES + Path.parse(pattern), op,
        value, "test", None,
    )  # fmt: skip


def registry(**patterns: Any) -> TypeRegistry:
    return TypeRegistry(type_event(p.replace("__", "."), v) for p, v in patterns.items())


def pattern(types: TypeRegistry, path: str) -> str | None:
    found = types.type_of(Path.parse(path))
    return None if found is None else str(found.pattern)


def test_the_most_specific_pattern_wins_segment_by_segment() -> None:
    types = TypeRegistry(
        [
            type_event("home.#", STRING),
            type_event("home.+.temp", TEMP),
            type_event("home.kitchen.temp", INT),
            type_event("home.#.light", BOOL),
        ]
    )
    assert pattern(types, "home.kitchen.temp") == "home.kitchen.temp"
    assert pattern(types, "home.hall.temp") == "home.+.temp"
    assert pattern(types, "home.hall.note") == "home.#"
    assert pattern(types, "home.hall.lamp.light") == "home.#.light"
    assert pattern(types, "home.hall.light") == "home.#.light"
    assert pattern(types, "home") is None  # '#' takes one segment or more
    assert pattern(types, "garden.temp") is None


def test_a_type_does_not_apply_below_the_reserved_prefix() -> None:
    types = TypeRegistry([type_event("#", INT)])
    assert pattern(types, "anything.at.all") == "#"
    assert pattern(types, ":.moat.script.x") is None


def test_the_newest_event_of_a_pattern_wins_in_any_order() -> None:
    old = type_event("home.+.light", BOOL, hlc=10)
    new = type_event("home.+.light", STRING, hlc=20)
    gone = type_event("home.+.light", None, hlc=30, op=Op.DELETE)
    for order in ([old, new], [new, old], [new, old, new]):
        types = TypeRegistry(order)
        types.check(Path.parse("home.hall.light"), "text")
    assert TypeRegistry([gone, new, old]).type_of(Path.parse("home.hall.light")) is None


def test_a_stored_definition_that_does_not_parse_counts_as_no_type() -> None:
    types = TypeRegistry([type_event("home.+.light", {"schema": "bool", "good": [1], "bad": [2]})])
    assert len(types) == 0
    types.check(Path.parse("home.hall.light"), "anything")


def test_the_refusal_names_the_path_the_type_and_the_problem() -> None:
    types = TypeRegistry([type_event("home.+.temp", TEMP)])
    with pytest.raises(TypeCheckError) as caught:
        types.check(Path.parse("home.hall.temp"), "warm")
    assert str(caught.value) == (
        "home.hall.temp: 'warm' is not a number (type home.+.temp: number 5..35 °C)"
    )


def test_a_changed_type_clears_the_cached_answers() -> None:
    types = TypeRegistry([type_event("home.+.light", BOOL, hlc=10)])
    path = Path.parse("home.hall.light")
    with pytest.raises(TypeCheckError):
        types.check(path, "on")
    types.apply(type_event("home.+.light", STRING, hlc=20))
    types.check(path, "on")


@given(
    st.lists(st.sampled_from(["home", "hall", "+", "#", "light"]), min_size=1, max_size=4),
    st.lists(st.sampled_from(["home", "hall", "light", "x"]), min_size=1, max_size=5),
)
def test_a_path_gets_the_type_of_a_pattern_that_matches_it(
    segments: list[str], path_segments: list[str]
) -> None:
    types = TypeRegistry([type_event(".".join(segments), INT)])
    found = types.type_of(Path(path_segments))
    assert (found is not None) == _matches(segments, path_segments)


def _matches(pattern: list[str], path: list[str]) -> bool:
    """A reference matcher written from docs/types.md: '+' one segment, '#' one or more."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_matches(rest, path[n:]) for n in range(1, len(path) + 1))
    return bool(path) and head in ("+", path[0]) and _matches(rest, path[1:])


# --- the checks of a local write ----------------------------------------------------


def test_a_type_is_checked_when_it_is_stored() -> None:
    checks = WriteCheck()
    checks.check(TYPES + Path.parse("home.+.light"), Op.SET, BOOL)
    with pytest.raises(SchemaError, match="the bad example 'on' fits"):
        checks.check(TYPES / "x", Op.SET, {"schema": "string", "good": ["a"], "bad": ["on"]})
    checks.check(TYPES / "x", Op.DELETE, None)


def test_other_paths_below_the_reserved_prefix_are_refused() -> None:
    with pytest.raises(ReservedPathError, match=r"paths below :\.moat are moat-log's own"):
        WriteCheck().check(Path.parse(":.moat.other"), Op.SET, 1)


def test_a_logged_in_user_stores_only_scripts_that_run_as_that_user() -> None:
    script = {"code": "async def main(script):\n    pass\n", "run": {"on_start": True}}
    path = Path.parse(":.moat.script.demo")
    WriteCheck().check(path, Op.SET, script)  # a local writer: no user needed
    with pytest.raises(ScriptEntryError, match=r"set run\.user to 'alice'"):
        WriteCheck().check(path, Op.SET, script, user="alice")
    mine = {**script, "run": {"on_start": True, "user": "alice"}}
    WriteCheck().check(path, Op.SET, mine, user="alice")
    with pytest.raises(ScriptEntryError, match="not 'alice'"):
        WriteCheck().check(path, Op.SET, mine, user="bob")


def test_a_delete_is_never_refused_by_a_type() -> None:
    checks = WriteCheck(TypeRegistry([type_event("home.+.light", BOOL)]))
    checks.check(Path.parse("home.hall.light"), Op.DELETE, None)
    with pytest.raises(TypeCheckError):
        checks.check(Path.parse("home.hall.light"), Op.SET, "on")


def test_a_script_path_with_a_name_that_is_not_allowed_says_so() -> None:
    with pytest.raises(ScriptEntryError, match="a script lives at"):
        WriteCheck().check(Path.parse(":.moat.script.a.b"), Op.SET, {})


def test_no_type_applies_to_moat_logs_own_paths_and_no_retention_rule_either() -> None:
    from moat_log.journal import compaction
    from moat_log.reserved import RESERVED

    assert compaction.rollup_path(3600 * 10**9, Path.parse("home.temp"))[0] == RESERVED[0]
    types = TypeRegistry([type_event("#", INT)])
    assert types.type_of(Path.parse(":.moat.rollup.1h.home.temp")) is None
    assert compaction.is_reserved(Path.parse(":.moat.script.x"))
    assert compaction.is_reserved(Path.parse(":.moat.rollup.1h.x"))
    assert not compaction.is_reserved(Path.parse("home.x"))
