"""The schema language of typed paths (moat_log.schema): checks, messages, examples."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moat_log.errors import SchemaError
from moat_log.event import normalize_value
from moat_log.schema import TypeDefinition, compile_schema

#: Schemas with a value that fits and one that does not, and what the message says.
CASES: list[tuple[Any, Any, Any, str]] = [
    ("bool", True, "on", "'on' is not true or false"),
    ({"type": "int", "min": 0, "max": 100}, 40, 101, "101 is above the maximum 100"),
    ({"type": "int"}, 3, 3.0, "3.0 is not an integer"),
    ({"type": "int"}, 3, True, "True is not an integer"),
    ({"type": "number", "min": 5, "max": 35, "unit": "°C"}, 21.5, 4, "4 is below the minimum 5"),
    ({"type": "number"}, 1, math.nan, "NaN is not a number"),
    ({"type": "number"}, 1.5, "21", "'21' is not a number"),
    ({"type": "string", "regex": "[a-z]+"}, "eco", "Eco", "does not match the regex '[a-z]+'"),
    ({"type": "string", "max_length": 3}, "abc", "abcd", "'abcd' is longer than 3"),
    ({"type": "bytes", "min_length": 1}, b"x", b"", "b'' is shorter than 1"),
    ({"type": "enum", "values": ["eco", "comfort"]}, "eco", "off", "'off' is not one of"),
    ({"type": "enum", "values": [1, 2]}, 1, True, "True is not one of [1, 2]"),
    ({"type": "list", "items": "int", "max_length": 2}, [1, 2], [1, "x"], "item 1: 'x' is not"),
    (
        {"type": "map", "keys": {"on": "bool", "dim": "int"}, "optional": ["dim"]},
        {"on": True},
        {"dim": 3},
        "the key 'on' is missing",
    ),
    ({"type": "map", "keys": {"on": "bool"}}, {"on": False}, {"on": 1}, "key 'on': 1 is not"),
    ({"type": "map", "keys": {"on": "bool"}}, {"on": False}, {"on": True, "x": 1}, "not allowed"),
    ({"type": "map", "values": "number"}, {"a": 1, "b": 2.5}, {"a": "1"}, "key 'a': '1' is not"),
    ({"type": "bool", "nullable": True}, None, 0, "0 is not true or false"),
    ("any", {"whatever": [1]}, None, ""),
]


@pytest.mark.parametrize(("schema", "good", "bad", "message"), CASES)
def test_a_schema_takes_what_fits_and_says_what_is_wrong_with_the_rest(
    schema: Any, good: Any, bad: Any, message: str
) -> None:
    compiled = compile_schema(schema)
    assert compiled.problem(good) is None
    if schema == "any":
        return
    problem = compiled.problem(bad)
    assert problem is not None
    assert message in problem


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("float", "unknown kind 'float'"),
        ({"type": "int", "step": 2}, "unknown option step"),
        ({"type": "int", "min": 3, "max": 1}, "min 3 is greater than max 1"),
        ({"type": "int", "min": 0.5}, "min must be an integer"),
        ({"type": "string", "regex": "("}, "does not compile"),
        ({"type": "enum", "values": []}, "non-empty list"),
        ({"type": "map"}, "needs 'keys', 'values' or both"),
        ({"type": "map", "keys": {"a": "int"}, "optional": ["b"]}, "'optional' must be"),
        ({"type": "list", "items": "nope"}, "items: unknown kind 'nope'"),
        (42, "a schema is a kind's name or a map"),
    ],
)
def test_a_wrong_schema_is_refused_with_the_reason(schema: Any, message: str) -> None:
    with pytest.raises(SchemaError) as caught:
        compile_schema(schema)
    assert message in str(caught.value)


def test_a_type_needs_good_and_bad_examples_that_do_what_they_say() -> None:
    TypeDefinition.from_value({"schema": "bool", "good": [True, False], "bad": ["on", 1]})
    with pytest.raises(SchemaError, match="needs 'good'"):
        TypeDefinition.from_value({"schema": "bool", "bad": ["on"]})
    with pytest.raises(SchemaError, match="needs 'bad'"):
        TypeDefinition.from_value({"schema": "bool", "good": [True]})
    with pytest.raises(SchemaError, match="the good example 'on' fails: 'on' is not true or false"):
        TypeDefinition.from_value({"schema": "bool", "good": [True, "on"], "bad": [1]})
    with pytest.raises(SchemaError, match="the bad example False fits the schema"):
        TypeDefinition.from_value({"schema": "bool", "good": [True], "bad": [False]})
    with pytest.raises(SchemaError, match="unknown key example"):
        TypeDefinition.from_value({"schema": "bool", "good": [True], "bad": [1], "example": 1})


def test_a_description_names_the_kind_range_and_unit() -> None:
    schema = compile_schema({"type": "number", "min": 5, "max": 35, "unit": "°C"})
    assert schema.describe() == "number 5..35 °C"
    nested = compile_schema({"type": "map", "keys": {"on": "bool"}, "nullable": True})
    assert nested.describe() == "map {on: bool} or null"


# --- Hypothesis: values generated from a schema fit it ------------------------------

SCALAR_SCHEMAS = st.one_of(
    st.just("bool"),
    st.just("any"),
    st.builds(
        lambda low, span, unit: {"type": "int", "min": low, "max": low + span, "unit": unit},
        st.integers(-1000, 1000),
        st.integers(0, 1000),
        st.sampled_from(["", "%", "W"]),
    ),
    st.builds(
        lambda low, span: {"type": "number", "min": low, "max": low + span},
        st.floats(-1e6, 1e6),
        st.floats(0, 1e6),
    ),
    st.builds(
        lambda regex: {"type": "string", "regex": regex},
        st.sampled_from(["[a-z]+", "[0-9]{2}:[0-9]{2}", "(on|off)", ".*"]),
    ),
    st.builds(
        lambda values: {"type": "enum", "values": values},
        st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3)), min_size=1, max_size=4),
    ),
)


def schemas() -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALAR_SCHEMAS,
        lambda inner: st.one_of(
            st.builds(lambda items: {"type": "list", "items": items, "max_length": 4}, inner),
            st.builds(
                lambda keys: {"type": "map", "keys": keys, "optional": sorted(keys)[:1]},
                st.dictionaries(st.text("abcde", min_size=1, max_size=3), inner, min_size=1),
            ),
            st.builds(lambda inner: {**_as_map(inner), "nullable": True}, inner),
        ),
        max_leaves=4,
    )


def _as_map(schema: Any) -> dict[str, Any]:
    return {"type": schema} if isinstance(schema, str) else dict(schema)


def values_of(schema: Any) -> st.SearchStrategy[Any]:
    """A strategy of values that fit *schema* (written from docs/types.md, not from the code)."""
    spec = _as_map(schema)
    kind = spec["type"]
    plain = _plain_values_of(kind, spec)
    return st.one_of(st.none(), plain) if spec.get("nullable") else plain


def _plain_values_of(kind: str, spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    strategy: st.SearchStrategy[Any] = _VALUES[kind](spec)
    return strategy


def _numbers(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = spec["min"], spec["max"]
    floats = st.floats(low, high, allow_nan=False)
    if math.ceil(low) > math.floor(high):
        return floats
    return floats | st.integers(math.ceil(low), math.floor(high))


def _maps(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    keys = spec["keys"]
    optional = set(spec.get("optional", []))
    return st.fixed_dictionaries(
        {key: values_of(item) for key, item in keys.items() if key not in optional},
        optional={key: values_of(item) for key, item in keys.items() if key in optional},
    )


_VALUES: dict[str, Any] = {
    "bool": lambda spec: st.booleans(),
    "any": lambda spec: st.integers(-(2**63), 2**63 - 1) | st.text() | st.none(),
    "int": lambda spec: st.integers(spec.get("min"), spec.get("max")),
    "number": _numbers,
    "string": lambda spec: st.from_regex(spec["regex"], fullmatch=True),
    "enum": lambda spec: st.sampled_from(spec["values"]),
    "list": lambda spec: st.lists(values_of(spec["items"]), max_size=spec["max_length"]),
    "map": _maps,
}


@settings(max_examples=200, deadline=None)
@given(st.data(), schemas())
def test_a_value_generated_from_a_schema_fits_it(data: st.DataObject, schema: Any) -> None:
    compiled = compile_schema(schema)
    value = data.draw(values_of(schema))
    assert compiled.problem(value) is None
    assert compiled.problem(normalize_value(value)) is None  # also after the wire form


@given(schemas(), st.data())
def test_a_definition_round_trips_through_its_stored_form(schema: Any, data: st.DataObject) -> None:
    if _as_map(schema)["type"] == "any":
        return  # no value is bad for it
    good = data.draw(st.lists(values_of(schema), min_size=1, max_size=3))
    bad = [data.draw(_misfit(schema))]
    definition = TypeDefinition.from_value({"schema": schema, "good": good, "bad": bad})
    again = TypeDefinition.from_value(normalize_value(definition.to_value()))
    assert again.to_value() == definition.to_value()
    assert all(again.schema.problem(value) is None for value in good)
    assert again.schema.problem(bad[0]) is not None


def _misfit(schema: Any) -> st.SearchStrategy[Any]:
    """A value that fits no schema but "any": a map whose key is an int (never a str key)."""
    spec = _as_map(schema)
    if spec["type"] == "map":
        return st.just([b"not a map"])
    return st.just({1: b"no"})
