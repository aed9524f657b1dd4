"""The KNX datapoint codecs (adapters/knx/dpt.py), byte for byte against xknx 4.0's transcoders.

Each table row is (DPT, plain value, payload); xknx's own transcoder must
produce the same payload and decode it to the same value (made plain: its
enums and dataclasses become bool/str/dict).  Hypothesis checks every
payload and value of each type against xknx and the round trips.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from xknx.dpt.dpt import DPTBase, DPTComplexData, DPTEnumData
from xknx.dpt.payload import DPTArray, DPTBinary
from xknx.exceptions import ConversionError, CouldNotParseTelegram

from moat_log.adapters.knx.dpt import Payload, dpt_codec
from moat_log.errors import BusDataError

BYTE_EXACT: list[tuple[str, Any, Payload]] = [
    ("1.001", True, 1),
    ("1.001", False, 0),
    ("1.002", True, 1),
    ("1.008", "up", 0),
    ("1.008", "down", 1),
    ("3.007", {"control": "increase", "step_code": 3}, 0b1011),
    ("3.007", {"control": "decrease", "step_code": 0}, 0b0000),
    ("3.007", {"control": "increase", "step_code": 0}, 0b1000),
    ("3.008", {"control": "down", "step_code": 7}, 0b1111),
    ("5.001", 50, b"\x80"),
    ("5.001", 100, b"\xff"),
    ("5.001", 0, b"\x00"),
    ("5.003", 360, b"\xff"),
    ("5.010", 255, b"\xff"),
    ("5.010", 7, b"\x07"),
    ("6.010", -128, b"\x80"),
    ("7.001", 65535, b"\xff\xff"),
    ("8.001", -2, b"\xff\xfe"),
    ("9.001", 21.5, b"\x0c\x33"),
    ("9.001", 21.0, b"\x0c\x1a"),
    ("9.001", -30.0, b"\x8a\x24"),
    ("9.001", 0.0, b"\x00\x00"),
    ("9.001", -272.96, b"\xa1\x56"),
    ("9.004", 670433.28, b"\x7f\xfe"),
    ("9.004", 999.68, b"\x36\x1a"),
    ("12.001", 4294967295, b"\xff\xff\xff\xff"),
    ("12.001", 1, b"\x00\x00\x00\x01"),
    ("13.010", -1, b"\xff\xff\xff\xff"),
    ("13.010", 123456, b"\x00\x01\xe2\x40"),
    ("14.056", 21.5, b"\x41\xac\x00\x00"),
    ("14.019", -1.0, b"\xbf\x80\x00\x00"),
    ("14.056", 1234.5, b"\x44\x9a\x50\x00"),
    ("16.000", "KNX is OK", b"KNX is OK\x00\x00\x00\x00\x00"),
    ("16.000", "", bytes(14)),
    ("16.001", "Grüße", b"Gr\xfc\xdfe" + bytes(9)),
]


def xknx_transcoder(number: str) -> type[DPTBase]:
    transcoder = DPTBase.parse_transcoder(number)
    assert transcoder is not None, number
    return transcoder


def xknx_payload(payload: Payload) -> DPTArray | DPTBinary:
    return DPTBinary(payload) if isinstance(payload, int) else DPTArray(payload)


def our_payload(knx: DPTArray | DPTBinary) -> Payload:
    return knx.value if isinstance(knx, DPTBinary) else bytes(knx.value)


def plain(value: Any) -> Any:
    """xknx's value as a plain value: enums are bool (or their name), dataclasses dicts."""
    if isinstance(value, DPTComplexData):
        return value.as_dict()
    if isinstance(value, DPTEnumData):
        return value.name.lower() if value.name.lower() in ("up", "down") else bool(value.value)
    return value


def xknx_encode(number: str, value: Any) -> Payload:
    transcoder = xknx_transcoder(number)
    if isinstance(value, dict):
        value = transcoder.data_type.from_dict(value)  # type: ignore[attr-defined]
    elif isinstance(value, str) and number.startswith("1."):
        value = transcoder.data_type[value.upper()]  # type: ignore[attr-defined]
    return our_payload(transcoder.to_knx(value))


def xknx_decode(number: str, payload: Payload) -> Any:
    return plain(xknx_transcoder(number).from_knx(xknx_payload(payload)))


