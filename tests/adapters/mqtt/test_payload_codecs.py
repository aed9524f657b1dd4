"""Payload codecs: byte-exact vectors both ways, refusals that say why, round trips."""

from __future__ import annotations

import contextlib
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moat_log.adapters.codec import (
    BoolCodec,
    JsonCodec,
    NumberCodec,
    PayloadCodec,
    RawCodec,
    StringCodec,
    codec_from_config,
)
from moat_log.errors import BusDataError
from moat_log.event import Value
from moat_log.records import FieldError

TENTHS = NumberCodec(scale=0.1, unit="°C")
ON_OFF = BoolCodec()
LOWER = BoolCodec(payload_on="on", payload_off="off", none_payload=b"unknown")

# (codec, stored value, bus bytes): encode(value) == bytes and decode(bytes) == value.
VECTORS: list[tuple[PayloadCodec, Value, bytes]] = [
    (ON_OFF, True, b"ON"),
    (ON_OFF, False, b"OFF"),
    (LOWER, True, b"on"),
    (LOWER, False, b"off"),
    (LOWER, None, b"unknown"),
    (BoolCodec(payload_on="open", payload_off="closed"), True, b"open"),
    (NumberCodec(), 21.5, b"21.5"),
    (NumberCodec(), 21.0, b"21"),
    (NumberCodec(), -0.001, b"-0.001"),
    (NumberCodec(), 0.0, b"0"),
    (NumberCodec(), 1e25, b"1e+25"),
    (NumberCodec(), 1.5e-9, b"1.5e-9"),
    (TENTHS, 21.5, b"215"),
    (TENTHS, 21.0, b"210"),
    (TENTHS, -3.7, b"-37"),
    (NumberCodec(scale=0.5, offset=-40), 0.0, b"80"),
    (NumberCodec(precision=2), 21.5, b"21.50"),
    (NumberCodec(precision=0), 22.0, b"22"),
    (NumberCodec(integer=True), 7, b"7"),
    (NumberCodec(integer=True), -(2**63), b"-9223372036854775808"),
    (NumberCodec(integer=True, scale=10), 1230, b"123"),
    (NumberCodec(integer=True, none_payload=b"None"), None, b"None"),
    (JsonCodec(), {"a": [1, 2.5, None, True]}, b'{"a":[1,2.5,null,true]}'),
    (JsonCodec(), "küche", '"küche"'.encode()),
    (JsonCodec(), None, b"null"),
    (JsonCodec(), 1.0, b"1.0"),
    (JsonCodec(), 1, b"1"),
    (JsonCodec(), [], b"[]"),
    (StringCodec(), "Küche", "Küche".encode()),
    (StringCodec(), " x ", b" x "),
    (StringCodec(none_payload=b"unknown"), None, b"unknown"),
    (RawCodec(), b"\x00\xff", b"\x00\xff"),
]


@pytest.mark.parametrize(("codec", "value", "payload"), VECTORS)
def test_a_value_encodes_to_exactly_its_bytes(
    codec: PayloadCodec, value: Value, payload: bytes
) -> None:
    assert codec.encode(value) == payload


@pytest.mark.parametrize(("codec", "value", "payload"), VECTORS)
def test_the_bytes_decode_to_exactly_the_value_and_its_type(
    codec: PayloadCodec, value: Value, payload: bytes
) -> None:
    decoded = codec.decode(payload)
    assert decoded == value
    assert type(decoded) is type(value)


