"""Events: validation on construction, the versioned wire form, causality."""

import contextlib
import math

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.errors import InvalidEventError
from moat_log.event import MAX_EVENT_BYTES, Event, Op
from moat_log.ids import EventId
from moat_log.path import Path
from moat_log.vclock import VectorClock

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
segments = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8), st.integers(-(2**63), 2**63 - 1)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=["Cs"])),
    st.binary(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 100)), inner, max_size=4),
    ),
    max_leaves=12,
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    origin = draw(names)
    op = draw(st.sampled_from(Op))
    deps = draw(st.dictionaries(names.filter(lambda n: n != origin), st.integers(1, 2**40)))
    cause = draw(st.none() | st.builds(EventId, names, st.integers(1, 2**40)))
    return Event(
        origin,
        draw(st.integers(1, 2**64 - 1)),
        draw(st.integers(0, 2**64 - 1)),
        deps,
        Path(draw(st.lists(segments, max_size=6))),
        op,
        None if op is Op.DELETE else draw(values),
        draw(st.text(max_size=20)),
        cause,
    )


@given(events())
def test_every_event_hashes_and_equal_events_hash_alike(event: Event) -> None:
    again = Event.unpack(event.pack())
    assert hash(again) == hash(event)  # also when the value is a list or a map
    assert len({event, again}) == 1


@given(events())
def test_pack_unpack_round_trip(event: Event) -> None:
    data = event.pack()
    again = Event.unpack(data)
    assert again == event
    assert again.pack() == data, "the packed form is canonical"


@given(events())
def test_trusted_unpack_gives_the_validated_event(event: Event) -> None:
    """What the journal reads back decodes to the same event, field types included."""
    data = event.pack()
    trusted, validated = Event.unpack_trusted(data), Event.unpack(data)
    assert trusted == validated
    assert repr(trusted) == repr(validated), "same field types: list not tuple, int not bool"
    assert [type(f) for f in trusted] == [type(f) for f in validated]
    assert trusted.pack() == data


def test_wire_form_is_the_documented_array() -> None:
    event = Event(
        "pi1",
        3,
        1_700_000_000_000_000_000,
        {"pi2": 7},
        Path(("home", 1)),
        Op.SET,
        21.5,
        "knx:1/2/3",
        EventId("pi2", 7),
    )
    assert msgpack.unpackb(event.pack()) == [
        1,
        "pi1",
        3,
        1_700_000_000_000_000_000,
        {"pi2": 7},
        ["home", 1],
        0,
        21.5,
        "knx:1/2/3",
        ["pi2", 7],
    ]


def test_deps_pack_in_origin_order_whatever_the_insertion_order() -> None:
    a = Event("n", 1, 1, {"b": 1, "a": 2}, Path(("x",)), Op.SET)
    b = Event("n", 1, 1, {"a": 2, "b": 1}, Path(("x",)), Op.SET)
    assert a.pack() == b.pack()


def test_tuples_become_lists_so_values_survive_the_wire() -> None:
    event = Event("n", 1, 1, {}, Path(("x",)), Op.SET, (1, (2, 3)))
    assert event.value == [1, [2, 3]]
    assert Event.unpack(event.pack()) == event


def test_nan_survives_the_wire() -> None:
    event = Event("n", 1, 1, {}, Path(("x",)), Op.SET, math.nan)
    assert math.isnan(Event.unpack(event.pack()).value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"origin": "bad name"}, "invalid origin"),
        ({"origin": ""}, "invalid origin"),
        ({"seq": 0}, "invalid seq"),
        ({"seq": True}, "invalid seq"),
        ({"hlc": -1}, "invalid hlc"),
        ({"deps": {"n": 1}}, "own origin"),
        ({"deps": {"m": -1}}, "deps"),
        ({"deps": [1]}, "deps must be a map"),
        ({"path": "a.b"}, "path must be a sequence"),
        ({"path": [1.5]}, "invalid path"),
        ({"op": 7}, "invalid op"),
        ({"op": Op.DELETE, "value": 1}, "delete event carries no value"),
        ({"value": {1.5: 2}}, "map key"),
        ({"value": object()}, "cannot be stored"),
        ({"value": 2**64}, "64 bits"),
        ({"source": 5}, "invalid source"),
        ({"source": "x" * 1000}, "invalid source"),
        ({"cause": ["n"]}, "cause"),
        ({"cause": ["n", 0]}, "invalid cause"),
    ],
)
def test_construction_rejects_invalid_fields(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "origin": "n",
        "seq": 1,
        "hlc": 1,
        "deps": {},
        "path": ("x",),
        "op": Op.SET,
        "value": None,
        "source": "",
        "cause": None,
    }
    with pytest.raises(InvalidEventError, match=message):
        Event(**(base | fields))  # type: ignore[arg-type]


