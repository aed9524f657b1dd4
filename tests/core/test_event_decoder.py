"""The fast event decoder gives exactly the reference's verdicts (`Event.unpack`)."""

from __future__ import annotations

import datetime

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_event import events, values

from moat_log.errors import InvalidEventError
from moat_log.event import MAX_SOURCE_CHARS, Event
from moat_log.event_decoder import decode_event, event_from_wire

#: Field values that are wrong somewhere: wrong types, out of range, bad names.
odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, 1, 2, -1, 2**63, 2**64 - 1, 1.0, 0.0]),
    st.floats(),
    st.text(max_size=70),
    st.sampled_from(["", "-a", "a" * 65, "a b", "é", "pi1"]),
    st.binary(max_size=4),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=3)),
)
odd_values = st.recursive(
    odd_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(-2, 2), st.booleans()), inner),
    ),
    max_leaves=8,
)


@st.composite
def wire_forms(draw: st.DrawFn) -> list[object]:
    """A valid event's wire form with some fields replaced, added or dropped."""
    fields: list[object] = draw(events()).to_msgpack()
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, 9))
        fields[index] = draw(odd_values | values)
    if draw(st.integers(0, 9)) == 0:
        fields = fields[: draw(st.integers(0, 11))] + draw(st.lists(odd_scalars, max_size=2))
    return fields


def verdict(decode: object, data: bytes) -> tuple[str, object]:
    try:
        event = decode(data)  # type: ignore[operator]
    except InvalidEventError as exc:
        return "refused", str(exc)
    assert type(event) is Event
    return "accepted", (tuple(event), [type(field) for field in event])


def assert_same_verdict(data: bytes) -> None:
    assert verdict(decode_event, data) == verdict(Event.unpack, data)


@given(events())
def test_valid_events_decode_to_the_same_event(event: Event) -> None:
    data = event.pack()
    assert decode_event(data) == Event.unpack(data)
    assert_same_verdict(data)


@given(wire_forms())
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@example([1, "a", 1, 0, {}, ["x"], 0, None, "", None, None])  # eleven fields
@example([1, "a", 1, 0, {"a": 1}, ["x"], 0, None, "", None])  # own origin in deps
@example([1, "a", 1, 0, {"b": 0}, ["x"], 0, None, "", None])  # a zero dep is dropped
@example([1, "a", 1, 0, {}, ["x"], 1, 5, "", None])  # a delete with a value
@example([1, "a", 1, 0, {}, ["x"], True, None, "", None])
@example([True, "a", 1, 0, {}, ["x"], 0, None, "", None])
@example([1, "a", 1, 0, {}, [True], 0, None, "", None])
@example([1, "a", 1, 0, {}, [2**63], 0, None, "", None])
@example([1, "a", 1, 0, {}, ["x"], 0, None, "s" * (MAX_SOURCE_CHARS + 1), None])
@example([1, "a", 1, 0, {}, ["x"], 0, None, "", ["b", 0]])
@example([1, "a", 1, 0, {}, ["x"], 0, None, "", ("b", 1, 2)])
@example([1, "a", 1, 0, {}, ["x"], 0, {1.5: 1}, "", None])
@example(
    [
        1,
        "a",
        1,
        0,
        {},
        ["x"],
        0,
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        "",
        None,
    ]
)
def test_altered_wire_forms_get_the_same_verdict(fields: list[object]) -> None:
    assert_same_verdict(msgpack.packb(fields, use_bin_type=True))


@given(events(), st.data())
@settings(max_examples=300)
def test_damaged_bytes_get_the_same_verdict(event: Event, data: st.DataObject) -> None:
    packed = bytearray(event.pack())
    for _ in range(data.draw(st.integers(1, 3))):
        packed[data.draw(st.integers(0, len(packed) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(packed)))
    assert_same_verdict(bytes(packed[:cut]))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x9a",
        msgpack.packb([1, "a", 1, 0, {}, ["x"], 0, None, "", None]) + b"\x00",  # trailing byte
        msgpack.packb(
            [1, "a", 1, 0, {}, ["x"], 0, datetime.datetime.now(datetime.UTC), "", None],
            datetime=True,
        ),
        b"\x9a\x01\xa1a\x01\x00\x80\x91\xa1x\x00\xc0\xa0\xc0",  # the canonical minimum: valid
        b"\x9a\x01\xa1a\x01\x00\x82\xa1b\x01\xa1b\x02\x91\xa1x\x00\xc0\xa0\xc0",  # a dep twice
    ],
)
def test_edge_cases_get_the_same_verdict(data: bytes) -> None:
    assert_same_verdict(data)


def wire_verdict(build: object, fields: object) -> tuple[str, object]:
    try:
        event = build(fields)  # type: ignore[operator]
    except InvalidEventError as exc:
        return "refused", str(exc)
    return "accepted", (tuple(event), [type(field) for field in event])


@given(wire_forms() | odd_values)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@example([1, "a", 1, 0, {}, ("x",), 0, None, "", None])  # a tuple path is not an array
@example((1, "a", 1, 0, {}, ["x"], 0, None, "", None))  # nor a tuple event
def test_unpacked_wire_forms_get_the_same_verdict(fields: object) -> None:
    assert wire_verdict(event_from_wire, fields) == wire_verdict(Event.from_msgpack, fields)