# Bus bytes that decode, though no encode writes them.
LENIENT: list[tuple[PayloadCodec, bytes, Value]] = [
    (ON_OFF, b"on", True),
    (ON_OFF, b"On", True),
    (ON_OFF, b"true", True),
    (ON_OFF, b"TRUE", True),
    (ON_OFF, b"1", True),
    (ON_OFF, b"off", False),
    (ON_OFF, b"False", False),
    (ON_OFF, b"0", False),
    (BoolCodec(payload_on="open", payload_off="closed"), b"CLOSED", False),
    (BoolCodec(payload_on="open", payload_off="closed"), b"on", True),
    (NumberCodec(), b" 21.5\n", 21.5),
    (NumberCodec(), b"+3", 3.0),
    (NumberCodec(), b"-.5", -0.5),
    (NumberCodec(), b"2.", 2.0),
    (NumberCodec(), b"1.5E2", 150.0),
    (NumberCodec(integer=True), b"1.5e1", 15),
    (NumberCodec(integer=True), b"7.000", 7),
    (TENTHS, b"215.0", 21.5),
]


@pytest.mark.parametrize(("codec", "payload", "value"), LENIENT)
def test_devices_spellings_decode(codec: PayloadCodec, payload: bytes, value: Value) -> None:
    decoded = codec.decode(payload)
    assert decoded == value
    assert type(decoded) is type(value)


# (codec, bad payload, words of the message)
BAD_PAYLOADS: list[tuple[PayloadCodec, bytes, str]] = [
    (ON_OFF, b"", "empty payload"),
    (ON_OFF, b"yes", "b'yes' is neither 'ON' nor 'OFF'"),
    (ON_OFF, b"ON ", "neither"),
    (ON_OFF, b"\xff", "not UTF-8"),
    (ON_OFF, b"unknown", "neither"),
    (NumberCodec(), b"", "empty payload"),
    (NumberCodec(), b"nan", "b'nan' is not a decimal number"),
    (NumberCodec(), b"inf", "not a decimal number"),
    (NumberCodec(), b"-Infinity", "not a decimal number"),
    (NumberCodec(), b"1_000", "not a decimal number"),
    (NumberCodec(), b"0x10", "not a decimal number"),
    (NumberCodec(), b"21,5", "not a decimal number"),
    (NumberCodec(), b"None", "not a decimal number"),
    (NumberCodec(), b"1e400", "too large for a float"),
    (NumberCodec(integer=True), b"1.5", "stores as 1.5, which is not a whole number"),
    (NumberCodec(integer=True), b"18446744073709551616", "does not fit in 64 bits"),
    (NumberCodec(minimum=5, maximum=30), b"30.5", "30.5 is outside the range 5 .. 30"),
    (NumberCodec(minimum=5), b"4", "4.0 is outside the range 5 .. inf"),
    (TENTHS, b"21.5\xff", "not UTF-8"),
    (JsonCodec(), b"{", "not JSON"),
    (JsonCodec(), b"NaN", "not JSON"),
    (JsonCodec(), b"[Infinity]", "not JSON"),
    (JsonCodec(), b"1 2", "not JSON"),
    (JsonCodec(), b"18446744073709551616", "does not fit in 64 bits"),
    (JsonCodec(), b"[" * 40 + b"]" * 40, "nests deeper than 32 levels"),
    (JsonCodec(), b"\xfe", "not UTF-8"),
    (StringCodec(), b"\xc3(", "not UTF-8"),
    (StringCodec(), b"", "empty payload"),
    (RawCodec(), b"", "empty payload"),
]


@pytest.mark.parametrize(("codec", "payload", "message"), BAD_PAYLOADS)
def test_a_bad_payload_raises_bus_data_error_saying_why(
    codec: PayloadCodec, payload: bytes, message: str
) -> None:
    with pytest.raises(BusDataError) as info:
        codec.decode(payload)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{codec.name} codec")