@pytest.mark.parametrize(("number", "value", "payload"), BYTE_EXACT)
def test_encoding_is_byte_exact_with_xknx(number: str, value: Any, payload: Payload) -> None:
    codec = dpt_codec(number)
    assert codec.encode(value) == payload
    assert xknx_encode(number, value) == payload


@pytest.mark.parametrize(("number", "value", "payload"), BYTE_EXACT)
def test_decoding_gives_the_plain_value_xknx_gives(
    number: str, value: Any, payload: Payload
) -> None:
    decoded = dpt_codec(number).decode(payload)
    assert decoded == value
    assert type(decoded) is type(value)  # plain: True, not Switch.ON
    assert xknx_decode(number, payload) == value


def test_xknx_switch_values_are_enums_that_are_not_true() -> None:
    # Why the codec exists: xknx 4's DPTSwitch decodes to Switch.ON, which != True.
    xknx_value = xknx_transcoder("1.001").from_knx(DPTBinary(1))
    assert xknx_value != True  # noqa: E712
    assert dpt_codec("1.001").decode(1) is True


@pytest.mark.parametrize(
    ("number", "payload", "problem"),
    [
        ("1.001", b"\x01", "expected a 1-bit value, got 1 bytes"),
        ("1.001", 2, "does not fit in 1 bits"),
        ("3.007", b"\x0b", "expected a 4-bit value"),
        ("5.001", 1, "expected 1 bytes, got a small value"),
        ("9.001", b"\x0c", "expected 2 bytes, got 1"),
        ("9.001", b"\x0c\x33\x00", "expected 2 bytes, got 3"),
        ("9.001", b"\x7f\xff", "invalid data"),
        ("9.001", b"\xa1\x55", "outside -273"),  # -273.12 °C
        ("9.004", b"\x8a\x24", "outside 0"),  # -30 lx
        ("12.001", b"\x00\x00\x01", "expected 4 bytes, got 3"),
        ("14.056", b"\x7f\xc0\x00\x00", "not a finite number"),  # NaN
        ("16.000", b"\xc4" + bytes(13), "not ascii text"),
        ("16.000", b"short", "expected 14 bytes, got 5"),
    ],
)
def test_payloads_that_do_not_fit_the_type_are_bus_data_errors(
    number: str, payload: Payload, problem: str
) -> None:
    with pytest.raises(BusDataError, match=problem):
        dpt_codec(number).decode(payload)


@pytest.mark.parametrize(
    ("number", "value", "problem"),
    [
        ("1.001", 1, "expected true or false, got int 1"),
        ("1.001", "on", "expected true or false"),
        ("1.008", True, "expected 'up' or 'down'"),
        ("3.007", {"control": "increase"}, "step_code"),
        ("3.007", {"control": "up", "step_code": 1}, "step_code"),
        ("5.001", 101, "outside 0 .. 100"),
        ("5.010", 256, "outside 0 .. 255"),
        ("5.010", 2.5, "expected an integer"),
        ("5.010", True, "expected an integer"),
        ("9.001", -300, "outside -273"),
        ("9.001", math.nan, "a finite number"),
        ("9.001", "21", "a finite number"),
        ("12.001", -1, "outside 0 .. 4294967295"),
        ("14.056", 1e39, "too large"),
        ("16.000", "Grüße", "ascii cannot hold"),
        ("16.000", "fifteen chars!!", "longer than 14"),
    ],
)
def test_values_the_type_cannot_carry_are_refused(number: str, value: Any, problem: str) -> None:
    with pytest.raises(BusDataError, match=problem):
        dpt_codec(number).encode(value)


def test_unknown_and_unsupported_types_are_named() -> None:
    assert dpt_codec("temperature").number == "9.001"
    assert dpt_codec("9.1").number == "9.001"
    with pytest.raises(ValueError, match="no datapoint type"):
        dpt_codec("nine")
    with pytest.raises(ValueError, match=r"232\.600 is not supported"):
        dpt_codec("232.600")


# --- every payload and value, against xknx -------------------------------

INT_TYPES = ["5.010", "6.010", "7.001", "8.001", "12.001", "13.010"]


@given(st.sampled_from(INT_TYPES), st.data())
def test_integer_types_agree_with_xknx_and_round_trip(number: str, data: st.DataObject) -> None:
    codec = dpt_codec(number)
    low, high = codec.bounds  # type: ignore[attr-defined]
    value = data.draw(st.integers(low, high))
    payload = codec.encode(value)
    assert payload == xknx_encode(number, value)
    assert codec.decode(payload) == value == xknx_decode(number, payload)