def test_values_nesting_too_deep_are_rejected() -> None:
    value: object = 1
    for _ in range(40):
        value = [value]
    with pytest.raises(InvalidEventError, match="deeper"):
        Event("n", 1, 1, {}, Path(("x",)), Op.SET, value)


def test_oversized_event_is_rejected_when_packed() -> None:
    event = Event("n", 1, 1, {}, Path(("x",)), Op.SET, b"x" * MAX_EVENT_BYTES)
    with pytest.raises(InvalidEventError, match="limit"):
        event.pack()


def test_surrogates_are_rejected_when_packed() -> None:
    event = Event("n", 1, 1, {}, Path(("x",)), Op.SET, "\ud800")
    with pytest.raises(InvalidEventError, match="cannot be packed"):
        event.pack()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a packed event"),
        (b"\xc1", "not a packed event"),
        (msgpack.packb({"a": 1}), "non-empty msgpack array"),
        (msgpack.packb([]), "non-empty msgpack array"),
        (
            msgpack.packb([2, "n", 1, 1, {}, ["x"], 0, None, "", None]),
            "unsupported event format version 2",
        ),
        (msgpack.packb([1, "n", 1, 1, {}, ["x"], 0, None, ""]), "10 fields"),
        (msgpack.packb([1, "n", 1, 1, {}, "x", 0, None, "", None]), "path must be an array"),
        (
            msgpack.packb([1, "n", 1, 1, {}, ["x"], 0, None, "", None]) + b"\x00",
            "not a packed event",
        ),
        (msgpack.packb([True, "n", 1, 1, {}, ["x"], 0, None, "", None]), "format version"),
    ],
)
def test_unpack_rejects_garbage_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        Event.unpack(data)


@given(st.binary(max_size=200))
def test_unpack_of_random_bytes_raises_only_invalid_event_error(data: bytes) -> None:
    with contextlib.suppress(InvalidEventError):
        Event.unpack(data)


@given(st.binary(max_size=200))
def test_trusted_unpack_of_random_bytes_raises_only_invalid_event_error(data: bytes) -> None:
    with contextlib.suppress(InvalidEventError):
        Event.unpack_trusted(data)


def _ev(origin: str, seq: int, deps: dict[str, int]) -> Event:
    return Event(origin, seq, seq, deps, Path(("x",)), Op.SET)


def test_causality_from_deps() -> None:
    a1, a2 = _ev("a", 1, {}), _ev("a", 2, {})
    b1 = _ev("b", 1, {"a": 1})
    c1 = _ev("c", 1, {})
    assert a1.happened_before(a2) and not a2.happened_before(a1)
    assert a1.happened_before(b1)
    assert a2.concurrent_with(b1)
    assert c1.concurrent_with(a1) and c1.concurrent_with(b1)


def test_vector_clock_is_canonical_and_hashable() -> None:
    assert VectorClock({"b": 1, "a": 0, "c": 2}) == {"b": 1, "c": 2}
    assert list(VectorClock({"b": 1, "a": 3})) == ["a", "b"]
    assert hash(VectorClock({"a": 1})) == hash(VectorClock({"a": 1}))
    assert VectorClock({"a": 4}).covers(EventId("a", 4))
    assert not VectorClock({"a": 4}).covers(EventId("a", 5))


def test_an_event_equals_only_events() -> None:
    event = Event("n", 1, 1, {}, Path(("x",)), Op.SET, 5)
    assert event == Event("n", 1, 1, {}, Path(("x",)), Op.SET, 5)
    assert event != tuple(event)
    assert tuple(event) != event
    assert event != Event("n", 1, 1, {}, Path(("x",)), Op.SET, 6)


def test_events_are_immutable_and_replace_validates() -> None:
    event = Event("n", 1, 1, {}, Path(("x",)), Op.SET, 5)
    with pytest.raises(AttributeError):
        event.value = 6  # type: ignore[misc]
    assert event._replace(value=6).value == 6
    with pytest.raises(InvalidEventError, match="invalid seq"):
        event._replace(seq=0)