BAD_VALUES: list[tuple[PayloadCodec, Value, str]] = [
    (ON_OFF, 1, "expected true or false, got 1 (int)"),
    (ON_OFF, "ON", "expected true or false"),
    (ON_OFF, None, "cannot write None without a none_payload"),
    (NumberCodec(), True, "expected a number, got True (bool)"),
    (NumberCodec(), "21", "expected a number"),
    (NumberCodec(), math.nan, "not a finite number"),
    (NumberCodec(), -math.inf, "not a finite number"),
    (NumberCodec(integer=True), 2.0, "expected an integer, got 2.0 (float)"),
    (NumberCodec(maximum=30), 31, "31 is outside the range -inf .. 30"),
    (NumberCodec(precision=2), 1e300, "too large to write with 2 digits"),
    (NumberCodec(none_payload=b"1"), 1, "would be written as the none_payload"),
    (JsonCodec(), b"x", "cannot be written as JSON"),
    (JsonCodec(), {1: "a"}, "map key 1 (int) is not a string"),
    (JsonCodec(), [math.nan], "nan cannot be written as JSON"),
    (JsonCodec(), {1, 2}, "cannot be written as JSON"),
    (JsonCodec(none_payload=b'"x"'), "x", "would be written as the none_payload"),
    (StringCodec(), "", "empty string would be an empty payload"),
    (StringCodec(), 3, "expected text, got 3 (int)"),
    (StringCodec(), "\ud800", "not valid Unicode"),
    (StringCodec(none_payload=b"unknown"), "unknown", "read back as None"),
    (RawCodec(), "x", "expected bytes"),
    (RawCodec(), b"", "empty bytes"),
    (RawCodec(), None, "cannot write None"),
]


@pytest.mark.parametrize(("codec", "value", "message"), BAD_VALUES)
def test_a_value_the_bus_cannot_carry_raises_bus_data_error(
    codec: PayloadCodec, value: Value, message: str
) -> None:
    with pytest.raises(BusDataError) as info:
        codec.encode(value)
    assert message in str(info.value)


def test_codecs_tell_discovery_their_words_and_unit() -> None:
    assert ON_OFF.discovery_options() == {"payload_on": "ON", "payload_off": "OFF"}
    assert TENTHS.discovery_options() == {"unit_of_measurement": "°C"}
    assert NumberCodec().discovery_options() == {}
    assert JsonCodec().discovery_options() == {}


# --- round trips -------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(st.characters(codec="utf-8"), min_size=1)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | FINITE | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
WORDS = st.text(st.characters(codec="utf-8"), min_size=1)


@given(st.booleans(), WORDS, WORDS)
def test_bool_round_trips_with_any_valid_pair_of_words(value: bool, on: str, off: str) -> None:
    try:
        codec = BoolCodec(payload_on=on, payload_off=off)
    except ValueError:
        return  # the same word twice, or a word that means the other state
    assert codec.decode(codec.encode(value)) is value


@given(FINITE)
def test_number_round_trips_exactly_without_scale(value: float) -> None:
    assert NumberCodec().decode(NumberCodec().encode(value)) == value


SCALES = st.sampled_from([1.0, 0.1, 0.01, 10.0, 0.5, 3.0, 1 / 3, -2.0])
OFFSETS = st.sampled_from([0.0, -40.0, 273.15, 0.1])


@given(st.floats(-1e12, 1e12), SCALES, OFFSETS)
def test_number_round_trips_within_1e_12_relative_with_scale_and_offset(
    value: float, scale: float, offset: float
) -> None:
    codec = NumberCodec(scale=scale, offset=offset)
    back = codec.decode(codec.encode(value))
    assert math.isclose(back, value, rel_tol=1e-12, abs_tol=1e-12 * max(1.0, abs(offset)))


@given(st.floats(-1e9, 1e9), st.integers(0, 6), SCALES)
def test_number_with_precision_round_trips_within_half_a_last_digit_times_scale(
    value: float, precision: int, scale: float
) -> None:
    codec = NumberCodec(scale=scale, precision=precision)
    back = codec.decode(codec.encode(value))
    step = Decimal(1).scaleb(-precision) * abs(Decimal(repr(scale)))
    # Half a step of rounding, plus the float rounding of the result.
    assert abs(Decimal(back) - Decimal(value)) <= step / 2 + Decimal(abs(value)) * Decimal("1e-15")