@given(st.sampled_from(["5.001", "5.003"]), st.integers(0, 255))
def test_scaled_bytes_decode_as_xknx_and_every_integer_round_trips(number: str, raw: int) -> None:
    codec = dpt_codec(number)
    value = codec.decode(bytes([raw]))
    assert value == xknx_decode(number, bytes([raw]))
    assert codec.decode(codec.encode(value)) == value
    assert codec.encode(value) == xknx_encode(number, value)


@given(st.sampled_from(["9.001", "9.004", "9.020"]), st.binary(min_size=2, max_size=2))
def test_two_byte_floats_decode_as_xknx_and_are_stable(number: str, raw: bytes) -> None:
    codec = dpt_codec(number)
    try:
        expected = xknx_decode(number, raw)
    except ConversionError:
        with pytest.raises(BusDataError):
            codec.decode(raw)
        return
    value = codec.decode(raw)
    assert value == expected
    # One value, several payloads (mantissa*2 at exponent e == mantissa at e+1):
    # encoding picks one, and it decodes to the same value.
    assert codec.decode(codec.encode(value)) == value


@given(st.floats(-273, 670433.28))
@example(20.4751)  # 2047.51: the next exponent
@example(-20.48)  # mantissa -2048
@example(-0.004)
def test_two_byte_floats_encode_as_xknx_within_half_a_step(value: float) -> None:
    codec = dpt_codec("9.001")
    payload = codec.encode(value)
    assert isinstance(payload, bytes)
    exponent = (payload[0] >> 3) & 0x0F
    assert abs(codec.decode(payload) - value) <= 0.005 * 2**exponent + 1e-9  # type: ignore[operator]
    assert payload == xknx_encode("9.001", value)


@given(st.binary(min_size=4, max_size=4))
def test_four_byte_floats_decode_losslessly(raw: bytes) -> None:
    (single,) = struct.unpack(">f", raw)
    assume(math.isfinite(single))
    codec = dpt_codec("14.056")
    value = codec.decode(raw)
    assert codec.encode(value) == raw  # the same bytes again
    expected = xknx_decode("14.056", raw)
    if struct.pack(">f", expected) == raw:  # xknx's 7 digits were enough
        assert value == expected or struct.pack(">f", value) == struct.pack(">f", expected)


def significant_digits(value: float) -> int:
    """The digits of *value*'s repr without leading and trailing zeros (1e12: 1)."""
    mantissa = repr(abs(value)).split("e")[0].replace(".", "")
    return len(mantissa.strip("0")) or 1


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
@example(999999995904.0)  # repr(1e12) is longer than this, with 11 digits fewer
def test_four_byte_floats_encode_as_xknx_and_round_trip(value: float) -> None:
    codec = dpt_codec("14.056")
    assert codec.encode(value) == xknx_encode("14.056", value)
    decoded = codec.decode(codec.encode(value))
    assert isinstance(decoded, float)
    assert struct.pack(">f", decoded) == struct.pack(">f", value)  # the same single
    # Written with no more digits than needed (a repr's length is not that: 1e12).
    assert significant_digits(decoded) <= significant_digits(value)


@given(st.sampled_from(["16.000", "16.001"]), st.data())
def test_text_round_trips_and_agrees_with_xknx(number: str, data: st.DataObject) -> None:
    alphabet = st.characters(min_codepoint=1, max_codepoint=127 if number == "16.000" else 255)
    value = data.draw(st.text(alphabet, max_size=14))
    codec = dpt_codec(number)
    payload = codec.encode(value)
    assert payload == xknx_encode(number, value)
    assert codec.decode(payload) == value == xknx_decode(number, payload)


@given(st.sampled_from(["1.001", "1.008", "3.007", "3.008"]), st.integers(0, 15))
def test_small_values_agree_with_xknx(number: str, raw: int) -> None:
    codec = dpt_codec(number)
    try:
        expected = xknx_decode(number, raw)
    except CouldNotParseTelegram:
        with pytest.raises(BusDataError):
            codec.decode(raw)
        return
    value = codec.decode(raw)
    assert value == expected
    assert codec.encode(value) == raw == xknx_encode(number, value)