@given(st.integers(-(2**53), 2**53), st.sampled_from([1.0, 0.1, 0.01, 10.0, 0.5]))
def test_integer_numbers_round_trip_exactly(value: int, scale: float) -> None:
    codec = NumberCodec(integer=True, scale=scale)
    back = codec.decode(codec.encode(value))
    assert back == value
    assert type(back) is int


@given(JSON_VALUES)
def test_json_round_trips(value: Value) -> None:
    assert JsonCodec().decode(JsonCodec().encode(value)) == value


@given(TEXT)
def test_string_round_trips(value: str) -> None:
    assert StringCodec().decode(StringCodec().encode(value)) == value


@given(st.binary(min_size=1))
def test_raw_round_trips(value: bytes) -> None:
    assert RawCodec().decode(RawCodec().encode(value)) == value


@given(st.binary(min_size=1))
def test_no_codec_crashes_on_garbage(payload: bytes) -> None:
    for codec in (ON_OFF, NumberCodec(), TENTHS, NumberCodec(integer=True), JsonCodec()):
        with contextlib.suppress(BusDataError):
            codec.decode(payload)


# --- config ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "codec"),
    [
        ("json", JsonCodec()),
        ("bool", BoolCodec()),
        ("string", StringCodec()),
        ("raw", RawCodec()),
        ("number", NumberCodec()),
        ("float", NumberCodec()),
        ("int", NumberCodec(integer=True)),
        ({"type": "int", "scale": 10}, NumberCodec(scale=10.0, integer=True)),
        (
            {"type": "number", "scale": 0.1, "unit": "°C", "min": -40, "max": 125},
            NumberCodec(scale=0.1, unit="°C", minimum=-40.0, maximum=125.0),
        ),
        (
            {"type": "bool", "payload_on": "on", "payload_off": "off", "none_payload": "unknown"},
            BoolCodec(b"unknown", "on", "off"),
        ),
        ({"type": "json", "none_payload": "None"}, JsonCodec(b"None")),
    ],
)
def test_a_config_value_names_its_codec(config: object, codec: PayloadCodec) -> None:
    assert codec_from_config(config, "map[0].codec") == codec


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("yaml", "map[0].codec.type: unknown codec 'yaml'; known codecs are bool, number,"),
        ({"scale": 1}, "map[0].codec: unknown codec None"),
        (3, "map[0].codec: expected a codec name or a table, got 3"),
        ({"type": "number", "scal": 1}, "map[0].codec.scal: unknown key; known keys are integer,"),
        ({"type": "json", "scale": 1}, "map[0].codec.scale: unknown key; known keys are"),
        ({"type": "number", "scale": "x"}, "map[0].codec.scale: expected a number, got 'x'"),
        ({"type": "number", "integer": 1}, "map[0].codec.integer: expected true or false, got 1"),
        ({"type": "number", "precision": 16}, "map[0].codec.precision: expected an integer 0 .."),
        ({"type": "number", "scale": 0}, "map[0].codec: scale must not be 0"),
        ({"type": "number", "min": 3, "max": 1}, "map[0].codec: min 3.0 is greater than max 1.0"),
        ({"type": "float", "integer": True}, 'map[0].codec: a "float" codec cannot be integer'),
        ({"type": "bool", "payload_on": "a", "payload_off": "A"}, "are the same word"),
        ({"type": "bool", "payload_on": "false"}, "always means the other state"),
        ({"type": "bool", "payload_off": ""}, "map[0].codec.payload_off: expected a non-empty"),
        ({"type": "bool", "none_payload": "on"}, "none_payload b'on' is also a bool word"),
        ({"type": "string", "none_payload": ""}, "map[0].codec.none_payload: expected a non-empty"),
    ],
)
def test_a_bad_codec_config_names_its_field(config: object, message: str) -> None:
    with pytest.raises(FieldError) as info:
        codec_from_config(config, "map[0].codec")
    assert message in str(info.value)
